package api

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/store"
)

// fakeRooms is a test double of commands.RoomViewer: rooms by tenant.
type fakeRooms struct {
	mu    sync.Mutex
	rooms map[string][]commands.RoomView
	asked []string
}

func (f *fakeRooms) RoomViews(_ context.Context, tenant string) ([]commands.RoomView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, tenant)
	return append([]commands.RoomView(nil), f.rooms[tenant]...), nil
}

func (f *fakeRooms) set(tenant string, views ...commands.RoomView) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rooms[tenant] = views
}

// roleCommands adds the role command to fakeCommands.
type roleCommands struct{ *fakeCommands }

func (f roleCommands) SetRole(_ context.Context, roomJID, nick, role, by string) error {
	return f.record(call{Method: "SetRole", Room: roomJID, Nick: nick, Reason: role, By: by})
}

// consoleFixture is a fixture with a console and a browser-like client: a
// cookie jar, no redirects followed.
type consoleFixture struct {
	*fixture
	rooms  *fakeRooms
	client *http.Client
}

func newConsoleFixture(t *testing.T, edit func(*Options)) *consoleFixture {
	t.Helper()
	rooms := &fakeRooms{rooms: map[string][]commands.RoomView{
		testTenant: {standupView()},
		"other":    {{JID: "[other]secret@" + testDomain, Tenant: "other", Name: "secret", MUC: testDomain, Policy: "token", State: "joined"}},
	}}
	f := newFixture(t, func(o *Options) {
		o.Rooms = rooms
		o.ConsolePoll = 5 * time.Millisecond
		o.Commands = roleCommands{o.Commands.(*fakeCommands)}
		if edit != nil {
			edit(o)
		}
	})
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &consoleFixture{fixture: f, rooms: rooms, client: client}
}

func standupView() commands.RoomView {
	return commands.RoomView{
		JID: testRoom, Tenant: testTenant, Name: "standup", MUC: testDomain, Policy: "token", State: "joined",
		Occupants: []commands.OccupantView{
			{Nick: "alice", BareJID: "alice@example.test", UserID: "u-alice", Affiliation: "owner", Role: "moderator", Reason: "token-moderator", Expires: testEpoch.Add(time.Hour)},
			{Nick: "bob", BareJID: "bob@example.test", Affiliation: "member", Role: "participant", Reason: "token-participant"},
		},
	}
}

