// Package bus carries commands between the gavels of a sharded deployment
// over the shared PostgreSQL store (docs/scale-out.md). Each gavel governs
// the MUC service of its own shard; a command accepted by any gavel for a
// room on another shard is stored in the event log, then announced with
// NOTIFY, and the gavel that governs the room applies it. A ban is announced
// by the store itself: every gavel removes the banned occupants of its own
// rooms.
//
// Bus implements commands.Rooms around the local component: rooms of a MUC
// service this gavel governs are reached directly, as without a bus; others
// go through the log. An accepted command is acknowledged once the
// transaction that stores it has committed.
//
// Set-role travels as role.set events. New kinds of command (lock,
// meetings) add a handler with Handle
// on the receiving side and publish their own events with Publish.
package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/store"
)

// Event kinds the bus publishes.
const (
	EventKick    = "kick"
	EventDestroy = "destroy"
	EventRole    = "role.set"
	EventPolicy  = "policy.set"
	EventOptions = "options.set"
)

// Kick is the body of EventKick.
type Kick struct {
	Room   string `json:"room"`
	Nick   string `json:"nick"`
	Reason string `json:"reason,omitempty"`
}

// Destroy is the body of EventDestroy.
type Destroy struct {
	Room   string `json:"room"`
	Reason string `json:"reason,omitempty"`
}

// Role is the body of EventRole: SET_ROLE for a room of another shard.
type Role struct {
	Room   string    `json:"room"`
	Nick   string    `json:"nick,omitempty"`
	UserID string    `json:"user_id,omitempty"`
	Role   string    `json:"role"`
	Until  time.Time `json:"until,omitzero"`
}

// RoomOptions is the body of EventOptions: a lock, an unlock or a
// meeting's options for a room of another shard.
type RoomOptions struct {
	Room    string               `json:"room"`
	Options commands.RoomOptions `json:"options"`
}

// Policy is the body of EventPolicy: SET_POLICY for a room of another shard.
type Policy struct {
	Room   string `json:"room"`
	Policy string `json:"policy"`
}

// Handler applies an event another gavel published. It runs on the bus's
// one delivery goroutine, in log order, with a deadline.
type Handler func(ctx context.Context, e store.Event) error

// Options configure a Bus.
type Options struct {
	// Local reaches this gavel's own rooms (the component); required.
	Local commands.Rooms
	// Store is the shared store; required.
	Store *store.Postgres
	// Logger receives what the bus reports; nil means none.
	Logger *zap.Logger
	// Timeout bounds the application of one event; zero means 10 s.
	Timeout time.Duration
	// Ready reports whether Local can apply commands now (connected to the
	// XMPP server, the rooms of the previous run restored). Each event
	// waits for it, so that the events a restarted gavel resumes with
	// (store.PostgresOptions.Resume), and those read while the XMPP server
	// was away, are applied rather than failed. nil means always ready.
	Ready func() bool
}

// Bus is a commands.Rooms that reaches the rooms of every shard.
type Bus struct {
	local   commands.Rooms
	st      *store.Postgres
	log     *zap.Logger
	timeout time.Duration
	ready   func() bool

	mu       sync.RWMutex
	handlers map[string]Handler
	ctx      context.Context
}

var (
	_ commands.Rooms      = (*Bus)(nil)
	_ commands.RoleSetter = (*Bus)(nil)
	_ commands.RoomMapper = (*Bus)(nil)
)

// New returns a Bus with the handlers of bans, kicks and destroys. It
// applies nothing until Start.
func New(opts Options) (*Bus, error) {
	if opts.Local == nil || opts.Store == nil {
		return nil, errors.New("bus: Options.Local and Options.Store are required")
	}
	b := &Bus{local: opts.Local, st: opts.Store, log: opts.Logger, timeout: opts.Timeout, ready: opts.Ready, handlers: map[string]Handler{}}
	if b.log == nil {
		b.log = zap.NewNop()
	}
	if b.timeout <= 0 {
		b.timeout = 10 * time.Second
	}
	b.Handle(store.EventBanAdd, b.onBan)
	b.Handle(EventKick, b.onKick)
	b.Handle(EventDestroy, b.onDestroy)
	b.Handle(EventRole, b.onRole)
	b.Handle(EventPolicy, b.onPolicy)
	b.Handle(EventOptions, b.onOptions)
	return b, nil
}

// Handle sets the handler of an event kind: the extension point for the
// commands to come (lock, meetings), and for store.EventBanRemove, which
// the command layer handles (it lifts the ban's outcasts). Call it before
// Start.
func (b *Bus) Handle(kind string, h Handler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handlers[kind] = h
}

