package component

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

type evKind uint8

const (
	evKnock evKind = iota + 1
	evPresence
	evConnected
	evDisconnected
	evTick
	evCommand
	evShutdown
	evAdopt         // discovery found the room: enter it
	evIdentityReady // the identity check of the room's MUC has ended
	evJoinTimeout   // the room did not answer join number gen in time
	evJoinRetry     // the pause after a join timeout has passed
	evWatched       // the bridge told the room's occupants (watch.go)
)

// event is one thing that happened to a room; a room's events are handled
// in order by its worker.
type event struct {
	kind   evKind
	st     *stanza
	nick   string
	sess   *session
	knock  *knockReq
	cmd    func(r *room) error
	done   chan error
	fresh  bool   // evAdopt: the room appeared after gavel's first look
	gen    uint64 // evJoinTimeout, evJoinRetry, evWatched: the join they belong to
	err    error  // evWatched: why the bridge did not answer
	report bool   // evPresence: reported by the bridge module (watch.go)
}

// joinState is where gavel stands with a room. idle: not in it (a knock
// starts a join). joining: a join presence is on its way; knocks wait in
// deferred. A join that gets no answer within JoinTimeout is sent again
// after a pause, JoinRetries times; then the waiting knocks are refused
// with room-unavailable and the room goes back to idle, so the next knock
// tries afresh. joined: gavel is an occupant and acts on events at once.
type joinState uint8

const (
	idle joinState = iota
	joining
	joined
)

// maxNickTries bounds how many other nicks gavel tries when its nick is
// taken in a room.
const maxNickTries = 3

// room is one governed room. All its events go through one worker
// goroutine, which owns the policy state; nothing else touches it.
type room struct {
	m      *Moderation
	jid    string
	ar     auth.Room
	muc    MUC
	tenant Tenant

	qmu     sync.Mutex
	queue   []event
	nknocks int // knocks in queue
	wake    chan struct{}

	// nick is gavel's nick in the room: the configured one, or another
	// when a client holds it. The worker sets it; others read it to leave.
	nickMu sync.Mutex
	nick   string

	// Worker state.
	// held is set once gavel has been in the room, so a reconnect knows to
	// check that the server still has it.
	held     bool
	pol      *policy.Room
	sess     *session
	state    joinState
	deferred []*knockReq
	holds    map[string]*knockReq // knocks a locked room holds (lock.go), by request id
	present  []policy.Presence    // occupants seen while joining
	timer    Timer
	timerAt  time.Time
	lastLen  int
	// The join under way: its number (a timeout of an older one is
	// stale), the timers, and how many times it was sent again.
	joinGen   uint64
	joinTimer Timer
	joinTries int
	nickTries int
	// knocks maps the full JIDs of occupants and of granted knockers not
	// yet seen joining to what they knocked with, for bans: a ban must
	// also catch the joiner whose presence is still on its way.
	knocks map[string]knockRecord
	pruned time.Time // when knocks was last pruned

	// Joiners that never knock (identity.go), by full JID: the identity of
	// their latest presence, what admit applied, and the affiliation their
	// join showed.
	idents         map[string]*identityEl
	admitted       map[string]string
	joinAff        map[string]policy.Affiliation
	warnedIdentity bool
	// Adoption of a room a client created (discover.go): fresh is set
	// until gavel is in it; creators holds the bare JIDs whose ownership
	// came from creating it, until admit settles it, and whether the
	// policy wanted them owner when gavel arrived.
	fresh    bool
	adopting bool // the join under way is discovery's
	creators map[string]bool

	// Durable state (persist.go): what was last stored, and gavel's
	// occupant JID and nick in the room as a previous run of gavel left
	// them (its ghost, removed before the first join).
	saved   store.RoomState
	unsaved int // events handled since the last save (batch.go)
	// Held clear_on_leave resets by bare JID (linger.go).
	lingering map[string]lingering
	ghost     string
	ghostNick string
	restored  bool // loaded from the store, not yet rejoined
	// restoredKnocks are the full JIDs of granted knocks loaded from the
	// store, until gavel is back in the room (watch.go: catchUpKnocks).
	restoredKnocks map[string]bool
	// destroyed is set while reset runs for a room that was destroyed.
	destroyed bool

	why whyBook // snapshot_view.go: why each occupant has its rights
}

