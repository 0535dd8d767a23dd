package component

import (
	"context"
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
	pol      *policy.Room
	sess     *session
	state    joinState
	deferred []*knockReq
	present  []policy.Presence // occupants seen while joining
	timer    *time.Timer
	timerAt  time.Time
	lastLen  int
	// tokens maps occupants' full JIDs to the hash of the token they
	// knocked with, for token bans.
	tokens map[string][32]byte
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
		wake: make(chan struct{}, 1), tokens: map[string][32]byte{},
		pol: policy.NewRoom(ar.JID, opts),
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
			r.failDeferred("wait", "service-unavailable", condShuttingDown, "gavel is shutting down")
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
		r.join()
	case evDisconnected:
		r.sess = nil
		r.state = idle
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
		typ, cond, text := "auth", "not-authorized", "this room needs a token"
		switch grant.Refusal {
		case policy.RefusalBanned:
			typ, cond, text = "auth", "forbidden", "you are banned from this room"
		case policy.RefusalTokenExpired:
			text = "the token has expired"
		}
		m.refuse(k.sess, k.st, typ, cond, grant.Refusal, text, k.started)
		return
	}
	if errs := r.perform(actions); len(errs) > 0 {
		for _, e := range errs {
			if e.bare == k.bare {
				m.refuse(k.sess, k.st, "wait", "service-unavailable", condRoomUnavailable, "the room refused gavel's change: "+e.err.Error(), k.started)
				return
			}
		}
	}
	var expires string
	if grant.Affiliation == policy.Owner && !k.id.Expires.IsZero() {
		expires = k.id.Expires.UTC().Format(time.RFC3339)
	}
	if k.claims != nil {
		r.tokens[k.full] = k.claims.TokenHash
	}
	m.c.reply(k.sess, k.st, func(b *xb) {
		b.empty("knock", "xmlns", NSKnock, "room", r.jid,
			"affiliation", grant.Affiliation.String(), "role", grant.Role.String(),
			"reason", grant.Reason, "expires", expires)
	})
	m.metrics.Knocks.WithLabelValues("granted").Inc()
	m.metrics.KnockLatency.Observe(m.now().Sub(k.started).Seconds())
	m.log.Debug("knock granted", zap.String("from", k.full), zap.String("room", r.jid),
		zap.String("affiliation", grant.Affiliation.String()), zap.String("role", grant.Role.String()), zap.String("reason", grant.Reason))
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
	self := nick == m.c.opts.Nick && (st.MUCUser.has(110) || st.Type == "error" || st.MUCUser == nil)
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
		if r.state == joining {
			r.present = append(r.present, p)
			return
		}
		r.perform(r.pol.Joined(p, now))
		r.identify(st, p, now)
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
		delete(r.tokens, full)
	}
}

// identify passes server-stamped identity (Jitsi's mod_presence_identity)
// or a secure-domain login to the policy, where the MUC is set to trust it.
func (r *room) identify(st *stanza, p policy.Presence, now time.Time) {
	if r.muc.TrustIdentity && st.Identity != nil {
		u := st.Identity.User
		aff := strings.ToLower(u.Affiliation)
		id := policy.Identity{
			HasToken:  true,
			UserID:    u.ID,
			Moderator: strings.EqualFold(u.Moderator, "true") || aff == "owner" || aff == "moderator" || aff == "teacher",
		}
		r.perform(r.pol.SetIdentity(p.FullJID, id, now))
		return
	}
	if len(r.muc.SecureDomains) > 0 && containsFold(r.muc.SecureDomains, domainOf(p.BareJID)) {
		r.perform(r.pol.SetIdentity(p.FullJID, policy.Identity{HasToken: true, Moderator: true}, now))
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
		m.log.Warn("join refused", zap.String("room", r.jid), zap.String("error", text))
		r.failDeferred("wait", "service-unavailable", condRoomUnavailable, text)
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
		if r.state == joined {
			m.log.Info("removed from room", zap.String("room", r.jid), zap.String("why", why))
		}
		r.state = idle
		r.failDeferred("cancel", "item-not-found", condRoomUnavailable, "the room was "+why)
		r.pol = policy.NewRoom(r.jid, r.policyOptions())
	case r.state == joining:
		r.state = joined
		if st.MUCUser.has(201) {
			r.configure()
		}
		now := m.now()
		r.perform(r.pol.Reconcile(nil, r.present, now))
		r.present = r.present[:0]
		deferred := r.deferred
		r.deferred = nil
		for _, k := range deferred {
			r.decide(k)
		}
	}
}

func (r *room) policyOptions() policy.Options {
	opts := r.tenant.Policy
	opts.BotDomains = append(append([]string(nil), opts.BotDomains...), r.m.c.opts.Domain)
	return opts
}

// configure unlocks a room gavel created, with the tenant's room settings.
func (r *room) configure() {
	cfg := r.pol.Config()
	_, err := r.sess.iq(context.Background(), r.m.occupantJID(), r.jid, "set", func(b *xb) {
		b.open("query", "xmlns", nsMUCOwner).open("x", "xmlns", nsData, "type", "submit")
		field(b, "FORM_TYPE", "hidden", "http://jabber.org/protocol/muc#roomconfig")
		field(b, "muc#roomconfig_membersonly", "", boolValue(cfg.MembersOnly))
		field(b, "muc#roomconfig_moderatedroom", "", boolValue(cfg.Moderated))
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

func (r *room) failDeferred(typ, cond, app, text string) {
	for _, k := range r.deferred {
		r.m.refuse(k.sess, k.st, typ, cond, app, text, k.started)
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
