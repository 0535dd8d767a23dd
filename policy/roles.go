package policy

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// This file holds what admins decide at run time, over the policy's
// defaults: roles set by command (for the bare JID of a present occupant,
// or for a token user id: every present and future session of that user),
// and the room's policy kind (SetKind). Both are remembered in the Snapshot,
// so they outlive reloads, reconnects and gavel's restarts, until they are
// changed, their end time passes, or the room is destroyed.

// AdminRole is a role an admin gave at run time. The zero value, AdminNone,
// lets the policy decide.
type AdminRole uint8

// The admin roles.
const (
	AdminNone        AdminRole = iota
	AdminModerator             // owner affiliation, moderator role
	AdminParticipant           // voice, no moderation
	AdminViewer                // visitor role: no voice
)

var adminRoleNames = [...]string{AdminNone: "default", AdminModerator: "moderator", AdminParticipant: "participant", AdminViewer: "viewer"}

// String returns the command word for a.
func (a AdminRole) String() string {
	if int(a) < len(adminRoleNames) {
		return adminRoleNames[a]
	}
	return fmt.Sprintf("AdminRole(%d)", uint8(a))
}

// ParseAdminRole returns the admin role named s: moderator, participant,
// viewer, or default (also "" and "none"), which clears a role set before.
func ParseAdminRole(s string) (AdminRole, error) {
	switch s {
	case "", "none":
		return AdminNone, nil
	}
	for a, name := range adminRoleNames {
		if name == s {
			return AdminRole(a), nil
		}
	}
	return 0, fmt.Errorf("policy: unknown role %q", s)
}

// ErrNoOccupant is a SetRole for a nick that is not in the room.
var ErrNoOccupant = errors.New("policy: no such occupant")

// RoleTarget says whom SetRole is for: exactly one of the fields is set.
type RoleTarget struct {
	// Nick is a present occupant; the role is remembered for its bare JID
	// (user ids are not: meeting tokens share theirs between participants).
	Nick string
	// UserID is the token user id of every present and future session.
	UserID string
}

// AdminRoleEntry is a role an admin set, as Roles lists it.
type AdminRoleEntry struct {
	// Exactly one of BareJID and UserID is set.
	BareJID, UserID string
	Role            AdminRole
	// Until is when the role ends; the zero time means with the room.
	Until time.Time
}

// roleEntry is one remembered admin role. Times are Unix nanoseconds.
type roleEntry struct {
	bare, userID string
	role         AdminRole
	until        int64
}

// runState is the state of the run-time decisions (this file, host.go):
// one field of Room, so the Room's own code stays as it is.
type runState struct {
	roles       []roleEntry
	kindSet     bool        // SetKind overrode the configured policy
	opened      bool        // an owner has been here since the room was last empty
	noHostSince int64       // since when occupants have had no owner; 0: an owner is here or nobody
	ended       bool        // the room's destroy was emitted
	away        []awayOwner // auto-owners that left, within OwnerGrace
	// lock.go: the meeting's lock, its held knocks, the per-room bound on
	// participants (0: Options.MaxParticipants) and how long settings are
	// kept for a room nobody is in.
	locked    bool
	held      []HeldKnock
	max       int
	keepUntil int64
}

// SetRole remembers role for t (AdminNone forgets the one set before) until
// until (zero: as long as the room), and applies it to the present
// occupants it selects, lowering an affiliation where the role says so.
// A role an admin set wins over the policy's defaults (token claims,
// auto-owner, all-owners) for every later knock of the same bare JID or
// user id; a token's expiry does not end it, its end time does. It returns
// how many present occupants it selects; ErrNoOccupant when t.Nick is not
// in the room.
func (r *Room) SetRole(t RoleTarget, role AdminRole, until, now time.Time) (int, []Action, error) {
	if (t.Nick == "") == (t.UserID == "") || role > AdminViewer {
		return 0, nil, errors.New("policy: SetRole needs a nick or a user id, and a known role")
	}
	n := r.begin(now)
	e := roleEntry{userID: t.UserID, role: role, until: unixNano(until)}
	if t.Nick != "" {
		i := r.byNick(t.Nick)
		if i < 0 || r.occ[i].flags&fBot != 0 {
			return 0, r.finish(n, ReasonHandover), ErrNoOccupant
		}
		e.bare = r.occ[i].bare
	}
	r.rt.roles = slices.DeleteFunc(r.rt.roles, func(x roleEntry) bool { return x.bare == e.bare && x.userID == e.userID })
	if role != AdminNone && (e.until == 0 || e.until > n) {
		r.rt.roles = append(r.rt.roles, e)
	}
	matched := 0
	for i := range r.occ {
		o := &r.occ[i]
		if o.flags&fBot != 0 || !(e.bare != "" && o.bare == e.bare || e.userID != "" && o.userID == e.userID) {
			continue
		}
		matched++
		r.reapply(i, ReasonAdminRole, n)
	}
	r.redecide(func(p *pending) bool {
		return e.bare != "" && p.bare == e.bare || e.userID != "" && p.userID == e.userID
	}, ReasonAdminRole, n)
	return matched, r.finish(n, ReasonHandover), nil
}

