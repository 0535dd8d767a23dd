package policy

import (
	"reflect"
	"testing"
	"time"
)

// TestRestart: after gavel's own restart only the snapshot is left; the
// reconcile that follows the rejoin must govern as if gavel had never been
// away.
func TestRestart(t *testing.T) {
	open := Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true}
	runMeetings(t, []meeting{
		{name: "auto-owner hands over in the stored order", opts: open, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"enter carl tok", "none/participant token-participant", nil},
			{"restart", "", nil},
			{"reconcile", "", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
		}},
		{name: "an owner who left while gavel was away is cleared, the next promoted", opts: open, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"enter carl tok", "none/participant token-participant", nil},
			{"restart", "", nil},
			{"forget alice", "", nil},
			{"reconcile", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
		}},
		{name: "token owner rights end at expiry after a restart", opts: Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true}, steps: []step{
			{"enter alice mod exp=10m", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"restart", "", nil},
			{"reconcile", "", nil},
			{"wait 15m", "", []string{"aff alice member token-expired"}},
		}},
		{name: "token owner rights that expired while gavel was away end at once", opts: Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true}, steps: []step{
			{"enter alice mod exp=10m", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"restart", "", nil},
			{"forget bob", "", nil},
			{"skip 15m", "", nil},
			{"reconcile", "", []string{"aff bob none clear-on-leave", "aff alice member token-expired"}},
		}},
		{name: "a knock granted before the restart still joins with its grant", opts: Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true}, steps: []step{
			{"knock alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"restart", "", nil},
			{"reconcile", "", nil},
			{"join alice", "", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave"}},
		}},
	})
}

func TestSnapshotRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	r := NewRoom("room@conference.example.test", Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true})
	r.Knock("a@example.test", "a@example.test/r", Identity{HasToken: true, Moderator: true, UserID: "u-a", Expires: now.Add(time.Hour)}, now)
	r.Joined(Presence{Nick: "a", FullJID: "a@example.test/r", BareJID: "a@example.test", Affiliation: Owner, Role: Moderator}, now.Add(time.Second))
	r.Knock("b@example.test", "b@example.test/r", Identity{HasToken: true, UserID: "u-b"}, now.Add(2*time.Second))
	snap := r.Snapshot()
	if len(snap.Grants) != 2 || len(snap.Occupants) != 1 || len(snap.Pending) != 1 {
		t.Fatalf("snapshot: %+v", snap)
	}
	r2 := NewRoom("room@conference.example.test", Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true})
	r2.Restore(snap)
	if got := r2.Snapshot(); !reflect.DeepEqual(got, snap) {
		t.Fatalf("restored snapshot differs:\n got %+v\nwant %+v", got, snap)
	}
	var o Occupant
	for x := range r2.Occupants() {
		o = x
	}
	if o.UserID != "u-a" || !o.Moderator || o.Affiliation != Owner {
		t.Errorf("restored occupant: %+v", o)
	}
}

// TestUnappliedResetIsResent: a clear_on_leave reset that never reached the
// server (the connection dropped) is sent again at the next Reconcile, also
// across a restart; a grant that never reached it is not.
func TestUnappliedResetIsResent(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	opts := Options{Kind: Token, Guests: GuestsMember, ClearOnLeave: true}
	for _, restart := range []bool{false, true} {
		r := NewRoom("room@conference.example.test", opts)
		r.Knock("a@example.test", "a@example.test/r", Identity{HasToken: true, Moderator: true}, now)
		r.Joined(Presence{Nick: "a", FullJID: "a@example.test/r", BareJID: "a@example.test", Affiliation: Owner, Role: Moderator}, now)
		_, grant := r.Knock("b@example.test", "b@example.test/r", Identity{HasToken: true, Moderator: true}, now)
		r.Unapplied(grant) // b's owner grant did not reach the server
		acts := r.Left("a", now.Add(time.Second))
		if len(acts) != 1 || acts[0].Affiliation != None {
			t.Fatalf("leave: %v", acts)
		}
		r.Unapplied(acts) // nor did a's reset
		if restart {
			snap := r.Snapshot()
			r = NewRoom("room@conference.example.test", opts)
			r.Restore(snap)
		}
		got := r.Reconcile(map[string]Affiliation{"a@example.test": Owner}, nil, now.Add(2*time.Second))
		if len(got) != 1 || got[0].BareJID != "a@example.test" || got[0].Affiliation != None || got[0].Reason != ReasonResent {
			t.Errorf("restart=%v: Reconcile = %v, want a's reset sent again (and nothing for b)", restart, got)
		}
		if again := r.Reconcile(map[string]Affiliation{}, nil, now.Add(3*time.Second)); len(again) != 0 {
			t.Errorf("restart=%v: a second Reconcile = %v, want nothing", restart, again)
		}
	}
}
