package component

import (
	"context"
	"encoding/hex"
	"reflect"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

// This file keeps a room's governing state in the store, so that gavel goes
// on governing its rooms after its own restart: the policy's snapshot (the
// grants it made, the occupants in join order with what their knock said,
// the knocks waiting for their join), the token hashes of those knocks (for
// token bans), and gavel's own occupant JID (to remove its ghost).
//
// A room saves after every event that changed its state, and before it
// sends an affiliation it granted: a grant is durable before the server
// applies it. Saves of many rooms at once share one commit (store.PutRooms).
// A room gavel leaves empty, or that the server lost, is deleted.

// Flags of stored occupants and knocks.
const (
	flagKnocked   = "knocked"
	flagToken     = "token"
	flagModerator = "moderator"
	flagViewer    = "viewer"
	flagGuest     = "guest"
	flagBot       = "bot"
	flagDemoted   = "demoted"
)

// durableState returns what the store keeps of the room.
func (r *room) durableState() store.RoomState {
	snap := r.pol.Snapshot()
	st := store.RoomState{Room: r.jid, Self: r.m.occupantJID(), Nick: r.ownNick(), Settings: settingsToStore(snap.Settings)}
	if r.watching() {
		st.Self, st.Nick = "", "" // gavel is not in the room: no ghost to remove
	}
	for _, g := range snap.Grants {
		st.Grants = append(st.Grants, store.Grant{JID: g.BareJID, Affiliation: g.Affiliation.String(), Expires: g.Expires, Expired: g.Expired})
	}
	for _, u := range snap.Unapplied {
		st.Unapplied = append(st.Unapplied, store.Grant{JID: u.BareJID, Affiliation: u.Affiliation.String()})
	}
	for _, o := range snap.Occupants {
		st.Occupants = append(st.Occupants, store.Occupant{
			JID: o.FullJID, Nick: o.Nick, UserID: o.UserID, Joined: o.Joined, TokenExpires: o.TokenExpires,
			TokenHash: r.tokenHashOf(o.FullJID),
			Flags:     flagsOf(o.Knocked, o.Token, o.Moderator, o.Viewer, o.Guest, o.Bot, o.Demoted),
		})
	}
	for _, p := range snap.Pending {
		st.Knocks = append(st.Knocks, store.Knock{
			JID: p.FullJID, UserID: p.UserID, Reason: p.Reason, Until: p.Until, Expires: p.Expires, TokenExpires: p.TokenExpires,
			Affiliation: p.Affiliation.String(), Base: p.Base.String(), Role: p.Role.String(),
			TokenHash: r.tokenHashOf(p.FullJID),
			Flags:     flagsOf(true, p.Token, p.Moderator, p.Viewer, p.Guest, false, false),
		})
	}
	return st
}

func (r *room) tokenHashOf(full string) string {
	if rec, ok := r.knocks[full]; ok && rec.hasToken {
		return hex.EncodeToString(rec.tokenHash[:])
	}
	return ""
}

func flagsOf(knocked, token, moderator, viewer, guest, bot, demoted bool) []string {
	var out []string
	for _, f := range []struct {
		on   bool
		name string
	}{{knocked, flagKnocked}, {token, flagToken}, {moderator, flagModerator}, {viewer, flagViewer}, {guest, flagGuest}, {bot, flagBot}, {demoted, flagDemoted}} {
		if f.on {
			out = append(out, f.name)
		}
	}
	return out
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// restore loads a stored state into a room that has seen nothing yet; the
// rejoin's Reconcile does the rest. It reports whether the state held
// anything to govern.
func (r *room) restore(st store.RoomState) bool {
	snap := policy.Snapshot{Settings: settingsFromStore(st.Settings)}
	for _, g := range st.Grants {
		aff, err := policy.ParseAffiliation(g.Affiliation)
		if err != nil {
			continue
		}
		snap.Grants = append(snap.Grants, policy.SnapshotGrant{BareJID: g.JID, Affiliation: aff, Expires: g.Expires, Expired: g.Expired})
	}
	for _, u := range st.Unapplied {
		if aff, err := policy.ParseAffiliation(u.Affiliation); err == nil {
			snap.Unapplied = append(snap.Unapplied, policy.SnapshotGrant{BareJID: u.JID, Affiliation: aff})
		}
	}
	for _, o := range st.Occupants {
		bare := bareOf(o.JID)
		if bare == "" {
			continue
		}
		snap.Occupants = append(snap.Occupants, policy.SnapshotOccupant{
			Nick: o.Nick, FullJID: o.JID, BareJID: bare, UserID: o.UserID, Joined: o.Joined, TokenExpires: o.TokenExpires,
			Knocked: hasFlag(o.Flags, flagKnocked), Token: hasFlag(o.Flags, flagToken), Moderator: hasFlag(o.Flags, flagModerator),
			Viewer: hasFlag(o.Flags, flagViewer), Guest: hasFlag(o.Flags, flagGuest), Bot: hasFlag(o.Flags, flagBot), Demoted: hasFlag(o.Flags, flagDemoted),
		})
		r.restoreKnockRecord(o.JID, bare, o.UserID, o.TokenHash, o.Joined)
	}
	for _, k := range st.Knocks {
		bare := bareOf(k.JID)
		aff, err1 := policy.ParseAffiliation(k.Affiliation)
		base, err2 := policy.ParseAffiliation(k.Base)
		role, err3 := policy.ParseRole(k.Role)
		if bare == "" || err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		snap.Pending = append(snap.Pending, policy.SnapshotPending{
			FullJID: k.JID, BareJID: bare, UserID: k.UserID, Reason: k.Reason,
			Until: k.Until, Expires: k.Expires, TokenExpires: k.TokenExpires,
			Affiliation: aff, Base: base, Role: role,
			Token: hasFlag(k.Flags, flagToken), Moderator: hasFlag(k.Flags, flagModerator),
			Viewer: hasFlag(k.Flags, flagViewer), Guest: hasFlag(k.Flags, flagGuest),
		})
		r.restoreKnockRecord(k.JID, bare, k.UserID, k.TokenHash, k.Until.Add(-policy.KnockTTL))
		if r.restoredKnocks == nil {
			r.restoredKnocks = map[string]bool{}
		}
		r.restoredKnocks[k.JID] = true
	}
	r.pol.Restore(snap)
	r.ghost = st.Self
	if st.Nick != "" {
		r.ghostNick = st.Nick
	}
	r.held, r.restored = true, true
	r.saved = st // what the store holds; the first save after the rejoin updates it
	return len(snap.Grants) > 0 || len(snap.Occupants) > 0 || len(snap.Pending) > 0 || len(snap.Unapplied) > 0
}

func (r *room) restoreKnockRecord(full, bare, userID, tokenHash string, at time.Time) {
	rec := knockRecord{bare: bare, userID: userID, at: at}
	if len(tokenHash) == 64 {
		if _, err := hex.Decode(rec.tokenHash[:], []byte(tokenHash)); err == nil {
			rec.hasToken = true
		}
	}
	if rec.userID != "" || rec.hasToken {
		r.knocks[full] = rec
	}
}

// save writes the room's state if it changed since the last save; a room
// with nothing left to govern is deleted instead. A failed write is logged
// and tried again at the next change: gavel goes on governing meanwhile.
func (r *room) save() {
	st := r.durableState()
	if sameState(st, r.saved) {
		return
	}
	m := r.m
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.IQTimeout)
	defer cancel()
	var err error
	if len(st.Grants) == 0 && len(st.Occupants) == 0 && len(st.Knocks) == 0 && len(st.Unapplied) == 0 {
		err = m.opts.Store.DeleteRooms(ctx, []string{r.jid})
	} else {
		st.Updated = m.now().UTC()
		err = m.opts.Store.PutRooms(ctx, []store.RoomState{st})
	}
	if err != nil {
		m.metrics.StateWrites.WithLabelValues("error").Inc()
		m.log.Warn("could not store the room's state", zap.String("room", r.jid), zap.Error(err))
		return
	}
	m.metrics.StateWrites.WithLabelValues("ok").Inc()
	r.saved = st
}

// forgetState deletes the room's stored state: gavel no longer governs it
// (it left the room empty, was removed, or the server lost the room).
func (r *room) forgetState() {
	if r.saved.Room == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.m.opts.IQTimeout)
	defer cancel()
	if err := r.m.opts.Store.DeleteRooms(ctx, []string{r.jid}); err != nil {
		r.m.log.Warn("could not delete the room's state", zap.String("room", r.jid), zap.Error(err))
		return
	}
	r.saved = store.RoomState{}
}