// Roles returns the admin roles in force, oldest first.
func (r *Room) Roles() []AdminRoleEntry {
	out := make([]AdminRoleEntry, 0, len(r.rt.roles))
	for _, e := range r.rt.roles {
		out = append(out, AdminRoleEntry{BareJID: e.bare, UserID: e.userID, Role: e.role, Until: unixTime(e.until)})
	}
	return out
}

// SetKind switches the room's policy at run time, and applies it to the
// present occupants: under all-owners every participant becomes owner;
// switching away takes back the ownership gavel granted only because of
// the policy (an auto-owner keeps it). Roles an admin set stand.
func (r *Room) SetKind(k Kind, now time.Time) []Action {
	n := r.begin(now)
	if k > AllOwners || k == r.kind && r.rt.kindSet {
		return r.finish(n, ReasonHandover)
	}
	r.kind, r.rt.kindSet = k, true
	keeper := -1
	if k == AutoOwner {
		for i := range r.occ {
			if o := &r.occ[i]; o.aff == Owner && o.flags&fBot == 0 {
				keeper = i // the longest-present owner stays
				break
			}
		}
	}
	for i := range r.occ {
		if r.occ[i].flags&fBot != 0 || i == keeper {
			continue
		}
		r.reapply(i, ReasonAdminPolicy, n)
	}
	r.redecide(func(*pending) bool { return true }, ReasonAdminPolicy, n)
	return r.finish(n, ReasonHandover)
}

// KindOverridden reports whether SetKind chose the policy in force.
func (r *Room) KindOverridden() bool { return r.rt.kindSet }

// adminRoleOf returns the admin role for bare or userID: one set for the
// bare JID wins over one set for the user id.
func (r *Room) adminRoleOf(bare, userID string, n int64) (roleEntry, bool) {
	found := -1
	for i, e := range r.rt.roles {
		if e.until != 0 && e.until <= n {
			continue
		}
		if e.bare != "" && e.bare == bare {
			return e, true
		}
		if e.userID != "" && e.userID == userID && found < 0 {
			found = i
		}
	}
	if found >= 0 {
		return r.rt.roles[found], true
	}
	return roleEntry{}, false
}

func (r *Room) occupantRole(o *occupant, n int64) AdminRole {
	if len(r.rt.roles) == 0 {
		return AdminNone
	}
	e, _ := r.adminRoleOf(o.bare, o.userID, n)
	return e.role
}

// adminClaim is the claim an admin role makes.
func adminClaim(a AdminRole) claim {
	switch a {
	case AdminModerator:
		return claimOwner
	case AdminViewer:
		return claimVisitor
	}
	return claimParticipant
}

// decideOverride answers a knock of bare when an admin role, or an
// auto-owner coming back within OwnerGrace, decides it instead of the
// policy; ok is false otherwise. Called by decide once bans and the token
// have been checked.
func (r *Room) decideOverride(bare string, id Identity, n int64) (g Grant, base Affiliation, exp int64, ok bool) {
	known := r.affOf(bare)
	if e, found := r.adminRoleOf(bare, id.UserID, n); found {
		aff, role := r.shapeOf(adminClaim(e.role), id.HasToken)
		// An admin's role lowers too, and ends at its own time, not the
		// token's.
		return Grant{Affiliation: aff, Role: role, Reason: ReasonAdminRole, SetAffiliation: aff != known}, aff, 0, true
	}
	if r.kind == AutoOwner && r.returning(bare, id.UserID, n) {
		if id.HasToken && !id.Expires.IsZero() {
			exp = id.Expires.UnixNano()
		}
		return Grant{Affiliation: Owner, Role: Moderator, Reason: ReasonOwnerReturned, SetAffiliation: known < Owner}, Owner, exp, true
	}
	return Grant{}, 0, 0, false
}

