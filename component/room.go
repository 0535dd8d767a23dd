package component

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/policy"
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
)

// event is one thing that happened to a room; a room's events are handled
// in order by its worker.
type event struct {
	kind  evKind
	st    *stanza
	nick  string
	sess  *session
	knock *knockReq
	cmd   func(r *room) error
	done  chan error
	fresh bool // evAdopt: the room appeared after gavel's first look
}

type joinState uint8

const (
	idle joinState = iota
	joining
	joined
)

// room is one governed room. All its events go through one worker
// goroutine, which owns the policy state; nothing else touches it.
type room struct {
	m      *Moderation
	jid    string
	ar     auth.Room
	muc    MUC
	tenant Tenant

	qmu   sync.Mutex
	queue []event
	wake  chan struct{}

	// Worker state.
	// held is set once gavel has been in the room, so a reconnect knows to
	// check that the server still has it.
	held     bool
	pol      *policy.Room
	sess     *session
	state    joinState
	deferred []*knockReq
	present  []policy.Presence // occupants seen while joining
	timer    *time.Timer
	timerAt  time.Time
	lastLen  int
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
}

func (m *Moderation) newRoom(jid string) (*room, error) {
	ar, err := auth.ParseRoom(jid)
	if err != nil {
		return nil, err
	}
	t := m.opts.Tenant(ar.Tenant)
	opts := t.Policy
	opts.BotDomains = append(append([]string(nil), opts.BotDomains...), m.c.opts.Domain)
	return &room{
		m: m, jid: ar.JID, ar: ar, muc: m.mucs[ar.Domain], tenant: t,
		wake: make(chan struct{}, 1), knocks: map[string]knockRecord{},
		idents: map[string]*identityEl{}, admitted: map[string]string{}, joinAff: map[string]policy.Affiliation{},
		creators: map[string]bool{},
		pol:      policy.NewRoom(ar.JID, opts),
	}, nil
}

func (r *room) push(ev event) {
	r.qmu.Lock()
	r.queue = append(r.queue, ev)
	r.qmu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
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
			r.failDeferred(knockShuttingDown, "")
			r.stopTimer()
			m.retire(r)
			r.account(0)
			return
		}
		r.handle(ev)
		r.armTimer()
		r.account(r.pol.Len())
		if r.idle() && r.leaveAndRetire() {
			r.stopTimer()
			r.account(0)
			return
		}
	}
}

// idle reports whether gavel has no reason to stay in the room.
func (r *room) idle() bool {
	return r.state != joining && len(r.deferred) == 0 && r.pol.Empty() && r.pol.Pending() == 0
}

// leaveAndRetire leaves the room and forgets it, unless events arrived.
func (r *room) leaveAndRetire() bool {
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.queued() > 0 && !m.closing {
		return false
	}
	if r.state == joined && r.sess != nil {
		var b xb
		b.empty("presence", "from", m.c.opts.Domain+"/"+m.resource, "to", r.jid+"/"+m.c.opts.Nick, "type", "unavailable")
		_ = r.sess.write(b.Bytes())
	}
	if m.rooms[r.jid] == r {
		delete(m.rooms, r.jid)
		m.metrics.Rooms.Set(float64(len(m.rooms)))
	}
	if r.state == joined && r.muc.Discover {
		m.dormant[r.jid] = m.now() // discovery leaves it alone for a while
	}
	m.log.Debug("room left", zap.String("room", r.jid))
	return true
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
		if r.held && len(r.deferred) == 0 && !r.exists() {
			// The server lost the room (a crash): recreating it empty only
			// for gavel to leave it again would cost the server dearly
			// across many rooms. Its next knock recreates it.
			r.m.log.Debug("room gone after reconnect", zap.String("room", r.jid))
			r.reset()
			return
		}
		r.join()
	case evDisconnected:
		r.sess = nil
		r.state = idle
		r.adopting = false
		r.deferred = nil // their IQs cannot be answered on a dead stream
	case evKnock:
		r.onKnock(ev.knock)
	case evPresence:
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
			if r.sess == nil {
				r.sess = r.m.session()
			}
			r.join()
		}
		if r.state == joining {
			r.adopting = true
		}
	case evIdentityReady:
		if r.state == joined {
			r.admitAll(r.m.now())
		}
	}
}

