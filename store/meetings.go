package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Meeting is a meeting made through the API: a room reserved for a tenant
// until End, and the tokens gavel minted for it (by hash only).
type Meeting struct {
	// ID is the meeting's id, unique across tenants.
	ID string `json:"id"`
	// Tenant owns the meeting.
	Tenant string `json:"tenant"`
	// Room is the bare room JID, as the server holds it.
	Room string `json:"room"`
	// Start and End bound the meeting; HostUntil is when host rights end.
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	HostUntil time.Time `json:"host_until"`
	// Viewers is true for a meeting with a viewer link (viewerMode).
	Viewers bool `json:"viewers,omitempty"`
	// Policy (token, auto-owner, all-owners; empty: the tenant's) and
	// MaxParticipants (zero: the tenant's) are the meeting's own options,
	// applied to its room as run-time settings.
	Policy          string `json:"policy,omitempty"`
	MaxParticipants int    `json:"max_participants,omitempty"`
	// Locked: the meeting was created locked (its room's lock, LOCK and
	// UNLOCK change it afterwards).
	Locked bool `json:"locked,omitempty"`
	// Tokens are the minted tokens' hashes (auth.TokenHash, hex) with their expiry.
	Tokens []MeetingToken `json:"tokens,omitempty"`
	// By is who made the meeting.
	By string `json:"by,omitempty"`
	// Ended is when the meeting was ended (DELETE); zero while it is not.
	Ended time.Time `json:"ended,omitzero"`
}

// MeetingToken is a token minted for a meeting.
type MeetingToken struct {
	Role    string    `json:"role"` // host, participant or viewer
	Hash    string    `json:"hash"`
	Expires time.Time `json:"expires"`
}

// MaxMeetingsPerTenant bounds the meetings Meetings returns for one tenant.
const MaxMeetingsPerTenant = 10000

func (m Meeting) valid() error {
	for field, v := range map[string]string{"meeting id": m.ID, "meeting tenant": m.Tenant, "meeting room": m.Room} {
		if err := validString(field, v); err != nil {
			return err
		}
	}
	if strings.ContainsRune(m.ID, '\x00') || !m.End.After(m.Start) {
		return invalid("meeting %q: end must be after start", m.ID)
	}
	for _, t := range m.Tokens {
		if len(t.Hash) != 64 || !isHex(t.Hash) {
			return invalid("meeting %q: token hash must be 64 hex digits", m.ID)
		}
	}
	return nil
}

// meetingsBucket maps a meeting id to its Meeting as JSON. It was added to
// schema 1 without a version change: older gavels ignore it.
var meetingsBucket = []byte("meetings")

// PutMeeting stores m durably, replacing a meeting with the same ID.
func (b *Bolt) PutMeeting(ctx context.Context, m Meeting) error {
	if err := m.valid(); err != nil {
		return err
	}
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if b.ix.closed.Load() {
		return ErrClosed
	}
	b.dbmu.RLock()
	db := b.db
	if db == nil {
		err = errors.New("gavel.db is not open after an earlier failure")
	} else {
		err = b.guard(db.Batch, func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists(meetingsBucket)
			if err != nil {
				return err
			}
			return bk.Put([]byte(m.ID), v)
		})
	}
	b.dbmu.RUnlock()
	if err == nil || errors.Is(err, ErrCorrupt) {
		return err
	}
	return b.ix.exclusive(func() error {
		if b.db == db {
			_ = b.reopen()
		}
		return b.unavailable(err)
	})
}

// Meetings returns the meetings of a tenant ("" for all), ended ones too,
// sorted by Start, then ID.
func (b *Bolt) Meetings(ctx context.Context, tenant string) ([]Meeting, error) {
	if b.ix.closed.Load() {
		return nil, ErrClosed
	}
	b.dbmu.RLock()
	defer b.dbmu.RUnlock()
	if b.db == nil {
		return nil, newError(ErrUnavailable, nil, "store: %s is not open after an earlier failure", b.path)
	}
	var out []Meeting
	err := b.guard(b.db.View, func(tx *bolt.Tx) error {
		bk := tx.Bucket(meetingsBucket)
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error {
			var m Meeting
			if err := json.Unmarshal(v, &m); err != nil || m.ID != string(k) {
				return corrupt(b.path, fmt.Errorf("meeting %q: %v", k, err))
			}
			if tenant == "" || m.Tenant == tenant {
				out = append(out, m)
			}
			return nil
		})
	})
	sortMeetings(out)
	return out, err
}

// PutMeeting stores m, replacing a meeting with the same ID.
func (m *Memory) PutMeeting(ctx context.Context, mt Meeting) error {
	if err := mt.valid(); err != nil {
		return err
	}
	if m.ix.closed.Load() {
		return ErrClosed
	}
	m.rmu.Lock()
	defer m.rmu.Unlock()
	if m.meetings == nil {
		m.meetings = map[string]Meeting{}
	}
	mt.Tokens = slices.Clone(mt.Tokens)
	m.meetings[mt.ID] = mt
	return nil
}

// Meetings returns the meetings of a tenant ("" for all).
func (m *Memory) Meetings(ctx context.Context, tenant string) ([]Meeting, error) {
	if m.ix.closed.Load() {
		return nil, ErrClosed
	}
	m.rmu.Lock()
	var out []Meeting
	for _, mt := range m.meetings {
		if tenant == "" || mt.Tenant == tenant {
			mt.Tokens = slices.Clone(mt.Tokens)
			out = append(out, mt)
		}
	}
	m.rmu.Unlock()
	sortMeetings(out)
	return out, nil
}

func sortMeetings(list []Meeting) {
	slices.SortFunc(list, func(a, b Meeting) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
