package policy

// This file holds the token rules, which every policy starts from: what an
// identity claims, and which affiliation and role make that claim hold in
// this room's configuration.

// claim is what a joiner is entitled to before the policy kind applies.
type claim uint8

const (
	claimVisitor claim = iota + 1
	claimParticipant
	claimOwner
)

// claimOf interprets an identity under the Guests setting.
func (r *Room) claimOf(id Identity, n int64) (c claim, reason, refusal string) {
	if !id.HasToken {
		switch r.opts.Guests {
		case GuestsMember:
			return claimParticipant, ReasonGuestMember, ""
		case GuestsVisitor:
			return claimVisitor, ReasonGuestVisitor, ""
		}
		return 0, "", RefusalTokenRequired
	}
	switch {
	case !id.Expires.IsZero() && id.Expires.UnixNano() <= n:
		return 0, "", RefusalTokenExpired
	case id.Viewer:
		return claimVisitor, ReasonViewer, ""
	case id.Moderator:
		return claimOwner, ReasonTokenModerator, ""
	}
	return claimParticipant, ReasonTokenParticipant, ""
}

// decide answers a knock (or identity) of bare. mayOwn is false for those
// auto-owner never makes owner (bots, occupants someone demoted). base is the
// affiliation the policy itself calls for, before an existing higher
// affiliation is kept; exp is the token expiry the grant ends with (0 for
// none).
func (r *Room) decide(bare, full string, id Identity, mayOwn bool, n int64) (g Grant, base Affiliation, exp int64) {
	known := r.affOf(bare)
	if known == Outcast {
		return Grant{Affiliation: Outcast, Refusal: RefusalBanned}, 0, 0
	}
	c, reason, refusal := r.claimOf(id, n)
	if refusal != "" {
		return Grant{Affiliation: known, Refusal: refusal}, 0, 0
	}
	if g, base, exp, ok := r.decideOverride(bare, id, n); ok {
		return g, base, exp
	}
	switch r.kind {
	case AllOwners:
		c, reason = allOwnersClaim(c, reason)
	case AutoOwner:
		if c == claimParticipant && mayOwn && !r.hasOwner(bare, n) {
			c, reason = claimOwner, ReasonFirstJoiner
		}
	}
	// Rights from a token end with it; under all-owners they come from
	// joining, not from the token.
	if r.kind != AllOwners && id.HasToken && !id.Expires.IsZero() {
		exp = id.Expires.UnixNano()
	}
	aff, role := r.shapeOf(c, id.HasToken)
	g = Grant{Affiliation: aff, Role: role, Reason: reason, SetAffiliation: aff > known}
	if known > aff && r.kind == Token && r.replacesGrant(bare, full) {
		// gavel granted the higher affiliation on an earlier token of this
		// session (a reload, a refreshed token): the token at hand decides,
		// as owner rights end with the token that gave them.
		g.SetAffiliation = true
		return g, aff, exp
	}
	if known > aff {
		// Nobody is demoted: the existing affiliation stands, and is the
		// reason when it changes the role.
		g.Affiliation, g.Role = known, r.roleFor(known, c == claimVisitor)
		if g.Role != role {
			g.Reason = ReasonExisting
		}
	}
	return g, aff, exp
}

// replacesGrant reports whether a knock of full may replace the affiliation
// gavel granted bare: gavel granted it, and no other session of bare (a
// second device) is in the room or has a knock waiting, whose rights would
// go with it (affiliations are per bare JID).
func (r *Room) replacesGrant(bare, full string) bool {
	st, ok := r.affs[bare]
	if !ok || !st.granted || st.aff == Outcast {
		return false
	}
	for i := range r.occ {
		if r.occ[i].bare == bare && r.occ[i].full != full {
			return false
		}
	}
	for i := range r.pending {
		if r.pending[i].bare == bare && r.pending[i].full != full {
			return false
		}
	}
	return true
}

// unknocked applies the policy to present occupant i, which never knocked.
// Its affiliation admitted it when it has one; otherwise it is a guest.
func (r *Room) unknocked(i int, n int64) {
	if r.adminApplies(i, n) {
		return
	}
	o := &r.occ[i]
	var c claim
	var reason string
	switch {
	case o.aff >= Member:
		c, reason = claimParticipant, ReasonExisting
	case r.opts.Guests == GuestsMember:
		c, reason = claimParticipant, ReasonGuestMember
		o.flags |= fGuest
	case r.opts.Guests == GuestsVisitor:
		c, reason = claimVisitor, ReasonGuestVisitor
		o.flags |= fGuest
	default:
		// Denied guests cannot pass a members-only room; one that is here
		// anyway (the room is open, or an identity follows) gets nothing.
		o.flags |= fGuest
		return
	}
	if r.kind == AllOwners {
		c, reason = allOwnersClaim(c, reason)
	}
	aff, role := r.shape(c)
	r.applyToPresent(i, aff, role, reason, 0, n)
}

// shape returns the affiliation and role that make claim c hold here: the
// member affiliation only where the room would otherwise refuse the joiner
// or withhold its voice.
func (r *Room) shape(c claim) (Affiliation, Role) {
	switch c {
	case claimOwner:
		return Owner, Moderator
	case claimParticipant:
		if r.cfg.MembersOnly || r.cfg.Moderated {
			return Member, Participant
		}
		return None, Participant
	}
	if r.cfg.MembersOnly {
		return Member, Visitor
	}
	return None, Visitor
}

// shapeOf is shape for a claim of a token holder (token) or of a joiner
// without one: under TokenHolders member, a token holder's participant
// claim is member wherever the room is.
func (r *Room) shapeOf(c claim, token bool) (Affiliation, Role) {
	if c == claimParticipant && token && r.opts.TokenHolders == Member {
		return Member, Participant
	}
	return r.shape(c)
}

// tokenMember reports whether aff, what the policy gives present occupant
// o, is the membership TokenHolders gives token holders: gavel sets it for
// someone present too (else member is set only before the join, where the
// room needs it).
func (r *Room) tokenMember(o *occupant, aff Affiliation) bool {
	return aff == Member && r.opts.TokenHolders == Member && o.flags&(fToken|fViewer) == fToken
}

// roleFor is the role an occupant with aff should have; viewer asks for no
// voice.
func (r *Room) roleFor(aff Affiliation, viewer bool) Role {
	if aff >= Admin {
		return Moderator
	}
	if viewer {
		return Visitor
	}
	return r.defaultRole(aff)
}

// defaultRole is the role the server gives an occupant with aff.
func (r *Room) defaultRole(aff Affiliation) Role {
	switch {
	case aff >= Admin:
		return Moderator
	case aff == Member:
		return Participant
	case aff == None && !r.cfg.Moderated:
		return Participant
	case aff == None:
		return Visitor
	}
	return RoleNone
}
