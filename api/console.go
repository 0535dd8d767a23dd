package api

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gavelxmpp/gavel/commands"
)

// The console: a web page to see and steer a tenant's meetings, served
// under /console/ by the same Server as the API, signed in with the same
// admin tokens. The page and its script are embedded (console/); they use
// the JSON endpoints under /console/api/, which answer only to a session
// cookie and, for every action, the session's CSRF token. See
// docs/console.md.

//go:embed console
var consoleFiles embed.FS

// Limits of the console.
const (
	// maxSessions bounds the signed-in sessions kept; past it the oldest
	// goes.
	maxSessions = 1024
	// maxSessionLength bounds a session, whatever the token's exp.
	maxSessionLength = 12 * time.Hour
	// maxStreams bounds the live streams (server-sent events) over all
	// sessions, and maxStreamsPerSession those of one session.
	maxStreams           = 256
	maxStreamsPerSession = 4
	// sessionCookie is the name of the session cookie.
	sessionCookie = "gavel_console"
	// csrfHeader carries the session's CSRF token on every action.
	csrfHeader = "X-CSRF-Token"
)

// consolePolicy is the Content-Security-Policy of every console response:
// nothing but the console's own files, no inline script or style, no
// framing.
const consolePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Health is what the console's health view shows of the XMPP side and the
// store, as cmd/gavel gathers it.
type Health struct {
	// Servers are the XMPP servers gavel is connected to (one per
	// component connection).
	Servers []ServerHealth
	// Store is "" when the store takes writes, else why not.
	Store string
}

// ServerHealth is one XMPP connection.
type ServerHealth struct {
	Address    string
	Connected  bool
	Reconnects uint64
}

// console is the console's state: sessions, live streams and the knock
// history of the health view.
type console struct {
	s      *Server
	rooms  commands.RoomViewer
	health func() Health
	poll   time.Duration
	assets http.Handler

	mu       sync.Mutex
	sessions map[string]*consoleSession
	hubs     map[string]*hub // by tenant, while someone watches
	streams  int
	closing  chan struct{}
	closed   bool

	history *history
}

// consoleSession is one signed-in admin.
type consoleSession struct {
	id, csrf string
	p        principal
	tenant   string
	created  time.Time
	expires  time.Time
	streams  int
}

func newConsole(s *Server, opts Options) *console {
	sub, _ := fs.Sub(consoleFiles, "console")
	c := &console{
		s: s, rooms: opts.Rooms, health: opts.Health, poll: opts.ConsolePoll,
		assets:   http.StripPrefix("/console/assets/", http.FileServer(http.FS(sub))),
		sessions: map[string]*consoleSession{}, hubs: map[string]*hub{},
		closing: make(chan struct{}), history: newHistory(),
	}
	if c.poll <= 0 {
		c.poll = DefaultConsolePoll
	}
	return c
}

// DefaultConsolePoll is how often the console looks at the rooms of a
// tenant someone watches, when Options.ConsolePoll is zero.
const DefaultConsolePoll = time.Second

// close ends every live stream; the server is shutting down.
func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.closing)
	}
}

// routes adds the console's routes.
func (c *console) routes(handle func(pattern, route string, h http.HandlerFunc)) {
	handle("GET /console", "console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
	})
	handle("GET /console/{$}", "console", c.page)
	handle("GET /console/assets/", "console_assets", c.asset)
	handle("POST /console/session", "console_signin", c.signIn)
	handle("POST /console/logout", "console_signout", c.signOut)
	handle("GET /console/api/session", "console_session", c.sessionInfo)
	handle("GET /console/api/rooms", "console_rooms", c.roomsNow)
	handle("GET /console/api/events", "console_events", c.events)
	handle("GET /console/api/bans", "console_bans", c.bans)
	handle("GET /console/api/meetings", "console_meetings", c.meetings)
	handle("GET /console/api/health", "console_health", c.healthView)
	handle("POST /console/api/rooms/role", "console_set_role", c.setRole)
	handle("POST /console/api/rooms/kick", "console_kick", c.kick)
	handle("POST /console/api/rooms/destroy", "console_destroy", c.destroy)
	handle("POST /console/api/rooms/lock", "console_lock", c.lock)
	handle("POST /console/api/rooms/policy", "console_policy", c.setPolicy)
	handle("POST /console/api/bans", "console_ban", c.ban)
	handle("POST /console/api/bans/lift", "console_unban", c.unban)
	handle("POST /console/api/meetings", "console_create_meeting", c.createMeeting)
}

