// Package store keeps gavel's durable state: the bans. A ban says that a user,
// a token or a JID may not take part in a tenant's rooms, optionally until a
// given time.
//
// The Store interface is what the rest of gavel uses. Bolt keeps the bans in a
// bbolt file, gavel.db, in the data directory and commits every change with an
// fsync before it returns; Memory keeps them in memory only, for the unit tests
// of other packages and for benchmarks. Both answer Banned from the same
// in-memory index, so the hot path never reads the disk and never allocates.
package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Kind is what a ban matches.
type Kind string

// The kinds of ban.
const (
	// KindUser matches the context.user.id claim of a token.
	KindUser Kind = "user"
	// KindToken matches a token's hash as 64 lowercase hex digits: the hex
	// of auth.TokenHash (SHA-256 of header.payload), the one token hash of
	// gavel, which the verifier computes too. The store only validates the
	// form (uppercase is lowered); the token itself is never stored.
	KindToken Kind = "token"
	// KindJID matches a bare JID.
	KindJID Kind = "jid"
)

// MaxLen is the largest tenant or value, in bytes, that a ban may have.
const MaxLen = 1024

// Ban is one ban of a user, token or JID in a tenant.
type Ban struct {
	// Tenant is the tenant the ban applies in; it is never empty.
	Tenant string
	// Kind is what Value is.
	Kind Kind
	// Value is the banned user id, token hash or bare JID.
	Value string
	// Reason is free text shown to admins.
	Reason string
	// By is who issued the ban: an admin JID or an API subject.
	By string
	// Created is when the ban was issued; AddBan sets it to the current
	// time when it is zero.
	Created time.Time
	// Expires is when the ban ends; zero means never.
	Expires time.Time
}

// RoomState is what gavel needs to keep governing a room across its own
// restarts: the affiliations it granted, the occupants it knew in join order
// (the auto-owner order) with what their knock said, and the granted knocks
// still waiting for their join. What the server knows is read back on
// rejoin; this is what only gavel knew.
type RoomState struct {
	// Room is the bare room JID.
	Room string `json:"room"`
	// Self is gavel's own occupant JID in the room and Nick its nick, so a
	// restarted gavel can remove its ghost before joining again.
	Self string `json:"self,omitempty"`
	Nick string `json:"nick,omitempty"`
	// Grants are the affiliations gavel set and still governs.
	Grants []Grant `json:"grants,omitempty"`
	// Occupants are the occupants gavel knew, in join order.
	Occupants []Occupant `json:"occupants,omitempty"`
	// Knocks are granted knocks whose join gavel had not seen.
	Knocks []Knock `json:"knocks,omitempty"`
	// Unapplied are affiliation changes that never reached the server (the
	// connection dropped): sent again when gavel is back in the room.
	Unapplied []Grant `json:"unapplied,omitempty"`
	// Settings are what admins decided for the room at run time (roles,
	// policy). They outlive the room's occupants: a state with only
	// Settings is a room gavel left, whose next occupants they apply to.
	Settings *RoomSettings `json:"settings,omitempty"`
	// Updated is when the state was last written.
	Updated time.Time `json:"updated"`
}

// RoomSettings are an admin's run-time decisions for one room.
type RoomSettings struct {
	// Roles are the roles set by command, oldest first.
	Roles []RoleAssignment `json:"roles,omitempty"`
	// Policy is the policy an admin switched the room to (token,
	// auto-owner, all-owners); empty: the tenant's.
	Policy string `json:"policy,omitempty"`
	// MaxParticipants is the room's own bound on participants; zero: the
	// tenant's.
	MaxParticipants int `json:"max_participants,omitempty"`
	// Locked is a locked meeting: knockers wait for a host's answer.
	Locked bool `json:"locked,omitempty"`
	// KeepUntil keeps the settings of a room nobody is in at least until
	// then (a meeting's end).
	KeepUntil time.Time `json:"keep_until,omitzero"`
}

// RoleAssignment is a role set by command for a bare JID or a user id.
type RoleAssignment struct {
	// Exactly one of JID (a bare JID) and UserID is set.
	JID    string `json:"jid,omitempty"`
	UserID string `json:"user_id,omitempty"`
	// Role is moderator, participant or viewer.
	Role string `json:"role"`
	// Until is when the role ends; zero: with the room's settings.
	Until time.Time `json:"until,omitzero"`
}