// defaultClaim is what the policy in force gives present occupant o, from
// what its knock said, without admin roles; auto-owner's pick is left to
// ensureOwner.
func (r *Room) defaultClaim(o *occupant) (claim, string) {
	c, reason := claimParticipant, ReasonTokenParticipant
	switch {
	case o.flags&fViewer != 0:
		c, reason = claimVisitor, ReasonViewer
	case o.flags&fModerator != 0:
		c, reason = claimOwner, ReasonTokenModerator
	case o.flags&fGuest != 0 && r.opts.Guests == GuestsVisitor:
		c, reason = claimVisitor, ReasonGuestVisitor
	case o.flags&fGuest != 0:
		reason = ReasonGuestMember
	}
	if r.kind == AllOwners {
		c, reason = allOwnersClaim(c, reason)
	}
	return c, reason
}

// reapply brings present occupant i to what its admin role, or else the
// policy in force, says, raising or lowering what gavel holds for it. An
// affiliation gavel did not grant is lowered only by an admin role.
func (r *Room) reapply(i int, reason string, n int64) {
	o := &r.occ[i]
	var c claim
	admin := false
	if a := r.occupantRole(o, n); a != AdminNone {
		c, reason, admin = adminClaim(a), ReasonAdminRole, true
	} else {
		c, _ = r.defaultClaim(o)
		if st, ok := r.affs[o.bare]; o.aff > Member && (!ok || !st.granted) && c != claimOwner {
			return // not gavel's to take back
		}
	}
	aff, role := r.shapeOf(c, o.flags&fToken != 0)
	if o.aff != aff {
		exp := int64(0)
		if !admin && (c == claimOwner || r.tokenMember(o, aff)) {
			exp = o.tokenExp // rights from a token end with it
		}
		r.grantAff(o.bare, aff, reason, n, exp)
		o = &r.occ[i] // setAff mirrored the affiliation and default role
	} else if st, ok := r.affs[o.bare]; ok && st.granted && admin {
		st.expires, st.expired = 0, false // the admin's role outlives the token
		r.affs[o.bare] = st
	}
	if aff <= Member && o.role != role && (role == Visitor || role == Participant) {
		r.acts = append(r.acts, Action{Kind: ActionSetRole, Nick: o.nick, Role: role, Reason: reason})
		o.role = role
	}
}

// adminApplies reports whether present occupant i has an admin role, and
// applies it: joiners that never knocked get it too. Called by unknocked.
func (r *Room) adminApplies(i int, n int64) bool {
	if r.occupantRole(&r.occ[i], n) == AdminNone {
		return false
	}
	r.reapply(i, ReasonAdminRole, n)
	return true
}

// mayAutoOwn reports whether auto-owner may pick o: an admin role other
// than moderator says who moderates.
func (r *Room) mayAutoOwn(o *occupant, n int64) bool {
	a := r.occupantRole(o, n)
	return a == AdminNone || a == AdminModerator
}

// expireRoles forgets the admin roles whose end time has passed and gives
// their present holders the policy's defaults again, and schedules the
// next end.
func (r *Room) expireRoles(n int64) {
	var ended []roleEntry
	r.rt.roles = slices.DeleteFunc(r.rt.roles, func(e roleEntry) bool {
		if e.until != 0 && e.until <= n {
			ended = append(ended, e)
			return true
		}
		if e.until != 0 {
			r.bump(e.until)
		}
		return false
	})
	for _, e := range ended {
		for i := range r.occ {
			o := &r.occ[i]
			if o.flags&fBot == 0 && (e.bare != "" && o.bare == e.bare || e.userID != "" && o.userID == e.userID) {
				r.reapply(i, ReasonAdminRole, n)
			}
		}
	}
}