// signIn posts token to the sign-in form and returns the response.
func (f *consoleFixture) signIn(t *testing.T, token string) *http.Response {
	t.Helper()
	resp, err := f.client.PostForm(f.ts.URL+"/console/session", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// session signs in as the test tenant and returns the CSRF token.
func (f *consoleFixture) session(t *testing.T) string {
	t.Helper()
	if resp := f.signIn(t, mint(t, f.clock.Now(), nil)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %s", resp.Status)
	}
	var s sessionJSON
	if r := f.get(t, "/console/api/session", &s); r.status != http.StatusOK {
		t.Fatalf("session: %d %s", r.status, r.body)
	}
	return s.CSRF
}

// get sends a GET with the jar's cookies and decodes a 200 JSON body into v.
func (f *consoleFixture) get(t *testing.T, path string, v any) response {
	t.Helper()
	return f.send(t, "GET", path, "", nil, v)
}

// send sends a request with the jar's cookies and the given headers.
func (f *consoleFixture) send(t *testing.T, method, path, body string, header map[string]string, v any) response {
	t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, val := range header {
		req.Header.Set(k, val)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

func TestConsoleSignIn(t *testing.T) {
	f := newConsoleFixture(t, nil)
	// Without a session, the page is the sign-in form.
	if r := f.get(t, "/console/", nil); r.status != http.StatusOK || !strings.Contains(r.body, `action="session"`) {
		t.Fatalf("page without a session: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name, token, want string
		status            int
	}{
		{"garbage", "not-a-jwt", "refused", http.StatusUnauthorized},
		{"other key", mint(t, f.clock.Now(), func(m *auth.MintRequest) { m.Secret = otherSecret }), "signature", http.StatusUnauthorized},
		{"not admin", mint(t, f.clock.Now(), func(m *auth.MintRequest) { m.Extra = nil }), "admin", http.StatusForbidden},
		{"expired", mint(t, f.clock.Now().Add(-2*time.Hour), nil), "expired", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.client.PostForm(f.ts.URL+"/console/session", url.Values{"token": {tc.token}})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), `id="signin-error"`) || !strings.Contains(string(body), tc.want) {
				t.Errorf("%s: %s", resp.Status, body)
			}
			if len(resp.Cookies()) != 0 {
				t.Errorf("a refused sign-in set cookies: %v", resp.Cookies())
			}
		})
	}
	tok := mint(t, f.clock.Now(), func(m *auth.MintRequest) { m.Extra["name"] = "Ada" })
	resp := f.signIn(t, tok)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("sign in: %s %v", resp.Status, resp.Header)
	}
	cs := resp.Cookies()
	if len(cs) != 1 || cs[0].Name != sessionCookie || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode || cs[0].Secure || cs[0].Path != "/console/" {
		t.Fatalf("cookie %+v", cs)
	}
	if strings.Contains(cs[0].Value, tok) || len(cs[0].Value) < 40 {
		t.Errorf("cookie value %q: want a random session id, not the token", cs[0].Value)
	}
	r := f.get(t, "/console/", nil)
	if !strings.Contains(r.body, `src="assets/console.js"`) || r.header.Get("Content-Security-Policy") != consolePolicy {
		t.Errorf("console page: %v %s", r.header, r.body)
	}
	var s sessionJSON
	f.get(t, "/console/api/session", &s)
	if s.Tenant != testTenant || s.CSRF == "" || s.By != "console:acme (Ada)" || !s.Features["setRole"] || !s.Features["lock"] || !s.Features["policy"] {
		t.Errorf("session %+v", s)
	}
	// The session ends with the token (an hour, plus the leeway).
	f.clock.Add(time.Hour + time.Minute)
	if r := f.get(t, "/console/api/session", nil); r.status != http.StatusUnauthorized {
		t.Errorf("after the token's exp: %d", r.status)
	}
}

// TestConsoleCookieSecureOnTLS: served over TLS, the cookie is Secure.
func TestConsoleCookieSecureOnTLS(t *testing.T) {
	f := newConsoleFixture(t, nil)
	req := httptest.NewRequest("POST", "https://gavel.example.test/console/session", strings.NewReader("token="+mint(t, f.clock.Now(), nil)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.TLS = &tls.ConnectionState{}
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, req)
	cs := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("%d %+v", w.Code, cs)
	}
}

func TestConsoleRoomsOfTheTenantOnly(t *testing.T) {
	f := newConsoleFixture(t, nil)
	if r := f.get(t, "/console/api/rooms", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("rooms without a session: %d", r.status)
	}
	f.session(t)
	var page roomsJSON
	f.get(t, "/console/api/rooms", &page)
	if page.All != 1 || len(page.Rooms) != 1 || page.Rooms[0].JID != testRoom || page.Occupants != 2 {
		t.Fatalf("page %+v", page)
	}
	o := page.Rooms[0].Occupants[0]
	if o.Nick != "alice" || o.Reason != "token-moderator" || o.Expires != "2030-01-02T16:04:05Z" || o.UserID != "u-alice" {
		t.Errorf("occupant %+v", o)
	}
	f.rooms.mu.Lock()
	asked := f.rooms.asked
	f.rooms.mu.Unlock()
	for _, a := range asked {
		if a != testTenant {
			t.Errorf("the console asked for tenant %q's rooms", a)
		}
	}
}

func TestConsolePagingAndFilter(t *testing.T) {
	f := newConsoleFixture(t, nil)
	views := make([]commands.RoomView, 1000)
	for i := range views {
		views[i] = commands.RoomView{JID: "[acme]r" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + "@" + testDomain, Name: "r", State: "joined"}
	}
	views[500].Occupants = []commands.OccupantView{{Nick: "Needle", BareJID: "needle@example.test"}}
	f.rooms.set(testTenant, views...)
	f.session(t)
	var page roomsJSON
	f.get(t, "/console/api/rooms?page=3", &page)
	if page.Page != 3 || page.Pages != 50 || len(page.Rooms) != roomsPageSize || page.Total != 1000 {
		t.Errorf("page 3: page %d of %d, %d rooms, total %d", page.Page, page.Pages, len(page.Rooms), page.Total)
	}
	f.get(t, "/console/api/rooms?page=99", &page)
	if page.Page != 50 {
		t.Errorf("page 99 gives page %d", page.Page)
	}
	f.get(t, "/console/api/rooms?q=needle", &page)
	if page.Total != 1 || len(page.Rooms) != 1 || page.Rooms[0].Occupants[0].Nick != "Needle" {
		t.Errorf("filter: %+v", page)
	}
}

func TestConsoleActions(t *testing.T) {
	f := newConsoleFixture(t, nil)
	csrf := f.session(t)
	json := map[string]string{"Content-Type": "application/json", csrfHeader: csrf}
	for _, tc := range []struct {
		name, path, body string
		header           map[string]string
		status           int
		code             string
	}{
		{"no CSRF token", "/console/api/rooms/kick", `{"room":"` + testRoom + `","nick":"bob"}`, map[string]string{"Content-Type": "application/json"}, 403, "csrf"},
		{"wrong CSRF token", "/console/api/rooms/kick", `{"room":"` + testRoom + `","nick":"bob"}`, map[string]string{csrfHeader: "x" + csrf}, 403, "csrf"},
		{"another site", "/console/api/rooms/kick", `{"room":"` + testRoom + `","nick":"bob"}`, map[string]string{csrfHeader: csrf, "Origin": "https://evil.example"}, 403, "cross-origin"},
		{"another site, fetch metadata", "/console/api/rooms/kick", `{"room":"` + testRoom + `","nick":"bob"}`, map[string]string{csrfHeader: csrf, "Sec-Fetch-Site": "cross-site"}, 403, "cross-origin"},
		{"another tenant's room", "/console/api/rooms/kick", `{"room":"[other]secret@` + testDomain + `","nick":"bob"}`, json, 403, "wrong-tenant"},
		{"another tenant's room, destroy", "/console/api/rooms/destroy", `{"room":"[other]secret@` + testDomain + `"}`, json, 403, "wrong-tenant"},
		{"unknown field", "/console/api/rooms/kick", `{"room":"` + testRoom + `","nick":"bob","tenant":"other"}`, json, 400, "bad-request"},
		{"lock of another tenant's room", "/console/api/rooms/lock", `{"room":"[other]secret@` + testDomain + `","locked":true}`, json, 403, "wrong-tenant"},
		{"policy of another tenant's room", "/console/api/rooms/policy", `{"room":"[other]secret@` + testDomain + `","policy":"token"}`, json, 403, "wrong-tenant"},
		{"bad ban kind", "/console/api/bans", `{"kind":"ip","value":"1.2.3.4"}`, json, 400, "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.cmds.Calls())
			r := f.send(t, "POST", tc.path, tc.body, tc.header, nil)
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Errorf("%d %s", r.status, r.body)
			}
			if calls := f.cmds.Calls()[before:]; len(calls) != 0 {
				t.Errorf("the refused action ran: %+v", calls)
			}
		})
	}

	ok := func(path, body string) {
		t.Helper()
		if r := f.send(t, "POST", path, body, json, nil); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
	}
	ok("/console/api/rooms/kick", `{"room":"`+testRoom+`","nick":"bob","reason":"noise"}`)
	ok("/console/api/rooms/role", `{"room":"`+testRoom+`","nick":"bob","role":"moderator"}`)
	ok("/console/api/rooms/destroy", `{"room":"`+testRoom+`","reason":"done"}`)
	ok("/console/api/bans", `{"kind":"user","value":"troll","reason":"spam","duration":"24h"}`)
	ok("/console/api/bans/lift", `{"kind":"user","value":"troll"}`)
	ok("/console/api/rooms/lock", `{"room":"`+testRoom+`","locked":true}`)
	calls := f.cmds.Calls()
	want := []call{
		{Method: "Kick", Room: testRoom, Nick: "bob", Reason: "noise", By: "console:acme"},
		{Method: "AssignRole", Room: testRoom, Nick: "bob", Role: "moderator", By: "console:acme"},
		{Method: "Destroy", Room: testRoom, Reason: "done", By: "console:acme"},
	}
	for i, w := range want {
		if calls[i] != w {
			t.Errorf("call %d: %+v, want %+v", i, calls[i], w)
		}
	}
	if b := calls[3].Ban; calls[3].Method != "Ban" || b.Tenant != testTenant || b.Value != "troll" || b.By != "console:acme" || !b.Expires.Equal(testEpoch.Add(24*time.Hour)) {
		t.Errorf("ban %+v", calls[3])
	}
	if u := calls[4]; u.Method != "Unban" || u.Tenant != testTenant || u.Value != "troll" {
		t.Errorf("unban %+v", u)
	}
	if l := calls[5]; l != (call{Method: "SetLock", Room: testRoom, Locked: true, By: "console:acme"}) {
		t.Errorf("lock %+v", l)
	}

	// Signing out needs the CSRF token too, then ends the session.
	if r := f.send(t, "POST", "/console/logout", "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, nil); r.status != http.StatusForbidden {
		t.Errorf("sign out without the token: %d", r.status)
	}
	if r := f.send(t, "POST", "/console/logout", "csrf="+url.QueryEscape(csrf), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, nil); r.status != http.StatusSeeOther {
		t.Errorf("sign out: %d %s", r.status, r.body)
	}
	if r := f.get(t, "/console/api/session", nil); r.status != http.StatusUnauthorized {
		t.Errorf("after signing out: %d", r.status)
	}
}