// Start applies the events other gavels publish until ctx ends.
func (b *Bus) Start(ctx context.Context) {
	b.mu.Lock()
	b.ctx = ctx
	b.mu.Unlock()
	b.st.Subscribe(b.receive)
}

func (b *Bus) receive(e store.Event) {
	if e.Origin == b.st.Scope() {
		return // applied where it was accepted
	}
	b.mu.RLock()
	h, ok := b.handlers[e.Kind]
	parent := b.ctx
	b.mu.RUnlock()
	if !ok || parent == nil || parent.Err() != nil {
		return
	}
	if !b.waitReady(parent) {
		return
	}
	ctx, cancel := context.WithTimeout(parent, b.timeout)
	defer cancel()
	start := time.Now()
	err := h(ctx, e)
	fields := []zap.Field{zap.String("kind", e.Kind), zap.Int64("seq", e.Seq), zap.String("origin", e.Origin), zap.Duration("took", time.Since(start))}
	if err != nil {
		b.log.Warn("event not applied", append(fields, zap.Error(err))...)
		return
	}
	b.log.Debug("event applied", fields...)
}

// waitReady waits until Local can apply commands, or ctx ends (false).
func (b *Bus) waitReady(ctx context.Context) bool {
	if b.ready == nil || b.ready() {
		return true
	}
	b.log.Info("waiting for the XMPP connection to apply the command log")
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !b.ready() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

func (b *Bus) onBan(ctx context.Context, e store.Event) error {
	var be store.BanEvent
	if err := json.Unmarshal(e.Body, &be); err != nil {
		return fmt.Errorf("bus: malformed ban event: %w", err)
	}
	_, err := b.local.EnforceBan(ctx, be.Ban())
	return err
}

func (b *Bus) onKick(ctx context.Context, e store.Event) error {
	var k Kick
	if err := json.Unmarshal(e.Body, &k); err != nil {
		return fmt.Errorf("bus: malformed kick event: %w", err)
	}
	if !b.local.Governs(domainOf(k.Room)) {
		return nil
	}
	return b.local.Kick(ctx, k.Room, k.Nick, k.Reason)
}

func (b *Bus) onDestroy(ctx context.Context, e store.Event) error {
	var d Destroy
	if err := json.Unmarshal(e.Body, &d); err != nil {
		return fmt.Errorf("bus: malformed destroy event: %w", err)
	}
	if !b.local.Governs(domainOf(d.Room)) {
		return nil
	}
	return b.local.Destroy(ctx, d.Room, d.Reason)
}

func (b *Bus) onRole(ctx context.Context, e store.Event) error {
	var r Role
	if err := json.Unmarshal(e.Body, &r); err != nil {
		return fmt.Errorf("bus: malformed role event: %w", err)
	}
	rs, ok := b.local.(commands.RoleSetter)
	if !ok || !b.local.Governs(domainOf(r.Room)) {
		return nil
	}
	_, err := rs.SetRole(ctx, commands.RoleRequest{Room: r.Room, Participant: r.Nick, UserID: r.UserID, Role: r.Role, Until: r.Until})
	return err
}

func (b *Bus) onPolicy(ctx context.Context, e store.Event) error {
	var p Policy
	if err := json.Unmarshal(e.Body, &p); err != nil {
		return fmt.Errorf("bus: malformed policy event: %w", err)
	}
	rs, ok := b.local.(commands.RoleSetter)
	if !ok || !b.local.Governs(domainOf(p.Room)) {
		return nil
	}
	return rs.SetPolicy(ctx, p.Room, p.Policy)
}

// domainOf is the MUC service of a prepared room JID.
func domainOf(room string) string {
	_, d, _ := strings.Cut(room, "@")
	d, _, _ = strings.Cut(d, "/")
	return d
}

// Governs reports whether this gavel, or another on the bus, governs the MUC
// service.
func (b *Bus) Governs(mucDomain string) bool {
	if b.local.Governs(mucDomain) {
		return true
	}
	_, ok := b.st.Governor(mucDomain)
	return ok
}

// Local reports whether this gavel governs the MUC service itself.
func (b *Bus) Local(mucDomain string) bool { return b.local.Governs(mucDomain) }

// EnforceBan removes the banned occupants of this gavel's rooms; the other
// gavels do the same for theirs when the store announces the ban.
func (b *Bus) EnforceBan(ctx context.Context, ban store.Ban) (int, error) {
	return b.local.EnforceBan(ctx, ban)
}

// LiftOutcasts lifts outcasts in this shard's rooms: each gavel records
// and lifts the outcasts it set (the store's outcasts are per gavel).
func (b *Bus) LiftOutcasts(ctx context.Context, list []store.Outcast) ([]store.Outcast, error) {
	return b.local.LiftOutcasts(ctx, list)
}

// Kick kicks in a room of this shard, or stores the kick for the gavel that
// governs the room: then nil means committed, and that gavel applies it.
func (b *Bus) Kick(ctx context.Context, roomJID, nick, reason string) error {
	if b.local.Governs(domainOf(roomJID)) {
		return b.local.Kick(ctx, roomJID, nick, reason)
	}
	return b.Publish(ctx, EventKick, Kick{Room: roomJID, Nick: nick, Reason: reason})
}

// Destroy destroys a room of this shard, or stores the destroy for the gavel
// that governs the room.
func (b *Bus) Destroy(ctx context.Context, roomJID, reason string) error {
	if b.local.Governs(domainOf(roomJID)) {
		return b.local.Destroy(ctx, roomJID, reason)
	}
	return b.Publish(ctx, EventDestroy, Destroy{Room: roomJID, Reason: reason})
}

// SetRole sets an occupant's role in a room of this shard, or stores the
// change for the gavel that governs the room (nil then means committed; an
// occupant that is not there is that gavel's to find).
func (b *Bus) SetRole(ctx context.Context, req commands.RoleRequest) (int, error) {
	if b.local.Governs(domainOf(req.Room)) {
		rs, ok := b.local.(commands.RoleSetter)
		if !ok {
			return 0, fmt.Errorf("%w: roles cannot be set here", commands.ErrInvalid)
		}
		return rs.SetRole(ctx, req)
	}
	return 0, b.Publish(ctx, EventRole, Role{Room: req.Room, Nick: req.Participant, UserID: req.UserID, Role: req.Role, Until: req.Until})
}

// SetRoomOptions locks, unlocks or sets a meeting's options in a room of
// this shard, or stores the change for the gavel that governs the room.
func (b *Bus) SetRoomOptions(ctx context.Context, roomJID string, o commands.RoomOptions) error {
	if b.local.Governs(domainOf(roomJID)) {
		rs, ok := b.local.(commands.RoomOptionSetter)
		if !ok {
			return fmt.Errorf("%w: room options cannot be set here", commands.ErrInvalid)
		}
		return rs.SetRoomOptions(ctx, roomJID, o)
	}
	return b.Publish(ctx, EventOptions, RoomOptions{Room: roomJID, Options: o})
}

func (b *Bus) onOptions(ctx context.Context, e store.Event) error {
	var o RoomOptions
	if err := json.Unmarshal(e.Body, &o); err != nil {
		return fmt.Errorf("bus: malformed options event: %w", err)
	}
	rs, ok := b.local.(commands.RoomOptionSetter)
	if !ok || !b.local.Governs(domainOf(o.Room)) {
		return nil
	}
	return rs.SetRoomOptions(ctx, o.Room, o.Options)
}

// SetPolicy switches the policy of a room of this shard, or stores the
// switch for the gavel that governs the room.
func (b *Bus) SetPolicy(ctx context.Context, roomJID, policy string) error {
	if b.local.Governs(domainOf(roomJID)) {
		rs, ok := b.local.(commands.RoleSetter)
		if !ok {
			return fmt.Errorf("%w: policies cannot be switched here", commands.ErrInvalid)
		}
		return rs.SetPolicy(ctx, roomJID, policy)
	}
	return b.Publish(ctx, EventPolicy, Policy{Room: roomJID, Policy: policy})
}

// MapRoom is the local component's (commands.RoomMapper): the names the
// server knows a room by (tenant subdomains) are this shard's to map.
func (b *Bus) MapRoom(ar auth.Room) auth.Room {
	if m, ok := b.local.(commands.RoomMapper); ok {
		return m.MapRoom(ar)
	}
	return ar
}

// Publish stores an event (body as JSON) for every gavel and returns once
// it is committed. A store that cannot take it answers
// commands.ErrStoreUnavailable, which the API turns into 503.
func (b *Bus) Publish(ctx context.Context, kind string, body any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("bus: %w", err)
	}
	if _, err := b.st.Publish(ctx, kind, raw); err != nil {
		if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrClosed) {
			return fmt.Errorf("%w: %v", commands.ErrStoreUnavailable, err)
		}
		return err
	}
	return nil
}
