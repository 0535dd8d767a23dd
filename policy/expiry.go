package policy

import (
	"slices"
	"time"
)

// This file holds what happens with time: knocks that were never followed by
// a join, and rights that came from a token, which end when it expires.

// Tick does what is due at now: it drops expired knocks and ends rights
// whose token expired (then, under auto-owner, promotes the next owner).
// Call it at NextDeadline; every other method also does it first.
func (r *Room) Tick(now time.Time) []Action {
	n := r.begin(now)
	return r.finish(n, ReasonHandover)
}

// NextDeadline returns when Tick next has something to do (a waiting knock
// or the token behind a grant expires), or the zero time when nothing is
// scheduled. It may be earlier than necessary (a Tick then
// does nothing), never later, so one timer per room suffices.
func (r *Room) NextDeadline() time.Time {
	if r.next == 0 {
		return time.Time{}
	}
	return time.Unix(0, r.next)
}

// bump makes sure the next deadline is no later than t.
func (r *Room) bump(t int64) {
	if r.next == 0 || t < r.next {
		r.next = t
	}
}

// advance does what is due at n and recomputes the next deadline.
func (r *Room) advance(n int64) {
	if len(r.pending) > 0 && r.pending[0].expires <= n {
		for i := 0; i < len(r.pending); {
			if r.pending[i].expires <= n {
				r.dropPending(i, n)
			} else {
				i++
			}
		}
	}
	if r.next == 0 || n < r.next {
		return
	}
	r.next = 0
	r.due = r.due[:0]
	for bare, st := range r.affs {
		switch {
		case st.expires == 0:
		case st.expires <= n:
			r.due = append(r.due, bare)
		default:
			r.bump(st.expires)
		}
	}
	slices.Sort(r.due) // map order is random; actions are not
	for _, bare := range r.due {
		r.expireToken(bare, n)
	}
	clear(r.due)
	if len(r.pending) > 0 {
		r.bump(r.pending[0].expires) // the oldest expires first
	}
}

// expireToken ends the rights gavel granted bare on a token that has now
// expired. An absent holder loses them; a present holder falls back to what
// keeps it in the room (member where the room is members-only or moderated,
// else none): an owner loses ownership, a member (TokenHolders) its
// membership where the room does not need it, and keeps it until it leaves
// where it does.
func (r *Room) expireToken(bare string, n int64) {
	st := r.affs[bare]
	if !r.presentBare(bare) {
		if st.aff >= Member {
			r.emitAff(bare, None, ReasonTokenExpired)
		}
		delete(r.affs, bare)
		return
	}
	st.expires, st.expired = 0, true
	floor := None
	if r.cfg.MembersOnly || r.cfg.Moderated {
		floor = Member
	}
	if st.aff >= Member && st.aff > floor {
		st.aff, st.sentAt = floor, n
		r.emitAff(bare, st.aff, ReasonTokenExpired)
	}
	r.setAff(bare, st)
}

// extend lets an identity that justifies bare's granted affiliation (base
// is at least that affiliation) carry it on to its own expiry exp.
func (r *Room) extend(bare string, base Affiliation, exp int64) {
	st, ok := r.affs[bare]
	if !ok || !st.granted || base < st.aff {
		return
	}
	st.expires, st.expired = exp, false
	r.affs[bare] = st
	if exp != 0 {
		r.bump(exp)
	}
}
