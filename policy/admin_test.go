package policy

import (
	"slices"
	"testing"
	"time"
)

func TestServerConfig(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		open bool
		want RoomConfig
	}{
		{"deny: members-only", Options{Guests: GuestsDeny}, false, RoomConfig{MembersOnly: true}},
		{"deny, open to clients that never knock", Options{Guests: GuestsDeny}, true, RoomConfig{}},
		{"visitor guests: moderated", Options{Guests: GuestsVisitor}, true, RoomConfig{Moderated: true}},
		{"viewers: moderated from creation", Options{Guests: GuestsDeny, Viewers: true}, false, RoomConfig{Moderated: true}},
		{"viewers, open", Options{Guests: GuestsMember, Viewers: true}, true, RoomConfig{Moderated: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRoom("r@c.example.test", tt.opts)
			if got := r.ServerConfig(tt.open); got != tt.want {
				t.Errorf("ServerConfig(%t) = %+v, want %+v", tt.open, got, tt.want)
			}
			if a := r.Configure(tt.open); a.Kind != ActionConfigure || a.Config != tt.want {
				t.Errorf("Configure(%t) = %v", tt.open, a)
			}
		})
	}
}

func TestDeniesGuest(t *testing.T) {
	tests := []struct {
		name   string
		guests Guests
		j      Joiner
		want   bool
	}{
		{"guest where guests are denied", GuestsDeny, Joiner{}, true},
		{"guest where guests are members", GuestsMember, Joiner{}, false},
		{"guest where guests are visitors", GuestsVisitor, Joiner{}, false},
		{"knocked", GuestsDeny, Joiner{Knocked: true}, false},
		{"identified by the server", GuestsDeny, Joiner{Identified: true}, false},
		{"joined as a member", GuestsDeny, Joiner{JoinAffiliation: Member}, false},
		{"joined as owner", GuestsDeny, Joiner{JoinAffiliation: Owner}, false},
		{"joined without affiliation", GuestsDeny, Joiner{JoinAffiliation: None}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRoom("r@c.example.test", Options{Guests: tt.guests})
			if got := r.DeniesGuest(tt.j); got != tt.want {
				t.Errorf("DeniesGuest(%+v) = %t, want %t", tt.j, got, tt.want)
			}
		})
	}
}

func TestKickGuest(t *testing.T) {
	r := NewRoom("r@c.example.test", Options{Guests: GuestsDeny})
	got := r.KickGuest("eve", "eve@example.test", false)
	if len(got) != 1 || got[0].Kind != ActionKick || got[0].Nick != "eve" || got[0].Text == "" {
		t.Errorf("plain guest: %v", got)
	}
	got = r.KickGuest("eve", "eve@example.test", true)
	if len(got) != 2 || got[0].Kind != ActionSetAffiliation || got[0].Affiliation != None || got[1].Kind != ActionKick {
		t.Errorf("creator: %v", got)
	}
}

func TestCreators(t *testing.T) {
	r := NewRoom("r@c.example.test", Options{Kind: Token, Guests: GuestsMember, BotDomains: []string{"bots.example.test"}})
	present := []Presence{
		{Nick: "alice", FullJID: "alice@example.test/a", BareJID: "alice@example.test", Affiliation: Owner, Role: Moderator},
		{Nick: "focus", FullJID: "focus@bots.example.test/f", BareJID: "focus@bots.example.test", Affiliation: Owner, Role: Moderator},
		{Nick: "bob", FullJID: "bob@example.test/b", BareJID: "bob@example.test", Affiliation: None, Role: Participant},
	}
	shown, creators := r.AdoptCreators(present)
	if !slices.Equal(creators, []string{"alice@example.test"}) {
		t.Fatalf("creators = %v", creators)
	}
	if shown[0].Affiliation != None || shown[0].Role != Participant || shown[1].Affiliation != Owner || present[0].Affiliation != Owner {
		t.Errorf("shown = %+v (present must not change: %+v)", shown, present)
	}

	acts := []Action{
		{Kind: ActionSetAffiliation, BareJID: "alice@example.test", Affiliation: Owner},
		{Kind: ActionSetAffiliation, BareJID: "bob@example.test", Affiliation: Owner},
	}
	out, wanted := HoldCreatorGrants(acts, creators)
	if len(out) != 1 || out[0].BareJID != "bob@example.test" || !slices.Equal(wanted, creators) {
		t.Errorf("HoldCreatorGrants = %v, %v", out, wanted)
	}

	tests := []struct {
		name      string
		wanted    bool
		acts      []Action
		withdrawn bool
		n         int
	}{
		{"wanted when adopted", true, nil, false, 0},
		{"granted now: nothing to send", false, []Action{{Kind: ActionSetAffiliation, BareJID: "alice@example.test", Affiliation: Owner}}, false, 0},
		{"not wanted: withdrawn", false, []Action{{Kind: ActionSetRole, Nick: "alice", Role: Participant}}, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, withdrawn := SettleCreator("alice@example.test", tt.wanted, tt.acts)
			if withdrawn != tt.withdrawn || len(out) != tt.n {
				t.Errorf("SettleCreator = %v, %t", out, withdrawn)
			}
			if withdrawn && (out[0].Affiliation != None || out[0].BareJID != "alice@example.test") {
				t.Errorf("withdrawal = %v", out[0])
			}
		})
	}
}

func TestBanAndUnban(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	r := NewRoom("r@c.example.test", Options{Kind: Token, Guests: GuestsMember})
	r.Joined(Presence{Nick: "eve", FullJID: "eve@example.test/1", BareJID: "eve@example.test", Affiliation: None, Role: Participant}, now)
	r.Joined(Presence{Nick: "eve2", FullJID: "eve@example.test/2", BareJID: "eve@example.test", Affiliation: None, Role: Participant}, now)
	r.Joined(Presence{Nick: "bob", FullJID: "bob@example.test/1", BareJID: "bob@example.test", Affiliation: None, Role: Participant}, now)
	r.Knock("mallory@example.test", "mallory@example.test/x", Identity{HasToken: true, UserID: "m"}, now)

	acts := r.Ban(func(o Occupant) bool { return o.BareJID == "eve@example.test" }, "mallory@example.test", "EVE@example.test")
	var got []string
	for _, a := range acts {
		if a.Kind != ActionSetAffiliation || a.Affiliation != Outcast || a.Reason != ReasonBan {
			t.Errorf("ban action %v", a)
		}
		got = append(got, a.BareJID)
	}
	if !slices.Equal(got, []string{"eve@example.test", "mallory@example.test"}) {
		t.Errorf("banned %v", got)
	}
	if r.Pending() != 0 {
		t.Errorf("the banned knocker's knock still waits")
	}

	// The server confirms; a knock is then refused, until the unban.
	r.AffiliationChanged("mallory@example.test", Outcast, now)
	if g, _ := r.Knock("mallory@example.test", "mallory@example.test/y", Identity{HasToken: true}, now); g.Refusal != RefusalBanned {
		t.Fatalf("knock after the ban: %+v", g)
	}
	un := r.Unban(func(bare string) bool { return bare == "mallory@example.test" })
	if len(un) != 1 || un[0].Affiliation != None || un[0].BareJID != "mallory@example.test" {
		t.Fatalf("unban = %v", un)
	}
	if g, _ := r.Knock("mallory@example.test", "mallory@example.test/y", Identity{HasToken: true}, now); g.Refused() {
		t.Errorf("knock after the unban: %+v", g)
	}
	if un := r.Unban(func(string) bool { return true }); len(un) != 0 {
		t.Errorf("nothing left to unban, got %v", un)
	}
}
