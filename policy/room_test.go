package policy

import (
	"testing"
	"time"
)

func TestPresenceUpdates(t *testing.T) {
	runMeetings(t, []meeting{
		{name: "a re-delivered presence is an update", opts: Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true}, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"redeliver alice", "", nil},
			{"redeliver bob", "", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
		}},
		{name: "a nick change keeps the occupant", opts: Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true}, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"nick alice Alice", "", nil},
			{"leave Alice", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
		}},
		{name: "identity stamped by the server after the join", opts: Options{Kind: Token, Guests: GuestsMember}, steps: []step{
			{"join alice", "", nil},
			{"identity alice mod", "", []string{"aff alice owner token-moderator"}},
			{"join carl", "", nil},
			{"identity carl viewer", "", []string{"role carl visitor viewer-claim"}},
			{"join dave", "", nil},
			{"identity dave tok", "", nil},
			{"identity nobody mod", "", nil},
		}},
		{name: "an expired identity changes nothing", opts: Options{Kind: Token, Guests: GuestsMember}, steps: []step{
			{"join alice", "", nil},
			{"identity alice mod expired", "", nil},
		}},
	})
}

// TestStalePresence: a presence the server sent before it applied gavel's
// set must not read as someone undoing it.
func TestStalePresence(t *testing.T) {
	for _, opts := range []Options{
		{Kind: AutoOwner, Guests: GuestsMember},
		{Kind: AllOwners, Guests: GuestsMember, ReassertOwners: true},
	} {
		t.Run(opts.Kind.String(), func(t *testing.T) {
			r := NewRoom("meet@conference.example.test", opts)
			r.Joined(Presence{Nick: "alice", FullJID: "alice@example.test/web", BareJID: "alice@example.test", Affiliation: None, Role: Participant}, t0)
			r.Joined(Presence{Nick: "bob", FullJID: "bob@example.test/web", BareJID: "bob@example.test", Affiliation: None, Role: Participant}, t0)
			// Both rooms made alice owner; the echo has not come yet. A status
			// change of alice, sent before the set, arrives now.
			stale := Presence{Nick: "alice", FullJID: "alice@example.test/web", BareJID: "alice@example.test", Affiliation: None, Role: Participant}
			if acts := r.Joined(stale, t0.Add(time.Millisecond)); acts != nil {
				t.Fatalf("stale presence: %v", acts)
			}
			if got := r.Known("alice@example.test"); got != Owner {
				t.Fatalf("Known(alice) = %v, want owner", got)
			}
			// Long after the set, the same presence is believed.
			if acts := r.Joined(stale, t0.Add(time.Minute)); len(acts) != 1 {
				t.Fatalf("late presence: %v, want one action", acts)
			}
		})
	}
}

func TestMissedLeave(t *testing.T) {
	// The nick is reused by someone else: the old occupant is gone.
	s := newSim(t, "meet@conference.example.test", Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true})
	s.run([]step{
		{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
		{"enter bob tok", "none/participant token-participant", nil},
	})
	acts := s.r.Joined(Presence{Nick: "alice", FullJID: "mallory@example.test/x", BareJID: "mallory@example.test", Affiliation: None, Role: Participant}, t0)
	want := []string{"aff alice none clear-on-leave", "aff bob owner handover"}
	if len(acts) != 2 || short(acts[0]) != want[0] || short(acts[1]) != want[1] {
		t.Fatalf("got %v, want %q", acts, want)
	}
	if s.r.Len() != 2 {
		t.Fatalf("Len() = %d, want 2", s.r.Len())
	}
}

func TestViews(t *testing.T) {
	s := newSim(t, "meet@conference.example.test", Options{Kind: AutoOwner, Guests: GuestsMember, BotDomains: bots})
	if !s.r.Empty() || s.r.Len() != 0 || s.r.Owners() != 0 {
		t.Fatal("new room is not empty")
	}
	s.do("join bot1")
	if !s.r.Empty() || s.r.Len() != 1 {
		t.Fatalf("with a bot only: Empty() = %v, Len() = %d", s.r.Empty(), s.r.Len())
	}
	s.do("enter alice tok exp=1h uid=u-1")
	if s.r.Empty() || s.r.Len() != 2 || s.r.Owners() != 1 {
		t.Fatalf("with alice: Empty() = %v, Len() = %d, Owners() = %d", s.r.Empty(), s.r.Len(), s.r.Owners())
	}
	var got []Occupant
	for o := range s.r.Occupants() {
		got = append(got, o)
	}
	want := []Occupant{
		{Nick: "bot1", FullJID: "bot1@recorder.example.test/web", BareJID: "bot1@recorder.example.test", Affiliation: None, Role: Participant, Joined: t0, Bot: true},
		{Nick: "alice", FullJID: "alice@example.test/web", BareJID: "alice@example.test", UserID: "u-1", Affiliation: Owner, Role: Moderator, Joined: t0, Expires: t0.Add(time.Hour), Knocked: true, Token: true},
	}
	if len(got) != len(want) {
		t.Fatalf("Occupants() = %+v", got)
	}
	for i := range want {
		if !got[i].Joined.Equal(want[i].Joined) || !got[i].Expires.Equal(want[i].Expires) {
			t.Errorf("occupant %d times: %v, %v", i, got[i].Joined, got[i].Expires)
		}
		got[i].Joined, got[i].Expires, want[i].Joined, want[i].Expires = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if got[i] != want[i] {
			t.Errorf("occupant %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for range s.r.Occupants() {
		break // stopping early is allowed
	}
	if s.r.Known("alice@example.test") != Owner || s.r.Known("nobody@example.test") != None {
		t.Error("Known() is wrong")
	}
}

func TestReconcile(t *testing.T) {
	runMeetings(t, []meeting{
		{name: "expired owner and departed member are released", opts: Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true}, steps: []step{
			{"enter alice mod exp=10m", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"forget bob", "", nil},
			{"skip 15m", "", nil},
			{"reconcile", "", []string{"aff bob none clear-on-leave", "aff alice member token-expired"}},
		}},
		{name: "auto-owner promotes when the owner left meanwhile", opts: Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true}, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"forget alice", "", nil},
			{"reconcile", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
		}},
		{name: "auto-owner adopts an owner set meanwhile", opts: Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true}, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"enter carl tok", "none/participant token-participant", nil},
			{"quiet-set carl owner", "", nil},
			{"forget alice", "", nil},
			{"reconcile", "", []string{"aff alice none clear-on-leave"}},
		}},
		{name: "all-owners re-grants and grants newcomers", opts: Options{Kind: AllOwners, Guests: GuestsMember, ReassertOwners: true}, steps: []step{
			{"enter alice tok", "owner/moderator all-owners set", []string{"aff alice owner all-owners"}},
			{"quiet-set alice member", "", nil},
			{"quiet-join dave", "", nil},
			{"reconcile", "", []string{"aff alice owner reassert", "aff dave owner all-owners"}},
		}},
		{name: "nothing changed, nothing to do", opts: Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true}, steps: []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"reconcile", "", nil},
			{"leave bob", "", []string{"aff bob none clear-on-leave"}},
		}},
		{name: "a knock made before the reconnect still joins", opts: Options{Kind: Token, Guests: GuestsMember}, steps: []step{
			{"knock carl tok", "none/participant token-participant", nil},
			{"reconcile", "", nil},
			{"join carl", "", nil},
		}},
	})
}
