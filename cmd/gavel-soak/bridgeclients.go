package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// The bridge scenario's clients (bridge.go): residents that stay in their
// rooms, churners that come and go, the focus, and what they count and
// see.
// joinStats counts join outcomes; safe for concurrent use.
type joinStats struct {
	mu       sync.Mutex
	outcomes map[string]int
	// unavailableUp counts service-unavailable refusals of joins that did
	// not overlap an outage (gavel killed, Prosody restarting, until
	// gavel's /readyz was 200 again).
	unavailableUp int
	wrongs        []string
}

// Join outcomes other than a refusal's condition.
const (
	joinOK         = "joined"
	joinCutOff     = "cut off: the client's connection ended (server stopped)"
	joinUnanswered = "unanswered"
	joinUnavail    = "service-unavailable"
)

func (s *joinStats) add(outcome string, duringOutage bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outcomes == nil {
		s.outcomes = map[string]int{}
	}
	s.outcomes[outcome]++
	if outcome == joinUnavail && !duringOutage {
		s.unavailableUp++
	}
}

func (s *joinStats) wrong(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wrongs = append(s.wrongs, what)
}

// classifyJoin names a join's outcome: joined, the refusal's condition
// (with gavel's application condition, if any), cut off, or unanswered.
func classifyJoin(err error, timedOut, ended bool) string {
	if err == nil {
		return joinOK
	}
	var xe *xclient.Error
	if errors.As(err, &xe) {
		if xe.Condition == joinUnavail && xe.App == "" {
			return joinUnavail
		}
		s := xe.Type + "/" + xe.Condition
		if xe.App != "" {
			s += " (" + xe.App + ")"
		}
		return s
	}
	if timedOut && !ended {
		return joinUnanswered
	}
	return joinCutOff
}

// outages records the windows in which joins may be refused because gavel
// cannot answer: from a fault until gavel's /readyz is 200 again.
type outages struct {
	mu      sync.Mutex
	windows [][2]time.Time // an open window has a zero end
}

func (o *outages) begin() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.windows = append(o.windows, [2]time.Time{time.Now()})
}

func (o *outages) end() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := len(o.windows); n > 0 && o.windows[n-1][1].IsZero() {
		o.windows[n-1][1] = time.Now()
	}
}

// overlaps reports whether [from, to] overlaps an outage.
func (o *outages) overlaps(from, to time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, w := range o.windows {
		if !to.Before(w[0]) && (w[1].IsZero() || !from.After(w[1])) {
			return true
		}
	}
	return false
}

// occupantView is one occupant as a client in the room sees it.
type occupantView struct{ aff, role string }

// foldRoom returns the occupants of roomJID as the presences ps show them
// (ps starting at a join of the client: the room sends every occupant's
// presence first).
func foldRoom(ps []xclient.Presence, roomJID string) map[string]occupantView {
	prefix := strings.ToLower(roomJID) + "/"
	v := map[string]occupantView{}
	for _, p := range ps {
		nick, ok := strings.CutPrefix(strings.ToLower(p.From), prefix)
		if !ok || nick == "" {
			continue
		}
		switch p.Type {
		case "":
			v[nick] = occupantView{p.Affiliation, p.Role}
		case "unavailable":
			delete(v, nick)
		}
	}
	return v
}

// moderatorNick reports whether nick holds a moderator token (the
// scenario's nicks say so).
func moderatorNick(nick string) bool { return strings.HasSuffix(nick, "-mod") }

// ownersWrong returns why the owners of a room are not what its policy
// says in view v ("" when they are): auto-owner, a non-bot owner present
// whenever a non-bot occupant is; token, every moderator token holder
// owner and nobody else (the focus, a bot, apart).
func ownersWrong(tenant string, v map[string]occupantView) string {
	switch tenant {
	case tenantAuto:
		people, owners := 0, 0
		for nick, o := range v {
			if nick == focusNick {
				continue
			}
			people++
			if o.aff == "owner" {
				owners++
			}
		}
		if people > 0 && owners == 0 {
			return fmt.Sprintf("no owner among %d occupants", people)
		}
	case tenantToken:
		for _, nick := range sortedKeys(v) {
			o := v[nick]
			if nick == focusNick {
				continue
			}
			if moderatorNick(nick) != (o.aff == "owner") {
				return fmt.Sprintf("%s (moderator token: %t) is %s", nick, moderatorNick(nick), o.aff)
			}
		}
	}
	return ""
}

