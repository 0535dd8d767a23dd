package policy

import "testing"

var bots = []string{"recorder.example.test"}

// meeting is a scripted meeting in one room.
type meeting struct {
	name  string
	room  string // default meet@conference.example.test
	opts  Options
	steps []step
}

func runMeetings(t *testing.T, ms []meeting) {
	t.Helper()
	for _, m := range ms {
		t.Run(m.name, func(t *testing.T) {
			room := m.room
			if room == "" {
				room = "meet@conference.example.test"
			}
			newSim(t, room, m.opts).run(m.steps)
		})
	}
}

func TestTokenPolicy(t *testing.T) {
	runMeetings(t, []meeting{
		{name: "members-only room: owner, members, guests refused", opts: Options{Kind: Token, Guests: GuestsDeny, BotDomains: bots}, steps: []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"enter guest1 guest", "refused token-required", nil},
			{"join guest2", "refused registration-required", nil},
			{"enter carl mod expired", "refused token-expired", nil},
		}},
		{name: "open room: participants need no affiliation", opts: Options{Kind: Token, Guests: GuestsMember}, steps: []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"enter guest1 guest", "none/participant guest-member", nil},
			{"join dave", "", nil},
		}},
		{name: "moderated room: members speak, guests watch", opts: Options{Kind: Token, Guests: GuestsVisitor}, steps: []step{
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"enter guest1 guest", "none/visitor guest-visitor", nil},
			{"join guest2", "", nil},
			{"enter carl viewer", "none/visitor viewer-claim", nil},
		}},
		{name: "viewer refused in an open room: it would speak", opts: Options{Kind: Token, Guests: GuestsMember}, steps: []step{
			{"knock carl viewer", "refused viewer-not-admitted", nil},
		}},
		{name: "viewer refused in a members-only room: member gives voice", opts: Options{Kind: Token, Guests: GuestsDeny}, steps: []step{
			{"knock carl viewer", "refused viewer-not-admitted", nil},
		}},
		{name: "viewers with guests denied: open, moderated room", opts: Options{Kind: Token, Guests: GuestsDeny, Viewers: true}, steps: []step{
			{"enter carl viewer", "none/visitor viewer-claim", nil},
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"knock guest1 guest", "refused token-required", nil},
		}},
		{name: "a lower token replaces the owner gavel granted on an earlier one", opts: Options{Kind: Token, Guests: GuestsMember}, steps: []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"knock alice viewer", "none/participant viewer-claim set", []string{"aff alice none viewer-claim"}},
		}},
		{name: "an owner that reloads with a participant token rejoins as participant", opts: Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true}, steps: []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"knock alice tok", "member/participant token-participant set", []string{"aff alice member token-participant"}},
			{"leave alice", "", nil},
			{"join alice", "", nil},
		}},
		{name: "a second device's lower token does not take the first's owner", opts: Options{Kind: Token, Guests: GuestsMember}, steps: []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"knock alice#2 tok", "owner/moderator existing-affiliation", nil},
		}},
		{name: "viewer claim wins over moderator", opts: Options{Kind: Token, Guests: GuestsVisitor}, steps: []step{
			{"enter carl modview", "none/visitor viewer-claim", nil},
		}},
		{name: "viewers option makes the room moderated", opts: Options{Kind: Token, Guests: GuestsMember, Viewers: true}, steps: []step{
			{"enter carl viewer", "none/visitor viewer-claim", nil},
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"enter guest1 guest", "member/participant guest-member set", []string{"aff guest1 member guest-member"}},
			{"join guest2", "", []string{"role guest2 participant guest-member"}},
			{"leave guest1", "", nil},
		}},
		{name: "a participant token keeps a higher affiliation", opts: Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true}, steps: []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter alice#2 tok", "owner/moderator existing-affiliation", nil},
			{"leave alice", "", nil},
			{"leave alice#2", "", []string{"aff alice none clear-on-leave"}},
		}},
		{name: "banned joiner is refused", opts: Options{Kind: Token, Guests: GuestsMember}, steps: []step{
			{"ban bob", "", nil},
			{"knock bob mod", "refused banned", nil},
		}},
		{name: "refreshed token of a present participant raises it", opts: Options{Kind: Token, Guests: GuestsMember}, steps: []step{
			{"enter bob tok", "none/participant token-participant", nil},
			{"knock bob mod", "owner/moderator token-moderator set", []string{"aff bob owner token-moderator"}},
		}},
		{name: "bots that never knocked are left alone", opts: Options{Kind: Token, Guests: GuestsVisitor, BotDomains: bots}, steps: []step{
			{"join bot1", "", nil},
		}},
	})
}

