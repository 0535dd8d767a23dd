package component

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

// TestSetRole changes a present occupant's role at run time through the
// command layer: participant to moderator, then to viewer (no voice), and
// back to participant with the ad-hoc command set-role (Prosody, where the
// ad-hoc admin is registered).
func TestSetRole(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		ten := tenant(policy.Token, policy.GuestsDeny)
		ten.Policy.Viewers = true
		g := startModerated(t, srv, map[string]Tenant{"": ten}, nil)
		room := newRoom("acme")
		host, part := login(t, srv), login(t, srv)
		knockJoin(t, host, room, mint(t, room, true, nil), "host")
		knockJoin(t, part, room, mint(t, room, false, nil), "part")
		ctx := ctxT(t, 10*time.Second)
		seen := func(what string, f func(p xclient.Presence) bool) {
			t.Helper()
			if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool {
				return strings.EqualFold(p.From, room+"/part") && p.Type == "" && f(p)
			}); err != nil {
				t.Fatalf("part never became %s: %v", what, err)
			}
		}
		// gavel sees part's join a moment after part does.
		for {
			err := g.cmds.SetRole(ctx, room, "part", commands.RoleModerator, "test")
			if err == nil {
				break
			}
			if !errors.Is(err, commands.ErrParticipantNotFound) || ctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		seen("moderator", func(p xclient.Presence) bool { return p.Affiliation == "owner" && p.Role == "moderator" })
		if err := g.cmds.SetRole(ctx, room, "part", commands.RoleViewer, "test"); err != nil {
			t.Fatal(err)
		}
		seen("viewer", func(p xclient.Presence) bool { return p.Role == "visitor" })
		if err := g.cmds.SetRole(ctx, room, "nobody", commands.RoleViewer, "test"); !errors.Is(err, commands.ErrParticipantNotFound) {
			t.Errorf("set-role of a missing nick: %v", err)
		}
		if err := g.cmds.SetRole(ctx, room, "part", "owner", "test"); !errors.Is(err, commands.ErrInvalid) {
			t.Errorf("set-role to an unknown role: %v", err)
		}
		if srv.Name != "prosody" {
			return
		}
		if _, err := runCommand(t, adminClient(t), "set-role", "room", room, "participant", "part", "role", "participant"); err != nil {
			t.Fatalf("ad-hoc set-role: %v", err)
		}
		seen("participant", func(p xclient.Presence) bool { return p.Affiliation == "member" && p.Role == "participant" })
	})
}
