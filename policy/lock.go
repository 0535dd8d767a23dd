package policy

import (
	"errors"
	"slices"
	"time"
)

// This file holds a meeting's run-time options beyond roles and policy: its
// own bound on participants (SetMaxParticipants), and its lock. While a
// room is locked, a knock that would not make a host (an owner) is held
// (Hold): the caller asks the hosts present, and answers the knock when a
// host admits or denies it (AnswerHeld), or refuses it once HoldTimeout has
// passed (ExpireHolds). Hosts enter directly. All of it is kept in the
// Snapshot's Settings but the held knocks themselves: they are IQs waiting
// on one connection, and end with it (DropHolds).

// Defaults of the lock.
const (
	DefaultHoldTimeout = 60 * time.Second
	DefaultMaxHeld     = 20
)

// Errors of AnswerHeld.
var (
	ErrNoHeldKnock = errors.New("policy: no such held knock")
	ErrNotHost     = errors.New("policy: only a host in the room may admit")
)

// HeldKnock is a knock a locked room holds for a host's answer.
type HeldKnock struct {
	// ID names the request in the hosts' forms; the caller chooses it,
	// unguessable.
	ID               string
	BareJID, FullJID string
	UserID           string
	// Name is the knocker's display name (the token's), if any.
	Name string
	// Until is when the knock is refused without an answer (Hold sets it).
	Until time.Time
}

// LockVerdict is what the lock says about a knock.
type LockVerdict uint8

// The verdicts of Hold.
const (
	LockPass   LockVerdict = iota // not locked, or a host: decide as usual
	LockHold                      // held: ask the hosts present
	LockNoHost                    // locked and no host is here to admit: refuse
	LockBusy                      // locked and MaxHeld knocks wait already: refuse
)

// Locked reports whether the room is locked.
func (r *Room) Locked() bool { return r.rt.locked }

// SetLocked locks or unlocks the room. Unlocking releases the held knocks:
// it returns them, for the caller to decide as if they had just come
// (Knock). Locking lets present occupants stay.
func (r *Room) SetLocked(locked bool) []HeldKnock {
	r.rt.locked = locked
	if locked {
		return nil
	}
	out := r.rt.held
	r.rt.held = nil
	return out
}

// SetMaxParticipants bounds this room's occupants with voice, over
// Options.MaxParticipants; zero goes back to the option. Present occupants
// keep their roles: the bound applies to later joiners.
func (r *Room) SetMaxParticipants(n int) {
	r.rt.max = max(n, 0)
}

// maxParticipants is the bound in force.
func (r *Room) maxParticipants() int {
	if r.rt.max > 0 {
		return r.rt.max
	}
	return r.opts.MaxParticipants
}

// KeepSettingsUntil asks that the room's settings be kept at least until t
// while nobody is in the room (SnapshotSettings.KeepUntil); a later t wins.
func (r *Room) KeepSettingsUntil(t time.Time) {
	if k := unixNano(t); k > r.rt.keepUntil {
		r.rt.keepUntil = k
	}
}

// isHost reports whether a knock of bare with id enters a locked room
// directly: its token or an admin's role makes it a moderator, it holds
// the owner affiliation already, or it is an auto-owner coming back.
func (r *Room) isHost(bare string, id Identity, n int64) bool {
	if e, ok := r.adminRoleOf(bare, id.UserID, n); ok {
		return e.role == AdminModerator
	}
	if id.Moderator && !id.Viewer || r.affOf(bare) == Owner {
		return true
	}
	return r.kind == AutoOwner && r.returning(bare, id.UserID, n)
}

// hostHere reports whether a host (a non-bot owner or moderator) is in
// the room to answer.
func (r *Room) hostHere() bool {
	return slices.ContainsFunc(r.occ, func(o occupant) bool {
		return o.flags&fBot == 0 && (o.aff == Owner || o.role == Moderator)
	})
}

// LockAdmits reports whether the lock lets bare (with id) in at once: the
// room is not locked, or bare is a host. A joiner that cannot wait for a
// host's answer (a bridge join) is refused otherwise.
func (r *Room) LockAdmits(bare string, id Identity, now time.Time) bool {
	return !r.rt.locked || r.isHost(bare, id, now.UnixNano())
}

// Hold decides whether the lock holds a knock of k.BareJID with id, and
// holds it (with k.ID) when it does. A knock of the same full JID held
// already is replaced: the caller refuses the old one.
func (r *Room) Hold(k HeldKnock, id Identity, now time.Time) (LockVerdict, []HeldKnock) {
	n := now.UnixNano()
	if !r.rt.locked || r.isHost(k.BareJID, id, n) {
		return LockPass, nil
	}
	if !r.hostHere() {
		return LockNoHost, nil
	}
	var replaced []HeldKnock
	r.rt.held = slices.DeleteFunc(r.rt.held, func(h HeldKnock) bool {
		if h.FullJID == k.FullJID {
			replaced = append(replaced, h)
			return true
		}
		return false
	})
	maxHeld := r.opts.MaxHeld
	if maxHeld <= 0 {
		maxHeld = DefaultMaxHeld
	}
	if len(r.rt.held) >= maxHeld {
		return LockBusy, replaced
	}
	wait := r.opts.HoldTimeout
	if wait <= 0 {
		wait = DefaultHoldTimeout
	}
	k.Until = time.Unix(0, n+int64(wait)).UTC()
	r.rt.held = append(r.rt.held, k)
	r.bump(n + int64(wait))
	return LockHold, replaced
}

// HeldKnocks returns the knocks held, oldest first.
func (r *Room) HeldKnocks() []HeldKnock { return slices.Clone(r.rt.held) }

// AnswerHeld takes held knock id off the list for a host's answer: by is
// the bare JID of the answering occupant, which must be a host in the
// room (ErrNotHost). The caller admits (Knock, then the join) or refuses
// the knock it returns.
func (r *Room) AnswerHeld(id, by string) (HeldKnock, error) {
	i := slices.IndexFunc(r.rt.held, func(h HeldKnock) bool { return h.ID == id })
	if i < 0 {
		return HeldKnock{}, ErrNoHeldKnock
	}
	if !slices.ContainsFunc(r.occ, func(o occupant) bool {
		return o.bare == by && o.flags&fBot == 0 && (o.aff == Owner || o.role == Moderator)
	}) {
		return HeldKnock{}, ErrNotHost
	}
	h := r.rt.held[i]
	r.rt.held = slices.Delete(r.rt.held, i, i+1)
	return h, nil
}

// ExpireHolds takes off and returns the held knocks whose wait is over at
// now, for the caller to refuse; and those held while no host is left to
// answer them.
func (r *Room) ExpireHolds(now time.Time) []HeldKnock {
	n := now.UnixNano()
	host := r.hostHere()
	var out []HeldKnock
	r.rt.held = slices.DeleteFunc(r.rt.held, func(h HeldKnock) bool {
		if !host || unixNano(h.Until) <= n {
			out = append(out, h)
			return true
		}
		return false
	})
	return out
}

// DropHolds takes off and returns every held knock (the connection they
// came on ended, or gavel stops).
func (r *Room) DropHolds() []HeldKnock {
	out := r.rt.held
	r.rt.held = nil
	return out
}

// bumpHeld keeps the next deadline no later than the first held knock's
// end (settle).
func (r *Room) bumpHeld(n int64) {
	for _, h := range r.rt.held {
		if u := unixNano(h.Until); u > n {
			r.bump(u)
		}
	}
}