func TestConsoleBansList(t *testing.T) {
	f := newConsoleFixture(t, nil)
	f.cmds.set(func(c *fakeCommands) {
		c.bans = []store.Ban{
			{Tenant: testTenant, Kind: store.KindUser, Value: "old", Reason: "spam", By: "api:acme", Created: testEpoch.Add(-time.Hour)},
			{Tenant: testTenant, Kind: store.KindJID, Value: "new@example.test", Reason: "abuse", By: "console:acme", Created: testEpoch, Expires: testEpoch.Add(time.Hour)},
		}
	})
	f.session(t)
	var out struct {
		Bans  []banJSON `json:"bans"`
		Total int       `json:"total"`
	}
	f.get(t, "/console/api/bans", &out)
	if out.Total != 2 || out.Bans[0].Value != "new@example.test" || out.Bans[0].By != "console:acme" || out.Bans[0].Expires == "" {
		t.Errorf("bans %+v", out)
	}
	f.get(t, "/console/api/bans?q=SPAM", &out)
	if out.Total != 1 || out.Bans[0].Value != "old" {
		t.Errorf("search: %+v", out)
	}
	for _, c := range f.cmds.Calls() {
		if c.Method == "Bans" && c.Tenant != testTenant {
			t.Errorf("listed the bans of %q", c.Tenant)
		}
	}
}

