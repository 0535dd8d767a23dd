package component

import (
	"context"
	"encoding/hex"
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
	// bridge is set for a join the MUC's bridge module asks about
	// (bridge.go): the answer is a bridge answer, and the module, not
	// gavel, sets the joiner's own affiliation. newRoom: the join creates
	// the room.
	bridge, newRoom bool
	// admitted is set for a knock a host admitted to a locked room
	// (lock.go): the lock lets it through.
	admitted bool
}

// knockOutcome is how a knock was answered: granted, or one refusal. Each
// has one application condition, one stanza error and one counter
// (gavel_knocks_total{outcome}).
type knockOutcome uint8

// The knock outcomes (docs/protocol.md, section 5).
const (
	knockGranted knockOutcome = iota
	knockBadRoom
	knockNotGoverned
	knockRateLimited
	knockBusy
	knockBanned
	knockTokenRequired
	knockTokenExpired
	knockTokenNotYetValid
	knockTokenIssuedInFuture
	knockTokenBadSignature
	knockTokenUnknownKey
	knockTokenAlgorithmNotAllowed
	knockTokenMalformed
	knockTokenWrongType
	knockTokenTooLarge
	knockTokenMissingClaim
	knockTokenWrongIssuer
	knockTokenWrongAudience
	knockTokenWrongRoom
	knockTokenWrongTenant
	knockTokenKeyUnavailable
	knockTokenInvalid
	knockRoomUnavailable
	knockRoomBusy
	knockViewerNotAdmitted
	knockShuttingDown
	knockHostAbsent
	knockRoomFull
	knockLocked
	numKnockOutcomes
)

// outcomeInfo is what an outcome says on the wire.
type outcomeInfo struct {
	app       string // application condition in NSKnock; the metric label
	typ, cond string // stanza error type and defined condition
	text      string // default human-readable text
}

var knockOutcomes = [numKnockOutcomes]outcomeInfo{
	knockGranted:                  {"granted", "", "", ""},
	knockBadRoom:                  {"bad-room", "modify", "bad-request", "room must be a room JID"},
	knockNotGoverned:              {"not-governed", "cancel", "item-not-found", "gavel does not govern this MUC service"},
	knockRateLimited:              {"rate-limited", "wait", "resource-constraint", "too many knocks: wait a moment and try again"},
	knockBusy:                     {"busy", "wait", "resource-constraint", "gavel is busy with other knocks: try again in a moment"},
	knockBanned:                   {"banned", "auth", "forbidden", "you are banned from this room"},
	knockTokenRequired:            {"token-required", "auth", "not-authorized", "this room needs a token"},
	knockTokenExpired:             {"token-expired", "auth", "not-authorized", "the token has expired"},
	knockTokenNotYetValid:         {"token-not-yet-valid", "auth", "not-authorized", "the token is not valid yet"},
	knockTokenIssuedInFuture:      {"token-issued-in-future", "auth", "not-authorized", "the token was issued in the future"},
	knockTokenBadSignature:        {"token-bad-signature", "auth", "not-authorized", "the token's signature does not verify"},
	knockTokenUnknownKey:          {"token-unknown-key", "auth", "not-authorized", "no key matches the token"},
	knockTokenAlgorithmNotAllowed: {"token-algorithm-not-allowed", "auth", "not-authorized", "the token's algorithm is not allowed"},
	knockTokenMalformed:           {"token-malformed", "auth", "not-authorized", "the token is not a JWT"},
	knockTokenWrongType:           {"token-wrong-type", "auth", "not-authorized", "the token's type is wrong"},
	knockTokenTooLarge:            {"token-too-large", "auth", "not-authorized", "the token is too large"},
	knockTokenMissingClaim:        {"token-missing-claim", "auth", "not-authorized", "the token lacks a required claim"},
	knockTokenWrongIssuer:         {"token-wrong-issuer", "auth", "not-authorized", "the token's issuer is not accepted"},
	knockTokenWrongAudience:       {"token-wrong-audience", "auth", "not-authorized", "the token's audience is not accepted"},
	knockTokenWrongRoom:           {"token-wrong-room", "auth", "forbidden", "the token is for another room"},
	knockTokenWrongTenant:         {"token-wrong-tenant", "auth", "forbidden", "the token is for another tenant"},
	knockTokenKeyUnavailable:      {"token-key-unavailable", "wait", "service-unavailable", "the token's key cannot be fetched now: try again later"},
	knockTokenInvalid:             {"token-invalid", "auth", "not-authorized", "the token was refused"},
	knockRoomUnavailable:          {"room-unavailable", "wait", "service-unavailable", "gavel could not enter or change the room"},
	knockRoomBusy:                 {"room-busy", "wait", "resource-constraint", "too many knocks wait for this room: try again in a moment"},
	knockViewerNotAdmitted:        {"viewer-not-admitted", "auth", "forbidden", "this tenant's rooms do not admit viewers"},
	knockShuttingDown:             {"shutting-down", "wait", "service-unavailable", "gavel is shutting down"},
	knockHostAbsent:               {"host-absent", "wait", "resource-constraint", "the meeting has not started: wait for the host and knock again"},
	knockRoomFull:                 {"room-full", "wait", "resource-constraint", "the meeting is full"},
	knockLocked:                   {"locked", "auth", "not-allowed", "the meeting is locked"},
}