// gavelPresences counts the presences in ps from a room nick of gavel's.
func gavelPresences(ps []xclient.Presence) int {
	n := 0
	for _, p := range ps {
		_, nick, ok := strings.Cut(p.From, "/")
		if ok && strings.HasPrefix(strings.ToLower(nick), gavelNick) && strings.Contains(p.From, "@"+prosodytest.MUC) {
			n++
		}
	}
	return n
}

// bridgeRun is the state the scenario's clients share.
type bridgeRun struct {
	e     *env
	st    joinStats
	out   outages
	stop  chan struct{}
	rooms []bridgeRoom

	residents []*resident

	mu        sync.Mutex
	gavelSeen int // presences from gavel's nick, over every client
	sessions  int // logins of residents and churners
	focusErrs map[string]int
}

// seen scans a client's presences for gavel's nick before it is dropped.
func (b *bridgeRun) seen(c *xclient.Client) {
	if c == nil {
		return
	}
	n := gavelPresences(c.Presences())
	b.mu.Lock()
	b.gavelSeen += n
	b.mu.Unlock()
}

// session logs account in (retrying while Prosody is away) and hands the
// session tok, as Jitsi's token login leaves it.
func (b *bridgeRun) session(ctx context.Context, account, tok string) (*xclient.Client, error) {
	for {
		c, err := loginRetry(ctx, b.e, account, 30*time.Second)
		if err != nil {
			return nil, err
		}
		if tok == "" {
			err = nil
		} else {
			err = sessionToken(ctx, c, tok)
		}
		if err == nil {
			b.mu.Lock()
			b.sessions++
			b.mu.Unlock()
			return c, nil
		}
		b.seen(c)
		c.Close()
		if ctx.Err() != nil || b.stopped() {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sessionToken hands tok to c's session (the token-login stand-in).
func sessionToken(ctx context.Context, c *xclient.Client, tok string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return c.IQ(ctx, prosodytest.Host, "set", `<token xmlns='urn:gavel:soak:session-token'>`+tok+`</token>`, nil)
}

func (b *bridgeRun) stopped() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// join makes one join attempt, bounded by bridgeJoinTimeout, and records
// its outcome. In token rooms it checks the first presence against the
// token: owner and moderator for a moderator token, not owner otherwise.
func (b *bridgeRun) join(ctx context.Context, c *xclient.Client, rm bridgeRoom, nick string) (xclient.Presence, string, error) {
	jctx, cancel := context.WithTimeout(ctx, bridgeJoinTimeout)
	defer cancel()
	start := time.Now()
	p, err := c.Join(jctx, rm.jid, nick)
	out := classifyJoin(err, jctx.Err() != nil && ctx.Err() == nil, sessionEnded(c))
	b.st.add(out, b.out.overlaps(start, time.Now()))
	if err == nil && rm.tenant == tenantToken {
		mod := moderatorNick(nick)
		if mod && (p.Affiliation != "owner" || p.Role != "moderator") || !mod && p.Affiliation == "owner" {
			b.st.wrong(fmt.Sprintf("%s %s/%s: moderator token %t, joined as %s/%s", start.Format("15:04:05.000"), rm.jid, nick, mod, p.Affiliation, p.Role))
		}
	}
	return p, out, err
}

// resident is a client that stays in its room: it logs in and joins again
// after every Prosody restart, and leaves only when told to (the
// catch-up).
type resident struct {
	account, nick string
	room          bridgeRoom
	tok           string

	// cmd asks the resident to leave (true) or come back (false); the
	// resident answers on done once it has.
	cmd  chan bool
	done chan error

	mu     sync.Mutex
	c      *xclient.Client
	joined bool
	from   int // index of the current join's first presence in c's record
	// firstAff is the affiliation in the self-presence of the last join,
	// joinedAt when it came.
	firstAff string
	joinedAt time.Time
	// stagger delays each (re)join after a login, so that the residents
	// of a hold room join in a clear order (the catch-up checks it).
	stagger time.Duration
}

// view returns the room as the resident sees it, and whether it is in it.
func (r *resident) view() (map[string]occupantView, bool) {
	r.mu.Lock()
	c, joined, from := r.c, r.joined, r.from
	r.mu.Unlock()
	if !joined || c == nil || sessionEnded(c) {
		return nil, false
	}
	ps := c.Presences()
	if from > len(ps) {
		return nil, false
	}
	return foldRoom(ps[from:], r.room.jid), true
}

func (r *resident) in() bool {
	_, ok := r.view()
	return ok
}

// run keeps the resident in its room until b.stop.
func (r *resident) run(ctx context.Context, b *bridgeRun) {
	away := false
	defer func() {
		r.mu.Lock()
		c := r.c
		r.c, r.joined = nil, false
		r.mu.Unlock()
		b.seen(c)
		if c != nil {
			c.Close()
		}
	}()
	wait := 100 * time.Millisecond
	for ctx.Err() == nil && !b.stopped() {
		r.mu.Lock()
		c, joined := r.c, r.joined
		r.mu.Unlock()
		if c == nil || sessionEnded(c) {
			b.seen(c)
			if c != nil {
				c.Close()
			}
			r.mu.Lock()
			r.c, r.joined = nil, false
			r.mu.Unlock()
			nc, err := b.session(ctx, r.account, r.tok)
			if err != nil {
				continue
			}
			r.mu.Lock()
			r.c = nc
			r.mu.Unlock()
			select {
			case <-time.After(r.stagger):
			case <-b.stop:
			}
			continue
		}
		if !joined && !away {
			from := len(c.Presences())
			p, out, err := b.join(ctx, c, r.room, r.nick)
			if err == nil {
				r.mu.Lock()
				r.joined, r.from, r.firstAff, r.joinedAt = true, from, p.Affiliation, time.Now()
				r.mu.Unlock()
				wait = 100 * time.Millisecond
				continue
			}
			if out != joinCutOff {
				// Refused (gavel away): back off as a client does.
				select {
				case <-time.After(wait):
				case <-b.stop:
				}
				wait = min(2*wait, time.Second)
			}
			continue
		}
		select {
		case <-c.Done():
		case <-b.stop:
		case out := <-r.cmd:
			var err error
			switch {
			case out && joined:
				err = leave(ctx, c, r.room.jid, r.nick)
				if err == nil {
					r.mu.Lock()
					r.joined = false
					r.mu.Unlock()
				}
				away = true
			case out:
				away = true
			default:
				away = false
				err = r.rejoin(ctx, b, c)
			}
			r.done <- err
		}
	}
}

// rejoin joins again after the catch-up, retrying refusals for up to 10 s.
func (r *resident) rejoin(ctx context.Context, b *bridgeRun, c *xclient.Client) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		from := len(c.Presences())
		p, out, err := b.join(ctx, c, r.room, r.nick)
		if err == nil {
			r.mu.Lock()
			r.joined, r.from, r.firstAff, r.joinedAt = true, from, p.Affiliation, time.Now()
			r.mu.Unlock()
			return nil
		}
		if out == joinCutOff || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tell asks the resident to leave its room (true) or come back (false)
// and waits until it has.
func (r *resident) tell(ctx context.Context, leave bool) error {
	select {
	case r.cmd <- leave:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(15 * time.Second):
		return errors.New("the resident did not take the request within 15 s")
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// churner joins rooms in turn, stays a moment and leaves, handing its
// session the token of each room before joining.
func (b *bridgeRun) churner(ctx context.Context, i int, rooms []bridgeRoom) {
	account := fmt.Sprintf("bchurn%d", i)
	var c *xclient.Client
	defer func() {
		b.seen(c)
		if c != nil {
			c.Close()
		}
	}()
	for k := 0; ctx.Err() == nil && !b.stopped(); k++ {
		if c == nil || sessionEnded(c) {
			b.seen(c)
			if c != nil {
				c.Close()
			}
			var err error
			if c, err = b.session(ctx, account, ""); err != nil {
				c = nil
				continue
			}
		}
		rm := rooms[(i+k)%len(rooms)]
		mod := rm.tenant == tenantToken && (i+k)%3 == 0
		suffix := "-part"
		if mod {
			suffix = "-mod"
		}
		nick := fmt.Sprintf("c%d-%d%s", i, k, suffix)
		if err := sessionToken(ctx, c, b.e.token(rm.jid, fmt.Sprintf("churn-%d", i), mod, 24*time.Hour)); err != nil {
			continue // the session ended: log in again
		}
		_, out, err := b.join(ctx, c, rm, nick)
		if err != nil {
			if out != joinCutOff {
				select {
				case <-time.After(300 * time.Millisecond):
				case <-b.stop:
				}
			}
			continue
		}
		select {
		case <-time.After(time.Duration(200+100*(k%6)) * time.Millisecond):
		case <-b.stop:
		case <-c.Done():
			continue
		}
		_ = leave(ctx, c, rm.jid, nick)
	}
}

// focus plays Jicofo's focus: it creates its rooms before any client and
// stays, joining again after every Prosody restart. The module never asks
// gavel about it; gavel knows it as a bot.
func (b *bridgeRun) focus(ctx context.Context, rooms []bridgeRoom, ready chan<- struct{}) {
	var c *xclient.Client
	defer func() {
		b.seen(c)
		if c != nil {
			c.Close()
		}
	}()
	first := true
	for ctx.Err() == nil && !b.stopped() {
		if c != nil {
			b.seen(c)
			c.Close()
		}
		var err error
		c, err = loginFocus(ctx, b.e)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for _, rm := range rooms {
			jctx, cancel := context.WithTimeout(ctx, opTimeout)
			_, err := c.Join(jctx, rm.jid, focusNick)
			cancel()
			if err != nil {
				b.mu.Lock()
				b.focusErrs[err.Error()]++
				b.mu.Unlock()
			}
		}
		if first {
			close(ready)
			first = false
		}
		select {
		case <-c.Done():
		case <-b.stop:
		}
	}
	if first {
		close(ready)
	}
}

// loginFocus logs the focus in, retrying while Prosody is away.
func loginFocus(ctx context.Context, e *env) (*xclient.Client, error) {
	if err := e.srv.Register(focusUser, focusHost, "pw"); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		lctx, cancel := context.WithTimeout(ctx, opTimeout)
		c, err := xclient.Login(lctx, e.srv.C2SAddr, focusUser, focusHost, "pw")
		cancel()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return c, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rows adds the join counts and checks to r.
func (s *joinStats) rows(r *result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for _, n := range s.outcomes {
		total += n
	}
	r.row("join attempts (no knock)", fmt.Sprint(total))
	r.row("  joined", fmt.Sprint(s.outcomes[joinOK]))
	unavail := s.outcomes[joinUnavail]
	r.row("  refused: wait/service-unavailable while gavel could not answer", fmt.Sprint(unavail-s.unavailableUp))
	r.check("  refused: wait/service-unavailable while gavel was up", fmt.Sprint(s.unavailableUp), s.unavailableUp == 0)
	for _, k := range sortedKeys(s.outcomes) {
		switch k {
		case joinOK, joinUnavail, joinCutOff, joinUnanswered:
			continue
		}
		r.row("  refused: "+k, fmt.Sprint(s.outcomes[k]))
	}
	r.row("  "+joinCutOff, fmt.Sprint(s.outcomes[joinCutOff]))
	r.check("  unanswered within 5 s", fmt.Sprint(s.outcomes[joinUnanswered]), s.outcomes[joinUnanswered] == 0)
	r.check("token-room joiners with a wrong first presence", fmt.Sprint(len(s.wrongs)), len(s.wrongs) == 0)
	for i, w := range s.wrongs {
		if i == 5 {
			r.note(fmt.Sprintf("... and %d more wrong first presences", len(s.wrongs)-5))
			break
		}
		r.note("wrong first presence: " + w)
	}
}
