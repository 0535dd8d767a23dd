package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gavelxmpp/gavel/commands"
)

// roomsPageSize is how many rooms one page of the console shows.
const roomsPageSize = 20

// sessionJSON answers GET /console/api/session: who is signed in, the CSRF
// token of the session's actions, and which actions the command layer
// offers.
type sessionJSON struct {
	Tenant   string          `json:"tenant"`
	By       string          `json:"by"`
	Expires  string          `json:"expires"`
	CSRF     string          `json:"csrf"`
	Features map[string]bool `json:"features"`
}

func (c *console) sessionInfo(w http.ResponseWriter, r *http.Request) {
	sess, ok := c.reader(w, r)
	if !ok {
		return
	}
	writeJSON(w, r, http.StatusOK, sessionJSON{
		Tenant: sess.tenant, By: sess.by(), Expires: formatTime(sess.expires), CSRF: sess.csrf,
		Features: c.features(),
	})
}

// features says which actions the command layer offers: lock and policy
// come with commands that may not exist yet (an interface check).
func (c *console) features() map[string]bool {
	_, role := c.s.cmds.(roleSetter)
	_, lock := c.s.cmds.(roomLocker)
	_, pol := c.s.cmds.(policySetter)
	return map[string]bool{"setRole": role, "lock": lock, "policy": pol, "meetings": c.s.meetings != nil}
}

// roomsJSON is one page of a tenant's rooms.
type roomsJSON struct {
	Now       string     `json:"now"`
	Query     string     `json:"query"`
	Page      int        `json:"page"`
	Pages     int        `json:"pages"`
	Total     int        `json:"total"`     // rooms matching the query
	All       int        `json:"all"`       // rooms of the tenant
	Occupants int        `json:"occupants"` // in all the tenant's rooms
	Rooms     []roomJSON `json:"rooms"`
	Partial   bool       `json:"partial,omitempty"` // some rooms did not answer in time
}

type roomJSON struct {
	JID       string         `json:"jid"`
	Name      string         `json:"name"`
	MUC       string         `json:"muc"`
	Policy    string         `json:"policy"`
	Override  string         `json:"override,omitempty"`
	Locked    bool           `json:"locked"`
	State     string         `json:"state"`
	Occupants []occupantJSON `json:"occupants"`
}

type occupantJSON struct {
	Nick        string `json:"nick"`
	BareJID     string `json:"jid"`
	UserID      string `json:"userId,omitempty"`
	Affiliation string `json:"affiliation"`
	Role        string `json:"role"`
	Reason      string `json:"reason,omitempty"`
	Joined      string `json:"joined,omitempty"`
	Expires     string `json:"expires,omitempty"`
}

// roomsQuery is the filter and page of a rooms request.
type roomsQuery struct {
	q    string
	page int
}

func queryOf(r *http.Request) roomsQuery {
	q := roomsQuery{q: strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))}
	if len(q.q) > 200 {
		q.q = q.q[:200]
	}
	q.page, _ = strconv.Atoi(r.URL.Query().Get("page"))
	if q.page < 1 {
		q.page = 1
	}
	return q
}

// matches reports whether a room or one of its occupants contains q.
func (q roomsQuery) matches(v commands.RoomView) bool {
	if q.q == "" || strings.Contains(strings.ToLower(v.JID), q.q) {
		return true
	}
	for _, o := range v.Occupants {
		if strings.Contains(strings.ToLower(o.Nick), q.q) || strings.Contains(strings.ToLower(o.BareJID), q.q) ||
			strings.Contains(strings.ToLower(o.UserID), q.q) {
			return true
		}
	}
	return false
}

// render makes the page q asks for out of views.
func (q roomsQuery) render(views []commands.RoomView, now time.Time, partial bool) roomsJSON {
	out := roomsJSON{Now: now.UTC().Format(time.RFC3339), Query: q.q, All: len(views), Partial: partial, Rooms: []roomJSON{}}
	var hits []commands.RoomView
	for _, v := range views {
		out.Occupants += len(v.Occupants)
		if q.matches(v) {
			hits = append(hits, v)
		}
	}
	out.Total = len(hits)
	out.Pages = max(1, (len(hits)+roomsPageSize-1)/roomsPageSize)
	out.Page = min(q.page, out.Pages)
	start := (out.Page - 1) * roomsPageSize
	for _, v := range hits[start:min(start+roomsPageSize, len(hits))] {
		rj := roomJSON{JID: v.JID, Name: v.Name, MUC: v.MUC, Policy: v.Policy, Override: v.Override, Locked: v.Locked, State: v.State,
			Occupants: make([]occupantJSON, 0, len(v.Occupants))}
		for _, o := range v.Occupants {
			rj.Occupants = append(rj.Occupants, occupantJSON{
				Nick: o.Nick, BareJID: o.BareJID, UserID: o.UserID, Affiliation: o.Affiliation, Role: o.Role,
				Reason: o.Reason, Joined: formatTime(o.Joined), Expires: formatTime(o.Expires),
			})
		}
		out.Rooms = append(out.Rooms, rj)
	}
	return out
}