// secure sets the headers every console response carries.
func secure(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", consolePolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: with no-referrer the browser sends
	// "Origin: null" on the console's own forms.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// page serves the console, or the sign-in page without a session.
func (c *console) page(w http.ResponseWriter, r *http.Request) {
	secure(w)
	w.Header().Set("Cache-Control", "no-store")
	name := "index.html"
	if c.session(r) == nil {
		name = "signin.html"
	}
	data, err := consoleFiles.ReadFile("console/" + name)
	if err != nil {
		infoOf(r).err = err
		writeError(w, r, &apiError{http.StatusInternalServerError, "internal", "internal error: see gavel's log"})
		return
	}
	infoOf(r).result = "ok"
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(data)
}

// asset serves an embedded file (script, style, icon).
func (c *console) asset(w http.ResponseWriter, r *http.Request) {
	secure(w)
	w.Header().Set("Cache-Control", "no-cache")
	infoOf(r).result = "ok"
	c.assets.ServeHTTP(w, r)
}

// sameOrigin refuses requests another site made a browser send: an Origin
// other than the console's own, or Sec-Fetch-Site cross-site. Clients that
// send neither (not browsers) pass; the session cookie and CSRF token
// still stand.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" && r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// signIn handles POST /console/session: the form's admin token becomes a
// session cookie. The token itself is kept nowhere.
func (c *console) signIn(w http.ResponseWriter, r *http.Request) {
	secure(w)
	if !sameOrigin(r) {
		writeError(w, r, &apiError{http.StatusForbidden, "cross-origin", "sign in from the console's own page"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBytes+1024)
	if err := r.ParseForm(); err != nil {
		writeError(w, r, errBadRequest("the sign-in form could not be read"))
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	tok = strings.TrimPrefix(tok, "Bearer ")
	p, e := c.s.verifier.verify(tok)
	var tenant string
	if e == nil {
		var err error
		if tenant, err = commands.NormalizeTenant(p.sub); err != nil {
			e = &apiError{http.StatusForbidden, "wrong-tenant", "the admin token's sub is not a tenant name"}
		}
	}
	if e != nil {
		infoOf(r).result = e.code
		c.signInPage(w, r, e)
		return
	}
	infoOf(r).tenant = tenant
	now := c.s.now()
	sess := &consoleSession{id: randomToken(), csrf: randomToken(), p: p, tenant: tenant, created: now, expires: now.Add(maxSessionLength)}
	if !p.exp.IsZero() && p.exp.Before(sess.expires) {
		sess.expires = p.exp
	}
	c.mu.Lock()
	c.pruneSessions(now)
	c.sessions[sess.id] = sess
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.id, Path: "/console/", Expires: sess.expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	infoOf(r).result = "ok"
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// signInPage answers a refused sign-in with the sign-in page and why, so
// that it works without JavaScript.
func (c *console) signInPage(w http.ResponseWriter, r *http.Request, e *apiError) {
	data, _ := consoleFiles.ReadFile("console/signin.html")
	msg := `<p class="error" role="alert" id="signin-error">` + htmlEscape(e.message) + `</p>`
	page := strings.Replace(string(data), "<!--error-->", msg, 1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.status)
	_, _ = w.Write([]byte(page))
}

// signOut handles POST /console/logout: the session ends.
func (c *console) signOut(w http.ResponseWriter, r *http.Request) {
	secure(w)
	sess, ok := c.action(w, r)
	if !ok {
		return
	}
	c.mu.Lock()
	delete(c.sessions, sess.id)
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/console/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	infoOf(r).result = "ok"
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// session returns r's live session, or nil.
func (c *console) session(r *http.Request) *consoleSession {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	now := c.s.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	sess := c.sessions[ck.Value]
	if sess == nil {
		return nil
	}
	if !now.Before(sess.expires) {
		delete(c.sessions, sess.id)
		return nil
	}
	return sess
}

// reader returns the session of a read request, or writes 401.
func (c *console) reader(w http.ResponseWriter, r *http.Request) (*consoleSession, bool) {
	secure(w)
	w.Header().Set("Cache-Control", "no-store")
	sess := c.session(r)
	if sess == nil {
		writeError(w, r, errUnauthorized("sign in to the console: no session, or it has ended"))
		return nil, false
	}
	infoOf(r).tenant = sess.tenant
	return sess, true
}

// action returns the session of an action, checking its origin and its
// CSRF token (the header, or the form's csrf field), or writes the error.
func (c *console) action(w http.ResponseWriter, r *http.Request) (*consoleSession, bool) {
	sess, ok := c.reader(w, r)
	if !ok {
		return nil, false
	}
	if !sameOrigin(r) {
		writeError(w, r, &apiError{http.StatusForbidden, "cross-origin", "console actions must come from the console's own page"})
		return nil, false
	}
	got := r.Header.Get(csrfHeader)
	if got == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		got = r.PostFormValue("csrf")
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) != 1 {
		writeError(w, r, &apiError{http.StatusForbidden, "csrf", "the action lacks the session's CSRF token: reload the console"})
		return nil, false
	}
	return sess, true
}

// by is the issuer the command layer records for a console action.
func (sess *consoleSession) by() string {
	if sess.p.name == "" {
		return "console:" + sess.p.sub
	}
	return "console:" + sess.p.sub + " (" + sess.p.name + ")"
}

// pruneSessions drops ended sessions and, past maxSessions, the oldest.
// c.mu is held.
func (c *console) pruneSessions(now time.Time) {
	for id, s := range c.sessions {
		if !now.Before(s.expires) {
			delete(c.sessions, id)
		}
	}
	for len(c.sessions) >= maxSessions {
		var oldest *consoleSession
		for _, s := range c.sessions {
			if oldest == nil || s.created.Before(oldest.created) {
				oldest = s
			}
		}
		delete(c.sessions, oldest.id)
	}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// htmlEscape escapes text for an HTML element's content.
func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;").Replace(s)
}
