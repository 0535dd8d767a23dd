package component

import (
	"encoding/xml"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/internal/jidprep"
	"github.com/gavelxmpp/gavel/policy"
)

// This file holds the bridge: gavel's side of prosody-modules/
// mod_gavel_bridge.lua, the Prosody module that asks gavel at
// muc-occupant-pre-join what each joiner gets, and tells it when a room is
// created or destroyed (docs/protocol.md, "The bridge"). A join request is
// decided exactly as a knock is, with the token the joiner's session
// logged in with; the answer carries the affiliation and role, which the
// module applies before the join goes on, so gavel sets no affiliation of
// its own for the joiner (no muc#admin round trip, no announcement).
//
// Requests are trusted only from a MUC service gavel governs with Bridge
// set, and only as the service itself: the server stamps the sender of
// every stanza on the component link, and only the MUC component can send
// as its own domain.

// NSBridge is the namespace of the bridge protocol (docs/protocol.md).
const NSBridge = "urn:gavel:bridge:0"

var (
	nameBridgeJoin = xml.Name{Space: NSBridge, Local: "join"}
	nameBridgeRoom = xml.Name{Space: NSBridge, Local: "room"}
)

// bridgeJoinEl is a bridge join request: the room, the joiner's real full
// JID and nick, the token of its session and the stamped identity, if any.
type bridgeJoinEl struct {
	Room     string      `xml:"room,attr"`
	JID      string      `xml:"jid,attr"`
	Nick     string      `xml:"nick,attr"`
	New      string      `xml:"new,attr"`
	Token    string      `xml:"token"`
	Identity *identityEl `xml:"identity"`
}

// bridgeRoomEl tells of a room event: created or destroyed.
type bridgeRoomEl struct {
	JID   string `xml:"jid,attr"`
	Event string `xml:"event,attr"`
}

// bridgeRoutes registers the bridge's handlers when a MUC enables it.
func (m *Moderation) bridgeRoutes() []muxOption {
	for _, mu := range m.mucs {
		if mu.Bridge {
			return []muxOption{
				handleIQ("set", nameBridgeJoin, HandlerFunc(m.bridgeJoin)),
				handleIQ("set", nameBridgeRoom, HandlerFunc(m.bridgeRoom)),
				handleMessage("", nameBridgeOccupant, HandlerFunc(m.bridgeReport)),
			}
		}
	}
	return nil
}

// bridgeSender returns the MUC whose bridge sent st, or false (and answers
// st) when the sender is not a bridge gavel accepts.
func (m *Moderation) bridgeSender(sess *session, st *stanza) (MUC, bool) {
	mu, ok := m.bridgeOf(st.From)
	if !ok {
		m.metrics.bridgeRequest("not-a-bridge")
		m.c.replyError(sess, st, &stanzaError{Type: "cancel", Condition: "forbidden",
			Text: "bridge requests are accepted only from a MUC service gavel governs with bridge: true"})
		return MUC{}, false
	}
	return mu, true
}

// bridgeOf returns the MUC whose bridge module from is: a MUC service gavel
// governs with Bridge set, speaking as its own domain (the server stamps
// from; only the MUC component can send as its domain).
func (m *Moderation) bridgeOf(from string) (MUC, bool) {
	d, err := jidprep.Domain(from)
	mu, ok := m.mucs[d]
	if err != nil || !ok || !mu.Bridge || strings.ContainsAny(from, "@/") {
		return MUC{}, false
	}
	return mu, true
}

// bridgeJoin handles a join request from a MUC's bridge module.
func (m *Moderation) bridgeJoin(sess *session, st *stanza) {
	mu, ok := m.bridgeSender(sess, st)
	if !ok {
		return
	}
	m.metrics.bridgeRequest("join")
	j := st.BridgeJoin
	m.knockAs(sess, st, joinerReq{
		full: strings.TrimSpace(j.JID), room: j.Room, token: j.Token,
		bridgeMUC: mu.Domain, identity: j.Identity, newRoom: j.New == "true",
	})
}

// bridgeRoom handles a room event from a MUC's bridge module: a room
// created is entered at once (no polling); a room destroyed is forgotten
// if gavel was not in it (if it was, its own presence told it).
func (m *Moderation) bridgeRoom(sess *session, st *stanza) {
	mu, ok := m.bridgeSender(sess, st)
	if !ok {
		return
	}
	j := st.BridgeRoom
	roomJID := bareOf(j.JID)
	if roomJID == "" || domainOf(roomJID) != mu.Domain || !strings.Contains(roomJID, "@") {
		m.c.replyError(sess, st, &stanzaError{Type: "modify", Condition: "bad-request", Text: "jid must be a room of " + mu.Domain})
		return
	}
	switch j.Event {
	case "created":
		m.metrics.bridgeRequest("created")
		m.mu.Lock()
		delete(m.dormant, roomJID)
		m.mu.Unlock()
		// Not fresh: the creator's affiliation is what gavel answered for
		// its join, not the server's doing. The server check's rooms are
		// gavel's own, not governed.
		if !isCheckRoom(roomJID) {
			m.deliver(roomJID, true, event{kind: evAdopt})
		}
	case "destroyed":
		m.metrics.bridgeRequest("destroyed")
		m.deliver(roomJID, false, event{kind: evCommand, cmd: func(r *room) error {
			if r.state != joined || r.watching() {
				r.failDeferred(knockRoomUnavailable, "the room was destroyed")
				r.stopJoinTimer()
				r.reset()
			}
			return nil
		}})
	default:
		m.c.replyError(sess, st, &stanzaError{Type: "modify", Condition: "bad-request", Text: "event must be created or destroyed"})
		return
	}
	m.c.reply(sess, st, nil)
}

