package component

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// This file holds the connect-time server check: is gavel owner in rooms
// it did not create? Prosody 0.12 makes a MUC's component admins owners
// in every room; Prosody 13 does so only with
// component_admins_as_room_owners = true on the MUC component. Without
// it, gavel can govern only the rooms it created itself (through knocks):
// in rooms Jicofo or clients created, reading the configuration or the
// owner list is refused with auth/forbidden, which would otherwise show
// only later, room by room.
//
// The check, once per session and MUC, in a throwaway room named
// checkRoomPrefix + a hash of gavel's component name:
//
//  1. gavel joins it under a resource of its own (the room is created and
//     gavel, its creator, is owner by affiliation);
//  2. gavel makes checkNode@<component> owner: a JID of gavel's own domain
//     that is not a MUC admin, standing in for "somebody else";
//  3. gavel removes its own affiliation (a server that makes admins owners
//     everywhere may refuse that; the others accept);
//  4. gavel asks for the room's configuration form (muc#owner get): a
//     result means gavel is owner without an affiliation, as in any room
//     somebody else created; auth/forbidden means it is not;
//  5. checkNode@<component>, still owner, destroys the room.
//
// gavel leaves the room when it stops during a check (leaveCheckRooms).
//
// A server where the check cannot run (the room cannot be created, no
// answer) is logged as a warning and counts as passed: the check reports
// only what it saw.

// checkRoomPrefix starts the name of the check's rooms; room discovery
// leaves such rooms alone.
const checkRoomPrefix = "gavel-server-check-"

// checkNode is the node of the stand-in for "somebody else".
const checkNode = "gavel-server-check"

// checkTimeout bounds each request of the check.
const checkTimeout = 5 * time.Second

// OwnershipError says that gavel is not owner in rooms it did not create
// on a MUC, and what to set on the server.
type OwnershipError struct {
	// MUC is the conference domain.
	MUC string
	// Relied is set when the MUC's settings need the ownership (room
	// discovery or identity trust: rooms Jicofo or clients create).
	Relied bool
	// Detail is the server's refusal.
	Detail string
}

func (e *OwnershipError) Error() string {
	return fmt.Sprintf("component: gavel is not owner in rooms of %s that it did not create (%s): set component_admins_as_room_owners = true under Component %q \"muc\" in Prosody's config and restart Prosody (Prosody 13 makes component admins room owners only with it); on ejabberd, give the component the MUC's access_admin",
		e.MUC, e.Detail, e.MUC)
}

// isCheckRoom reports whether roomJID is a room of the server check.
func isCheckRoom(roomJID string) bool {
	return strings.HasPrefix(roomJID, checkRoomPrefix)
}

