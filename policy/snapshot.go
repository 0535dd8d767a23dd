package policy

import (
	"slices"
	"time"
)

// Snapshot is the part of a room's policy state that must outlive gavel's
// own process: the affiliations gavel granted (with the expiry of the token
// behind each), the occupants it knew in join order (the auto-owner order)
// with what their knock said, and the granted knocks still waiting for
// their join. Everything else is read back from the server on rejoin.
type Snapshot struct {
	Grants    []SnapshotGrant
	Occupants []SnapshotOccupant
	Pending   []SnapshotPending
	// Unapplied are affiliation changes that never reached the server
	// (Unapplied): only BareJID and Affiliation are set.
	Unapplied []SnapshotGrant
	// Settings are the admins' run-time decisions (roles.go).
	Settings SnapshotSettings
}

// SnapshotGrant is an affiliation gavel granted a bare JID.
type SnapshotGrant struct {
	BareJID     string
	Affiliation Affiliation
	// Expires is the expiry of the token behind the grant (zero: none);
	// Expired is set once it passed while its holder stayed.
	Expires time.Time
	Expired bool
}

// SnapshotOccupant is an occupant as gavel knew it.
type SnapshotOccupant struct {
	Nick, FullJID, BareJID, UserID string
	Joined, TokenExpires           time.Time
	Knocked, Token, Moderator      bool
	Viewer, Guest, Bot, Demoted    bool
}

// SnapshotPending is a granted knock waiting for its join.
type SnapshotPending struct {
	FullJID, BareJID, UserID, Reason string
	Until, Expires, TokenExpires     time.Time
	Affiliation, Base                Affiliation
	Role                             Role
	Token, Moderator, Viewer, Guest  bool
}

// Snapshot returns the room's durable state. Two snapshots of an unchanged
// room are equal (sorted, no map order).
func (r *Room) Snapshot() Snapshot {
	s := Snapshot{Settings: r.Settings()}
	for bare, st := range r.affs {
		if !st.granted {
			continue
		}
		s.Grants = append(s.Grants, SnapshotGrant{BareJID: bare, Affiliation: st.aff, Expires: unixTime(st.expires), Expired: st.expired})
	}
	slices.SortFunc(s.Grants, func(a, b SnapshotGrant) int { return compareStrings(a.BareJID, b.BareJID) })
	for i := range r.occ {
		o := &r.occ[i]
		s.Occupants = append(s.Occupants, SnapshotOccupant{
			Nick: o.nick, FullJID: o.full, BareJID: o.bare, UserID: o.userID,
			Joined: unixTime(o.joined), TokenExpires: unixTime(o.tokenExp),
			Knocked: o.flags&fKnocked != 0, Token: o.flags&fToken != 0, Moderator: o.flags&fModerator != 0,
			Viewer: o.flags&fViewer != 0, Guest: o.flags&fGuest != 0, Bot: o.flags&fBot != 0, Demoted: o.flags&fDemoted != 0,
		})
	}
	for bare, aff := range r.unapplied {
		s.Unapplied = append(s.Unapplied, SnapshotGrant{BareJID: bare, Affiliation: aff})
	}
	slices.SortFunc(s.Unapplied, func(a, b SnapshotGrant) int { return compareStrings(a.BareJID, b.BareJID) })
	for _, p := range r.pending {
		s.Pending = append(s.Pending, SnapshotPending{
			FullJID: p.full, BareJID: p.bare, UserID: p.userID, Reason: p.reason,
			Until: unixTime(p.expires), Expires: unixTime(p.exp), TokenExpires: unixTime(p.tokenExp),
			Affiliation: p.aff, Base: p.base, Role: p.role,
			Token: p.flags&fToken != 0, Moderator: p.flags&fModerator != 0, Viewer: p.flags&fViewer != 0, Guest: p.flags&fGuest != 0,
		})
	}
	return s
}

// Restore loads a snapshot into a room that has seen nothing yet (after
// NewRoom), before its first Reconcile: Reconcile then releases the
// occupants that left while gavel was away (ClearOnLeave), ends rights whose
// token expired meanwhile, keeps the stored join order for auto-owner, and
// drops knocks whose wait is over. Grants of unknown affiliations, and
// occupants or knocks without a JID, are skipped.
func (r *Room) Restore(s Snapshot) {
	r.restoreSettings(s.Settings)
	for _, g := range s.Grants {
		if g.BareJID == "" || g.Affiliation < Outcast || g.Affiliation > Owner {
			continue
		}
		exp := unixNano(g.Expires)
		r.setAff(g.BareJID, affState{aff: g.Affiliation, granted: true, expires: exp, expired: g.Expired})
		if exp != 0 {
			r.bump(exp)
		}
	}
	occ := slices.Clone(s.Occupants)
	slices.SortStableFunc(occ, func(a, b SnapshotOccupant) int { return a.Joined.Compare(b.Joined) })
	for _, so := range occ {
		if so.FullJID == "" || so.BareJID == "" || r.byFull(so.FullJID) >= 0 {
			continue
		}
		o := occupant{
			nick: so.Nick, full: so.FullJID, bare: so.BareJID, userID: so.UserID,
			joined: unixNano(so.Joined), tokenExp: unixNano(so.TokenExpires),
			aff: r.affOf(so.BareJID),
		}
		o.role = r.defaultRole(o.aff)
		for _, f := range []struct {
			on bool
			f  flags
		}{{so.Knocked, fKnocked}, {so.Token, fToken}, {so.Moderator, fModerator}, {so.Viewer, fViewer}, {so.Guest, fGuest}, {so.Bot, fBot}, {so.Demoted, fDemoted}} {
			if f.on {
				o.flags |= f.f
			}
		}
		r.occ = append(r.occ, o)
	}
	for _, u := range s.Unapplied {
		if u.BareJID != "" && u.Affiliation >= Outcast && u.Affiliation <= Owner {
			if r.unapplied == nil {
				r.unapplied = make(map[string]Affiliation)
			}
			r.unapplied[u.BareJID] = u.Affiliation
		}
	}
	for _, sp := range s.Pending {
		if sp.FullJID == "" || sp.BareJID == "" || len(r.pending) >= MaxPending {
			continue
		}
		p := pending{
			full: sp.FullJID, bare: sp.BareJID, userID: sp.UserID, reason: sp.Reason,
			expires: unixNano(sp.Until), exp: unixNano(sp.Expires), tokenExp: unixNano(sp.TokenExpires),
			aff: sp.Affiliation, base: sp.Base, role: sp.Role, flags: fKnocked,
		}
		if !sp.Token {
			p.flags |= fGuest
		} else {
			p.flags |= fToken
		}
		if sp.Moderator {
			p.flags |= fModerator
		}
		if sp.Viewer {
			p.flags |= fViewer
		}
		r.pending = append(r.pending, p)
		r.bump(p.expires)
	}
}

func unixTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
