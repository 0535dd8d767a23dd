package policy

import "testing"

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
		{name: "a demoted owner's refreshed token does not hand ownership back", opts: open, steps: []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob viewer", "none/visitor viewer-claim", []string{"role bob visitor viewer-claim"}},
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
