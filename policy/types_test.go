package policy

import (
	"testing"
)

func TestAffiliationOrderAndWords(t *testing.T) {
	order := []Affiliation{Outcast, None, Member, Admin, Owner}
	words := []string{"outcast", "none", "member", "admin", "owner"}
	for i, a := range order {
		if i > 0 && !(order[i-1] < a) {
			t.Errorf("%s is not above %s", a, order[i-1])
		}
		if a.String() != words[i] {
			t.Errorf("String() = %q, want %q", a.String(), words[i])
		}
		got, err := ParseAffiliation(words[i])
		if err != nil || got != a {
			t.Errorf("ParseAffiliation(%q) = %v, %v", words[i], got, err)
		}
	}
}

func TestRoleOrderAndWords(t *testing.T) {
	order := []Role{RoleNone, Visitor, Participant, Moderator}
	words := []string{"none", "visitor", "participant", "moderator"}
	for i, r := range order {
		if i > 0 && !(order[i-1] < r) {
			t.Errorf("%s is not above %s", r, order[i-1])
		}
		if r.String() != words[i] {
			t.Errorf("String() = %q, want %q", r.String(), words[i])
		}
		got, err := ParseRole(words[i])
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v", words[i], got, err)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		parse   func(string) (string, error)
		in      string
		want    string
		wantErr string
	}{
		{"kind token", parseString(ParseKind), "token", "token", ""},
		{"kind auto-owner", parseString(ParseKind), "auto-owner", "auto-owner", ""},
		{"kind all-owners", parseString(ParseKind), "all-owners", "all-owners", ""},
		{"kind unknown", parseString(ParseKind), "everyone", "", `policy: unknown policy "everyone"`},
		{"guests deny", parseString(ParseGuests), "deny", "deny", ""},
		{"guests member", parseString(ParseGuests), "member", "member", ""},
		{"guests visitor", parseString(ParseGuests), "visitor", "visitor", ""},
		{"guests unknown", parseString(ParseGuests), "maybe", "", `policy: unknown guests setting "maybe"`},
		{"affiliation case matters", parseString(ParseAffiliation), "Owner", "", `policy: unknown affiliation "Owner"`},
		{"affiliation empty", parseString(ParseAffiliation), "", "", `policy: unknown affiliation ""`},
		{"role unknown", parseString(ParseRole), "host", "", `policy: unknown role "host"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func parseString[T interface{ String() string }](parse func(string) (T, error)) func(string) (string, error) {
	return func(s string) (string, error) {
		v, err := parse(s)
		if err != nil {
			return "", err
		}
		return v.String(), nil
	}
}

func TestInvalidValuesPrint(t *testing.T) {
	tests := []struct {
		name string
		v    interface{ String() string }
		want string
	}{
		{"zero affiliation", Affiliation(0), "Affiliation(0)"},
		{"role out of range", Role(9), "Role(9)"},
		{"kind out of range", Kind(7), "Kind(7)"},
		{"guests out of range", Guests(7), "Guests(7)"},
		{"empty action", Action{}, "Action(0)"},
		{"affiliation action", Action{Kind: ActionSetAffiliation, BareJID: "a@x", Affiliation: Owner, Reason: ReasonHandover}, "set-affiliation a@x owner (handover)"},
		{"role action", Action{Kind: ActionSetRole, Nick: "carl", Role: Visitor, Reason: ReasonViewer}, "set-role carl visitor (viewer-claim)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRoomConfig(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want RoomConfig
	}{
		{"guests deny", Options{Guests: GuestsDeny}, RoomConfig{MembersOnly: true}},
		{"guests member", Options{Guests: GuestsMember}, RoomConfig{}},
		{"guests visitor", Options{Guests: GuestsVisitor}, RoomConfig{Moderated: true}},
		{"viewers", Options{Guests: GuestsMember, Viewers: true}, RoomConfig{Moderated: true}},
		{"viewers and deny: never members-only", Options{Guests: GuestsDeny, Viewers: true}, RoomConfig{Moderated: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.opts.RoomConfig(); got != tt.want {
				t.Errorf("RoomConfig() = %+v, want %+v", got, tt.want)
			}
			if got := NewRoom("r@c.example.test", tt.opts).Config(); got != tt.want {
				t.Errorf("Room.Config() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestModeratedRoom(t *testing.T) {
	rooms := []string{"standup", "Board"}
	tests := []struct {
		name string
		room string
		want bool
	}{
		{"plain", "standup@conference.example.test", true},
		{"tenant prefix", "[acme]standup@conference.example.test", true},
		{"case", "board@conference.example.test", true},
		{"other room", "party@conference.example.test", false},
		{"prefix only", "standup2@conference.example.test", false},
		{"tenant named like the room", "[standup]party@conference.example.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := moderatedRoom(tt.room, rooms); got != tt.want {
				t.Errorf("moderatedRoom(%q) = %v, want %v", tt.room, got, tt.want)
			}
			want := AllOwners
			if tt.want {
				want = Token
			}
			if got := NewRoom(tt.room, Options{Kind: AllOwners, ModeratedRooms: rooms}).Kind(); got != want {
				t.Errorf("Kind() = %v, want %v", got, want)
			}
		})
	}
}
