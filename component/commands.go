package component

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

// Command errors that interfaces map to their own codes.
var (
	ErrRoomNotFound        = errors.New("component: no such room")
	ErrParticipantNotFound = errors.New("component: no such participant in the room")
	ErrNotGoverned         = errors.New("component: room is not on a governed MUC domain")
	ErrInvalid             = errors.New("component: invalid command")
)

// BanRequest describes a ban.
type BanRequest struct {
	Tenant  string
	Kind    store.Kind
	Value   string // user id, bare JID, or the raw token (hashed before storing)
	Reason  string
	By      string
	Expires time.Time
}

// Ban stores a ban durably, then removes matching occupants from every
// governed room at once. It returns the number of occupants removed.
func (m *Moderation) Ban(ctx context.Context, req BanRequest) (removed int, err error) {
	defer func() { m.audit("ban", req.By, string(req.Kind)+":"+redact(req), req.Tenant, err) }()
	value := banValue(req.Kind, req.Value, false)
	if req.Kind == store.KindToken && value != "" {
		var h [32]byte
		_, _ = hex.Decode(h[:], []byte(value))
		m.opts.Verifier.Forget(h)
	}
	if req.Tenant == "" || value == "" {
		return 0, fmt.Errorf("%w: tenant and value are required", ErrInvalid)
	}
	b := store.Ban{Tenant: req.Tenant, Kind: req.Kind, Value: value, Reason: req.Reason, By: req.By, Created: m.now(), Expires: req.Expires}
	if err := m.opts.Store.AddBan(ctx, b); err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return 0, err
	}
	return m.enforce(ctx, b), nil
}

// enforce removes occupants matching b from every governed room of its
// tenant by making their bare JIDs outcasts there.
func (m *Moderation) enforce(ctx context.Context, b store.Ban) int {
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
	for range rooms {
		select {
		case n := <-counts:
			total += n
		case <-ctx.Done():
			return total
		}
	}
	return total
}

// banPresent makes outcasts of the occupants b matches; it runs on the
// room's worker.
func (r *room) banPresent(b store.Ban) int {
	var bares []string
	add := func(bare string) {
		if !containsFold(bares, bare) {
			bares = append(bares, bare)
		}
	}
	matches := func(bare, userID string, rec knockRecord, hasRec bool) bool {
		switch b.Kind {
		case store.KindUser:
			return userID != "" && userID == b.Value
		case store.KindJID:
			return bare == b.Value
		case store.KindToken:
			return hasRec && rec.hasToken && hex.EncodeToString(rec.tokenHash[:]) == b.Value
		}
		return false
	}
	for o := range r.pol.Occupants() {
		rec, ok := r.knocks[o.FullJID]
		if matches(o.BareJID, o.UserID, rec, ok) {
			add(o.BareJID)
		}
	}
	// Granted knockers whose join gavel has not seen yet: they may be in
	// the room already, or about to enter.
	now := r.m.now()
	here := r.presentSet()
	for full, rec := range r.knocks {
		if now.Sub(rec.at) <= policy.KnockTTL && !here[full] && matches(rec.bare, rec.userID, rec, true) {
			add(rec.bare)
		}
	}
	actions := make([]policy.Action, 0, len(bares))
	for _, bare := range bares {
		actions = append(actions, policy.Action{Kind: policy.ActionSetAffiliation, BareJID: bare, Affiliation: policy.Outcast, Reason: "ban"})
	}
	r.perform(actions)
	return len(bares)
}

// Unban removes a ban; it reports whether one existed.
func (m *Moderation) Unban(ctx context.Context, tenant string, kind store.Kind, value, by string) (found bool, err error) {
	defer func() { m.audit("unban", by, string(kind)+":"+value, tenant, err) }()
	return m.opts.Store.RemoveBan(ctx, tenant, kind, banValue(kind, value, true))
}

