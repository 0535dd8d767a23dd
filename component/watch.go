package component

import (
	"context"
	"encoding/xml"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/policy"
)

// This file lets gavel govern a bridged MUC's rooms without being in them
// ("watching"). mod_gavel_bridge reports every occupant presence a room
// broadcasts (a one-way <occupant/> message; one component stream keeps
// them in order), answers gavel's request for a room's occupants in join
// order (<occupants/>) and for the rooms that have occupants (<rooms/>),
// and lets gavel set roles and kick without being a moderator occupant
// (docs/protocol.md, "The bridge"). The room worker runs as it does when
// gavel is an occupant: entering a room is asking for its occupants, a
// report is a presence. Affiliations for JIDs not in the room go to the
// module too (<affiliation/>), which writes them without an announcement.
// The answer to that request is handed to the room
// by the read loop itself (session.iqThen), so the reports that arrived
// before it, which it already contains, are told apart from those after.
//
// A module that does not know these requests (an older one, or one with
// gavel_bridge_occupants = false) answers them with an error: gavel then
// enters the MUC's rooms as an occupant, as without the bridge.

var nameBridgeOccupant = xml.Name{Space: NSBridge, Local: "occupant"}

// bridgeOccupantEl is one occupant's presence as the room broadcast it:
// a report, or an item of an <occupants/> answer.
type bridgeOccupantEl struct {
	From     string      `xml:"from,attr"` // room@service/nick
	Type     string      `xml:"type,attr"` // "" or unavailable
	MUCUser  *mucUser    `xml:"http://jabber.org/protocol/muc#user x"`
	Identity *identityEl `xml:"identity"`
}

// bridgeOccupantsEl answers a request for a room's occupants.
type bridgeOccupantsEl struct {
	Room      string             `xml:"room,attr"`
	Exists    string             `xml:"exists,attr"`
	Occupants []bridgeOccupantEl `xml:"occupant"`
}

// bridgeRoomsEl answers a request for the rooms that have occupants.
type bridgeRoomsEl struct {
	Rooms []struct {
		JID string `xml:"jid,attr"`
	} `xml:"room"`
}

// presence returns the report as the presence gavel would have received
// as an occupant.
func (o *bridgeOccupantEl) presence() *stanza {
	return &stanza{XMLName: xml.Name{Local: "presence"}, From: o.From, Type: o.Type, MUCUser: o.MUCUser, Identity: o.Identity}
}

// unsupported reports whether err is the answer of a module that does not
// know gavel's request (or of a server with no module at all).
func unsupported(err error) bool {
	var se *stanzaError
	return errors.As(err, &se) && (se.Condition == "feature-not-implemented" || se.Condition == "service-unavailable")
}

// watches reports whether gavel governs the rooms of MUC domain from its
// bridge's reports, outside the rooms.
func (m *Moderation) watches(mu MUC) bool {
	if !mu.Bridge {
		return false
	}
	_, off := m.noWatch.Load(mu.Domain)
	return !off
}

// stopWatching makes gavel enter the rooms of mu as an occupant: its
// bridge module does not report occupants.
func (m *Moderation) stopWatching(mu MUC, why error) {
	if _, was := m.noWatch.LoadOrStore(mu.Domain, true); !was {
		m.log.Warn("the bridge module does not report occupants: gavel enters the rooms instead (update mod_gavel_bridge, or set gavel_bridge_occupants = true)",
			zap.String("muc", mu.Domain), zap.Error(why))
	}
}

func (r *room) watching() bool { return r.m.watches(r.muc) }

// bridgeReport routes an occupant report from a MUC's bridge module to its
// room. Reports that are not from a bridge gavel watches are dropped (a
// message needs no answer).
func (m *Moderation) bridgeReport(_ *session, st *stanza) {
	mu, ok := m.bridgeOf(st.From)
	if !ok || !m.watches(mu) {
		return
	}
	o := st.BridgeOccupant
	roomJID, nick, ok := strings.Cut(o.From, "/")
	roomJID = bareOf(roomJID)
	if !ok || nick == "" || domainOf(roomJID) != mu.Domain || !strings.Contains(roomJID, "@") {
		return
	}
	m.metrics.bridgeRequest("occupant")
	if isCheckRoom(roomJID) {
		return // gavel's own, for the server check: not governed
	}
	// A leave from a room gavel does not govern needs nothing.
	m.deliver(roomJID, o.Type != "unavailable", event{kind: evPresence, st: o.presence(), nick: nick, report: true})
}

// onReport handles an occupant report.
func (r *room) onReport(st *stanza, nick string) {
	switch {
	case !r.watching():
		// The MUC fell back to occupancy: presence tells.
	case st.MUCUser != nil && st.MUCUser.Destroy != nil:
		// The room is being destroyed: one report per occupant follows.
		if r.state != idle {
			r.stopJoinTimer()
			r.failDeferred(knockRoomUnavailable, "the room was destroyed")
			r.destroyed = true
			r.reset()
		}
	case r.state == idle:
		// A room gavel does not watch yet: the answer to its request for
		// the occupants holds this one.
		if st.Type != "unavailable" {
			r.enter()
		}
	default:
		r.onOccupant(st, nick)
	}
}