// join enters the room under the session's resource, after removing the
// previous session's ghost occupant if there may be one.
func (r *room) join() {
	if r.sess == nil {
		return
	}
	m := r.m
	m.mu.Lock()
	cur, prev := m.resource, m.previous
	m.mu.Unlock()
	var b xb
	to := r.jid + "/" + m.c.opts.Nick
	if prev != "" && prev != cur && r.state != idle || prev != "" && r.lastLen > 0 {
		b.empty("presence", "from", m.c.opts.Domain+"/"+prev, "to", to, "type", "unavailable")
	}
	b.open("presence", "from", m.c.opts.Domain+"/"+cur, "to", to)
	b.open("x", "xmlns", nsMUC).empty("history", "maxstanzas", "0").close("x")
	b.close("presence")
	if err := r.sess.write(b.Bytes()); err != nil {
		return
	}
	r.state = joining
	r.present = r.present[:0]
}

func (r *room) onKnock(k *knockReq) {
	if r.state != joined {
		r.deferred = append(r.deferred, k)
		if r.state == idle {
			if r.sess == nil {
				r.sess = r.m.session()
			}
			r.join()
		}
		return
	}
	r.decide(k)
}

// decide applies the policy to a knock, performs its actions and answers.
func (r *room) decide(k *knockReq) {
	m := r.m
	grant, actions := r.pol.Knock(k.bare, k.full, k.id, m.now())
	if grant.Refused() {
		m.refuse(k.sess, k.st, policyOutcome(grant.Refusal), "", k.started)
		return
	}
	if errs := r.perform(actions); len(errs) > 0 {
		for _, e := range errs {
			if e.bare == k.bare {
				m.refuse(k.sess, k.st, knockRoomUnavailable, "the room refused gavel's change: "+e.err.Error(), k.started)
				return
			}
		}
	}
	var expires string
	if grant.Affiliation == policy.Owner && !k.id.Expires.IsZero() {
		expires = k.id.Expires.UTC().Format(time.RFC3339)
	}
	r.remember(k)
	m.c.reply(k.sess, k.st, func(b *xb) {
		b.empty("knock", "xmlns", NSKnock, "room", r.jid,
			"affiliation", grant.Affiliation.String(), "role", grant.Role.String(),
			"reason", grant.Reason, "expires", expires)
	})
	m.count(knockGranted, k.started)
	m.log.Debug("knock granted", zap.String("from", k.full), zap.String("room", r.jid),
		zap.String("affiliation", grant.Affiliation.String()), zap.String("role", grant.Role.String()), zap.String("reason", grant.Reason))
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

// perform carries out actions on the server: all IQs are sent at once,
// then their answers are collected.
func (r *room) perform(actions []policy.Action) []actionErr {
	if len(actions) == 0 {
		return nil
	}
	sess := r.sess
	if sess == nil || r.state != joined {
		return []actionErr{{err: ErrNotConnected}}
	}
	m := r.m
	from := m.occupantJID()
	type inflight struct {
		a    policy.Action
		wait func() (*stanza, error)
	}
	waits := make([]inflight, 0, len(actions))
	for _, a := range actions {
		a := a
		var w func() (*stanza, error)
		switch a.Kind {
		case policy.ActionSetAffiliation:
			w = sess.iqAsync(from, r.jid, "set", func(b *xb) {
				b.open("query", "xmlns", nsMUCAdmin)
				b.empty("item", "affiliation", a.Affiliation.String(), "jid", a.BareJID)
				b.close("query")
			})
		case policy.ActionSetRole:
			w = sess.iqAsync(from, r.jid, "set", func(b *xb) {
				b.open("query", "xmlns", nsMUCAdmin)
				b.empty("item", "role", a.Role.String(), "nick", a.Nick)
				b.close("query")
			})
		default:
			continue
		}
		waits = append(waits, inflight{a: a, wait: w})
	}
	var errs []actionErr
	for _, w := range waits {
		_, err := w.wait()
		kind := "affiliation"
		if w.a.Kind == policy.ActionSetRole {
			kind = "role"
		}
		if err != nil {
			m.metrics.Changes.WithLabelValues(kind, "error").Inc()
			m.log.Warn("room refused a change", zap.String("room", r.jid), zap.String("action", w.a.String()), zap.Error(err))
			errs = append(errs, actionErr{bare: w.a.BareJID, err: err})
			continue
		}
		m.metrics.Changes.WithLabelValues(kind, "ok").Inc()
		m.log.Debug("room changed", zap.String("room", r.jid), zap.String("action", w.a.String()))
	}
	return errs
}

func (r *room) onPresence(st *stanza, nick string) {
	m := r.m
	self := nick == m.c.opts.Nick && (st.MUCUser.has(110) || st.Type == "error" || st.MUCUser == nil ||
		st.MUCUser.Destroy != nil || // ejabberd sends the destroy notice without status 110
		len(st.MUCUser.Items) > 0 && strings.EqualFold(bareOf(st.MUCUser.Items[0].JID), m.c.opts.Domain))
	if self {
		r.onSelfPresence(st)
		return
	}
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
		acts := r.pol.Joined(p, now)
		if isNew && r.deniedGuest(full, p.BareJID) {
			// It is about to be removed: grant it nothing meanwhile.
			acts = withoutGrantsTo(acts, p.BareJID)
		}
		r.perform(acts)
		r.admit(full, now)
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
		r.perform(r.pol.Left(nick, now))
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
		r.state = idle
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
		if why == "left" && r.state == joining {
			// The echo of gavel's own earlier leave (the room was retired,
			// then a knock brought gavel back): the join that follows it is
			// still on its way. Nothing was refused.
			return
		}
		if r.state == joined {
			m.log.Info("removed from room", zap.String("room", r.jid), zap.String("why", why))
		}
		r.failDeferred(knockRoomUnavailable, "the room was "+why)
		r.reset()
	case r.state == joining:
		r.state = joined
		r.held = true
		r.adopting = false
		created := st.MUCUser.has(201)
		if created {
			r.configure()
		}
		now := m.now()
		present := r.present
		if r.fresh && !created {
			r.adoptCreators(present)
		}
		r.fresh = false
		for _, p := range present {
			r.joinAff[p.FullJID] = p.Affiliation
		}
		affs := map[string]policy.Affiliation{}
		if !created {
			affs = r.readAffiliations(present)
		}
		r.perform(r.holdCreatorGrants(r.pol.Reconcile(affs, present, now)))
		r.present = r.present[:0]
		for _, p := range present {
			r.admit(p.FullJID, now)
		}
		deferred := r.deferred
		r.deferred = nil
		for _, k := range deferred {
			r.decide(k)
		}
	}
}