// readEvent reads the next server-sent event of name from sc.
func readEvent(t *testing.T, sc *bufio.Scanner, name string) string {
	t.Helper()
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == name:
			return strings.TrimPrefix(line, "data: ")
		}
	}
	t.Fatalf("the stream ended before a %q event: %v", name, sc.Err())
	return ""
}

func TestConsoleEvents(t *testing.T) {
	f := newConsoleFixture(t, nil)
	f.session(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func() (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", f.ts.URL+"/console/api/events", nil)
		return f.client.Do(req)
	}
	resp, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%s %v", resp.Status, resp.Header)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var page roomsJSON
	if err := json.Unmarshal([]byte(readEvent(t, sc, "rooms")), &page); err != nil || len(page.Rooms) != 1 || len(page.Rooms[0].Occupants) != 2 {
		t.Fatalf("first event: %+v %v", page, err)
	}
	// bob leaves: the next event shows it.
	v := standupView()
	v.Occupants = v.Occupants[:1]
	f.rooms.set(testTenant, v)
	if err := json.Unmarshal([]byte(readEvent(t, sc, "rooms")), &page); err != nil || len(page.Rooms[0].Occupants) != 1 {
		t.Fatalf("after bob left: %+v %v", page, err)
	}

	// A session holds at most maxStreamsPerSession streams.
	var more []*http.Response
	defer func() {
		for _, r := range more {
			r.Body.Close()
		}
	}()
	for i := 1; i < maxStreamsPerSession; i++ {
		r, err := open()
		if err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %v %v", i+1, err, r)
		}
		more = append(more, r)
	}
	r, err := open()
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("stream %d: %s, want 503", maxStreamsPerSession+1, r.Status)
	}
}

