// Package commands is gavel's one command layer: ban, unban, list bans, kick
// and destroy (and the role and meeting commands that come next). Both
// interfaces call it, the HTTP API (package api) and the XMPP ad-hoc commands
// (package component), so that every command is validated and normalized the
// same way, leaves exactly one audit log line, and is counted once.
//
// The package does not reach rooms itself: it declares the small interface
// it needs from the XMPP side, Rooms, which the component implements and cmd
// wires in. Neither this package nor api imports component.
package commands

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/store"
)

// Errors that interfaces map to their own codes (HTTP status, stanza error).
// Errors the package returns wrap them with a more specific message; use
// errors.Is.
var (
	// ErrInvalid is a request that fails validation; the message says why.
	ErrInvalid = errors.New("commands: invalid request")
	// ErrRoomNotFound is a room that does not exist (or gavel is not in).
	ErrRoomNotFound = errors.New("commands: no such room")
	// ErrParticipantNotFound is a nick that is not in the room.
	ErrParticipantNotFound = errors.New("commands: no such participant in the room")
	// ErrNotGoverned is a room on a MUC domain gavel does not govern.
	ErrNotGoverned = errors.New("commands: room is not on a governed MUC domain")
	// ErrUnavailable is a command that needs the XMPP server while gavel
	// is not connected to it.
	ErrUnavailable = errors.New("commands: not connected to the XMPP server")
	// ErrStoreUnavailable is a command that could not be stored (a full
	// or read-only disk): nothing was acknowledged, retry later.
	ErrStoreUnavailable = errors.New("commands: the store cannot take writes")
	// ErrNoSuchBan is an unban of a ban that is not stored.
	ErrNoSuchBan = errors.New("commands: no such ban")
	// ErrIncomplete is a ban that is stored (and refuses every new join)
	// but whose removal of present occupants did not finish: some rooms
	// did not answer in time. BanResult still counts those removed.
	ErrIncomplete = errors.New("commands: ban stored, but enforcement is incomplete")
)

// Rooms is what the command layer needs from the XMPP side;
// *component.Moderation implements it. Room JIDs passed to it are prepared
// (auth.ParseRoom's JID) and on a domain Governs accepted. Its methods
// return this package's errors (ErrRoomNotFound, ErrParticipantNotFound,
// ErrUnavailable) where they apply, and must not act once ctx has ended.
type Rooms interface {
	// Governs reports whether gavel governs the MUC service mucDomain.
	Governs(mucDomain string) bool
	// EnforceBan removes the occupants b matches from every governed room
	// of its tenant and returns how many it removed. When ctx ends before
	// every room answered it returns the count so far and an error saying
	// how many rooms did not answer.
	EnforceBan(ctx context.Context, b store.Ban) (removed int, err error)
	// Kick removes the occupant with nick from roomJID.
	Kick(ctx context.Context, roomJID, nick, reason string) error
	// Destroy destroys roomJID.
	Destroy(ctx context.Context, roomJID, reason string) error
	// LiftOutcasts restores the JIDs that bans made outcasts in rooms to
	// none (a room that no longer exists has nothing to lift) and returns
	// those it restored; the others are to be tried again later.
	LiftOutcasts(ctx context.Context, list []store.Outcast) (lifted []store.Outcast, err error)
}

// Options configure a Service.
type Options struct {
	// Store keeps the bans; it is required.
	Store store.Store
	// Rooms reaches the rooms; it is required.
	Rooms Rooms
	// ForgetToken drops a banned token from the token cache (auth's
	// Verifier.Forget); nil does nothing.
	ForgetToken func(tokenHash [32]byte)
	// Logger receives the audit lines; nil discards them.
	Logger *zap.Logger
	// Metrics is where gavel_commands_total is registered; nil: nowhere.
	Metrics prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service runs the commands. Its methods are safe for concurrent use.
type Service struct {
	store  store.Store
	rooms  Rooms
	forget func([32]byte)
	log    *zap.Logger
	now    func() time.Time
	count  *prometheus.CounterVec
	// meetings are the tenants' meeting settings (meetings.go).
	meetings func(tenant string) (MeetingSettings, bool)
	// liftMu serializes lifting outcasts (outcasts.go); wake asks Run to
	// look again.
	liftMu sync.Mutex
	wake   chan struct{}
}

// New checks opts and returns a Service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Rooms == nil {
		return nil, errors.New("commands: Options.Store and Options.Rooms are required")
	}
	s := &Service{store: opts.Store, rooms: opts.Rooms, forget: opts.ForgetToken, log: opts.Logger, now: opts.Now, wake: make(chan struct{}, 1)}
	if s.forget == nil {
		s.forget = func([32]byte) {}
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.count = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gavel_commands_total", Help: "Admin commands, by command and result.",
	}, []string{"command", "result"})
	if opts.Metrics != nil {
		if err := opts.Metrics.Register(s.count); err != nil {
			return nil, fmt.Errorf("commands: registering metrics: %w", err)
		}
	}
	return s, nil
}