// readAffiliations reads the room's owner (and, where it matters, member)
// list back, the requests in flight at once. If the room refuses, the present occupants' affiliations stand in,
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
	for i, wait := range waits {
		res, err := wait()
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
	r.state = idle
	r.held = false
	r.pol = policy.NewRoom(r.jid, r.policyOptions())
	clear(r.knocks)
	clear(r.idents)
	clear(r.admitted)
	clear(r.joinAff)
	clear(r.creators)
}

// exists asks the server whether the room still exists, without creating
// it (disco#info). Anything but item-not-found counts as existing.
func (r *room) exists() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
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

// configure unlocks a room gavel created, with the tenant's room settings.
func (r *room) configure() {
	cfg := r.pol.Config()
	if r.muc.TrustIdentity || len(r.muc.SecureDomains) > 0 || r.muc.Discover {
		// Clients that never knock join this MUC: a members-only room
		// would refuse them. gavel removes denied guests itself.
		cfg.MembersOnly = false
	}
	_, err := r.sess.iq(context.Background(), r.m.occupantJID(), r.jid, "set", func(b *xb) {
		b.open("query", "xmlns", nsMUCOwner).open("x", "xmlns", nsData, "type", "submit")
		field(b, "FORM_TYPE", "hidden", "http://jabber.org/protocol/muc#roomconfig")
		field(b, "muc#roomconfig_membersonly", "", boolValue(cfg.MembersOnly))
		field(b, "muc#roomconfig_moderatedroom", "", boolValue(cfg.Moderated))
		// ejabberd gives newcomers to a moderated room voice unless told
		// not to; Prosody ignores the field.
		field(b, "members_by_default", "", boolValue(!cfg.Moderated))
		b.close("x").close("query")
	})
	if err != nil {
		r.m.log.Warn("room configuration refused", zap.String("room", r.jid), zap.Error(err))
	}
}

func boolValue(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

func (r *room) failDeferred(o knockOutcome, text string) {
	for _, k := range r.deferred {
		r.m.refuse(k.sess, k.st, o, text, k.started)
	}
	r.deferred = nil
}

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
	r.timer = time.AfterFunc(time.Until(at), func() { r.push(event{kind: evTick}) })
}

func (r *room) stopTimer() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
		r.timerAt = time.Time{}
	}
}
