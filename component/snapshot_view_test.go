package component

import (
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/policy"
)

// TestRoomViews pictures a room with a moderator and a participant, each
// with the reason of its rights, then after an admin made the participant
// moderator; another tenant sees nothing of it (Prosody 0.12 only: the view
// reads gavel's own state, the same on every server).
func TestRoomViews(t *testing.T) {
	srv := matrix[0].get(t)
	g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	room := newRoom("acme")
	host, part := login(t, srv), login(t, srv)
	knockJoin(t, host, room, mint(t, room, true, nil), "host")
	knockJoin(t, part, room, mint(t, room, false, nil), "part")
	ctx := ctxT(t, 10*time.Second)

	// until waits for the room's picture to satisfy ok, and returns it.
	until := func(what string, ok func(map[string]commands.OccupantView) bool) (commands.RoomView, map[string]commands.OccupantView) {
		t.Helper()
		for {
			views, err := g.mod.RoomViews(ctx, "acme")
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if len(views) == 1 {
				byNick := map[string]commands.OccupantView{}
				for _, o := range views[0].Occupants {
					byNick[o.Nick] = o
				}
				if ok(byNick) {
					return views[0], byNick
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: never seen; last %+v", what, views)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	v, occ := until("both occupants", func(o map[string]commands.OccupantView) bool { return len(o) == 2 })
	if v.JID != room || v.Tenant != "acme" || v.Policy != "token" || v.State != "joined" {
		t.Errorf("room %+v", v)
	}
	if h := occ["host"]; h.Affiliation != "owner" || h.Role != "moderator" || h.Reason != policy.ReasonTokenModerator || h.Expires.IsZero() || h.UserID == "" {
		t.Errorf("host %+v", h)
	}
	if p := occ["part"]; p.Role != "participant" || p.Reason != policy.ReasonTokenParticipant || p.BareJID == "" {
		t.Errorf("part %+v", p)
	}
	if err := g.cmds.SetRole(ctx, room, "part", commands.RoleModerator, "test"); err != nil {
		t.Fatal(err)
	}
	until("part set by an admin", func(o map[string]commands.OccupantView) bool {
		return o["part"].Reason == ReasonSetByAdmin && o["part"].Role == "moderator"
	})
	if views, err := g.mod.RoomViews(ctx, "other"); err != nil || len(views) != 0 {
		t.Errorf("another tenant's views: %v, %v", views, err)
	}
}

// TestWhyFallback: without a recorded change, the reason follows from what
// the occupant knocked with and the room's policy; a recorded change wins,
// the latest of its bare JID's and its nick's.
func TestWhyFallback(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    policy.Occupant
		kind policy.Kind
		want string
	}{
		{"token moderator", policy.Occupant{Token: true, Moderator: true, Affiliation: policy.Owner}, policy.Token, policy.ReasonTokenModerator},
		{"token participant", policy.Occupant{Token: true, Affiliation: policy.Member}, policy.Token, policy.ReasonTokenParticipant},
		{"viewer", policy.Occupant{Token: true, Viewer: true}, policy.Token, policy.ReasonViewer},
		{"all-owners", policy.Occupant{Affiliation: policy.Owner}, policy.AllOwners, policy.ReasonAllOwners},
		{"auto-owner", policy.Occupant{Affiliation: policy.Owner}, policy.AutoOwner, policy.ReasonFirstJoiner},
		{"guest visitor", policy.Occupant{Knocked: true, Role: policy.Visitor}, policy.Token, policy.ReasonGuestVisitor},
		{"guest member", policy.Occupant{Knocked: true, Role: policy.Participant}, policy.Token, policy.ReasonGuestMember},
		{"existing", policy.Occupant{Affiliation: policy.Admin}, policy.Token, policy.ReasonExisting},
		{"bot", policy.Occupant{Bot: true}, policy.Token, "bot"},
		{"nothing", policy.Occupant{Affiliation: policy.None}, policy.Token, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b whyBook
			if got := b.reason(tc.o, tc.kind); got != tc.want {
				t.Errorf("reason %q, want %q", got, tc.want)
			}
		})
	}
	b := whyBook{
		byBare: map[string]whyEntry{"a@x": {reason: policy.ReasonTokenParticipant, seq: 1}},
		byNick: map[string]whyEntry{"a": {reason: ReasonSetByAdmin, seq: 2}},
	}
	if got := b.reason(policy.Occupant{Nick: "a", BareJID: "a@x"}, policy.Token); got != ReasonSetByAdmin {
		t.Errorf("the later nick entry: %q", got)
	}
	b.byBare["a@x"] = whyEntry{reason: policy.ReasonTokenModerator, seq: 3}
	if got := b.reason(policy.Occupant{Nick: "a", BareJID: "a@x"}, policy.Token); got != policy.ReasonTokenModerator {
		t.Errorf("the later bare JID entry: %q", got)
	}
}