// TestConsoleStreamsEndOnShutdown: Serve's shutdown ends the live streams
// rather than waiting for them.
func TestConsoleStreamsEndOnShutdown(t *testing.T) {
	f := newConsoleFixture(t, nil)
	f.session(t)
	ctx, cancel := context.WithCancel(context.Background())
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(ctx, ln) }()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/console/api/events", nil)
	for _, c := range f.client.Jar.Cookies(mustURL(t, f.ts.URL+"/console/")) {
		req.AddCookie(c)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	readEvent(t, sc, "hello")
	begin := time.Now()
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("shutdown took %v with a stream open", d)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestConsoleHealth(t *testing.T) {
	f := newConsoleFixture(t, func(o *Options) {
		o.Health = func() Health {
			return Health{Servers: []ServerHealth{{Address: "127.0.0.1:5347", Connected: true, Reconnects: 2}}}
		}
	})
	knocks := newKnockCounter(t, f)
	f.session(t)
	knocks.WithLabelValues("granted").Add(3)
	knocks.WithLabelValues("token-expired").Inc()
	var h healthJSON
	f.get(t, "/console/api/health", &h)
	if len(h.Servers) != 1 || !h.Servers[0].Connected || h.Servers[0].Reconnects != 2 || h.Store != "ok" || h.Ready != "ok" {
		t.Errorf("health %+v", h)
	}
	if h.Knocks.Totals["granted"] != 3 || h.Knocks.Totals["token-expired"] != 1 {
		t.Errorf("knocks %+v", h.Knocks)
	}
	// A minute later the first minute is history, and the count stays.
	f.clock.Add(time.Minute)
	knocks.WithLabelValues("granted").Inc()
	f.get(t, "/console/api/health", &h)
	if g := h.Knocks.Outcomes["granted"]; h.Knocks.Totals["granted"] != 4 || len(g) != 2 {
		t.Errorf("a minute later: %+v", h.Knocks)
	}
	// The history is bounded: two hours later it holds an hour.
	for i := range 120 {
		f.clock.Add(time.Minute)
		if i%50 == 0 {
			f.session(t) // an admin token lasts an hour
		}
		h = healthJSON{}
		f.get(t, "/console/api/health", &h)
	}
	if h.Knocks.Minutes != historyMinutes || h.Knocks.Totals["granted"] != 0 {
		t.Errorf("two hours later: %d minutes, %+v", h.Knocks.Minutes, h.Knocks.Totals)
	}
}

// TestConsoleAssets: every file is embedded, none loads anything from
// elsewhere, and the script touches the page without innerHTML.
func TestConsoleAssets(t *testing.T) {
	f := newConsoleFixture(t, nil)
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//`)
	err := fs.WalkDir(consoleFiles, "console", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := consoleFiles.ReadFile(p)
		if m := external.Find(data); m != nil {
			t.Errorf("%s loads from elsewhere: %s", p, m)
		}
		if strings.Contains(string(data), "innerHTML") {
			t.Errorf("%s uses innerHTML", p)
		}
		if strings.HasSuffix(p, ".html") {
			return nil
		}
		r := f.get(t, "/console/assets/"+strings.TrimPrefix(p, "console/"), nil)
		if r.status != http.StatusOK || r.header.Get("Content-Security-Policy") == "" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d %v", p, r.status, r.header)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := f.get(t, "/console/assets/../api.go", nil); r.status == http.StatusOK {
		t.Errorf("an asset path escaped: %s", r.body)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// newKnockCounter registers gavel_knocks_total, as the component does.
func newKnockCounter(t *testing.T, f *consoleFixture) *prometheus.CounterVec {
	t.Helper()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gavel_knocks_total", Help: "Knocks."}, []string{"outcome"})
	f.reg.MustRegister(c)
	return c
}
