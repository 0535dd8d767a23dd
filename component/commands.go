package component

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

// Moderation is the XMPP side of the command layer: it implements
// commands.Rooms. Validation, normalization and the audit line are the
// command layer's (package commands); what is here only reaches rooms.
var _ commands.Rooms = (*Moderation)(nil)

// Governs reports whether gavel governs the MUC service mucDomain.
func (m *Moderation) Governs(mucDomain string) bool {
	_, ok := m.mucs[mucDomain]
	return ok
}

// EnforceBan removes occupants matching b from every governed room of its
// tenant by making their bare JIDs outcasts there. When ctx ends before
// every room answered, it returns the count so far and an error that says
// how many rooms did not answer.
func (m *Moderation) EnforceBan(ctx context.Context, b store.Ban) (int, error) {
	m.mu.Lock()
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		if r.ar.Tenant == b.Tenant {
			rooms = append(rooms, r)
		}
	}
	m.mu.Unlock()
	counts := make(chan int, len(rooms))
	for _, r := range rooms {
		r.push(event{kind: evCommand, cmd: func(r *room) error {
			counts <- r.banPresent(b)
			return nil
		}})
	}
	total := 0
	for answered := range len(rooms) {
		select {
		case n := <-counts:
			total += n
		case <-ctx.Done():
			return total, fmt.Errorf("component: %d of %d room(s) did not answer: %w", len(rooms)-answered, len(rooms), ctx.Err())
		}
	}
	return total, nil
}

// banPresent makes outcasts of the occupants b matches, and of granted
// knockers whose join gavel has not seen yet; it runs on the room's worker.
// The outcasts are recorded in the store before they are set, so that
// lifting the ban restores them, also after a restart.
func (r *room) banPresent(b store.Ban) int {
	var also []string
	now := r.m.now()
	here := r.presentSet()
	for full, rec := range r.knocks {
		if now.Sub(rec.at) <= policy.KnockTTL && !here[full] && banMatches(b, banSubject{bare: rec.bare, userID: rec.userID, rec: rec, hasRec: true}) {
			also = append(also, rec.bare)
		}
	}
	actions := r.pol.Ban(func(o policy.Occupant) bool {
		rec, ok := r.knocks[o.FullJID]
		return banMatches(b, banSubject{bare: o.BareJID, userID: o.UserID, rec: rec, hasRec: ok})
	}, also...)
	if len(actions) == 0 {
		return 0
	}
	outcasts := make([]store.Outcast, 0, len(actions))
	for _, a := range actions {
		outcasts = append(outcasts, store.Outcast{Tenant: b.Tenant, Kind: b.Kind, Value: b.Value, Room: r.jid, JID: a.BareJID})
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.m.opts.IQTimeout)
	err := r.m.opts.Store.AddOutcasts(ctx, outcasts)
	cancel()
	if err != nil {
		// The ban holds (the store refuses their knocks); only its lifting
		// would miss these rooms.
		r.m.log.Warn("could not record the outcasts of a ban: lifting it will not restore them", zap.String("room", r.jid), zap.Error(err))
	}
	r.perform(actions)
	return len(actions)
}

// banSubject is what a ban is matched against: an occupant or a granted
// knocker.
type banSubject struct {
	bare, userID string
	rec          knockRecord
	hasRec       bool
}

// banMatches reports whether ban b makes s an outcast. It is the one
// matching rule of banPresent, kept apart so that a policy function can
// replace it.
func banMatches(b store.Ban, s banSubject) bool {
	switch b.Kind {
	case store.KindUser:
		return s.userID != "" && s.userID == b.Value
	case store.KindJID:
		return s.bare == b.Value
	case store.KindToken:
		return s.hasRec && s.rec.hasToken && hex.EncodeToString(s.rec.tokenHash[:]) == b.Value
	}
	return false
}

// LiftOutcasts sets each outcast's JID back to none in its room: through
// the room's worker where gavel is in the room (the policy forgets the ban
// there), else straight from the component (a service admin may change
// affiliations of a room it is not in). A room that no longer exists has
// nothing to lift. It returns the outcasts restored.
func (m *Moderation) LiftOutcasts(ctx context.Context, list []store.Outcast) ([]store.Outcast, error) {
	byRoom := map[string][]store.Outcast{}
	var order []string
	for _, o := range list {
		if _, ok := byRoom[o.Room]; !ok {
			order = append(order, o.Room)
		}
		byRoom[o.Room] = append(byRoom[o.Room], o)
	}
	var lifted []store.Outcast
	var firstErr error
	for _, roomJID := range order {
		os := byRoom[roomJID]
		err := m.onRoom(ctx, roomJID, func(r *room) error {
			jids := map[string]bool{}
			for _, o := range os {
				jids[o.JID] = true
			}
			acts := r.pol.Unban(func(bare string) bool { return jids[bare] })
			for _, a := range acts {
				delete(jids, a.BareJID)
			}
			for bare := range jids { // outcasts the policy did not see set
				acts = append(acts, policy.Action{Kind: policy.ActionSetAffiliation, BareJID: bare, Affiliation: policy.None, Reason: policy.ReasonUnban})
			}
			for _, e := range r.perform(acts) {
				return e.err
			}
			return nil
		})
		if errors.Is(err, commands.ErrRoomNotFound) {
			err = m.liftDirect(ctx, roomJID, os)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = unavailable(err)
			}
			continue
		}
		lifted = append(lifted, os...)
	}
	return lifted, firstErr
}