// stampedIdentity returns the identity the server stamped for a bridge
// joiner, when the MUC trusts identities and the joiner's domain passed
// the identity check.
func (m *Moderation) stampedIdentity(muc MUC, bare string, el *identityEl) (policy.Identity, bool) {
	if el == nil || !muc.TrustIdentity {
		return policy.Identity{}, false
	}
	ready, trusted := m.identityTrusted(muc.Domain, domainOf(bare))
	if !ready || !trusted {
		return policy.Identity{}, false
	}
	return identityOfElement(el), true
}

// bridgeKnock settles a bridge join the room can answer without the
// policy's decision, or before gavel is in the room; it reports whether
// it did.
func (r *room) bridgeKnock(k *knockReq) bool {
	if !k.bridge {
		return false
	}
	if !k.id.HasToken && r.knocked(k.full) {
		// The joiner knocked and gavel granted it: what it was granted is
		// set already.
		r.answerGrant(k, policy.Grant{Affiliation: r.pol.Known(k.bare), Reason: "knocked"}, "")
		return true
	}
	if r.state != joined && k.newRoom {
		// The join creates the room: nobody else is there, and gavel
		// cannot enter before the creator has (the module tells gavel
		// when it has: "created").
		r.decide(k)
		return true
	}
	return false
}

// bridgeActions drops the joiner's own affiliation set where the bridge
// module applies it at pre-join instead: for bridge joins, and for knocks
// into a MUC with a bridge (the knocker's join asks the module, which
// asks gavel, which answers with what the knock was granted). The module
// writes it without Prosody's announcement to the room and without a
// muc#admin round trip. A knocker already present (a refreshed token) is
// changed by gavel as before: no join will follow. Before gavel is in the
// room nothing else can be performed; the policy's other actions are
// found again when gavel enters (Reconcile).
func (r *room) bridgeActions(k *knockReq, acts []policy.Action) []policy.Action {
	switch {
	case k.bridge && r.state != joined:
		return nil
	case !k.bridge && (!r.muc.Bridge || r.barePresent(k.bare)):
		return acts
	}
	return slices.DeleteFunc(slices.Clone(acts), func(a policy.Action) bool {
		return a.Kind == policy.ActionSetAffiliation && a.BareJID == k.bare
	})
}

// withPendingGrants adds to affs, the room's affiliations as gavel reads
// them back, what gavel granted joins still on their way in. Through the
// bridge the module writes a joiner's affiliation at its pre-join, after
// gavel's answer, so until the join the room's lists cannot show it (a
// room's creator is asked before it exists). Read back meanwhile (gavel
// starts following the room just then), the grant would be taken as
// revoked and the affiliation the join brings as someone else's: an
// owner that clear_on_leave never clears.
func (r *room) withPendingGrants(affs map[string]policy.Affiliation) {
	if !r.muc.Bridge || r.pol.Pending() == 0 {
		return
	}
	for _, p := range r.pol.Snapshot().Pending {
		if r.watching() && r.restoredKnocks[p.FullJID] {
			continue // not on its way in: catchUpKnocks
		}
		if _, ok := affs[p.BareJID]; !ok && p.Affiliation > policy.None {
			affs[p.BareJID] = p.Affiliation
		}
	}
}

// barePresent reports whether an occupant of bare JID bare is in the room.
func (r *room) barePresent(bare string) bool {
	for o := range r.pol.Occupants() {
		if o.BareJID == bare {
			return true
		}
	}
	return false
}

// answerGrant answers a granted knock or bridge join.
func (r *room) answerGrant(k *knockReq, grant policy.Grant, expires string) {
	m := r.m
	name := "knock"
	ns := NSKnock
	if k.bridge {
		name, ns = "join", NSBridge
	}
	role := grant.Role.String()
	if k.bridge && grant.Role == policy.RoleNone {
		role = "" // the server's default role for the affiliation
	}
	m.c.reply(k.sess, k.st, func(b *xb) {
		b.empty(name, "xmlns", ns, "room", r.jid,
			"affiliation", grant.Affiliation.String(), "role", role,
			"reason", grant.Reason, "expires", expires)
	})
	m.count(knockGranted, k.started)
	m.log.Debug("knock granted", zap.String("from", k.full), zap.String("room", r.jid), zap.Bool("bridge", k.bridge),
		zap.String("affiliation", grant.Affiliation.String()), zap.String("role", role), zap.String("reason", grant.Reason),
		zap.Duration("took", time.Duration(m.now().Sub(k.started))))
}
