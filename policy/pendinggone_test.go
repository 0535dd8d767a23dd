package policy

import (
	"slices"
	"testing"
	"time"
)

// TestPendingGone: a granted knock whose join came and went unseen is
// released as a leave, and auto-owner promotes in its place; unknown
// knocks change nothing.
func TestPendingGone(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name string
		full string
		want []string
	}{
		{"the owner's knock came and went", "x@example.test/r", []string{"x@example.test none", "y@example.test owner"}},
		{"an unknown knock", "z@example.test/r", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRoom("room@conference.example.test", Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true})
			g, _ := r.Knock("x@example.test", "x@example.test/r", Identity{HasToken: true}, now)
			if g.Affiliation != Owner {
				t.Fatalf("first knock: %+v", g)
			}
			r.Joined(Presence{Nick: "y", FullJID: "y@example.test/r", BareJID: "y@example.test", Affiliation: None, Role: Participant}, now)
			var got []string
			for _, a := range r.PendingGone(tc.full, now.Add(time.Second)) {
				if a.Kind == ActionSetAffiliation {
					got = append(got, a.BareJID+" "+a.Affiliation.String())
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("actions %v, want %v", got, tc.want)
			}
		})
	}
}