// BanRequest describes a ban.
type BanRequest struct {
	Tenant string
	Kind   store.Kind
	// Value is a user id, a JID (stored bare) or the raw token (stored as
	// auth.TokenHash; never the token itself).
	Value   string
	Reason  string
	By      string
	Expires time.Time // zero: never
}

// BanResult is the outcome of a ban.
type BanResult struct {
	// Ban is the ban as stored: tenant, kind and value normalized.
	Ban store.Ban
	// Removed is how many present occupants it removed.
	Removed int
}

// UnbanRequest describes an unban. Value is normalized as for a ban; for a
// token it may also be the 64 hex digits of the hash that Bans lists.
type UnbanRequest struct {
	Tenant string
	Kind   store.Kind
	Value  string
	By     string
}

// Ban stores a ban durably, then removes the matching occupants from every
// governed room of its tenant at once. When the removal does not finish in
// time, the ban is stored, the result counts those removed, and the error
// wraps ErrIncomplete.
func (s *Service) Ban(ctx context.Context, req BanRequest) (res BanResult, err error) {
	k, kerr := NormalizeKey(req.Tenant, req.Kind, req.Value, false)
	defer func() {
		s.audit("ban", req.By, target(k, kerr, req.Kind, req.Value), tenantShown(k, kerr, req.Tenant), err)
	}()
	if kerr != nil {
		return res, kerr
	}
	if err := checkText("reason", req.Reason); err != nil {
		return res, err
	}
	if k.Kind == store.KindToken {
		var h [32]byte
		_, _ = hex.Decode(h[:], []byte(k.Value))
		s.forget(h)
	}
	b := store.Ban{Tenant: k.Tenant, Kind: k.Kind, Value: k.Value, Reason: req.Reason, By: req.By, Created: s.now(), Expires: req.Expires}
	if err := s.store.AddBan(ctx, b); err != nil {
		return res, storeErr(err)
	}
	res.Ban = b
	res.Removed, err = s.rooms.EnforceBan(ctx, b)
	if !b.Expires.IsZero() {
		s.wakeLifter() // its outcasts (recorded by EnforceBan) are lifted when it ends
	}
	if err != nil {
		return res, fmt.Errorf("%w: %d occupant(s) removed; %v", ErrIncomplete, res.Removed, err)
	}
	return res, nil
}

// Unban removes a ban; ErrNoSuchBan when none is stored. It returns the
// ban's key as stored.
func (s *Service) Unban(ctx context.Context, req UnbanRequest) (k Key, err error) {
	k, kerr := NormalizeKey(req.Tenant, req.Kind, req.Value, true)
	defer func() {
		s.audit("unban", req.By, target(k, kerr, req.Kind, req.Value), tenantShown(k, kerr, req.Tenant), err)
	}()
	if kerr != nil {
		return k, kerr
	}
	found, err := s.store.RemoveBan(ctx, k.Tenant, k.Kind, k.Value)
	if err != nil {
		return k, storeErr(err)
	}
	if !found {
		return k, ErrNoSuchBan
	}
	// The ban is gone: let its outcasts back in now. What cannot be
	// lifted now (gavel disconnected) is lifted by Run.
	if _, err := s.liftOrphans(ctx); err != nil {
		s.log.Warn("unban: some outcast affiliations could not be lifted yet; they will be", zap.Error(err))
		s.wakeLifter()
	}
	return k, nil
}

