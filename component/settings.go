package component

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

// This file keeps what admins decided for a room at run time (roles set by
// command, a policy switch: policy.SnapshotSettings) across the times gavel
// is not in the room. While gavel governs the room they are part of its
// stored state (persist.go). When gavel leaves the room empty, or the
// server lost it (its restart), they are parked: kept in memory and in the
// store as a state with only Settings, and handed to the room's next
// worker. They end when the room is destroyed (the meeting ended) or after
// SettingsRetention without anyone in the room.

// DefaultSettingsRetention is how long a room's admin settings are kept
// while nobody is in the room.
const DefaultSettingsRetention = 24 * time.Hour

// parkedRooms holds the settings of rooms without a worker.
type parkedRooms struct {
	mu     sync.Mutex
	rooms  map[string]parked
	pruned time.Time
}

type parked struct {
	set policy.SnapshotSettings
	at  time.Time
}

func (m *Moderation) retention() time.Duration {
	if m.opts.SettingsRetention > 0 {
		return m.opts.SettingsRetention
	}
	return DefaultSettingsRetention
}

// stale reports whether parked settings set of at are past keeping at
// now: older than the retention, and past what they ask to be kept for (a
// meeting's end).
func (m *Moderation) stale(set policy.SnapshotSettings, at, now time.Time) bool {
	return now.Sub(at) >= m.retention() && !now.Before(set.KeepUntil)
}

// park keeps set for jid, in memory, and in the store when write is set;
// expired parked settings are dropped on the way.
func (m *Moderation) park(jid string, set policy.SnapshotSettings, at time.Time, write bool) {
	now := m.now()
	if m.stale(set, at, now) {
		return
	}
	p := &m.parked
	p.mu.Lock()
	if p.rooms == nil {
		p.rooms = map[string]parked{}
	}
	p.rooms[jid] = parked{set: set, at: at}
	var old []string
	if now.Sub(p.pruned) > time.Minute {
		p.pruned = now
		for j, x := range p.rooms {
			if m.stale(x.set, x.at, now) {
				old = append(old, j)
				delete(p.rooms, j)
			}
		}
	}
	p.mu.Unlock()
	if !write && len(old) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.IQTimeout)
	defer cancel()
	if write {
		st := store.RoomState{Room: jid, Settings: settingsToStore(set), Updated: at.UTC()}
		if err := m.opts.Store.PutRooms(ctx, []store.RoomState{st}); err != nil {
			m.log.Warn("could not store the room's settings", zap.String("room", jid), zap.Error(err))
		}
	}
	if len(old) > 0 {
		_ = m.opts.Store.DeleteRooms(ctx, old)
	}
}

// unpark returns and forgets the parked settings of jid.
func (m *Moderation) unpark(jid string) (policy.SnapshotSettings, bool) {
	p := &m.parked
	p.mu.Lock()
	defer p.mu.Unlock()
	x, ok := p.rooms[jid]
	if !ok {
		return policy.SnapshotSettings{}, false
	}
	delete(p.rooms, jid)
	if m.stale(x.set, x.at, m.now()) {
		return policy.SnapshotSettings{}, false
	}
	return x.set, true
}

// parkStored parks the settings of a stored state that has nothing else to
// govern (restoreRooms); false when it has none, or they are too old.
func (m *Moderation) parkStored(st store.RoomState) bool {
	set := settingsFromStore(st.Settings)
	if set.IsZero() || m.stale(set, st.Updated, m.now()) {
		return false
	}
	m.park(st.Room, set, st.Updated, false)
	return true
}

// retireState is what becomes of the room's stored state when its worker
// retires: its settings are parked, or else it is deleted.
func (r *room) retireState() {
	set := r.pol.Settings()
	if set.IsZero() {
		r.forgetState()
		return
	}
	r.m.park(r.jid, set, r.m.now(), true)
	r.saved = store.RoomState{}
}

// keepSettings carries the settings of the room's policy state over to a
// new one (reset), unless the room was destroyed.
func (r *room) keepSettings(old *policy.Room, destroyed bool) {
	if destroyed {
		return
	}
	if set := old.Settings(); !set.IsZero() {
		r.pol.Restore(policy.Snapshot{Settings: set})
	}
}

// withParked runs f on the parked settings of jid (a fresh policy state
// holding them) when no worker has the room, and parks what f left; it
// reports false when a worker has it. m.mu is held, so no worker starts
// meanwhile (route creates workers under it).
func (m *Moderation) withParked(jid string, f func(p *policy.Room) error) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rooms[jid] != nil {
		return false, nil
	}
	r, err := m.newRoom(jid) // takes what is parked
	if err != nil {
		return true, err
	}
	if err := f(r.pol); err != nil {
		if set := r.pol.Settings(); !set.IsZero() {
			m.park(jid, set, m.now(), false) // put it back unchanged
		}
		return true, err
	}
	set := r.pol.Settings()
	if set.IsZero() {
		m.parked.mu.Lock()
		delete(m.parked.rooms, jid)
		m.parked.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.IQTimeout)
		defer cancel()
		_ = m.opts.Store.DeleteRooms(ctx, []string{jid})
		return true, nil
	}
	m.park(jid, set, m.now(), true)
	return true, nil
}

func settingsToStore(s policy.SnapshotSettings) *store.RoomSettings {
	if s.IsZero() {
		return nil
	}
	out := &store.RoomSettings{MaxParticipants: s.MaxParticipants, Locked: s.Locked, KeepUntil: s.KeepUntil}
	if s.KindSet {
		out.Policy = s.Kind.String()
	}
	for _, e := range s.Roles {
		out.Roles = append(out.Roles, store.RoleAssignment{JID: e.BareJID, UserID: e.UserID, Role: e.Role.String(), Until: e.Until})
	}
	return out
}

func settingsFromStore(s *store.RoomSettings) policy.SnapshotSettings {
	var out policy.SnapshotSettings
	if s == nil {
		return out
	}
	out.MaxParticipants, out.Locked, out.KeepUntil = max(s.MaxParticipants, 0), s.Locked, s.KeepUntil
	if k, err := policy.ParseKind(s.Policy); err == nil && s.Policy != "" {
		out.Kind, out.KindSet = k, true
	}
	for _, a := range s.Roles {
		role, err := policy.ParseAdminRole(a.Role)
		if err != nil || role == policy.AdminNone {
			continue
		}
		out.Roles = append(out.Roles, policy.AdminRoleEntry{BareJID: a.JID, UserID: a.UserID, Role: role, Until: a.Until})
	}
	return out
}

// dropParked forgets the parked settings of jid: the room was destroyed.
func (m *Moderation) dropParked(jid string) {
	m.parked.mu.Lock()
	_, ok := m.parked.rooms[jid]
	delete(m.parked.rooms, jid)
	m.parked.mu.Unlock()
	if ok {
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.IQTimeout)
		defer cancel()
		_ = m.opts.Store.DeleteRooms(ctx, []string{jid})
	}
}

// destroyPayload writes the muc#owner request that destroys a room,
// telling the occupants reason.
func destroyPayload(b *xb, reason string) {
	b.open("query", "xmlns", nsMUCOwner).open("destroy")
	if reason != "" {
		b.elem("reason", reason)
	}
	b.close("destroy").close("query")
}
