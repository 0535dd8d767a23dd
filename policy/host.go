package policy

import (
	"slices"
	"time"
)

// This file holds the rules about hosts (owners) that Jitsi's Prosody
// plugins implement, and the room's bound on participants:
//
//   - WaitForHost (muc_wait_for_host): knocks that would not make an owner
//     are refused with RefusalHostAbsent until an owner is present;
//   - HostOpens (token_owner_party): the same until an owner has been in
//     the room since it was last empty;
//   - EndWithoutHost (owner_restricted, role_timeout): a room with
//     occupants but no owner for that long is destroyed;
//   - OwnerGrace (auto-owner): the owner that left gets ownership back when
//     it knocks again in time (a reload), and the interim owner gives it
//     back unless KeepInterimOwner;
//   - MaxParticipants: joiners beyond it view (Whereby's viewer mode).

// awayOwner is an auto-owner that left; it may come back until until.
type awayOwner struct {
	bare, userID string
	until        int64
}

// hostPresent reports whether a non-bot owner is present or granted and
// about to join.
func (r *Room) hostPresent(n int64) bool { return r.hasOwner("", n) }

// HostPresent reports whether an owner, bots apart, is present or about to
// join.
func (r *Room) HostPresent(now time.Time) bool { return r.hostPresent(now.UnixNano()) }

// gate applies the room-wide bounds to a knock of full (of bare) the policy
// granted g: the host rules, then MaxParticipants. base is what the policy
// called for; gate returns both as they stand after it.
func (r *Room) gate(bare, full string, g Grant, base Affiliation, n int64) (Grant, Affiliation) {
	if g.Refused() || g.Role == Moderator {
		return g, base
	}
	known := r.affOf(bare)
	if !r.hostPresent(n) && (r.opts.WaitForHost || r.opts.HostOpens && !r.rt.opened) {
		return Grant{Affiliation: known, Refusal: RefusalHostAbsent}, 0
	}
	if max := r.maxParticipants(); max > 0 && g.Role == Participant && g.Reason != ReasonAdminRole && r.voiced(full, n) >= max {
		if !r.cfg.Moderated {
			return Grant{Affiliation: known, Refusal: RefusalRoomFull}, 0
		}
		aff, _ := r.shape(claimVisitor)
		g = Grant{Affiliation: max2(aff, known), Role: Visitor, Reason: ReasonCapacity, SetAffiliation: aff > known}
		base = aff
	}
	return g, base
}

func max2(a, b Affiliation) Affiliation {
	if a > b {
		return a
	}
	return b
}

// voiced counts the occupants and waiting knocks with voice, bots apart,
// but for full's own knock (a retry replaces it).
func (r *Room) voiced(full string, n int64) int {
	c := 0
	for i := range r.occ {
		if o := &r.occ[i]; o.flags&fBot == 0 && o.role >= Participant {
			c++
		}
	}
	for i := range r.pending {
		if p := &r.pending[i]; p.flags&fBot == 0 && p.role >= Participant && p.full != full && p.expires > n {
			c++
		}
	}
	return c
}

// noteLeave remembers, under auto-owner with OwnerGrace, that present
// occupant i, an owner, leaves: it may come back in time. Called by leave
// before the occupant is forgotten.
func (r *Room) noteLeave(i int, n int64) {
	o := &r.occ[i]
	if r.kind != AutoOwner || r.opts.OwnerGrace <= 0 || o.aff != Owner || o.flags&fBot != 0 {
		return
	}
	for j := range r.occ {
		if j != i && r.occ[j].bare == o.bare {
			return // another session stays
		}
	}
	a := awayOwner{bare: o.bare, userID: o.userID, until: n + int64(r.opts.OwnerGrace)}
	r.rt.away = append(slices.DeleteFunc(r.rt.away, func(x awayOwner) bool { return x.bare == a.bare }), a)
	r.bump(a.until)
}

// returning reports whether bare (or user id userID) is an auto-owner that
// left less than OwnerGrace ago.
func (r *Room) returning(bare, userID string, n int64) bool {
	for _, a := range r.rt.away {
		if a.until > n && (a.bare == bare || a.userID != "" && a.userID == userID) {
			return true
		}
	}
	return false
}

// settle ends each event (finish): it ends admin roles whose time is over,
// hands ownership back from the interim owner to the owner that came back,
// keeps an auto-owner present (ensureOwner), and watches for a room without
// its host.
func (r *Room) settle(n int64, reason string) {
	if len(r.rt.roles) > 0 {
		r.expireRoles(n)
	}
	if len(r.rt.away) > 0 {
		r.settleAway(n)
	}
	r.ensureOwner(n, reason)
	r.watchHost(n)
	if len(r.rt.held) > 0 {
		r.bumpHeld(n)
	}
}

// settleAway forgets owners whose grace is over, and once one is back
// (present and owner again) lets the interim owners go back to what the
// policy gives them.
func (r *Room) settleAway(n int64) {
	var back []awayOwner
	r.rt.away = slices.DeleteFunc(r.rt.away, func(a awayOwner) bool {
		if a.until <= n {
			return true
		}
		for i := range r.occ {
			if o := &r.occ[i]; o.aff == Owner && (o.bare == a.bare || a.userID != "" && o.userID == a.userID) {
				back = append(back, a)
				return true
			}
		}
		r.bump(a.until)
		return false
	})
	if len(back) == 0 || r.opts.KeepInterimOwner || r.kind != AutoOwner {
		return
	}
	for i := range r.occ {
		o := &r.occ[i]
		st, granted := r.affs[o.bare]
		if o.aff != Owner || o.flags&(fBot|fModerator) != 0 || !granted || !st.granted || r.occupantRole(o, n) == AdminModerator {
			continue
		}
		if slices.ContainsFunc(back, func(a awayOwner) bool { return a.bare == o.bare || a.userID != "" && a.userID == o.userID }) {
			continue
		}
		r.reapply(i, ReasonInterimOwner, n)
	}
}

// watchHost keeps what the host rules need: whether an owner has opened the
// room, and since when occupants have had no owner; it destroys the room
// once that has lasted EndWithoutHost.
func (r *Room) watchHost(n int64) {
	if r.Empty() {
		r.rt.noHostSince = 0
		if len(r.pending) == 0 {
			r.rt.opened = false
		}
		if r.hostPresent(n) {
			r.rt.opened = true
		}
		return
	}
	if r.hostPresent(n) {
		r.rt.opened, r.rt.noHostSince = true, 0
		return
	}
	d := int64(r.opts.EndWithoutHost)
	if d <= 0 || r.rt.ended {
		return
	}
	if r.rt.noHostSince == 0 {
		r.rt.noHostSince = n
	}
	if n-r.rt.noHostSince < d {
		r.bump(r.rt.noHostSince + d)
		return
	}
	r.rt.ended = true
	r.acts = append(r.acts, Action{Kind: ActionDestroy, Reason: ReasonHostAbsent, Text: "the meeting has ended: no host is left"})
}