// ServerCheck returns the findings of the connect-time server check that
// make gavel unfit for its configuration: an *OwnershipError for each MUC
// whose settings rely on ownership gavel does not have. It is nil before
// the check ran and when nothing is wrong. /readyz reports it.
func (m *Moderation) ServerCheck() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, d := range slices.Sorted(maps.Keys(m.ownership)) {
		if e := m.ownership[d]; e != nil && e.Relied {
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}

// checkOwnership runs the server check for one MUC and session, and logs
// what it found: an error where the MUC's settings rely on the ownership,
// a warning elsewhere (rooms clients create before knocking cannot be
// governed either).
func (m *Moderation) checkOwnership(sess *session, muc MUC) {
	defer m.loops.Done()
	owner, detail, err := m.probeOwnership(sess, muc.Domain)
	if sess.closed.Load() {
		return
	}
	// Rooms Jicofo or clients create: found by polling, admitted by
	// identity, or joined through the bridge (whose grants, bans and
	// revocations in them need ownership).
	relied := muc.Discover || muc.TrustIdentity || muc.Bridge
	var found *OwnershipError
	if err == nil && !owner {
		found = &OwnershipError{MUC: muc.Domain, Relied: relied, Detail: detail}
	}
	// The finding is in place (for /readyz) before it is logged.
	m.mu.Lock()
	if m.sess == sess {
		if m.ownership == nil {
			m.ownership = map[string]*OwnershipError{}
		}
		m.ownership[muc.Domain] = found
	}
	m.mu.Unlock()
	switch {
	case err != nil:
		m.log.Warn("server check: could not tell whether gavel is owner in rooms it did not create", zap.String("muc", muc.Domain), zap.Error(err))
	case found == nil:
		m.log.Debug("server check: gavel is owner in rooms it did not create", zap.String("muc", muc.Domain))
	case relied:
		m.log.Error("server check failed: rooms created by Jicofo or clients cannot be governed (discover_rooms, trust_identity, bridge)", zap.String("muc", muc.Domain), zap.String("problem", found.Error()))
	default:
		m.log.Warn("server check: gavel governs only the rooms it creates through knocks; rooms clients create cannot be governed (restrict room creation, or fix the server)", zap.String("muc", muc.Domain), zap.String("problem", found.Error()))
	}
}

// probeOwnership runs steps 1 to 5 on muc. owner is the finding, detail
// the refusal that showed it; err says why there is no finding.
func (m *Moderation) probeOwnership(sess *session, muc string) (owner bool, detail string, err error) {
	// One room per component name: a check cut short (the connection
	// dropped) leaves gavel's occupant behind as a ghost, and the next
	// check removes that room first.
	sum := sha256.Sum256([]byte(m.c.opts.Domain))
	roomJID := checkRoomPrefix + hex.EncodeToString(sum[:6]) + "@" + muc
	occupant := m.c.opts.Domain + "/" + checkNode + "-" + randomSuffix() + randomSuffix()
	other := checkNode + "@" + m.c.opts.Domain
	ask := func(from, typ string, payload func(*xb)) error {
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		defer cancel()
		_, err := sess.iq(ctx, from, roomJID, typ, payload)
		return err
	}
	destroy := func(b *xb) {
		b.open("query", "xmlns", nsMUCOwner).open("destroy").elem("reason", "gavel's server check").close("destroy").close("query")
	}
	// A leftover room: its owner is the stand-in. Ask first whether there
	// is one: ejabberd makes a missing room for an owner request from a
	// service admin (the stand-in is one there), and a join right after
	// that room's destruction can go unanswered.
	if ask(m.c.opts.Domain, "get", func(b *xb) { b.empty("query", "xmlns", nsDiscoInfo) }) == nil {
		_ = ask(other, "set", destroy)
	}
	cr := &checkRoom{occupant: occupant, self: make(chan *stanza, 1)}
	m.mu.Lock()
	if m.checkRooms == nil {
		m.checkRooms = map[string]*checkRoom{}
	}
	m.checkRooms[roomJID] = cr
	m.mu.Unlock()
	var b xb
	b.open("presence", "from", occupant, "to", roomJID+"/"+checkNode)
	b.open("x", "xmlns", nsMUC).empty("history", "maxstanzas", "0").close("x")
	b.close("presence")
	if err := sess.write(b.Bytes()); err != nil {
		return false, "", err
	}
	defer func() {
		// The stand-in owner destroys the room (also when gavel is no
		// longer owner), and gavel leaves whatever remains.
		_ = ask(other, "set", destroy)
		var b xb
		b.empty("presence", "from", occupant, "to", roomJID+"/"+checkNode, "type", "unavailable")
		_ = sess.write(b.Bytes())
		m.mu.Lock()
		delete(m.checkRooms, roomJID)
		m.mu.Unlock()
	}()
	// 1. The room's answer to the join: gavel's own presence in it.
	t := time.NewTimer(checkTimeout)
	defer t.Stop()
	select {
	case st := <-cr.self:
		if st.Type == "error" {
			var err error = &stanzaError{Type: "cancel", Condition: "undefined-condition"}
			if st.Error != nil {
				err = st.Error
			}
			return false, "", fmt.Errorf("creating a room: %w", err)
		}
	case <-t.C:
		return false, "", fmt.Errorf("creating a room: no answer to the join within %v", checkTimeout)
	case <-sess.done:
		return false, "", ErrNotConnected
	}
	// 2.
	err = ask(occupant, "set", func(b *xb) {
		b.open("query", "xmlns", nsMUCAdmin).empty("item", "jid", other, "affiliation", "owner").close("query")
	})
	if err != nil {
		return false, "", fmt.Errorf("creating a room and making %s its owner: %w", other, err)
	}
	// 3. A refusal says the server keeps admins owners (Prosody 0.12, or
	// 13 with the option: not-acceptable; ejabberd: not-allowed); step 4
	// confirms either way.
	err = ask(occupant, "set", func(b *xb) {
		b.open("query", "xmlns", nsMUCAdmin).empty("item", "jid", m.c.opts.Domain, "affiliation", "none").close("query")
	})
	var se *stanzaError
	if err != nil && !(errors.As(err, &se) && (se.Condition == "not-acceptable" || se.Condition == "not-allowed")) {
		return false, "", fmt.Errorf("removing gavel's own affiliation: %w", err)
	}
	// 4.
	err = ask(occupant, "get", func(b *xb) { b.empty("query", "xmlns", nsMUCOwner) })
	switch {
	case err == nil:
		return true, "", nil
	case errors.As(err, &se) && (se.Condition == "forbidden" || se.Condition == "not-allowed"):
		return false, "reading a room's configuration: " + se.Type + "/" + se.Condition, nil
	default:
		return false, "", fmt.Errorf("reading the room's configuration: %w", err)
	}
}

// checkRoom is a room of a check in progress: gavel's occupant JID there,
// and where its join's answer goes.
type checkRoom struct {
	occupant string
	self     chan *stanza
}

// checkPresence takes a presence from a check's room (roomJID is bare and
// prepared): the answer to the check's join is handed to it, the rest
// dropped. It reports whether the presence was the check's.
func (m *Moderation) checkPresence(roomJID, nick string, st *stanza) bool {
	if !isCheckRoom(roomJID) {
		return false
	}
	m.mu.Lock()
	cr := m.checkRooms[roomJID]
	m.mu.Unlock()
	if cr != nil && nick == checkNode && st.To == cr.occupant {
		select {
		case cr.self <- st:
		default: // answered already
		}
	}
	return true
}

// leaveCheckRooms writes to b the presences that leave the rooms of checks
// in progress (at shutdown). The caller holds m.mu.
func (m *Moderation) leaveCheckRooms(b *xb) {
	for roomJID, cr := range m.checkRooms {
		b.empty("presence", "from", cr.occupant, "to", roomJID+"/"+checkNode, "type", "unavailable")
	}
}