func TestGuests(t *testing.T) {
	for _, kind := range []Kind{Token, AutoOwner, AllOwners} {
		t.Run(kind.String(), func(t *testing.T) {
			tests := []struct {
				name   string
				guests Guests
				want   string
			}{
				{"deny", GuestsDeny, "refused token-required"},
				{"member", GuestsMember, map[Kind]string{Token: "none/participant guest-member", AutoOwner: "owner/moderator first-joiner set", AllOwners: "owner/moderator all-owners set"}[kind]},
				{"visitor", GuestsVisitor, "none/visitor guest-visitor"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s := newSim(t, "meet@conference.example.test", Options{Kind: kind, Guests: tt.guests})
					if got := s.do("enter guest1 guest"); got != tt.want {
						t.Errorf("got %q, want %q", got, tt.want)
					}
					s.check()
				})
			}
		})
	}
}

// TestTokenHoldersMember: with TokenHolders member, token holders the
// token does not make owner get the member affiliation in every room, as
// Jitsi's token_affiliation gives it; guests and viewers are unchanged, and
// the membership ends as gavel's other grants do (leave, expiry, ban).
func TestTokenHoldersMember(t *testing.T) {
	open := Options{Kind: Token, Guests: GuestsMember, ClearOnLeave: true, TokenHolders: Member}
	for _, tc := range []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"off (the default): open rooms leave token holders at none", Options{Kind: Token, Guests: GuestsMember, ClearOnLeave: true}, []step{
			{"enter bob tok", "none/participant token-participant", nil},
			{"leave bob", "", nil},
		}},
		{"off, said explicitly", Options{Kind: Token, Guests: GuestsMember, TokenHolders: None}, []step{
			{"enter bob tok", "none/participant token-participant", nil},
		}},
		{"open room: token holders are members, guests are not", open, []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"enter guest1 guest", "none/participant guest-member", nil},
			{"join dave", "", nil},
			{"leave bob", "", []string{"aff bob none clear-on-leave"}},
			{"leave guest1", "", nil},
		}},
		{"members-only room: the same as without the option", Options{Kind: Token, Guests: GuestsDeny, TokenHolders: Member}, []step{
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"enter guest1 guest", "refused token-required", nil},
		}},
		{"viewers stay viewers", Options{Kind: Token, Guests: GuestsMember, Viewers: true, TokenHolders: Member}, []step{
			{"enter carl viewer", "none/visitor viewer-claim", nil},
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
		}},
		{"a viewer is still refused where the room is not moderated", open, []step{
			{"knock carl viewer", "refused viewer-not-admitted", nil},
		}},
		{"a present holder loses membership at expiry where the room does not need it", open, []step{
			{"enter bob tok exp=10m", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"wait 10m", "", []string{"aff bob none token-expired"}},
			{"leave bob", "", nil},
		}},
		{"an absent holder loses it at expiry", Options{Kind: Token, Guests: GuestsMember, TokenHolders: Member}, []step{
			{"enter bob tok exp=10m", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"leave bob", "", nil},
			{"wait 10m", "", []string{"aff bob none token-expired"}},
		}},
		{"a banned holder stays banned", open, []step{
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"ban bob", "", nil},
			{"knock bob tok", "refused banned", nil},
		}},
		{"a moderator's refreshed participant token makes it member", open, []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"knock alice tok", "member/participant token-participant set", []string{"aff alice member token-participant"}},
		}},
		{"identity stamped after the join (polling mode)", open, []step{
			{"join dave", "", nil},
			{"identity dave tok", "", []string{"aff dave member token-participant"}},
			{"join carl", "", nil},
			{"identity carl viewer", "", []string{"role carl visitor viewer-claim"}},
			{"join erin", "", nil},
			{"identity erin mod", "", []string{"aff erin owner token-moderator"}},
		}},
		{"auto-owner: the owner's successor was a member", Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true, TokenHolders: Member}, []step{
			{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"enter guest1 guest", "none/participant guest-member", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
		}},
		{"all-owners: members only in moderated rooms", Options{Kind: AllOwners, Guests: GuestsMember, TokenHolders: Member, ModeratedRooms: []string{"meet"}}, []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
		}},
		{"all-owners elsewhere: everyone owns", Options{Kind: AllOwners, Guests: GuestsMember, TokenHolders: Member}, []step{
			{"enter bob tok", "owner/moderator all-owners set", []string{"aff bob owner all-owners"}},
		}},
		{"switching away from all-owners leaves token holders members", open, []step{
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"policy all-owners", "", []string{"aff bob owner admin-policy"}},
			{"policy token", "", []string{"aff bob member admin-policy"}},
		}},
		{"an admin's participant role for a token holder is member", open, []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"role alice participant", "", []string{"aff alice member set-by-admin"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runRuntime(t, tc.opts, tc.steps) })
	}
}