// String returns the outcome's application condition.
func (o knockOutcome) String() string {
	if o < numKnockOutcomes {
		return knockOutcomes[o].app
	}
	return "invalid"
}

// tokenOutcomes maps each auth.Reason to its outcome, once.
var tokenOutcomes = map[auth.Reason]knockOutcome{
	auth.ReasonMissingToken:        knockTokenRequired,
	auth.ReasonTooLarge:            knockTokenTooLarge,
	auth.ReasonMalformed:           knockTokenMalformed,
	auth.ReasonWrongType:           knockTokenWrongType,
	auth.ReasonAlgorithmNotAllowed: knockTokenAlgorithmNotAllowed,
	auth.ReasonUnknownKey:          knockTokenUnknownKey,
	auth.ReasonKeyUnavailable:      knockTokenKeyUnavailable,
	auth.ReasonBadSignature:        knockTokenBadSignature,
	auth.ReasonExpired:             knockTokenExpired,
	auth.ReasonNotYetValid:         knockTokenNotYetValid,
	auth.ReasonIssuedInFuture:      knockTokenIssuedInFuture,
	auth.ReasonMissingClaim:        knockTokenMissingClaim,
	auth.ReasonWrongIssuer:         knockTokenWrongIssuer,
	auth.ReasonWrongAudience:       knockTokenWrongAudience,
	auth.ReasonWrongRoom:           knockTokenWrongRoom,
	auth.ReasonWrongTenant:         knockTokenWrongTenant,
	auth.ReasonClosed:              knockShuttingDown,
}

// tokenOutcome is the outcome of a token auth refused with err.
func tokenOutcome(err error) knockOutcome {
	if o, ok := tokenOutcomes[auth.ReasonOf(err)]; ok {
		return o
	}
	return knockTokenInvalid
}

// policyOutcome is the outcome of a policy refusal word.
func policyOutcome(refusal string) knockOutcome {
	switch refusal {
	case policy.RefusalBanned:
		return knockBanned
	case policy.RefusalTokenExpired:
		return knockTokenExpired
	case policy.RefusalViewerNotAdmitted:
		return knockViewerNotAdmitted
	case policy.RefusalHostAbsent:
		return knockHostAbsent
	case policy.RefusalRoomFull:
		return knockRoomFull
	}
	return knockTokenRequired
}