func (m *Moderation) newRoom(jid string) (*room, error) {
	ar, err := auth.ParseRoom(jid)
	if err != nil {
		return nil, err
	}
	t := m.opts.Tenant(ar.Tenant)
	opts := t.Policy
	opts.BotDomains = append(append([]string(nil), opts.BotDomains...), m.c.opts.Domain)
	r := &room{
		m: m, jid: ar.JID, ar: ar, muc: m.mucs[ar.Domain], tenant: t,
		wake: make(chan struct{}, 1), knocks: map[string]knockRecord{}, nick: m.c.opts.Nick,
		idents: map[string]*identityEl{}, admitted: map[string]string{}, joinAff: map[string]policy.Affiliation{},
		creators: map[string]bool{},
		pol:      policy.NewRoom(ar.JID, opts),
	}
	if set, ok := m.unpark(ar.JID); ok {
		r.pol.Restore(policy.Snapshot{Settings: set}) // what admins set before gavel left it
	}
	return r, nil
}

// push queues ev for the worker. Knocks are bounded: push refuses one
// (returns false) when max knocks wait already. Everything else is kept:
// a presence dropped would leave the policy with a wrong picture of the
// room, and the server bounds what it sends.
func (r *room) push(ev event) bool {
	return r.pushBounded(ev, 0)
}

func (r *room) pushBounded(ev event, max int) bool {
	r.qmu.Lock()
	if ev.kind == evKnock {
		if max > 0 && r.nknocks >= max {
			r.qmu.Unlock()
			return false
		}
		r.nknocks++
	}
	r.queue = append(r.queue, ev)
	r.qmu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return true
}

// ownNick returns gavel's nick in the room.
func (r *room) ownNick() string {
	r.nickMu.Lock()
	defer r.nickMu.Unlock()
	return r.nick
}

func (r *room) setNick(nick string) {
	r.nickMu.Lock()
	r.nick = nick
	r.nickMu.Unlock()
}

func (r *room) queued() int {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	return len(r.queue)
}

func (r *room) next() event {
	for {
		r.qmu.Lock()
		if len(r.queue) > 0 {
			ev := r.queue[0]
			if ev.kind == evKnock {
				r.nknocks--
			}
			r.queue[0] = event{}
			r.queue = r.queue[1:]
			if len(r.queue) == 0 {
				r.queue = nil
			}
			r.qmu.Unlock()
			return ev
		}
		r.qmu.Unlock()
		<-r.wake
	}
}

// run is the room's worker.
func (r *room) run() {
	m := r.m
	defer m.workers.Done()
	for {
		ev := r.next()
		if ev.kind == evShutdown {
			r.sendDueResets(true) // linger.go
			r.failDeferred(knockShuttingDown, "")
			r.dropHolds(knockShuttingDown, true)
			r.stopTimer()
			r.stopJoinTimer()
			m.retire(r)
			r.refuseQueued()
			r.account(0)
			return
		}
		r.handle(ev)
		r.expireHolds()
		if r.state == joined {
			r.saveSoon() // batch.go
		}
		r.armTimer()
		r.account(r.pol.Len())
		if r.idle() && r.leaveAndRetire() {
			r.stopTimer()
			r.stopJoinTimer()
			r.account(0)
			return
		}
	}
}

// refuseQueued answers the knocks still queued when the worker stops.
func (r *room) refuseQueued() {
	r.qmu.Lock()
	q := r.queue
	r.queue, r.nknocks = nil, 0
	r.qmu.Unlock()
	for _, ev := range q {
		if ev.kind == evKnock {
			k := ev.knock
			r.m.refuse(k.sess, k.st, knockShuttingDown, "", k.started)
		}
	}
}

// idle reports whether gavel has no reason to stay in the room.
func (r *room) idle() bool {
	// Where clients join without a knock, gavel stays while bots (Jicofo's
	// focus) hold the room: leaving would leave the next joiner
	// ungoverned until the room is found again.
	bots := (r.muc.Discover || r.muc.Bridge) && r.pol.Len() > 0
	return r.state != joining && len(r.deferred) == 0 && r.pol.Empty() && !bots && r.pol.Pending() == 0 && !r.pol.AwaitsOwner() && len(r.lingering) == 0
}

