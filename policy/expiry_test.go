package policy

import (
	"testing"
	"time"
)

func TestTokenExpiry(t *testing.T) {
	runMeetings(t, []meeting{
		{name: "open room: owner falls back to none", opts: Options{Kind: Token, Guests: GuestsMember}, steps: []step{
			{"enter alice mod exp=30m", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"wait 29m", "", nil},
			{"wait 1m", "", []string{"aff alice none token-expired"}},
			{"leave alice", "", nil},
		}},
		{name: "members-only room: owner falls back to member, which ends on leave", opts: Options{Kind: Token, Guests: GuestsDeny}, steps: []step{
			{"enter alice mod exp=30m", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"wait 30m", "", []string{"aff alice member token-expired"}},
			{"leave alice", "", []string{"aff alice none token-expired"}},
		}},
		{name: "moderated room: owner falls back to member", opts: Options{Kind: Token, Guests: GuestsVisitor}, steps: []step{
			{"enter alice mod exp=30m", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"wait 30m", "", []string{"aff alice member token-expired"}},
		}},
		{name: "a present member keeps its seat until it leaves", opts: Options{Kind: Token, Guests: GuestsDeny}, steps: []step{
			{"enter bob tok exp=10m", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"wait 10m", "", nil},
			{"leave bob", "", []string{"aff bob none token-expired"}},
		}},
		{name: "an absent holder loses the grant at expiry", opts: Options{Kind: Token, Guests: GuestsDeny}, steps: []step{
			{"enter alice mod exp=10m", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter bob tok exp=20m", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"leave alice", "", nil},
			{"leave bob", "", nil},
			{"wait 10m", "", []string{"aff alice none token-expired"}},
			{"wait 10m", "", []string{"aff bob none token-expired"}},
		}},
		{name: "a refreshed token carries ownership on", opts: Options{Kind: Token, Guests: GuestsMember}, steps: []step{
			{"enter alice mod exp=10m", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"wait 5m", "", nil},
			{"knock alice mod exp=1h", "owner/moderator token-moderator", nil},
			{"wait 10m", "", nil},
			{"wait 50m", "", []string{"aff alice none token-expired"}},
		}},
		{name: "auto-owner hands over at expiry and skips the expired", opts: Options{Kind: AutoOwner, Guests: GuestsMember}, steps: []step{
			{"enter alice tok exp=10m", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok exp=5m", "none/participant token-participant", nil},
			{"enter carl tok", "none/participant token-participant", nil},
			{"wait 10m", "", []string{"aff alice none token-expired", "aff carl owner handover"}},
		}},
		{name: "auto-owner refresh keeps the owner", opts: Options{Kind: AutoOwner, Guests: GuestsMember}, steps: []step{
			{"enter alice tok exp=10m", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"knock alice tok exp=1h", "owner/moderator first-joiner", nil},
			{"wait 30m", "", nil},
		}},
		{name: "auto-owner handover to a token holder ends with its token", opts: Options{Kind: AutoOwner, Guests: GuestsMember}, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok exp=10m", "none/participant token-participant", nil},
			{"enter carl tok", "none/participant token-participant", nil},
			{"leave alice", "", []string{"aff bob owner handover"}},
			{"wait 10m", "", []string{"aff bob none token-expired", "aff carl owner handover"}},
		}},
	})
}

func TestNextDeadline(t *testing.T) {
	s := newSim(t, "meet@conference.example.test", Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true})
	if d := s.r.NextDeadline(); !d.IsZero() {
		t.Fatalf("empty room: NextDeadline() = %v", d)
	}
	s.do("enter bob tok")
	s.do("knock alice mod exp=30m")
	if got, want := s.r.NextDeadline(), t0.Add(KnockTTL); !got.Equal(want) {
		t.Fatalf("with a waiting knock: NextDeadline() = %v, want %v", got, want)
	}
	s.do("join alice")
	s.wait(KnockTTL) // the early deadline passes and nothing happens
	if got, want := s.r.NextDeadline(), t0.Add(30*time.Minute); !got.Equal(want) {
		t.Fatalf("after the join: NextDeadline() = %v, want %v", got, want)
	}
	s.log = nil
	s.wait(30*time.Minute - KnockTTL)
	if want := []string{"aff alice member token-expired"}; len(s.log) != 1 || s.log[0] != want[0] {
		t.Fatalf("at the deadline: %q, want %q", s.log, want)
	}
	if d := s.r.NextDeadline(); !d.IsZero() {
		t.Fatalf("nothing left: NextDeadline() = %v", d)
	}
}

func TestPendingKnocks(t *testing.T) {
	runMeetings(t, []meeting{
		{name: "an owner knock that never joins blocks, then hands over", opts: Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true}, steps: []step{
			{"knock alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"wait 59s", "", nil},
			{"wait 1s", "", []string{"aff alice none knock-expired", "aff bob owner handover"}},
		}},
		{name: "without clear-on-leave the expired grant stays", opts: Options{Kind: AutoOwner, Guests: GuestsMember}, steps: []step{
			{"knock alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"wait 1m", "", []string{"aff bob owner handover"}},
			{"enter alice tok", "owner/moderator existing-affiliation", nil},
		}},
		{name: "a retried knock is not granted twice", opts: Options{Kind: AutoOwner, Guests: GuestsMember}, steps: []step{
			{"knock alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"knock alice tok", "owner/moderator first-joiner", nil},
			{"knock bob tok", "none/participant token-participant", nil},
		}},
		{name: "a late joiner is treated as one that never knocked", opts: Options{Kind: Token, Guests: GuestsVisitor}, steps: []step{
			{"knock carl mod", "owner/moderator token-moderator set", []string{"aff carl owner token-moderator"}},
			{"knock bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"wait 61s", "", nil},
			{"join carl", "", nil},
			{"join bob", "", nil},
		}},
		{name: "a new session's knock keeps the grant through the old session's leave", opts: Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true}, steps: []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"knock alice#2 mod", "owner/moderator token-moderator", nil},
			{"leave alice", "", nil},
			{"join alice#2", "", nil},
			{"leave alice#2", "", []string{"aff alice none clear-on-leave"}},
		}},
	})
}

func TestPendingBound(t *testing.T) {
	s := newSim(t, "meet@conference.example.test", Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true})
	names := make([]string, MaxPending+1)
	for i := range names {
		names[i] = "user" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		s.log = nil
		s.do("knock " + names[i] + " tok")
	}
	want := []string{"aff useraa none knock-expired", "aff " + names[MaxPending] + " member token-participant"}
	if len(s.log) != 2 || s.log[0] != want[0] || s.log[1] != want[1] {
		t.Fatalf("knock beyond the bound: %q, want %q", s.log, want)
	}
	if len(s.r.pending) != MaxPending {
		t.Fatalf("%d knocks wait, want %d", len(s.r.pending), MaxPending)
	}
	s.log = nil
	s.wait(KnockTTL)
	if len(s.r.pending) != 0 || len(s.log) != MaxPending || len(s.r.affs) != 0 {
		t.Fatalf("after the TTL: %d knocks wait, %d actions, %d affiliations known", len(s.r.pending), len(s.log), len(s.r.affs))
	}
}