// knock handles a knock IQ. It runs on the read loop: what needs no round
// trip and no store (room, governed, the joiner's rate, a guest's whole
// decision but the ban) is done here, so a refused knock costs no
// goroutine; the rest runs in one of at most MaxKnocksInFlight goroutines.
func (m *Moderation) knock(sess *session, st *stanza) {
	m.knockAs(sess, st, joinerReq{full: st.From, room: st.Knock.Room, token: st.Knock.Token})
}

// joinerReq is what a knock, or a bridge join request, says of a joiner.
type joinerReq struct {
	full, room, token string
	// Set for bridge requests only: the MUC the request came from, the
	// identity the server stamped, and whether the join creates the room.
	bridgeMUC string
	identity  *identityEl
	newRoom   bool
}

// knockAs decides for the joiner of jr: a knock, or a join the bridge
// module asks about (the same checks and the same refusals).
func (m *Moderation) knockAs(sess *session, st *stanza, jr joinerReq) {
	started := m.now()
	full := jr.full
	bare := bareOf(full)
	if !strings.Contains(full, "/") || bare == "" {
		m.refuse(sess, st, knockBadRoom, "a knock must come from a full JID", started)
		return
	}
	ar, err := auth.ParseRoom(strings.TrimSpace(jr.room)) // prepared as the server does
	if err != nil {
		m.refuse(sess, st, knockBadRoom, "room must be a room JID like name@"+m.anyMUC()+": "+strings.TrimPrefix(err.Error(), "auth: "), started)
		return
	}
	ar, _ = m.canonicalRoom(ar) // the JaaS domain form names a [tenant] room
	if jr.bridgeMUC != "" && ar.Domain != jr.bridgeMUC {
		m.refuse(sess, st, knockNotGoverned, "a bridge asks for the rooms of its own MUC only", started)
		return
	}
	muc, governed := m.mucs[ar.Domain]
	if !governed {
		m.refuse(sess, st, knockNotGoverned, "gavel does not govern "+ar.Domain, started)
		return
	}
	t := m.opts.Tenant(ar.Tenant)
	if !m.adm.joiner(t, bare, started) {
		m.refuse(sess, st, knockRateLimited, "", started)
		return
	}
	token := strings.TrimSpace(jr.token)
	var id policy.Identity
	if token == "" {
		stamped, trusted := m.stampedIdentity(muc, bare, jr.identity)
		if trusted {
			id = stamped
			if !m.adm.verified(t, started) {
				m.refuse(sess, st, knockRateLimited, "", started)
				return
			}
		} else if containsFold(muc.SecureDomains, domainOf(bare)) {
			id = policy.Identity{HasToken: true, Moderator: true}
			if !m.adm.verified(t, started) {
				m.refuse(sess, st, knockRateLimited, "", started)
				return
			}
		} else if jr.bridgeMUC == "" {
			if !m.adm.unauthenticated(t, started) {
				m.refuse(sess, st, knockRateLimited, "", started)
				return
			}
			if r := policy.Admit(t.Policy, id, started); r != "" {
				m.refuse(sess, st, policyOutcome(r), "", started)
				return
			}
		}
		// A tokenless bridge join may come from a joiner who knocked (or
		// a guest): its room knows, and refuses guests as a knock would.
		// It spends no unauthenticated budget: the server logged it in.
	}
	if !m.adm.acquire() {
		m.refuse(sess, st, knockBusy, "", started)
		return
	}
	m.metrics.KnocksInFlight.Inc()
	go func() {
		defer func() {
			m.metrics.KnocksInFlight.Dec()
			m.adm.release()
		}()
		k := &knockReq{sess: sess, st: st, bare: bare, full: full, id: id, started: started,
			bridge: jr.bridgeMUC != "", newRoom: jr.newRoom}
		if token != "" && !m.verify(k, t, ar, token) {
			return
		}
		if token == "" && k.id.HasToken {
			// A stamped identity or a secure domain: the policy may still
			// refuse it (a viewer where none are admitted).
			if r := policy.Admit(t.Policy, k.id, m.now()); r != "" {
				m.refuse(k.sess, k.st, policyOutcome(r), "", k.started)
				return
			}
		}
		m.admitKnock(k, t, ar, token)
	}()
}