// leaveAndRetire leaves the room and forgets it, unless events arrived.
// No lock is held while it writes: the read loop may be waiting for one.
func (r *room) leaveAndRetire() bool {
	m := r.m
	left := false
	if r.state == joined && r.sess != nil {
		if !r.watching() {
			r.writeLeave()
		}
		// gavel is out: an event that arrives meanwhile starts over.
		r.state = idle
		left = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.queued() > 0 && !m.closing {
		return false
	}
	if m.rooms[r.jid] == r {
		delete(m.rooms, r.jid)
		m.metrics.Rooms.Set(float64(len(m.rooms)))
	}
	if !m.closing {
		r.retireState()
	}
	if left && r.muc.Discover {
		m.dormant[r.jid] = m.now() // discovery leaves it alone for a while
	}
	m.log.Debug("room left", zap.String("room", r.jid))
	return true
}

// writeLeave sends gavel's unavailable presence to the room.
func (r *room) writeLeave() {
	if r.sess == nil {
		return
	}
	var b xb
	b.empty("presence", "from", r.m.occupantJID(), "to", r.jid+"/"+r.ownNick(), "type", "unavailable")
	_ = r.sess.write(b.Bytes())
}

func (r *room) account(n int) {
	if d := n - r.lastLen; d != 0 {
		r.m.metrics.Occupants.Add(float64(d))
		r.lastLen = n
	}
}

func (r *room) handle(ev event) {
	switch ev.kind {
	case evConnected:
		r.sess = ev.sess
		// A room restored from the store is joined without asking first:
		// after gavel's own restart the server still has its rooms, and
		// asking would cost the server a request per room just when every
		// room rejoins at once. (Should it have lost one, the join
		// recreates it empty and gavel leaves it again.)
		restored := r.restored
		r.restored = false
		if r.held && !restored && len(r.deferred) == 0 && !r.watching() && !r.exists() {
			// The server lost the room (a crash): recreating it empty only
			// for gavel to leave it again would cost the server dearly
			// across many rooms. Its next knock recreates it.
			r.m.log.Debug("room gone after reconnect", zap.String("room", r.jid))
			r.reset()
			return
		}
		r.joinTries = 0
		r.join()
	case evDisconnected:
		r.sess = nil
		r.state = idle
		r.adopting = false
		r.stopJoinTimer()
		r.deferred = nil // their IQs cannot be answered on a dead stream
		r.dropHolds(0, false)
	case evKnock:
		r.onKnock(ev.knock)
	case evPresence:
		if ev.report {
			r.onReport(ev.st, ev.nick)
			return
		}
		r.onPresence(ev.st, ev.nick)
	case evTick:
		r.perform(r.pol.Tick(r.m.now()))
	case evCommand:
		err := ev.cmd(r)
		if ev.done != nil {
			ev.done <- err
		}
	case evAdopt:
		if r.state != joined && ev.fresh {
			r.fresh = true
		}
		if r.state == idle {
			r.enter()
		}
		if r.state == joining {
			r.adopting = true
		}
	case evIdentityReady:
		if r.state == joined {
			r.admitAll(r.m.now())
		}
	case evJoinTimeout:
		if ev.gen == r.joinGen && r.state == joining {
			r.joinTimedOut()
		}
	case evJoinRetry:
		if ev.gen == r.joinGen && r.state == joining {
			r.join()
		}
	case evWatched:
		if ev.gen == r.joinGen && r.state == joining {
			r.onWatched(ev.st, ev.err)
		}
	}
}

// enter starts gavel's way into the room: a join, or where the bridge
// reports occupants, a request for them.
func (r *room) enter() {
	if r.sess == nil {
		r.sess = r.m.session()
	}
	r.joinTries = 0
	r.join()
}

// join enters the room under the session's resource, after removing the
// previous session's ghost occupant if there may be one, and arms the join
// timeout. Where the bridge reports occupants, gavel asks it for them
// instead of entering (watch.go).
func (r *room) join() {
	if r.sess == nil {
		return
	}
	m := r.m
	m.mu.Lock()
	cur, prev := m.resource, m.previous
	m.mu.Unlock()
	var b xb
	to := r.jid + "/" + r.ownNick()
	watch := r.watching()
	if !watch && (prev != "" && prev != cur && r.state != idle || prev != "" && r.lastLen > 0) {
		b.empty("presence", "from", m.c.opts.Domain+"/"+prev, "to", to, "type", "unavailable")
	}
	if r.ghost != "" && r.ghost != m.c.opts.Domain+"/"+cur {
		// A previous run of gavel left its occupant behind (a crash):
		// remove it, or it holds gavel's nick and the room never empties.
		nick := r.ghostNick
		if nick == "" {
			nick = r.ownNick()
		}
		b.empty("presence", "from", r.ghost, "to", r.jid+"/"+nick, "type", "unavailable")
		r.ghost = ""
	}
	if watch {
		if b.Len() > 0 && r.sess.write(b.Bytes()) != nil {
			return
		}
		r.state = joining
		r.present = r.present[:0]
		r.after(m.opts.JoinTimeout, evJoinTimeout)
		r.requestOccupants(r.joinGen)
		return
	}
	b.open("presence", "from", m.c.opts.Domain+"/"+cur, "to", to)
	b.open("x", "xmlns", nsMUC).empty("history", "maxstanzas", "0").close("x")
	b.close("presence")
	if err := r.sess.write(b.Bytes()); err != nil {
		return
	}
	r.state = joining
	r.present = r.present[:0]
	r.after(m.opts.JoinTimeout, evJoinTimeout)
}

// after arms the join timer: an event of kind in d, for a new join number.
func (r *room) after(d time.Duration, kind evKind) {
	r.stopJoinTimer()
	r.joinGen++
	gen := r.joinGen
	r.joinTimer = r.m.opts.Clock.AfterFunc(d, func() { r.push(event{kind: kind, gen: gen}) })
}

func (r *room) stopJoinTimer() {
	if r.joinTimer != nil {
		r.joinTimer.Stop()
		r.joinTimer = nil
	}
	r.joinGen++ // whatever was armed is stale now
}

// joinTimedOut runs when the room did not answer a join in time (ejabberd
// drops a join that races the room's teardown): it tries again after a
// pause, and in the end refuses the waiting knocks and goes back to idle.
func (r *room) joinTimedOut() {
	m := r.m
	if r.joinTries < m.opts.JoinRetries {
		r.joinTries++
		pause := min(m.opts.JoinTimeout, 100*time.Millisecond<<r.joinTries)
		m.metrics.Joins.WithLabelValues(string(joinRetried)).Inc()
		m.log.Warn("the room did not answer gavel's join: trying again", zap.String("room", r.jid),
			zap.Int("retry", r.joinTries), zap.Duration("pause", pause))
		r.after(pause, evJoinRetry)
		return
	}
	m.metrics.Joins.WithLabelValues(string(joinTimeout)).Inc()
	m.log.Warn("the room did not answer gavel's join: giving up", zap.String("room", r.jid),
		zap.Int("tries", r.joinTries+1), zap.Int("knocks_refused", len(r.deferred)))
	// Should the server let gavel in after all, it leaves again: the next
	// knock starts afresh.
	if !r.watching() {
		r.writeLeave()
	}
	r.stopJoinTimer()
	r.state = idle
	r.joinTries = 0
	r.adopting = false
	r.failDeferred(knockRoomUnavailable, "the room did not answer gavel's join")
}

// joinOutcome is how one join of a room ended, as counted in
// gavel_room_joins_total.
type joinOutcome string

const (
	joinJoined    joinOutcome = "joined"
	joinRefused   joinOutcome = "refused"
	joinRetried   joinOutcome = "retried"
	joinTimeout   joinOutcome = "timeout"
	joinNickTaken joinOutcome = "nick-taken"
)

func (r *room) onKnock(k *knockReq) {
	if r.bridgeKnock(k) {
		return
	}
	if r.state != joined {
		if len(r.deferred) >= r.m.opts.MaxQueuedKnocks {
			r.m.refuse(k.sess, k.st, knockRoomBusy, "", k.started)
			return
		}
		r.deferred = append(r.deferred, k)
		if r.state == idle {
			r.enter()
		}
		return
	}
	r.decide(k)
}

// decide applies the policy to a knock and to the knocks queued right
// behind it (batch.go), performs their actions and answers them.
func (r *room) decide(k *knockReq) { r.decideAll(r.withQueuedKnocks(k)) }

// decideAll applies the policy to knocks in order, stores the result once,
// answers at once the knocks that need no change in the room, performs the
// others' actions all at once and answers them.
func (r *room) decideAll(ks []*knockReq) {
	m := r.m
	type granted struct {
		k    *knockReq
		g    policy.Grant
		none bool // the knock asked the room for nothing
	}
	var acts []policy.Action
	gs := make([]granted, 0, len(ks))
	for _, k := range ks {
		if r.holdKnock(k) {
			continue
		}
		grant, actions := r.pol.Knock(k.bare, k.full, k.id, m.now())
		if grant.Refused() {
			m.refuse(k.sess, k.st, policyOutcome(grant.Refusal), "", k.started)
			continue
		}
		actions = r.bridgeActions(k, r.resumeGrant(actions, k.bare)) // linger.go, bridge.go
		acts = append(acts, actions...)
		gs = append(gs, granted{k, grant, len(actions) == 0})
	}
	if len(gs) == 0 {
		r.perform(acts)
		return
	}
	for _, x := range gs {
		r.remember(x.k) // before the save, which stores the token hashes
	}
	// The grants wait for their joins in the policy: durable before the
	// knocks are answered and before any grant is sent (one write for the
	// whole batch; perform's own save then finds nothing new), so a restart
	// between the answer and the join keeps what the knock said.
	r.save()
	waiting := gs[:0:0]
	for _, x := range gs {
		if x.none && !slices.ContainsFunc(acts, func(a policy.Action) bool { return a.BareJID == x.k.bare }) {
			r.grant(x.k, x.g)
			continue
		}
		waiting = append(waiting, x)
	}
	errs := r.perform(acts)
	for _, x := range waiting {
		k := x.k
		if i := slices.IndexFunc(errs, func(e actionErr) bool { return e.bare == k.bare || errors.Is(e.err, ErrNotConnected) }); i >= 0 {
			delete(r.knocks, k.full)
			m.refuse(k.sess, k.st, knockRoomUnavailable, "the room refused gavel's change: "+errs[i].err.Error(), k.started)
			continue
		}
		r.grant(k, x.g)
	}
}

// grant answers a granted knock.
func (r *room) grant(k *knockReq, grant policy.Grant) {
	var expires string
	if grant.Affiliation == policy.Owner && !k.id.Expires.IsZero() {
		expires = k.id.Expires.UTC().Format(time.RFC3339)
	}
	r.why.granted(r, k.bare, grant.Reason)
	r.answerGrant(k, grant, expires)
}

// knockRecord is what a granted knock said, kept for bans.
type knockRecord struct {
	bare, userID string
	tokenHash    [32]byte
	hasToken     bool
	at           time.Time
}

// remember records a granted knock, and now and then forgets records of
// knocks that expired without a join.
func (r *room) remember(k *knockReq) {
	now := r.m.now()
	if now.Sub(r.pruned) > policy.KnockTTL {
		r.pruned = now
		here := r.presentSet()
		for full, rec := range r.knocks {
			if now.Sub(rec.at) > policy.KnockTTL && !here[full] {
				delete(r.knocks, full)
			}
		}
	}
	rec := knockRecord{bare: k.bare, userID: k.id.UserID, at: now}
	if k.claims != nil {
		rec.tokenHash, rec.hasToken = k.claims.TokenHash, true
	}
	r.knocks[k.full] = rec
}

// presentSet returns the full JIDs of the occupants.
func (r *room) presentSet() map[string]bool {
	here := make(map[string]bool, r.pol.Len())
	for o := range r.pol.Occupants() {
		here[o.FullJID] = true
	}
	return here
}

// isPresent reports whether the occupant with full JID full is in the room.
func (r *room) isPresent(full string) bool {
	for o := range r.pol.Occupants() {
		if o.FullJID == full {
			return true
		}
	}
	return false
}

type actionErr struct {
	bare string
	err  error
}

// perform is the one executor of policy actions: affiliation and role
// changes, kicks and room configuration. Every request is sent at once, in
// order (the server handles them in that order), then the answers are
// collected, each waiting at most IQTimeout from the start. Several
// affiliation items in one muc#admin request are not used: Prosody 0.12
// applies only the first item and answers success.
func (r *room) perform(actions []policy.Action) []actionErr {
	r.why.note(r, actions)
	if len(actions) == 0 {
		return nil
	}
	sess := r.sess
	if sess == nil || r.state != joined {
		// Sent again when gavel is back in the room (Reconcile).
		r.pol.Unapplied(actions)
		return []actionErr{{err: ErrNotConnected}}
	}
	m := r.m
	if slices.ContainsFunc(actions, func(a policy.Action) bool { return a.Kind == policy.ActionSetAffiliation }) {
		r.save() // a grant is durable before the server applies it
	}
	from := m.occupantJID()
	type inflight struct {
		a    policy.Action
		kind string
		wait func() (*stanza, error)
	}
	waits := make([]inflight, 0, len(actions))
	for _, a := range actions {
		var kind, to, typ = "", r.jid, "set"
		var payload func(b *xb)
		switch a.Kind {
		case policy.ActionSetAffiliation:
			kind = "affiliation"
			if r.quietAffiliation(a) {
				// watch.go: the module writes it without announcing it.
				to = r.muc.Domain
				payload = func(b *xb) {
					b.empty("affiliation", "xmlns", NSBridge, "room", r.jid, "jid", a.BareJID, "affiliation", a.Affiliation.String())
				}
				break
			}
			payload = func(b *xb) {
				b.open("query", "xmlns", nsMUCAdmin)
				b.empty("item", "affiliation", a.Affiliation.String(), "jid", a.BareJID)
				b.close("query")
			}
		case policy.ActionSetRole:
			kind = "role"
			payload = func(b *xb) {
				b.open("query", "xmlns", nsMUCAdmin)
				b.empty("item", "role", a.Role.String(), "nick", a.Nick)
				b.close("query")
			}
		case policy.ActionKick:
			kind = "kick"
			payload = func(b *xb) {
				b.open("query", "xmlns", nsMUCAdmin).open("item", "nick", a.Nick, "role", "none")
				if a.Text != "" {
					b.elem("reason", a.Text)
				}
				b.close("item").close("query")
			}
		case policy.ActionConfigure:
			kind = "configure"
			payload = func(b *xb) { roomConfigForm(b, a.Config) }
		case policy.ActionDestroy:
			kind, to = "destroy", r.jid
			payload = func(b *xb) { destroyPayload(b, a.Text) }
		default:
			continue
		}
		waits = append(waits, inflight{a: a, kind: kind, wait: sess.iqAsync(from, to, typ, payload)})
	}
	deadline := time.Now().Add(m.opts.IQTimeout)
	var errs []actionErr
	var unsent []policy.Action
	for _, w := range waits {
		_, err := waitUntil(deadline, w.wait)
		if err != nil {
			m.metrics.Changes.WithLabelValues(w.kind, "error").Inc()
			var se *stanzaError
			switch {
			case errors.Is(err, ErrNotConnected):
				// The connection dropped (logged once, as a state
				// change): sent again when gavel is back.
				unsent = append(unsent, w.a)
				m.log.Debug("change not sent: disconnected", zap.String("room", r.jid), zap.String("action", w.a.String()))
			case !errors.As(err, &se):
				// No answer: whether the room applied it is unknown, so
				// it is checked and sent again at the next rejoin.
				unsent = append(unsent, w.a)
				m.log.Warn("room did not answer a change", zap.String("room", r.jid), zap.String("action", w.a.String()), zap.Error(err))
			case r.watching() && se.Type == "cancel" && se.Condition == "item-not-found":
				// Governed from outside (watch.go), the room can end
				// under gavel: Prosody destroys an empty room that is
				// not persistent as its last occupant leaves, and the
				// bridge reports it. Nothing was left to change.
				m.log.Debug("room gone before a change", zap.String("room", r.jid), zap.String("action", w.a.String()))
			default:
				m.log.Warn("room refused a change", zap.String("room", r.jid), zap.String("action", w.a.String()), zap.Error(err))
			}
			errs = append(errs, actionErr{bare: w.a.BareJID, err: err})
			continue
		}
		m.metrics.Changes.WithLabelValues(w.kind, "ok").Inc()
		m.log.Debug("room changed", zap.String("room", r.jid), zap.String("action", w.a.String()))
	}
	r.pol.Unapplied(unsent)
	return errs
}

// waitUntil waits for an IQ's answer until deadline: a room that does not
// answer holds its worker for that long, not for the session's 15 s.
func waitUntil(deadline time.Time, wait func() (*stanza, error)) (*stanza, error) {
	type answer struct {
		st  *stanza
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		st, err := wait()
		ch <- answer{st, err}
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case a := <-ch:
		return a.st, a.err
	case <-t.C:
		return nil, errors.New("component: the room did not answer in time")
	}
}

// roomConfigForm writes the muc#owner form that sets cfg.
func roomConfigForm(b *xb, cfg policy.RoomConfig) {
	b.open("query", "xmlns", nsMUCOwner).open("x", "xmlns", nsData, "type", "submit")
	field(b, "FORM_TYPE", "hidden", "http://jabber.org/protocol/muc#roomconfig")
	field(b, "muc#roomconfig_membersonly", "", boolValue(cfg.MembersOnly))
	field(b, "muc#roomconfig_moderatedroom", "", boolValue(cfg.Moderated))
	// ejabberd gives newcomers to a moderated room voice unless told
	// not to; Prosody ignores the field.
	field(b, "members_by_default", "", boolValue(!cfg.Moderated))
	b.close("x").close("query")
}

func (r *room) onPresence(st *stanza, nick string) {
	m := r.m
	self := nick == r.ownNick() && (st.MUCUser.has(110) || st.Type == "error" || st.MUCUser == nil ||
		st.MUCUser.Destroy != nil || // ejabberd sends the destroy notice without status 110
		len(st.MUCUser.Items) > 0 && strings.EqualFold(bareOf(st.MUCUser.Items[0].JID), m.c.opts.Domain))
	if self {
		r.onSelfPresence(st)
		return
	}
	r.onOccupant(st, nick)
}

// onOccupant handles an occupant's presence, as received in the room or
// reported by the bridge.
func (r *room) onOccupant(st *stanza, nick string) {
	m := r.m
	if st.MUCUser == nil || len(st.MUCUser.Items) == 0 {
		return
	}
	item := st.MUCUser.Items[0]
	aff, _ := policy.ParseAffiliation(item.Affiliation)
	role, _ := policy.ParseRole(item.Role)
	full := item.JID
	p := policy.Presence{Nick: nick, FullJID: full, BareJID: bareOf(full), Affiliation: aff, Role: role}
	now := m.now()
	switch st.Type {
	case "":
		r.noteIdentity(full, st.Identity)
		if r.state == joining {
			r.present = append(r.present, p)
			return
		}
		isNew := !r.isPresent(full)
		if isNew {
			r.joinAff[full] = p.Affiliation
		}
		acts := slices.Clone(r.pol.Joined(p, now)) // admit asks the policy again
		if isNew && r.deniedGuest(full, p.BareJID) {
			// It is about to be removed: grant it nothing meanwhile.
			acts = policy.WithoutGrantsTo(acts, p.BareJID)
		}
		acts = append(acts, r.resetOnReturn(p.BareJID)...) // linger.go
		r.perform(append(acts, r.admit(full, now)...))
	case "unavailable":
		if r.state == joining {
			return
		}
		if st.MUCUser.has(303) {
			return // nick change: the new nick's presence follows
		}
		if st.MUCUser.has(301) || st.MUCUser.has(321) {
			r.perform(r.pol.AffiliationChanged(p.BareJID, aff, now))
		}
		r.perform(r.holdResets(r.pol.Left(nick, now), p.BareJID, aff)) // linger.go
		delete(r.knocks, full)
		delete(r.idents, full)
		delete(r.admitted, full)
		delete(r.joinAff, full)
	}
}

func (r *room) onSelfPresence(st *stanza) {
	m := r.m
	switch {
	case st.Type == "error":
		if r.state != joining {
			return
		}
		r.stopJoinTimer()
		if st.Error != nil && st.Error.Condition == "conflict" && r.nickTries < maxNickTries {
			// A client holds gavel's nick (a room a client created):
			// enter under another one.
			r.nickTries++
			taken := r.ownNick()
			r.setNick(m.c.opts.Nick + "-" + randomSuffix())
			m.metrics.Joins.WithLabelValues(string(joinNickTaken)).Inc()
			m.log.Info("gavel's nick is taken in the room: joining under another", zap.String("room", r.jid),
				zap.String("taken", taken), zap.String("nick", r.ownNick()))
			r.join()
			return
		}
		r.state = idle
		r.joinTries = 0
		m.metrics.Joins.WithLabelValues(string(joinRefused)).Inc()
		text := "gavel could not enter the room"
		if st.Error != nil {
			text += ": " + st.Error.Type + "/" + st.Error.Condition
		}
		if r.adopting && len(r.deferred) == 0 {
			// A room discovery found may be locked until its creator
			// configures it (Prosody's muc_room_locking): the next
			// poll tries again.
			m.log.Debug("join refused", zap.String("room", r.jid), zap.String("error", text))
		} else {
			m.log.Warn("join refused", zap.String("room", r.jid), zap.String("error", text))
		}
		r.adopting = false
		r.failDeferred(knockRoomUnavailable, text)
	case st.Type == "unavailable":
		// gavel was removed: kicked, banned or the room was destroyed.
		why := "left"
		switch {
		case st.MUCUser.has(307):
			why = "kicked"
		case st.MUCUser.has(301):
			why = "banned"
		case st.MUCUser != nil && st.MUCUser.Destroy != nil:
			why = "destroyed"
		}
		if why == "left" && r.state != joined {
			// The echo of gavel's own earlier leave (the room was retired,
			// then a knock brought gavel back): the join that follows it is
			// still on its way. Nothing was refused.
			return
		}
		if r.state == joined {
			m.log.Info("removed from room", zap.String("room", r.jid), zap.String("why", why))
		}
		r.stopJoinTimer()
		r.failDeferred(knockRoomUnavailable, "the room was "+why)
		r.destroyed = why == "destroyed" // the meeting ended: its settings too
		r.reset()
	case r.state == joining:
		r.entered(st.MUCUser.has(201), true)
	}
}

// entered runs when gavel is in the room (or the bridge told its
// occupants, watch.go), with the occupants seen meanwhile in r.present:
// the room is configured (created: gavel's join created it) or its lists
// read back (readBack), reconciled with the policy, and the knocks that
// waited are decided.
func (r *room) entered(created, readBack bool) {
	m := r.m
	r.stopJoinTimer()
	r.state = joined
	r.held = true
	r.adopting = false
	r.joinTries = 0
	m.metrics.Joins.WithLabelValues(string(joinJoined)).Inc()
	now := m.now()
	present := r.present
	if r.fresh && !created {
		present = r.adoptCreators(present)
	}
	r.fresh = false
	for _, p := range present {
		r.joinAff[p.FullJID] = p.Affiliation
	}
	var acts []policy.Action
	affs := map[string]policy.Affiliation{}
	if created {
		open := r.muc.TrustIdentity || len(r.muc.SecureDomains) > 0 || r.muc.Discover
		acts = append(acts, r.pol.Configure(open))
	} else if readBack {
		affs = r.readAffiliations(present)
	}
	r.withPendingGrants(affs)
	acts = append(acts, r.holdCreatorGrants(r.pol.Reconcile(affs, present, now))...)
	acts = append(acts, r.catchUpKnocks(present, now)...)
	acts = append(acts, r.pol.ApplyRoles(now)...)
	r.present = r.present[:0]
	for _, p := range present {
		acts = append(acts, r.admit(p.FullJID, now)...)
	}
	r.perform(acts)
	deferred := r.deferred
	r.deferred = nil
	r.decideAll(deferred)
}

// readAffiliations reads the room's owner (and, where it matters, member)
// list back, the requests in flight at once. If the room refuses, the
// present occupants' affiliations stand in,
// so policy never takes a failed read for "everyone is none".
func (r *room) readAffiliations(present []policy.Presence) map[string]policy.Affiliation {
	affs := make(map[string]policy.Affiliation, len(present))
	for _, p := range present {
		if p.BareJID != "" {
			affs[p.BareJID] = p.Affiliation
		}
	}
	from := r.m.occupantJID()
	// Owners always matter; members only where membership decides entry
	// or voice. Outcasts are enforced by the server itself and bans are
	// gavel's own, so that list is not read: each list costs the server
	// a request per room, and recovery reads every room at once.
	lists := []policy.Affiliation{policy.Owner}
	if cfg := r.pol.Config(); cfg.MembersOnly || cfg.Moderated {
		lists = append(lists, policy.Member)
	}
	waits := make([]func() (*stanza, error), len(lists))
	for i, a := range lists {
		name := a.String()
		waits[i] = r.sess.iqAsync(from, r.jid, "get", func(b *xb) {
			b.open("query", "xmlns", nsMUCAdmin).empty("item", "affiliation", name).close("query")
		})
	}
	deadline := time.Now().Add(r.m.opts.IQTimeout)
	for i, wait := range waits {
		res, err := waitUntil(deadline, wait)
		if err != nil || res.AdminQuery == nil {
			r.m.log.Warn("could not read an affiliation list back", zap.String("room", r.jid),
				zap.String("affiliation", lists[i].String()), zap.Error(err))
			continue
		}
		for _, it := range res.AdminQuery.Items {
			bare := bareOf(it.JID)
			if _, creator := r.creators[bare]; bare == "" || creator {
				// A creator's ownership is settled by the policy once its
				// identity is known (adoptCreators): keep it as none here.
				continue
			}
			affs[bare] = lists[i]
		}
	}
	return affs
}

// reset forgets everything gavel knew of the room: it is gone or gavel
// was removed from it.
func (r *room) reset() {
	r.forgetState()
	r.state = idle
	r.held = false
	r.joinTries = 0
	old := r.pol
	r.pol = policy.NewRoom(r.jid, r.policyOptions())
	r.keepSettings(old, r.destroyed)
	r.destroyed = false
	clear(r.knocks)
	clear(r.idents)
	clear(r.admitted)
	clear(r.joinAff)
	clear(r.creators)
	clear(r.lingering)
	r.restoredKnocks = nil
}

// exists asks the server whether the room still exists, without creating
// it (disco#info). Anything but item-not-found counts as existing.
func (r *room) exists() bool {
	ctx, cancel := context.WithTimeout(context.Background(), r.m.opts.IQTimeout)
	defer cancel()
	_, err := r.sess.iq(ctx, r.m.occupantJID(), r.jid, "get", func(b *xb) {
		b.empty("query", "xmlns", nsDiscoInfo)
	})
	var se *stanzaError
	return !(errors.As(err, &se) && se.Condition == "item-not-found")
}

func (r *room) policyOptions() policy.Options {
	opts := r.tenant.Policy
	opts.BotDomains = append(append([]string(nil), opts.BotDomains...), r.m.c.opts.Domain)
	return opts
}

func boolValue(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// randomSuffix returns a short random word for a fallback nick.
func randomSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (r *room) failDeferred(o knockOutcome, text string) {
	for _, k := range r.deferred {
		r.m.refuse(k.sess, k.st, o, text, k.started)
	}
	r.deferred = nil
}

// armTimer arms the room's one policy timer, on the injected clock.
func (r *room) armTimer() {
	at := r.pol.NextDeadline()
	if at.IsZero() {
		r.stopTimer()
		return
	}
	if r.timer != nil && at.Equal(r.timerAt) {
		return
	}
	r.stopTimer()
	r.timerAt = at
	r.timer = r.m.opts.Clock.AfterFunc(at.Sub(r.m.now()), func() { r.push(event{kind: evTick}) })
}

func (r *room) stopTimer() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
		r.timerAt = time.Time{}
	}
}
