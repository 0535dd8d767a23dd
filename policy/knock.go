package policy

import (
	"slices"
	"time"
)

// KnockTTL is how long a granted knock waits for its join. A joiner whose
// knock expired is treated as one that never knocked.
const KnockTTL = 60 * time.Second

// MaxPending bounds the knocks of one room waiting for their join. When it is
// reached, the oldest is dropped as if it had expired.
const MaxPending = 64

// pending is a granted knock waiting for its join.
type pending struct {
	full, bare, userID, reason string
	expires                    int64       // end of the wait (Unix ns)
	exp                        int64       // end of the grant (token expiry), 0 none
	tokenExp                   int64       // the token's expiry, 0 none
	aff                        Affiliation // granted, counting an existing one
	base                       Affiliation // what the policy itself called for
	role                       Role
	flags                      flags
}

// Knock decides what the joiner fullJID (of bareJID) gets, and remembers the
// grant for the join presence that follows, so that Joined can attach the
// identity to the occupant. The actions (set before the knock is answered,
// so the first presence already carries the right role) include the
// grant's own affiliation set when Grant.SetAffiliation is true. A knock
// from an occupant already present (a refreshed token) applies to it at
// once.
func (r *Room) Knock(bareJID, fullJID string, id Identity, now time.Time) (Grant, []Action) {
	n := r.begin(now)
	if i := r.byFull(fullJID); i >= 0 {
		g := r.identify(i, id, n)
		if !g.Refused() && r.kind == Token {
			// The same session may be about to join again under another
			// nick (a reload): the grant holds for that join too, and the
			// leave that comes first releases nothing. (Under auto-owner a
			// waiting owner would hold off a handover: not there.)
			r.keepForRejoin(fullJID, bareJID, id, g, n)
		}
		return g, r.finish(n, ReasonHandover)
	}
	old := r.pendingIndex(fullJID)
	if old < 0 && len(r.pending) >= MaxPending {
		r.dropPending(0, n)
	}
	bot := r.isBot(bareJID)
	g, base, exp := r.decide(bareJID, fullJID, id, !bot, n)
	if !g.Refused() && id.HasToken && id.Viewer && !r.cfg.Moderated && g.Affiliation < Admin {
		// The server would give the viewer voice, and it could speak
		// until a role change caught up.
		g = Grant{Affiliation: g.Affiliation, Refusal: RefusalViewerNotAdmitted}
	}
	g, base = r.gate(bareJID, fullJID, g, base, n)
	if g.Refused() {
		return g, r.finish(n, ReasonHandover)
	}
	if old >= 0 {
		r.pending = slices.Delete(r.pending, old, old+1) // a retry replaces it
	}
	if g.SetAffiliation {
		r.grantAff(bareJID, g.Affiliation, g.Reason, n, exp)
	} else {
		r.extend(bareJID, base, exp)
	}
	f := identityFlags(id)
	if bot {
		f |= fBot
	}
	p := pending{
		full: fullJID, bare: bareJID, userID: id.UserID, reason: g.Reason,
		expires: n + int64(KnockTTL), exp: exp, tokenExp: tokenExpiry(id),
		aff: g.Affiliation, base: base, role: g.Role, flags: f,
	}
	r.pending = append(r.pending, p)
	r.bump(p.expires)
	return g, r.finish(n, ReasonHandover)
}

// keepForRejoin records a knock from a present session as waiting for a
// join too, with the grant identify gave it.
func (r *Room) keepForRejoin(full, bare string, id Identity, g Grant, n int64) {
	if old := r.pendingIndex(full); old >= 0 {
		r.pending = slices.Delete(r.pending, old, old+1)
	} else if len(r.pending) >= MaxPending {
		r.dropPending(0, n)
	}
	var exp int64
	if r.kind != AllOwners && id.HasToken && !id.Expires.IsZero() {
		exp = id.Expires.UnixNano()
	}
	p := pending{
		full: full, bare: bare, userID: id.UserID, reason: g.Reason,
		expires: n + int64(KnockTTL), exp: exp, tokenExp: tokenExpiry(id),
		aff: g.Affiliation, base: g.Affiliation, role: g.Role, flags: identityFlags(id),
	}
	r.pending = append(r.pending, p)
	r.bump(p.expires)
}

// takePending removes and returns the live knock of full.
func (r *Room) takePending(full string, n int64) (pending, bool) {
	i := r.pendingIndex(full)
	if i < 0 {
		return pending{}, false
	}
	p := r.pending[i]
	if p.expires <= n {
		r.dropPending(i, n)
		return pending{}, false
	}
	r.pending = slices.Delete(r.pending, i, i+1)
	return p, true
}

// dropPending forgets knock i, which will not join, and releases what its
// bare JID was granted (the knock kept it while another session left).
func (r *Room) dropPending(i int, n int64) {
	bare := r.pending[i].bare
	r.pending = slices.Delete(r.pending, i, i+1)
	r.release(bare, n, ReasonKnockExpired)
}

// PendingGone forgets the granted knock of full whose join came and went
// while gavel could not see it (gavel was away: the bridge's answer
// reached the module, whose join then happened and ended). What the
// knock was granted is gavel's grant: it is released as for a leave
// (clear_on_leave, an expired token), and auto-owner promotes when it was
// the owner.
func (r *Room) PendingGone(full string, now time.Time) []Action {
	n := r.begin(now)
	i := r.pendingIndex(full)
	if i < 0 {
		return r.finish(n, ReasonHandover)
	}
	p := r.pending[i]
	if st, ok := r.affs[p.bare]; p.aff >= Member && (!ok || st.aff == p.aff) {
		st.aff, st.granted = p.aff, true
		if st.expires == 0 {
			st.expires = p.exp
		}
		r.setAff(p.bare, st)
	}
	r.dropPending(i, n)
	return r.finish(n, ReasonHandover)
}

// dropPendingBare forgets the knocks of bare (just banned).
func (r *Room) dropPendingBare(bare string) {
	r.pending = slices.DeleteFunc(r.pending, func(p pending) bool { return p.bare == bare })
}

func (r *Room) pendingIndex(full string) int {
	for i := range r.pending {
		if r.pending[i].full == full {
			return i
		}
	}
	return -1
}

func (r *Room) pendingBare(bare string) bool {
	for i := range r.pending {
		if r.pending[i].bare == bare {
			return true
		}
	}
	return false
}

func tokenExpiry(id Identity) int64 {
	if !id.HasToken || id.Expires.IsZero() {
		return 0
	}
	return id.Expires.UnixNano()
}

// Pending returns how many granted knocks still wait for their join (some
// may have expired since the last call that looked at the clock).
func (r *Room) Pending() int { return len(r.pending) }