// liftDirect sets outcasts of a room gavel is not in back to none.
func (m *Moderation) liftDirect(ctx context.Context, roomJID string, os []store.Outcast) error {
	sess := m.session()
	if sess == nil {
		return ErrNotConnected
	}
	// ejabberd creates a missing room for an admin's request: ask first.
	_, err := sess.iq(ctx, m.c.opts.Domain, roomJID, "get", func(b *xb) { b.empty("query", "xmlns", nsDiscoInfo) })
	var se *stanzaError
	if errors.As(err, &se) && se.Condition == "item-not-found" {
		return nil // the room is gone, and its outcasts with it
	}
	for _, o := range os {
		_, err := sess.iq(ctx, m.c.opts.Domain, roomJID, "set", func(b *xb) {
			b.open("query", "xmlns", nsMUCAdmin).empty("item", "affiliation", "none", "jid", o.JID).close("query")
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Kick removes the occupant with nick (Jitsi's participant id) from
// roomJID, a prepared room JID on a governed domain.
func (m *Moderation) Kick(ctx context.Context, roomJID, nick, reason string) error {
	return unavailable(m.kick(ctx, roomJID, nick, reason))
}

func (m *Moderation) kick(ctx context.Context, roomJID, nick, reason string) error {
	if nick == m.c.opts.Nick {
		return commands.ErrParticipantNotFound
	}
	return m.onRoom(ctx, roomJID, func(r *room) error {
		// The server decides whether nick is there: gavel may not have
		// seen a join that just happened.
		_, err := r.sess.iq(ctx, r.m.occupantJID(), r.jid, "set", func(b *xb) {
			b.open("query", "xmlns", nsMUCAdmin).open("item", "nick", nick, "role", "none")
			if reason != "" {
				b.elem("reason", reason)
			}
			b.close("item").close("query")
		})
		// Prosody says item-not-found, ejabberd not-acceptable.
		var se *stanzaError
		if errors.As(err, &se) && (se.Condition == "item-not-found" || se.Condition == "not-acceptable") {
			return commands.ErrParticipantNotFound
		}
		return err
	})
}

// Destroy destroys roomJID, also when gavel is not in it.
func (m *Moderation) Destroy(ctx context.Context, roomJID, reason string) error {
	err := unavailable(m.destroy(ctx, roomJID, reason))
	if err == nil || errors.Is(err, commands.ErrRoomNotFound) {
		m.dropParked(roomJID) // the meeting ended: what admins set for it too
	}
	return err
}

func (m *Moderation) destroy(ctx context.Context, roomJID, reason string) error {
	destroy := func(sess *session) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := sess.iq(ctx, m.c.opts.Domain, roomJID, "set", func(b *xb) {
			b.open("query", "xmlns", nsMUCOwner).open("destroy")
			if reason != "" {
				b.elem("reason", reason)
			}
			b.close("destroy").close("query")
		})
		var se *stanzaError
		if errors.As(err, &se) && se.Condition == "item-not-found" {
			return commands.ErrRoomNotFound
		}
		return err
	}
	err := m.onRoom(ctx, roomJID, func(r *room) error { return destroy(r.sess) })
	if errors.Is(err, commands.ErrRoomNotFound) {
		sess := m.session()
		if sess == nil {
			return ErrNotConnected
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// ejabberd creates a missing room for an owner IQ from a service
		// admin (and would then destroy it): ask whether it exists first.
		_, err := sess.iq(ctx, m.c.opts.Domain, roomJID, "get", func(b *xb) { b.empty("query", "xmlns", nsDiscoInfo) })
		var se *stanzaError
		if errors.As(err, &se) && se.Condition == "item-not-found" {
			return commands.ErrRoomNotFound
		}
		return destroy(sess)
	}
	return err
}

// onRoom runs f on the worker of a room gavel is in; ErrRoomNotFound when
// gavel is not in it. A command whose ctx ended while it was queued does
// not run: its caller has already been told it failed.
func (m *Moderation) onRoom(ctx context.Context, roomJID string, f func(r *room) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	ev := event{kind: evCommand, done: done, cmd: func(r *room) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.state != joined || r.sess == nil {
			return commands.ErrRoomNotFound
		}
		return f(r)
	}}
	if !m.deliver(roomJID, false, ev) {
		return commands.ErrRoomNotFound
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unavailable reports the session's ErrNotConnected as the command layer's
// ErrUnavailable.
func unavailable(err error) error {
	if errors.Is(err, ErrNotConnected) {
		return commands.ErrUnavailable
	}
	return err
}
