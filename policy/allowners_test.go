package policy

import "testing"

func TestAllOwners(t *testing.T) {
	all := Options{Kind: AllOwners, Guests: GuestsMember, ClearOnLeave: true, BotDomains: bots}
	reassert := all
	reassert.ReassertOwners = true
	runMeetings(t, []meeting{
		{name: "every joiner owns", opts: all, steps: []step{
			{"enter alice tok", "owner/moderator all-owners set", []string{"aff alice owner all-owners"}},
			{"enter bob mod", "owner/moderator token-moderator set", []string{"aff bob owner token-moderator"}},
			{"enter guest1 guest", "owner/moderator all-owners set", []string{"aff guest1 owner all-owners"}},
			{"join dave", "", []string{"aff dave owner all-owners"}},
			{"leave dave", "", []string{"aff dave none clear-on-leave"}},
		}},
		{name: "viewers stay visitors", opts: Options{Kind: AllOwners, Guests: GuestsMember, Viewers: true}, steps: []step{
			{"enter carl viewer", "none/visitor viewer-claim", nil},
		}},
		{name: "viewers are refused where rooms are not moderated", opts: all, steps: []step{
			{"knock carl viewer", "refused viewer-not-admitted", nil},
		}},
		{name: "visitor guests stay visitors", opts: Options{Kind: AllOwners, Guests: GuestsVisitor}, steps: []step{
			{"enter guest1 guest", "none/visitor guest-visitor", nil},
			{"join guest2", "", nil},
			{"enter alice tok", "owner/moderator all-owners set", []string{"aff alice owner all-owners"}},
		}},
		{name: "denied guests are refused", opts: Options{Kind: AllOwners, Guests: GuestsDeny}, steps: []step{
			{"enter guest1 guest", "refused token-required", nil},
			{"enter alice tok", "owner/moderator all-owners set", []string{"aff alice owner all-owners"}},
		}},
		{name: "bots that never knocked are left alone", opts: all, steps: []step{
			{"join bot1", "", nil},
		}},
		{name: "moderated rooms use the token policy", room: "[acme]standup@conference.example.test",
			opts: Options{Kind: AllOwners, Guests: GuestsMember, ModeratedRooms: []string{"standup"}}, steps: []step{
				{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
				{"enter bob tok", "none/participant token-participant", nil},
				{"join dave", "", nil},
			}},
		{name: "other rooms of the tenant do not", room: "[acme]party@conference.example.test",
			opts: Options{Kind: AllOwners, Guests: GuestsMember, ModeratedRooms: []string{"standup"}}, steps: []step{
				{"enter bob tok", "owner/moderator all-owners set", []string{"aff bob owner all-owners"}},
			}},
		{name: "demotions stand without reassert", opts: all, steps: []step{
			{"enter alice tok", "owner/moderator all-owners set", []string{"aff alice owner all-owners"}},
			{"enter bob tok", "owner/moderator all-owners set", []string{"aff bob owner all-owners"}},
			{"set bob none", "", nil},
			{"leave bob", "", nil},
		}},
		{name: "reassert undoes demotions", opts: reassert, steps: []step{
			{"enter alice tok", "owner/moderator all-owners set", []string{"aff alice owner all-owners"}},
			{"enter bob tok", "owner/moderator all-owners set", []string{"aff bob owner all-owners"}},
			{"set bob member", "", []string{"aff bob owner reassert"}},
			{"set bob admin", "", []string{"aff bob owner reassert"}},
			{"leave bob", "", []string{"aff bob none clear-on-leave"}},
		}},
		{name: "reassert leaves bans and absent owners alone", opts: reassert, steps: []step{
			{"enter alice tok", "owner/moderator all-owners set", []string{"aff alice owner all-owners"}},
			{"enter bob tok", "owner/moderator all-owners set", []string{"aff bob owner all-owners"}},
			{"ban bob", "", nil},
			{"set carl owner", "", nil},
			{"set carl none", "", nil},
		}},
		{name: "token expiry does not end all-owners ownership", opts: all, steps: []step{
			{"enter alice tok exp=10m", "owner/moderator all-owners set", []string{"aff alice owner all-owners"}},
			{"wait 11m", "", nil},
		}},
	})
}