// viewTimeout bounds one look at a tenant's rooms.
const viewTimeout = 3 * time.Second

// roomsNow handles GET /console/api/rooms?q=&page=: a page of the
// session's tenant's rooms as they are now.
func (c *console) roomsNow(w http.ResponseWriter, r *http.Request) {
	sess, ok := c.reader(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), viewTimeout)
	defer cancel()
	views, err := c.rooms.RoomViews(ctx, sess.tenant)
	writeJSON(w, r, http.StatusOK, queryOf(r).render(views, c.s.now(), err != nil))
}

// hub watches one tenant's rooms while someone streams them: it looks
// every poll interval and wakes the streams when the picture changed.
type hub struct {
	subs    map[chan struct{}]bool
	views   []commands.RoomView
	partial bool
	sum     [32]byte
	seen    bool // views holds a first picture
}

// subscribe adds a stream of sess to its tenant's hub, starting the hub's
// watcher if it is the first; false when the bounds are reached.
func (c *console) subscribe(sess *consoleSession) (chan struct{}, *hub, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.streams >= maxStreams || sess.streams >= maxStreamsPerSession {
		return nil, nil, false
	}
	h := c.hubs[sess.tenant]
	if h == nil {
		h = &hub{subs: map[chan struct{}]bool{}}
		c.hubs[sess.tenant] = h
		go c.watch(sess.tenant, h)
	}
	ch := make(chan struct{}, 1)
	h.subs[ch] = true
	if h.seen {
		ch <- struct{}{}
	}
	c.streams++
	sess.streams++
	return ch, h, true
}

func (c *console) unsubscribe(sess *consoleSession, h *hub, ch chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(h.subs, ch)
	c.streams--
	sess.streams--
}

// watch looks at tenant's rooms until nobody streams them.
func (c *console) watch(tenant string, h *hub) {
	t := time.NewTicker(c.poll)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), viewTimeout)
		views, err := c.rooms.RoomViews(ctx, tenant)
		cancel()
		data, _ := json.Marshal(views)
		sum := sha256.Sum256(data)
		c.mu.Lock()
		if len(h.subs) == 0 || c.closed {
			delete(c.hubs, tenant)
			c.mu.Unlock()
			return
		}
		if !h.seen || sum != h.sum {
			h.views, h.partial, h.sum, h.seen = views, err != nil, sum, true
			for ch := range h.subs {
				select {
				case ch <- struct{}{}:
				default: // it has a wake-up pending already
				}
			}
		}
		c.mu.Unlock()
		select {
		case <-t.C:
		case <-c.closing:
		}
	}
}

// streamHeartbeat is how often an idle stream sends a comment, so that
// proxies and the browser keep it open.
const streamHeartbeat = 15 * time.Second

// events handles GET /console/api/events?q=&page=: server-sent events,
// one "rooms" event (a page, as GET /console/api/rooms) whenever the
// tenant's rooms change.
func (c *console) events(w http.ResponseWriter, r *http.Request) {
	sess, ok := c.reader(w, r)
	if !ok {
		return
	}
	ch, h, ok := c.subscribe(sess)
	if !ok {
		w.Header().Set("Retry-After", "10")
		writeError(w, r, &apiError{http.StatusServiceUnavailable, "too-many-streams", "too many live views are open: close some console tabs"})
		return
	}
	defer c.unsubscribe(sess, h, ch)
	q := queryOf(r)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	infoOf(r).result = "ok"
	w.WriteHeader(http.StatusOK)
	send := func(event, data string) bool {
		// A stream outlives the server's write timeout: each write gets
		// its own deadline.
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("hello", `{}`) {
		return
	}
	beat := time.NewTicker(streamHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ch:
			c.mu.Lock()
			views, partial := h.views, h.partial
			c.mu.Unlock()
			if !c.session(r).live() {
				send("signed-out", `{}`)
				return
			}
			data, _ := json.Marshal(q.render(views, c.s.now(), partial))
			if !send("rooms", string(data)) {
				return
			}
		case <-beat.C:
			if !c.session(r).live() {
				send("signed-out", `{}`)
				return
			}
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := fmt.Fprint(w, ": beat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-c.closing:
			return
		}
	}
}

// live reports whether the session still exists (not signed out, not
// expired).
func (sess *consoleSession) live() bool { return sess != nil }