// SnapshotSettings are the run-time decisions a Snapshot keeps: the admin
// roles and the policy an admin switched to. A room that empties keeps
// only these; the caller may hand them to the room's next NewRoom
// (Restore of a Snapshot with only Settings).
type SnapshotSettings struct {
	Roles []AdminRoleEntry
	// Kind is the policy SetKind chose, when KindSet.
	Kind    Kind
	KindSet bool
	// MaxParticipants overrides Options.MaxParticipants when positive
	// (SetMaxParticipants); Locked is the meeting's lock (SetLocked).
	MaxParticipants int
	Locked          bool
	// KeepUntil asks whoever keeps the settings of a room nobody is in to
	// keep them at least until then (a meeting's end); zero: no ask.
	KeepUntil time.Time
}

// IsZero reports whether s holds nothing.
func (s SnapshotSettings) IsZero() bool {
	return len(s.Roles) == 0 && !s.KindSet && s.MaxParticipants == 0 && !s.Locked && s.KeepUntil.IsZero()
}

// Settings returns the room's run-time decisions.
func (r *Room) Settings() SnapshotSettings {
	s := SnapshotSettings{Roles: r.Roles(), KindSet: r.rt.kindSet}
	if len(s.Roles) == 0 {
		s.Roles = nil
	}
	if r.rt.kindSet {
		s.Kind = r.kind
	}
	s.MaxParticipants, s.Locked, s.KeepUntil = r.rt.max, r.rt.locked, unixTime(r.rt.keepUntil)
	return s
}

// restoreSettings loads s (Restore); roles already over and unknown kinds
// are skipped.
func (r *Room) restoreSettings(s SnapshotSettings) {
	for _, e := range s.Roles {
		if (e.BareJID == "") == (e.UserID == "") || e.Role == AdminNone || e.Role > AdminViewer {
			continue
		}
		re := roleEntry{bare: e.BareJID, userID: e.UserID, role: e.Role, until: unixNano(e.Until)}
		r.rt.roles = append(slices.DeleteFunc(r.rt.roles, func(x roleEntry) bool { return x.bare == re.bare && x.userID == re.userID }), re)
		if re.until != 0 {
			r.bump(re.until)
		}
	}
	if s.KindSet && s.Kind <= AllOwners {
		r.kind, r.rt.kindSet = s.Kind, true
	}
	if s.MaxParticipants > 0 {
		r.rt.max = s.MaxParticipants
	}
	r.rt.locked = r.rt.locked || s.Locked
	if k := unixNano(s.KeepUntil); k > r.rt.keepUntil {
		r.rt.keepUntil = k
	}
}

// AwaitsOwner reports whether an auto-owner that left may still come back
// (OwnerGrace): the room is not idle until then.
func (r *Room) AwaitsOwner() bool { return len(r.rt.away) > 0 }

// ApplyRoles brings the present occupants with an admin role to it, where
// the server shows otherwise (after Reconcile: gavel was away while the
// roles were set, or someone changed them meanwhile).
func (r *Room) ApplyRoles(now time.Time) []Action {
	n := r.begin(now)
	for i := range r.occ {
		if o := &r.occ[i]; o.flags&fBot == 0 && r.occupantRole(o, n) != AdminNone {
			r.reapply(i, ReasonAdminRole, n)
		}
	}
	return r.finish(n, ReasonHandover)
}

// redecide brings the granted knocks still waiting for their join that
// match to what an admin role, or else the policy in force, now gives them:
// a role or policy set between a knock and its join holds at the join.
func (r *Room) redecide(match func(p *pending) bool, reason string, n int64) {
	for k := range r.pending {
		p := &r.pending[k]
		if p.flags&fBot != 0 || p.expires <= n || !match(p) {
			continue
		}
		var c claim
		e, admin := r.adminRoleOf(p.bare, p.userID, n)
		if admin {
			c, reason = adminClaim(e.role), ReasonAdminRole
		} else {
			o := occupant{bare: p.bare, userID: p.userID, flags: p.flags}
			c, _ = r.defaultClaim(&o)
			if r.kind == AutoOwner && p.aff == Owner {
				continue // auto-owner's pick stands
			}
		}
		aff, role := r.shapeOf(c, p.flags&fToken != 0)
		if aff == p.base && role == p.role {
			continue
		}
		if aff != r.affOf(p.bare) {
			exp := int64(0)
			if !admin {
				exp = p.exp
			}
			r.grantAff(p.bare, aff, reason, n, exp)
		}
		p.aff, p.base, p.role, p.reason = aff, aff, role, reason
		if admin {
			p.exp = 0
		}
	}
}