// sameState compares two states but for their write time.
func sameState(a, b store.RoomState) bool {
	a.Updated, b.Updated = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// restoreRooms starts a worker for every room the store says gavel
// governed, before the first session's rooms are joined: each rejoins at
// once, reads the room back and reconciles it with what it stored.
func (m *Moderation) restoreRooms() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	states, err := m.opts.Store.Rooms(ctx)
	if err != nil {
		m.log.Error("could not read the governed rooms from the store: they are governed again at their next knock", zap.Error(err))
		return
	}
	var stale []string
	n := 0
	m.mu.Lock()
	for _, st := range states {
		r, err := m.newRoom(st.Room)
		if err != nil || !m.Governs(r.ar.Domain) || m.rooms[r.jid] != nil {
			stale = append(stale, st.Room)
			continue
		}
		if !r.restore(st) {
			if m.parkStored(st) {
				continue // only what admins set: for the room's next worker
			}
			stale = append(stale, st.Room)
			continue
		}
		m.rooms[r.jid] = r
		m.workers.Add(1)
		go r.run()
		n++
	}
	m.metrics.Rooms.Set(float64(len(m.rooms)))
	m.mu.Unlock()
	if len(stale) > 0 {
		_ = m.opts.Store.DeleteRooms(ctx, stale)
	}
	if n > 0 {
		m.log.Info("governing the rooms of the previous run again", zap.Int("rooms", n))
	}
}