// Bans lists the active bans of a tenant ("" for all tenants).
func (s *Service) Bans(ctx context.Context, tenant string) ([]store.Ban, error) {
	if strings.TrimSpace(tenant) != "" {
		t, err := NormalizeTenant(tenant)
		if err != nil {
			return nil, err
		}
		tenant = t
	}
	bans, err := s.store.ListBans(ctx, tenant, s.now())
	if err != nil {
		return nil, storeErr(err)
	}
	return bans, nil
}

// Kick removes the occupant with nick (Jitsi's participant id) from a room.
func (s *Service) Kick(ctx context.Context, roomJID, nick, reason, by string) (err error) {
	ar, rerr := s.room(roomJID)
	defer func() { s.audit("kick", by, clip(roomJID)+"/"+clip(nick), ar.Tenant, err) }()
	if rerr != nil {
		return rerr
	}
	if nick == "" {
		return fmt.Errorf("%w: the participant is required", ErrInvalid)
	}
	if err := checkText("participant", nick); err != nil {
		return err
	}
	if err := checkText("reason", reason); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.rooms.Kick(ctx, ar.JID, nick, reason)
}

// Destroy destroys a room, also one gavel is not in.
func (s *Service) Destroy(ctx context.Context, roomJID, reason, by string) (err error) {
	ar, rerr := s.room(roomJID)
	defer func() { s.audit("destroy", by, clip(roomJID), ar.Tenant, err) }()
	if rerr != nil {
		return rerr
	}
	if err := checkText("reason", reason); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.rooms.Destroy(ctx, ar.JID, reason)
}

// TenantOf returns the tenant of a room JID on a governed MUC domain.
func (s *Service) TenantOf(roomJID string) (string, error) {
	ar, err := s.room(roomJID)
	return ar.Tenant, err
}

// Refused writes the audit line of a command refused before it ran (an
// XMPP sender who is not an admin).
func (s *Service) Refused(command, by, why string) {
	s.audit(command, by, "", "", errors.New("refused: "+why))
}

// room parses roomJID as the server would and checks that gavel governs
// its domain.
func (s *Service) room(roomJID string) (auth.Room, error) {
	ar, err := ParseRoom(roomJID)
	if err != nil {
		return ar, err
	}
	if m, ok := s.rooms.(RoomMapper); ok {
		ar = m.MapRoom(ar)
	}
	if !s.rooms.Governs(ar.Domain) {
		return ar, fmt.Errorf("%w: %s", ErrNotGoverned, ar.Domain)
	}
	return ar, nil
}

// audit writes the one log line every command leaves, and counts it.
func (s *Service) audit(command, by, target, tenant string, err error) {
	result := "ok"
	switch {
	case errors.Is(err, ErrIncomplete):
		result = "incomplete"
	case err != nil:
		result = "error"
	}
	s.count.WithLabelValues(command, result).Inc()
	text := "ok"
	if err != nil {
		text = err.Error()
	}
	s.log.Info("audit", zap.String("command", command), zap.String("by", by), zap.String("target", target),
		zap.String("tenant", tenant), zap.String("result", text))
}

// target is how a ban's value appears in the audit log: normalized when
// it could be, a token only as the start of its hash, anything else clipped.
func target(k Key, kerr error, kind store.Kind, raw string) string {
	if kerr == nil {
		if k.Kind == store.KindToken {
			return string(k.Kind) + ":sha256:" + k.Value[:16]
		}
		return string(k.Kind) + ":" + k.Value
	}
	if kind == store.KindToken {
		return string(kind) + ":(not shown)"
	}
	return clip(string(kind)) + ":" + clip(raw)
}

func tenantShown(k Key, kerr error, raw string) string {
	if kerr == nil {
		return k.Tenant
	}
	return clip(raw)
}

// storeErr maps the store's validation errors onto ErrInvalid and its
// write failures onto ErrStoreUnavailable.
func storeErr(err error) error {
	switch {
	case errors.Is(err, store.ErrInvalid):
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("%w: %v", ErrStoreUnavailable, err)
	}
	return err
}