// verify checks the knock's token and charges the bucket its result draws
// from; it answers the knock and returns false when the knock ends here.
func (m *Moderation) verify(k *knockReq, t Tenant, ar auth.Room, token string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	// Fetches for unknown kids are shared fairly between knockers.
	ctx = auth.WithRequester(ctx, k.bare)
	start := time.Now()
	claims, err := m.opts.Verifier.Verify(ctx, token, ar)
	cancel()
	m.metrics.TokenLatency.Observe(time.Since(start).Seconds())
	now := m.now()
	if err != nil {
		// A failed token spends the unauthenticated budget, never the
		// tenant's: a flood of bad tokens is refused without touching
		// what valid tokens draw from.
		if !m.adm.unauthenticated(t, now) {
			m.refuse(k.sess, k.st, knockRateLimited, "", k.started)
			return false
		}
		m.refuse(k.sess, k.st, tokenOutcome(err), strings.TrimPrefix(err.Error(), "auth: "), k.started)
		return false
	}
	if !m.adm.verified(t, now) {
		m.refuse(k.sess, k.st, knockRateLimited, "", k.started)
		return false
	}
	k.claims, k.id = claims, identityOf(claims, t)
	if r := policy.Admit(t.Policy, k.id, now); r != "" {
		m.refuse(k.sess, k.st, policyOutcome(r), "", k.started)
		return false
	}
	return true
}

// admitKnock checks the store's bans and hands the knock to its room.
func (m *Moderation) admitKnock(k *knockReq, t Tenant, ar auth.Room, token string) {
	if ban, banned := m.banned(ar.Tenant, k.bare, k.id.UserID, k.claims, token); banned {
		text := "you are banned from this tenant"
		if ban.Reason != "" {
			text += ": " + ban.Reason
		}
		m.refuse(k.sess, k.st, knockBanned, text, k.started)
		return
	}
	if !m.deliver(ar.JID, true, event{kind: evKnock, knock: k}) {
		m.refuse(k.sess, k.st, knockShuttingDown, "", k.started)
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

// banned checks the knocker's bare JID, user id (from the token or a
// stamped identity) and token against the store.
func (m *Moderation) banned(tenant, bare, userID string, c *auth.Claims, token string) (store.Ban, bool) {
	now := m.now()
	if b, ok := m.opts.Store.Banned(tenant, store.KindJID, bare, now); ok {
		return b, true
	}
	if userID != "" {
		if b, ok := m.opts.Store.Banned(tenant, store.KindUser, userID, now); ok {
			return b, true
		}
	}
	if c == nil {
		return store.Ban{}, false
	}
	h := c.TokenHash
	if h == ([32]byte{}) {
		h = auth.TokenHash(token)
	}
	return m.opts.Store.Banned(tenant, store.KindToken, hex.EncodeToString(h[:]), now)
}

// refuse answers a knock with outcome o (text "" says the outcome's own
// text) and counts it.
func (m *Moderation) refuse(sess *session, st *stanza, o knockOutcome, text string, started time.Time) {
	info := knockOutcomes[o]
	if text == "" {
		text = info.text
	}
	m.c.replyError(sess, st, &stanzaError{Type: info.typ, Condition: info.cond, App: info.app, AppNS: NSKnock, Text: text})
	m.count(o, started)
	room := ""
	switch {
	case st.Knock != nil:
		room = st.Knock.Room
	case st.BridgeJoin != nil:
		room = st.BridgeJoin.Room
	}
	m.log.Debug("knock refused", zap.String("from", st.From), zap.String("room", room), zap.Stringer("reason", o))
}

// count records a knock's outcome and latency.
func (m *Moderation) count(o knockOutcome, started time.Time) {
	m.knockCounts[o].Inc()
	m.metrics.KnockLatency.Observe(m.now().Sub(started).Seconds())
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
