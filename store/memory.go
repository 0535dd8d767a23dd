package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is a Store that keeps bans in memory only: nothing survives Close.
// It validates and answers exactly as Bolt does, for the unit tests of other
// packages and for benchmarks.
type Memory struct {
	ix    *index
	out   outcasts
	rmu   sync.Mutex
	rooms map[string]RoomState
	// meetings are the meetings (meetings.go), under rmu.
	meetings map[string]Meeting
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{ix: newIndex()}
}

// AddBan stores b, replacing an existing ban with the same Tenant, Kind and
// Value.
func (m *Memory) AddBan(ctx context.Context, b Ban) error {
	return m.ix.add(ctx, b, nil)
}

// RemoveBan deletes a ban and reports whether one was stored.
func (m *Memory) RemoveBan(ctx context.Context, tenant string, kind Kind, value string) (bool, error) {
	return m.ix.remove(ctx, tenant, kind, value, nil)
}

// ListBans returns the bans of a tenant ("" for all tenants) that are active
// at now, sorted by Created, then Value.
func (m *Memory) ListBans(ctx context.Context, tenant string, now time.Time) ([]Ban, error) {
	return m.ix.list(ctx, tenant, now)
}

// Banned returns the ban matching tenant, kind and value if one is active at
// now. It does not allocate.
func (m *Memory) Banned(tenant string, kind Kind, value string, now time.Time) (Ban, bool) {
	return m.ix.banned(tenant, kind, value, now)
}

// AddOutcasts records outcasts.
func (m *Memory) AddOutcasts(ctx context.Context, o []Outcast) error {
	return m.changeOutcasts(ctx, true, o)
}

// RemoveOutcasts forgets outcasts.
func (m *Memory) RemoveOutcasts(ctx context.Context, o []Outcast) error {
	return m.changeOutcasts(ctx, false, o)
}

func (m *Memory) changeOutcasts(ctx context.Context, add bool, o []Outcast) error {
	if err := validOutcasts(o); err != nil {
		return err
	}
	return m.ix.exclusive(func() error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		m.out.apply(add, o)
		return nil
	})
}

// PutRooms stores rooms' governing state.
func (m *Memory) PutRooms(ctx context.Context, rooms []RoomState) error {
	for _, r := range rooms {
		if err := r.valid(); err != nil {
			return err
		}
	}
	if m.ix.closed.Load() {
		return ErrClosed
	}
	m.rmu.Lock()
	defer m.rmu.Unlock()
	if m.rooms == nil {
		m.rooms = map[string]RoomState{}
	}
	for _, r := range rooms {
		m.rooms[r.Room] = cloneRoom(r)
	}
	return nil
}

// DeleteRooms forgets rooms.
func (m *Memory) DeleteRooms(ctx context.Context, rooms []string) error {
	if m.ix.closed.Load() {
		return ErrClosed
	}
	m.rmu.Lock()
	defer m.rmu.Unlock()
	for _, r := range rooms {
		delete(m.rooms, r)
	}
	return nil
}

// Rooms returns every stored room, sorted by JID.
func (m *Memory) Rooms(ctx context.Context) ([]RoomState, error) {
	if m.ix.closed.Load() {
		return nil, ErrClosed
	}
	m.rmu.Lock()
	out := make([]RoomState, 0, len(m.rooms))
	for _, r := range m.rooms {
		out = append(out, cloneRoom(r))
	}
	m.rmu.Unlock()
	sortRooms(out)
	return out, nil
}

// Outcasts returns every recorded outcast.
func (m *Memory) Outcasts(ctx context.Context) ([]Outcast, error) {
	if m.ix.closed.Load() {
		return nil, ErrClosed
	}
	return m.out.list(), nil
}

// Check reports nil: memory is always writable (ErrClosed after Close).
func (m *Memory) Check(ctx context.Context) error {
	if m.ix.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Close makes later writes and lists fail with ErrClosed; Banned goes on
// answering from the last state.
func (m *Memory) Close() error {
	return m.ix.close(nil)
}
