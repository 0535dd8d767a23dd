package component

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

// knockReq is a knock that passed the checks that need no room state.
type knockReq struct {
	sess    *session
	st      *stanza
	bare    string
	full    string
	id      policy.Identity
	claims  *auth.Claims
	started time.Time
}

// Application conditions of knock refusals (docs/protocol.md).
const (
	condBadRoom         = "bad-room"
	condNotGoverned     = "not-governed"
	condRateLimited     = "rate-limited"
	condBanned          = "banned"
	condTokenRequired   = "token-required"
	condRoomUnavailable = "room-unavailable"
	condShuttingDown    = "shutting-down"
)

// knock handles a knock IQ off the read loop.
func (m *Moderation) knock(sess *session, st *stanza) {
	go m.handleKnock(sess, st)
}

func (m *Moderation) handleKnock(sess *session, st *stanza) {
	started := m.now()
	full := st.From
	bare := bareOf(full)
	roomJID := strings.ToLower(strings.TrimSpace(st.Knock.Room))
	if !strings.Contains(full, "/") {
		m.refuse(sess, st, "modify", "bad-request", condBadRoom, "a knock must come from a full JID", started)
		return
	}
	ar, err := auth.ParseRoom(roomJID)
	if err != nil {
		m.refuse(sess, st, "modify", "bad-request", condBadRoom, "room must be a room JID like name@"+m.anyMUC()+": "+strings.TrimPrefix(err.Error(), "auth: "), started)
		return
	}
	muc, governed := m.mucs[ar.Domain]
	if !governed {
		m.refuse(sess, st, "cancel", "item-not-found", condNotGoverned, "gavel does not govern "+ar.Domain, started)
		return
	}
	tenant := m.opts.Tenant(ar.Tenant)
	if !m.allow(ar.Tenant, tenant, bare) {
		m.refuse(sess, st, "wait", "resource-constraint", condRateLimited, "too many knocks: wait a moment and try again", started)
		return
	}

	var id policy.Identity
	var claims *auth.Claims
	token := strings.TrimSpace(st.Knock.Token)
	if token != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// Fetches for unknown kids are shared fairly between knockers.
		ctx = auth.WithRequester(ctx, bare)
		start := time.Now()
		claims, err = m.opts.Verifier.Verify(ctx, token, ar)
		cancel()
		m.metrics.TokenLatency.Observe(time.Since(start).Seconds())
		if err != nil {
			m.refuseToken(sess, st, err, started)
			return
		}
		id = identityOf(claims, tenant)
	} else if containsFold(muc.SecureDomains, domainOf(bare)) {
		id = policy.Identity{HasToken: true, Moderator: true}
	}

	if ban, banned := m.banned(ar.Tenant, bare, claims, token); banned {
		text := "you are banned from this tenant"
		if ban.Reason != "" {
			text += ": " + ban.Reason
		}
		m.refuse(sess, st, "auth", "forbidden", condBanned, text, started)
		return
	}
	req := &knockReq{sess: sess, st: st, bare: bare, full: full, id: id, claims: claims, started: started}
	if !m.deliver(ar.JID, true, event{kind: evKnock, knock: req}) {
		m.refuse(sess, st, "wait", "service-unavailable", condShuttingDown, "gavel is shutting down", started)
	}
}

// identityOf turns validated claims into what policy decides on.
func identityOf(c *auth.Claims, t Tenant) policy.Identity {
	return policy.Identity{
		HasToken:  true,
		UserID:    c.UserID,
		Moderator: c.Moderator || (t.TopLevelModerator && c.TopLevelModerator),
		Viewer:    c.Role == "viewer",
		// auth's one expiry rule: exp plus the tenant's leeway, the instant
		// from which Verify refuses the token too.
		Expires: c.ValidUntil,
	}
}

// banned checks the knocker's bare JID, user id and token against the store.
func (m *Moderation) banned(tenant, bare string, c *auth.Claims, token string) (store.Ban, bool) {
	now := m.now()
	if b, ok := m.opts.Store.Banned(tenant, store.KindJID, bare, now); ok {
		return b, true
	}
	if c == nil {
		return store.Ban{}, false
	}
	if c.UserID != "" {
		if b, ok := m.opts.Store.Banned(tenant, store.KindUser, c.UserID, now); ok {
			return b, true
		}
	}
	h := c.TokenHash
	if h == ([32]byte{}) {
		h = auth.TokenHash(token)
	}
	return m.opts.Store.Banned(tenant, store.KindToken, hex.EncodeToString(h[:]), now)
}

// refuseToken answers a knock whose token was refused.
func (m *Moderation) refuseToken(sess *session, st *stanza, err error, started time.Time) {
	reason := auth.ReasonOf(err)
	if reason == auth.ReasonClosed {
		// The verifier closes only when gavel stops: say so, as documented.
		m.refuse(sess, st, "wait", "service-unavailable", condShuttingDown, "gavel is shutting down", started)
		return
	}
	typ, cond := "auth", "not-authorized"
	switch reason {
	case auth.ReasonWrongRoom, auth.ReasonWrongTenant:
		cond = "forbidden"
	case auth.ReasonKeyUnavailable:
		typ, cond = "wait", "service-unavailable"
	}
	text := strings.TrimPrefix(err.Error(), "auth: ")
	var ae *auth.Error
	if !errors.As(err, &ae) {
		reason = "invalid"
	}
	m.refuse(sess, st, typ, cond, "token-"+string(reason), text, started)
}

// refuse answers a knock with an error and counts it.
func (m *Moderation) refuse(sess *session, st *stanza, typ, cond, app, text string, started time.Time) {
	m.c.replyError(sess, st, &stanzaError{Type: typ, Condition: cond, App: app, AppNS: NSKnock, Text: text})
	m.metrics.Knocks.WithLabelValues(app).Inc()
	m.metrics.KnockLatency.Observe(m.now().Sub(started).Seconds())
	m.log.Debug("knock refused", zap.String("from", st.From), zap.String("room", st.Knock.Room), zap.String("reason", app))
}

func (m *Moderation) anyMUC() string {
	for d := range m.mucs {
		return d
	}
	return "conference.example.test"
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