// banValue is the stored form of a ban's value: a JID's bare form, or the
// hex SHA-256 of a token (a value that already is one is kept where
// isHash allows it: unban accepts the hash that list-bans shows).
func banValue(kind store.Kind, value string, isHash bool) string {
	value = strings.TrimSpace(value)
	switch {
	case value == "":
	case kind == store.KindJID:
		value = bareOf(value)
	case kind == store.KindToken && !(isHash && len(value) == 64 && isHex(value)):
		h := auth.TokenHash(value)
		value = hex.EncodeToString(h[:])
	}
	return value
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// Bans lists the active bans of a tenant ("" for all).
func (m *Moderation) Bans(ctx context.Context, tenant string) ([]store.Ban, error) {
	return m.opts.Store.ListBans(ctx, tenant, m.now())
}

// Kick removes the occupant with nick (Jitsi's participant id) from room.
func (m *Moderation) Kick(ctx context.Context, roomJID, nick, reason, by string) (err error) {
	defer func() { m.audit("kick", by, roomJID+"/"+nick, "", err) }()
	roomJID = strings.ToLower(roomJID)
	if _, err := m.governed(roomJID); err != nil {
		return err
	}
	if nick == m.c.opts.Nick {
		return ErrParticipantNotFound
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
			return ErrParticipantNotFound
		}
		return err
	})
}

// Destroy destroys room, also when gavel is not in it.
func (m *Moderation) Destroy(ctx context.Context, roomJID, reason, by string) (err error) {
	defer func() { m.audit("destroy", by, roomJID, "", err) }()
	roomJID = strings.ToLower(roomJID)
	if _, err := m.governed(roomJID); err != nil {
		return err
	}
	destroy := func(sess *session) error {
		_, err := sess.iq(ctx, m.c.opts.Domain, roomJID, "set", func(b *xb) {
			b.open("query", "xmlns", nsMUCOwner).open("destroy")
			if reason != "" {
				b.elem("reason", reason)
			}
			b.close("destroy").close("query")
		})
		var se *stanzaError
		if errors.As(err, &se) && se.Condition == "item-not-found" {
			return ErrRoomNotFound
		}
		return err
	}
	err = m.onRoom(ctx, roomJID, func(r *room) error { return destroy(r.sess) })
	if errors.Is(err, ErrRoomNotFound) {
		sess := m.session()
		if sess == nil {
			return ErrNotConnected
		}
		// ejabberd creates a missing room for an owner IQ from a service
		// admin (and would then destroy it): ask whether it exists first.
		_, err := sess.iq(ctx, m.c.opts.Domain, roomJID, "get", func(b *xb) { b.empty("query", "xmlns", nsDiscoInfo) })
		var se *stanzaError
		if errors.As(err, &se) && se.Condition == "item-not-found" {
			return ErrRoomNotFound
		}
		return destroy(sess)
	}
	return err
}

// onRoom runs f on the worker of a room gavel is in; ErrRoomNotFound when
// gavel is not in it.
func (m *Moderation) onRoom(ctx context.Context, roomJID string, f func(r *room) error) error {
	done := make(chan error, 1)
	ev := event{kind: evCommand, done: done, cmd: func(r *room) error {
		if r.state != joined || r.sess == nil {
			return ErrRoomNotFound
		}
		return f(r)
	}}
	if !m.deliver(roomJID, false, ev) {
		return ErrRoomNotFound
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// governed parses roomJID and checks that gavel governs its domain.
func (m *Moderation) governed(roomJID string) (auth.Room, error) {
	ar, err := auth.ParseRoom(roomJID)
	if err != nil {
		return ar, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, ok := m.mucs[ar.Domain]; !ok {
		return ar, ErrNotGoverned
	}
	return ar, nil
}

// TenantOf returns the tenant of a room JID.
func (m *Moderation) TenantOf(roomJID string) (string, error) {
	ar, err := m.governed(strings.ToLower(roomJID))
	return ar.Tenant, err
}

// audit writes the one log line every command leaves.
func (m *Moderation) audit(cmd, by, target, tenant string, err error) {
	result := "ok"
	if err != nil {
		result = err.Error()
	}
	m.metrics.Commands.WithLabelValues(cmd, map[bool]string{true: "ok", false: "error"}[err == nil]).Inc()
	m.log.Info("audit", zap.String("command", cmd), zap.String("by", by), zap.String("target", target), zap.String("tenant", tenant), zap.String("result", result))
}

// redact keeps raw tokens out of the audit log.
func redact(req BanRequest) string {
	if req.Kind == store.KindToken {
		h := auth.TokenHash(strings.TrimSpace(req.Value))
		return "sha256:" + hex.EncodeToString(h[:8])
	}
	return req.Value
}