// quietAffiliation reports whether a is sent to the bridge module rather
// than to the room: an affiliation (not a ban: the server must remove a
// banned occupant) for a JID with no occupant in a room gavel watches. The
// module writes it without the announcement Prosody sends the occupants
// for every change to an absent JID (clear_on_leave's resets, revocations
// at expiry after the leave), as it writes grants at pre-join.
func (r *room) quietAffiliation(a policy.Action) bool {
	return a.Affiliation != policy.Outcast && r.watching() && !r.barePresent(a.BareJID)
}

// catchUpKnocks runs when gavel is back in a watched room after its
// restart: a granted knock (a bridge join) it had answered before it went
// away, whose joiner is not in the room now, came and went while gavel
// could not see it (the module waits for no more than its timeout, so it
// is not on its way in). Its grant is released as for a leave, and
// auto-owner promotes in its place. Without this the departed owner's
// grant stood as "on its way in": nobody was promoted, and it came back
// as owner whatever its token said (gavel-soak's bridge scenario).
func (r *room) catchUpKnocks(present []policy.Presence, now time.Time) []policy.Action {
	restored := r.restoredKnocks
	r.restoredKnocks = nil
	if !r.watching() || len(restored) == 0 {
		return nil
	}
	here := make(map[string]bool, len(present))
	for _, p := range present {
		here[p.FullJID] = true
	}
	var acts []policy.Action
	for full := range restored {
		if !here[full] {
			acts = append(acts, r.pol.PendingGone(full, now)...)
		}
	}
	return acts
}

// requestOccupants asks the bridge module for the room's occupants; the
// answer comes to the worker as evWatched for join number gen.
func (r *room) requestOccupants(gen uint64) {
	r.sess.iqThen(r.m.c.opts.Domain, r.muc.Domain, "get", func(b *xb) {
		b.empty("occupants", "xmlns", NSBridge, "room", r.jid)
	}, func(st *stanza, err error) {
		r.push(event{kind: evWatched, st: st, err: err, gen: gen})
	})
}

// onWatched takes the bridge's answer with the room's occupants: gavel
// governs the room from here on, as if it had entered it.
func (r *room) onWatched(st *stanza, err error) {
	m := r.m
	switch {
	case err == nil && st.BridgeOccupants != nil:
	case unsupported(err):
		m.stopWatching(r.muc, err)
		r.stopJoinTimer()
		r.join()
		return
	case errors.Is(err, ErrNotConnected):
		return // evDisconnected follows
	default:
		// The join timeout asks again.
		m.log.Debug("the bridge did not tell the room's occupants", zap.String("room", r.jid), zap.Error(err))
		return
	}
	a := st.BridgeOccupants
	present := make([]policy.Presence, 0, len(a.Occupants))
	for _, o := range a.Occupants {
		_, nick, ok := strings.Cut(o.From, "/")
		if !ok || nick == "" || o.MUCUser == nil || len(o.MUCUser.Items) == 0 {
			continue
		}
		item := o.MUCUser.Items[0]
		aff, _ := policy.ParseAffiliation(item.Affiliation)
		role, _ := policy.ParseRole(item.Role)
		r.noteIdentity(item.JID, o.Identity)
		present = append(present, policy.Presence{Nick: nick, FullJID: item.JID, BareJID: bareOf(item.JID), Affiliation: aff, Role: role})
	}
	r.present = present
	// A room that does not exist has no lists to read back: the joiner
	// gavel admits creates it.
	r.entered(false, a.Exists != "false")
}

// watchRooms asks the bridge module of mu for the rooms that have
// occupants and governs each: at every connection, for the rooms created
// while gavel was away.
func (m *Moderation) watchRooms(sess *session, mu MUC) {
	defer m.loops.Done()
	ctx, cancel := context.WithTimeout(context.Background(), sess.iqTimeout)
	defer cancel()
	res, err := sess.iq(ctx, m.c.opts.Domain, mu.Domain, "get", func(b *xb) {
		b.empty("rooms", "xmlns", NSBridge)
	})
	switch {
	case err == nil && res.BridgeRooms != nil:
	case unsupported(err):
		m.stopWatching(mu, err)
		return
	default:
		if !errors.Is(err, ErrNotConnected) {
			m.log.Warn("the bridge did not list its rooms", zap.String("muc", mu.Domain), zap.Error(err))
		}
		return
	}
	n := 0
	for _, it := range res.BridgeRooms.Rooms {
		j := bareOf(it.JID)
		if domainOf(j) != mu.Domain || !strings.Contains(j, "@") || isCheckRoom(j) {
			continue
		}
		if m.deliver(j, true, event{kind: evAdopt}) {
			n++
		}
	}
	m.log.Debug("bridge rooms listed", zap.String("muc", mu.Domain), zap.Int("rooms", n))
}
