package policy

import (
	"testing"
	"time"
)

func TestAutoOwner(t *testing.T) {
	open := Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true, BotDomains: bots}
	keep := Options{Kind: AutoOwner, Guests: GuestsMember, BotDomains: bots}
	runMeetings(t, []meeting{
		{name: "first joiner owns, others participate", opts: open, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"enter guest1 guest", "none/participant guest-member", nil},
		}},
		{name: "handover on leave to the longest present", opts: open, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"enter carl tok", "none/participant token-participant", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
			{"leave bob", "", []string{"aff bob none clear-on-leave", "aff carl owner handover"}},
		}},
		{name: "handover on kick", opts: open, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"kick alice", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
		}},
		{name: "handover on ban keeps the ban", opts: open, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"ban alice", "", []string{"aff bob owner handover"}},
			{"knock alice tok", "refused banned", nil},
		}},
		{name: "handover when the last owner is demoted skips the demoted", opts: open, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"set alice member", "", []string{"aff bob owner handover"}},
		}},
		{name: "an owner set by someone else is adopted, not doubled", opts: open, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"enter carl tok", "none/participant token-participant", nil},
			{"set carl owner", "", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave"}},
			{"leave carl", "", []string{"aff bob owner handover"}},
		}},
		{name: "a joiner pre-set as owner by someone else is adopted", opts: open, steps: []step{
			{"set dave owner", "", nil},
			{"join dave", "", nil},
			{"enter bob tok", "none/participant token-participant", nil},
		}},
		{name: "bots are never chosen", opts: open, steps: []step{
			{"enter bot1 tok", "none/participant token-participant", nil},
			{"join bot2", "", nil},
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"leave alice", "", []string{"aff alice none clear-on-leave"}},
			{"join carl", "", []string{"aff carl owner first-joiner"}},
		}},
		{name: "viewers and visitor guests are never chosen", opts: Options{Kind: AutoOwner, Guests: GuestsVisitor, ClearOnLeave: true}, steps: []step{
			{"enter carl viewer", "none/visitor viewer-claim", nil},
			{"enter guest1 guest", "none/visitor guest-visitor", nil},
			{"join guest2", "", nil},
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"leave alice", "", []string{"aff alice none clear-on-leave"}},
			{"enter bob tok", "owner/moderator first-joiner set", []string{"aff bob owner first-joiner"}},
		}},
		{name: "a joiner who never knocked is eligible", opts: open, steps: []step{
			{"join alice", "", []string{"aff alice owner first-joiner"}},
			{"join bob", "", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
		}},
		{name: "a moderator token owns too", opts: open, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob mod", "owner/moderator token-moderator set", []string{"aff bob owner token-moderator"}},
			{"leave alice", "", []string{"aff alice none clear-on-leave"}},
		}},
		{name: "guests denied still apply", opts: Options{Kind: AutoOwner, Guests: GuestsDeny}, steps: []step{
			{"enter guest1 guest", "refused token-required", nil},
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
		}},
		{name: "without clear-on-leave a returning owner keeps ownership", opts: keep, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"leave alice", "", []string{"aff bob owner handover"}},
			{"enter alice tok", "owner/moderator existing-affiliation", nil},
		}},
		{name: "a second session of the owner is not a second owner", opts: open, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"enter alice#2 tok", "owner/moderator first-joiner", nil},
			{"leave alice", "", nil},
			{"leave alice#2", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
		}},
		{name: "ties in join time go by join order", opts: open, steps: []step{
			{"join alice", "", []string{"aff alice owner first-joiner"}},
			{"join carl", "", nil},
			{"join bob", "", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave", "aff carl owner handover"}},
		}},
		{name: "a demoted owner's refreshed token does not hand ownership back", opts: Options{Kind: AutoOwner, Guests: GuestsMember, Viewers: true, ClearOnLeave: true}, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob viewer", "none/visitor viewer-claim", nil},
			{"set alice member", "", nil},
			{"knock alice tok exp=1h", "member/participant token-participant", nil},
			{"enter carl tok", "owner/moderator first-joiner set", []string{"aff carl owner first-joiner"}},
		}},
		{name: "a visitor given voice becomes eligible", opts: Options{Kind: AutoOwner, Guests: GuestsMember, Viewers: true, ClearOnLeave: true}, steps: []step{
			{"enter carl viewer", "none/visitor viewer-claim", nil},
			{"join dave", "", []string{"role dave participant guest-member", "aff dave owner first-joiner"}},
		}},
	})
}

// A guest is promoted only where guests are admitted as members: under
// deny it is being removed, under visitor it has no voice.
func TestAutoOwnerNeverPromotesDeniedGuests(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		guests Guests
		want   bool
	}{{GuestsDeny, false}, {GuestsVisitor, false}, {GuestsMember, true}} {
		t.Run(tc.guests.String(), func(t *testing.T) {
			r := NewRoom("r@conference.example.test", Options{Kind: AutoOwner, Guests: tc.guests})
			r.Knock("a@example.test", "a@example.test/1", Identity{HasToken: true, UserID: "a"}, now)
			r.Joined(Presence{Nick: "a", FullJID: "a@example.test/1", BareJID: "a@example.test", Affiliation: Owner, Role: Moderator}, now)
			r.Joined(Presence{Nick: "g", FullJID: "g@guest.example.test/1", BareJID: "g@guest.example.test", Affiliation: None, Role: Participant}, now)
			r.SetIdentity("g@guest.example.test/1", Identity{}, now)
			actions := r.Left("a", now.Add(time.Second))
			promoted := false
			for _, a := range actions {
				if a.Kind == ActionSetAffiliation && a.BareJID == "g@guest.example.test" && a.Affiliation == Owner {
					promoted = true
				}
			}
			if promoted != tc.want {
				t.Errorf("guest promoted = %v, want %v (actions %v)", promoted, tc.want, actions)
			}
		})
	}
}
