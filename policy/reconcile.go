package policy

import (
	"slices"
	"time"
)

// Reconcile brings the room's state back in line with the server after
// gavel lost sight of it (a reconnect): affs holds the room's affiliation
// lists (bare JID to affiliation; JIDs missing are none) and present its
// occupants. Occupants that left meanwhile are released as on Left;
// changes made meanwhile are taken as someone else's (all-owners with
// ReassertOwners re-grants); new occupants are handled as on Joined; rights
// whose token expired meanwhile end; auto-owner promotes an owner if none
// is present. Knocks still waiting stay valid.
func (r *Room) Reconcile(affs map[string]Affiliation, present []Presence, now time.Time) []Action {
	r.acts = r.acts[:0]
	n := now.UnixNano()

	here := make(map[string]string, len(present)) // nick to bare JID
	for _, p := range present {
		here[p.Nick] = p.BareJID
	}
	var gone []string
	r.occ = slices.DeleteFunc(r.occ, func(o occupant) bool {
		if bare, ok := here[o.nick]; ok && bare == o.bare {
			return false
		}
		gone = append(gone, o.bare)
		return true
	})

	bares := make([]string, 0, len(affs)+len(r.affs))
	for bare := range affs {
		bares = append(bares, bare)
	}
	for bare := range r.affs {
		if _, ok := affs[bare]; !ok {
			bares = append(bares, bare)
		}
	}
	slices.Sort(bares)
	for _, bare := range bares {
		aff := affs[bare]
		if aff == 0 {
			aff = None
		}
		r.observe(bare, aff, n, true)
	}

	r.resend(affs, n)
	for _, bare := range gone {
		r.release(bare, n, ReasonClearOnLeave)
	}
	for _, p := range present {
		r.join(p, n)
	}
	r.bump(n) // look at every deadline
	r.advance(n)
	return r.finish(n, ReasonHandover)
}

// ReasonResent is the reason of an affiliation change sent again because
// it never reached the server.
const ReasonResent = "resent"

// Unapplied records affiliation changes among acts that never reached the
// server (the connection dropped, the room did not answer). The next
// Reconcile sends each again where the server still shows a higher
// affiliation: resets and revocations (clear_on_leave, an expired token)
// must not be lost to a restart. A grant that did not reach the server is
// not sent again: its knock was refused. A later change of the same JID
// supersedes it.
func (r *Room) Unapplied(acts []Action) {
	for _, a := range acts {
		if a.Kind != ActionSetAffiliation || a.BareJID == "" {
			continue
		}
		if r.unapplied == nil {
			r.unapplied = make(map[string]Affiliation)
		}
		r.unapplied[a.BareJID] = a.Affiliation
	}
}

// resend sends the unapplied revocations the server (affs) still lacks.
func (r *Room) resend(affs map[string]Affiliation, n int64) {
	if len(r.unapplied) == 0 {
		return
	}
	bares := make([]string, 0, len(r.unapplied))
	for bare := range r.unapplied {
		bares = append(bares, bare)
	}
	slices.Sort(bares)
	for _, bare := range bares {
		want := r.unapplied[bare]
		delete(r.unapplied, bare)
		server := affs[bare]
		if server == 0 {
			server = None
		}
		if want >= server || server == Outcast {
			continue
		}
		r.emitAff(bare, want, ReasonResent)
		r.setAff(bare, affState{aff: want, sentAt: n})
	}
}