// Grant is an affiliation gavel set for a bare JID.
type Grant struct {
	JID         string `json:"jid"`
	Affiliation string `json:"affiliation"`
	// Expires is the expiry of the token behind the grant; Expired is set
	// once it passed while its holder stayed.
	Expires time.Time `json:"expires,omitzero"`
	Expired bool      `json:"expired,omitempty"`
}

// Occupant is an occupant (full JID) as gavel knew it.
type Occupant struct {
	JID          string    `json:"jid"`
	Nick         string    `json:"nick"`
	UserID       string    `json:"user_id,omitempty"`
	Joined       time.Time `json:"joined"`
	TokenExpires time.Time `json:"token_expires,omitzero"`
	// TokenHash is the hex SHA-256 of the token it knocked with (for token
	// bans); Flags what the knock said: knocked, token, moderator, viewer,
	// guest, bot, demoted.
	TokenHash string   `json:"token_hash,omitempty"`
	Flags     []string `json:"flags,omitempty"`
}

// Knock is a granted knock (full JID) waiting for its join.
type Knock struct {
	JID          string    `json:"jid"`
	UserID       string    `json:"user_id,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	Until        time.Time `json:"until"`
	Expires      time.Time `json:"expires,omitzero"`
	TokenExpires time.Time `json:"token_expires,omitzero"`
	Affiliation  string    `json:"affiliation"`
	Base         string    `json:"base"`
	Role         string    `json:"role"`
	TokenHash    string    `json:"token_hash,omitempty"`
	Flags        []string  `json:"flags,omitempty"`
}

// MaxRoomEntries bounds the grants, occupants and knocks of one stored room.
const MaxRoomEntries = 10000

func (r RoomState) valid() error {
	if err := validString("room", r.Room); err != nil {
		return err
	}
	if len(r.Grants) > MaxRoomEntries || len(r.Occupants) > MaxRoomEntries || len(r.Knocks) > MaxRoomEntries {
		return invalid("room %q has more than %d grants, occupants or knocks", r.Room, MaxRoomEntries)
	}
	for _, g := range r.Grants {
		if err := validString("grant JID", g.JID); err != nil {
			return err
		}
		switch g.Affiliation {
		case "owner", "admin", "member", "none", "outcast":
		default:
			return invalid("grant affiliation %q is unknown", g.Affiliation)
		}
	}
	for _, o := range r.Occupants {
		if err := validString("occupant JID", o.JID); err != nil {
			return err
		}
	}
	for _, k := range r.Knocks {
		if err := validString("knock JID", k.JID); err != nil {
			return err
		}
	}
	if len(r.Unapplied) > MaxRoomEntries {
		return invalid("room %q has more than %d unapplied changes", r.Room, MaxRoomEntries)
	}
	for _, g := range r.Unapplied {
		if err := validString("unapplied JID", g.JID); err != nil {
			return err
		}
	}
	return r.Settings.valid()
}

func (s *RoomSettings) valid() error {
	if s == nil {
		return nil
	}
	if len(s.Roles) > MaxRoomEntries {
		return invalid("room settings have more than %d roles", MaxRoomEntries)
	}
	for _, a := range s.Roles {
		if (a.JID == "") == (a.UserID == "") {
			return invalid("a role needs exactly one of a JID and a user id")
		}
		if err := validString("role target", a.JID+a.UserID); err != nil {
			return err
		}
		switch a.Role {
		case "moderator", "participant", "viewer":
		default:
			return invalid("role %q is unknown", a.Role)
		}
	}
	switch s.Policy {
	case "", "token", "auto-owner", "all-owners":
	default:
		return invalid("policy %q is unknown", s.Policy)
	}
	if s.MaxParticipants < 0 {
		return invalid("max participants %d is negative", s.MaxParticipants)
	}
	return nil
}

// Outcast records that the ban (Tenant, Kind, Value) made the bare JID an
// outcast in Room.
type Outcast struct {
	Tenant string
	Kind   Kind
	Value  string
	Room   string
	JID    string
}

func (o Outcast) valid() error {
	if _, err := validKey(o.Tenant, o.Kind, o.Value); err != nil {
		return err
	}
	if err := validString("outcast room", o.Room); err != nil {
		return err
	}
	return validString("outcast JID", o.JID)
}

// encode is the outcast's key: its fields joined by NUL bytes, which none
// of them may hold.
func (o Outcast) encode() []byte {
	return []byte(o.Tenant + "\x00" + string(o.Kind) + "\x00" + o.Value + "\x00" + o.Room + "\x00" + o.JID)
}

func decodeOutcast(k []byte) (Outcast, error) {
	f := strings.Split(string(k), "\x00")
	if len(f) != 5 {
		return Outcast{}, fmt.Errorf("outcast key %q has %d fields, want 5", k, len(f))
	}
	o := Outcast{Tenant: f[0], Kind: Kind(f[1]), Value: f[2], Room: f[3], JID: f[4]}
	return o, o.valid()
}

func compareOutcasts(a, b Outcast) int {
	return strings.Compare(string(a.encode()), string(b.encode()))
}

// outcasts is the in-memory set of outcasts that Bolt and Memory share.
type outcasts struct {
	mu  sync.Mutex
	set map[Outcast]struct{}
}

func (s *outcasts) apply(add bool, list []Outcast) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		s.set = map[Outcast]struct{}{}
	}
	for _, o := range list {
		if add {
			s.set[o] = struct{}{}
		} else {
			delete(s.set, o)
		}
	}
}

func (s *outcasts) list() []Outcast {
	s.mu.Lock()
	out := make([]Outcast, 0, len(s.set))
	for o := range s.set {
		out = append(out, o)
	}
	s.mu.Unlock()
	slices.SortFunc(out, compareOutcasts)
	return out
}

func validOutcasts(list []Outcast) error {
	for _, o := range list {
		if err := o.valid(); err != nil {
			return err
		}
	}
	return nil
}

// Active reports whether the ban is in force at now: it has no expiry, or now
// is before its expiry.
func (b Ban) Active(now time.Time) bool {
	return b.Expires.IsZero() || now.Before(b.Expires)
}

// Store is the interface the rest of gavel uses, so that a shared backend can
// be added later. Its methods are safe for concurrent use.
type Store interface {
	// AddBan stores b, replacing an existing ban with the same Tenant, Kind
	// and Value, and returns only once it is durable on disk (fsync).
	AddBan(ctx context.Context, b Ban) error
	// RemoveBan deletes a ban durably and reports whether one was stored.
	RemoveBan(ctx context.Context, tenant string, kind Kind, value string) (bool, error)
	// ListBans returns the bans of a tenant ("" for all tenants) that are
	// active at now, sorted by Created, then Value.
	ListBans(ctx context.Context, tenant string, now time.Time) ([]Ban, error)
	// Banned returns the ban matching tenant, kind and value if one is
	// active at now. It answers from memory: no disk read, no allocation.
	Banned(tenant string, kind Kind, value string, now time.Time) (Ban, bool)
	// AddOutcasts records, durably, that bans made JIDs outcasts in rooms,
	// so that lifting a ban (or its expiry) can restore them, also after
	// a restart. Recording one twice is harmless.
	AddOutcasts(ctx context.Context, o []Outcast) error
	// RemoveOutcasts forgets outcasts once they are restored.
	RemoveOutcasts(ctx context.Context, o []Outcast) error
	// Outcasts returns every recorded outcast, sorted by ban, room, JID.
	Outcasts(ctx context.Context) ([]Outcast, error)
	// PutRooms stores the governing state of rooms, replacing what was
	// stored for each, and returns once it is durable. Concurrent calls
	// share one commit.
	PutRooms(ctx context.Context, rooms []RoomState) error
	// DeleteRooms forgets rooms gavel no longer governs.
	DeleteRooms(ctx context.Context, rooms []string) error
	// Rooms returns the stored state of every governed room, by room JID.
	Rooms(ctx context.Context) ([]RoomState, error)
	// PutMeeting stores a meeting durably, replacing one with the same
	// ID, and returns once it is durable.
	PutMeeting(ctx context.Context, m Meeting) error
	// Meetings returns the meetings of a tenant ("" for all), ended ones
	// too, sorted by Start, then ID.
	Meetings(ctx context.Context, tenant string) ([]Meeting, error)
	// Check reports whether the store can take writes: nil, or why not
	// (ErrUnavailable with its cause). A store that failed checks again,
	// at most once a second, whether it has recovered.
	Check(ctx context.Context) error
	// Close releases the store. Later writes and lists fail with ErrClosed.
	Close() error
}

// Sentinel errors, for use with errors.Is. The errors the package returns
// carry a more specific message.
var (
	// ErrInvalid is returned for a ban, or a ban's key, that fails
	// validation; the message names the field.
	ErrInvalid = errors.New("store: invalid ban")
	// ErrLocked is returned by Open when another process holds gavel.db.
	ErrLocked = errors.New("store: gavel.db is locked by another process (is another gavel running with the same data_dir?)")
	// ErrCorrupt is returned by Open when gavel.db is not a usable gavel
	// database: not a bbolt file, damaged, or a bbolt file of something
	// else.
	ErrCorrupt = errors.New("store: gavel.db is corrupt")
	// ErrSchema is returned by Open when gavel.db was written by a newer
	// gavel with a schema this one does not understand.
	ErrSchema = errors.New("store: gavel.db has an unsupported schema version")
	// ErrClosed is returned by a store's methods after Close.
	ErrClosed = errors.New("store: closed")
	// ErrUnavailable is returned when a change could not be made durable
	// (a full disk, a read-only file system, an I/O error): nothing was
	// stored, and the caller must not acknowledge the change.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrEmptyFile is returned by Open when gavel.db exists but is empty,
	// which a new database never is: something truncated it, and opening it
	// as a new database would silently drop every ban. Options.InitEmpty
	// starts afresh instead.
	ErrEmptyFile = errors.New("store: gavel.db is empty")
)

// storeError is an error with its own message that matches a sentinel (and
// optionally a cause) with errors.Is.
type storeError struct {
	msg      string
	sentinel error
	cause    error
}

func (e *storeError) Error() string { return e.msg }

func (e *storeError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.sentinel}
	}
	return []error{e.sentinel, e.cause}
}

func newError(sentinel, cause error, format string, args ...any) error {
	return &storeError{msg: fmt.Sprintf(format, args...), sentinel: sentinel, cause: cause}
}

func invalid(format string, args ...any) error {
	return newError(ErrInvalid, nil, "store: "+format, args...)
}

// validKey checks a ban's tenant, kind and value and returns the value in
// canonical form (a token hash in lowercase).
func validKey(tenant string, kind Kind, value string) (string, error) {
	if err := validString("tenant", tenant); err != nil {
		return "", err
	}
	switch kind {
	case KindUser, KindToken, KindJID:
	default:
		return "", invalid("ban kind %q is unknown (want %q, %q or %q)", string(kind), KindUser, KindToken, KindJID)
	}
	if err := validString("value", value); err != nil {
		return "", err
	}
	switch kind {
	case KindToken:
		// The value is never echoed: a caller that passed the raw token
		// by mistake must not see it in logs.
		if len(value) != sha256.Size*2 || !isHex(value) {
			return "", invalid("ban value for kind %q must be the 64-character hex SHA-256 of the token (hex of auth.TokenHash)", KindToken)
		}
		value = strings.ToLower(value)
	case KindJID:
		if strings.Contains(value, "/") {
			return "", invalid("ban value for kind %q must be a bare JID (without /resource)", KindJID)
		}
	}
	return value, nil
}

func validString(field, s string) error {
	switch {
	case s == "":
		return invalid("ban %s is empty", field)
	case len(s) > MaxLen:
		return invalid("ban %s is %d bytes, the limit is %d", field, len(s), MaxLen)
	case !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0:
		return invalid("ban %s must be valid UTF-8 without NUL bytes", field)
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// normalize validates b and returns it in the form it is stored in: the value
// canonical, the times in UTC without a monotonic reading, Created set, and
// Reason and By valid UTF-8 (so that they read back as they were written).
func normalize(b Ban, now time.Time) (Ban, error) {
	value, err := validKey(b.Tenant, b.Kind, b.Value)
	if err != nil {
		return Ban{}, err
	}
	b.Value = value
	b.Reason = strings.ToValidUTF8(b.Reason, "\uFFFD")
	b.By = strings.ToValidUTF8(b.By, "\uFFFD")
	if b.Created.IsZero() {
		b.Created = now
	}
	b.Created = b.Created.Round(0).UTC()
	if !b.Expires.IsZero() {
		b.Expires = b.Expires.Round(0).UTC()
		if !b.Expires.After(b.Created) {
			return Ban{}, invalid("ban expires (%s) is not after created (%s)", b.Expires.Format(time.RFC3339Nano), b.Created.Format(time.RFC3339Nano))
		}
	}
	return b, nil
}

func cloneRoom(r RoomState) RoomState {
	r.Grants = slices.Clone(r.Grants)
	r.Occupants = slices.Clone(r.Occupants)
	r.Knocks = slices.Clone(r.Knocks)
	r.Unapplied = slices.Clone(r.Unapplied)
	if r.Settings != nil {
		s := *r.Settings
		s.Roles = slices.Clone(s.Roles)
		r.Settings = &s
	}
	return r
}

func sortRooms(rooms []RoomState) {
	slices.SortFunc(rooms, func(a, b RoomState) int { return strings.Compare(a.Room, b.Room) })
}
