package policy

// This file holds the auto-owner policy: the room keeps one present owner.
// The first joiner becomes owner; when no owner is left, the longest-present
// eligible occupant is promoted at once. Owners set by others are adopted;
// nobody is demoted.

// hasOwner reports whether an owner other than bare is present, or granted
// and about to join.
func (r *Room) hasOwner(bare string, n int64) bool {
	for i := range r.occ {
		o := &r.occ[i]
		if o.aff == Owner && o.flags&fBot == 0 && o.bare != bare {
			return true
		}
	}
	for i := range r.pending {
		p := &r.pending[i]
		if p.aff == Owner && p.flags&fBot == 0 && p.bare != bare && p.expires > n {
			return true
		}
	}
	return false
}

// eligible reports whether o may be promoted: not a bot, not a visitor or
// viewer, not a guest unless guests are admitted as members (a denied guest
// is on its way out), no expired token, and not someone another owner took
// ownership from.
func (r *Room) eligible(o *occupant, n int64) bool {
	if o.flags&(fBot|fViewer|fDemoted) != 0 || o.role < Participant || o.aff == Outcast {
		return false
	}
	if o.tokenExp != 0 && o.tokenExp <= n || !r.mayAutoOwn(o, n) {
		return false
	}
	return o.flags&fGuest == 0 || r.opts.Guests == GuestsMember
}

// ensureOwner promotes the longest-present eligible occupant (ties by join
// order) when the room is auto-owner and has no owner present or pending.
// reason is ReasonFirstJoiner after a join, and stays so only when the
// promoted occupant is that joiner.
func (r *Room) ensureOwner(n int64, reason string) {
	if r.kind != AutoOwner {
		return
	}
	best := -1
	for i := range r.occ {
		o := &r.occ[i]
		if o.flags&fBot != 0 {
			continue
		}
		if o.aff == Owner {
			return
		}
		if r.eligible(o, n) && (best < 0 || o.joined < r.occ[best].joined) {
			best = i // occ is in join order, so the first of equal times wins
		}
	}
	if best < 0 || r.hasOwner("", n) {
		return
	}
	if best != len(r.occ)-1 {
		reason = ReasonHandover // not the joiner of this event
	}
	o := &r.occ[best]
	r.grantAff(o.bare, Owner, reason, n, o.tokenExp)
}

// markDemoted notes that someone else took ownership from bare: auto-owner
// does not hand it back. (setAff clears the mark when bare is owner again.)
func (r *Room) markDemoted(bare string, old, aff Affiliation) {
	if old != Owner || aff >= Owner {
		return
	}
	for i := range r.occ {
		if r.occ[i].bare == bare {
			r.occ[i].flags |= fDemoted
		}
	}
}
