package component

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

// TestRoleByUserIDSurvivesReloadAndRestart: a role set for a user id
// reaches the user's present session at once, its next session (a reload
// as a new anonymous JID), and its sessions after gavel's restart; the
// room's last occupant leaving does not end it either.
func TestRoleByUserIDSurvivesReloadAndRestart(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		tenants := map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}
		g := startModeratedWith(t, srv, MUC{Domain: prosodytest.MUC}, tenants, boltStore(t), nil)
		room := newRoom("")
		uid := "ada-" + srv.Name
		tok := func() string { return mint(t, room, false, func(r *auth.MintRequest) { r.UserID = uid }) }
		host, ada := login(t, srv), login(t, srv)
		knockJoin(t, host, room, mint(t, room, true, nil), "host")
		if res, _ := knockJoin(t, ada, room, tok(), "ada"); res.Affiliation == "owner" {
			t.Fatalf("ada: %+v", res)
		}
		ctx := ctxT(t, 10*time.Second)
		owner := func(nick string) func(xclient.Presence) bool {
			return func(p xclient.Presence) bool {
				return strings.EqualFold(p.From, room+"/"+nick) && p.Type == "" && p.Affiliation == "owner"
			}
		}
		promoted := after(host, owner("ada"))
		n, err := g.cmds.AssignRole(ctx, commands.RoleRequest{Room: room, UserID: uid, Role: commands.RoleModerator}, "test")
		// 0 when gavel has not seen ada's join yet: the role then
		// applies as the join arrives.
		if err != nil || n > 1 {
			t.Fatalf("AssignRole by user id = %d, %v", n, err)
		}
		if _, err := host.WaitPresence(ctx, promoted); err != nil {
			t.Fatalf("ada did not become owner: %v", err)
		}
		// A reload: the session leaves, a new one knocks with the same user id.
		if err := ada.Leave(ctx, room, "ada"); err != nil {
			t.Fatal(err)
		}
		ada2 := login(t, srv)
		if res, p := knockJoin(t, ada2, room, tok(), "ada2"); res.Affiliation != "owner" || res.Reason != policy.ReasonAdminRole || p.Affiliation != "owner" {
			t.Fatalf("ada's reload: knock %+v, presence %s", res, p.Affiliation)
		}
		// gavel restarts (a crash); ada reloads again afterwards.
		back := after(host, isGavel(room))
		g = restartGavel(t, srv, g, tenants, true)
		gavelBack(t, host, room, back)
		if err := ada2.Leave(ctx, room, "ada2"); err != nil {
			t.Fatal(err)
		}
		ada3 := login(t, srv)
		if res, _ := knockJoin(t, ada3, room, tok(), "ada3"); res.Affiliation != "owner" || res.Reason != policy.ReasonAdminRole {
			t.Fatalf("ada's reload after gavel's restart: %+v", res)
		}
		// Everyone leaves: gavel leaves the room; the role waits for ada.
		for _, x := range []struct {
			cl   *xclient.Client
			nick string
		}{{ada3, "ada3"}, {host, "host"}} {
			if err := x.cl.Leave(ctx, room, x.nick); err != nil {
				t.Fatal(err)
			}
		}
		waitRooms(t, g.mod, 0)
		ada4 := login(t, srv)
		if res, _ := knockJoin(t, ada4, room, tok(), "ada4"); res.Affiliation != "owner" || res.Reason != policy.ReasonAdminRole {
			t.Fatalf("ada back in the emptied room: %+v", res)
		}
		// Back to the default: the token's participant.
		demoted := after(ada4, func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/ada4") && p.Type == "" && p.Affiliation != "owner"
		})
		if _, err := g.cmds.AssignRole(ctx, commands.RoleRequest{Room: room, UserID: uid, Role: commands.RoleDefault}, "test"); err != nil {
			t.Fatal(err)
		}
		if _, err := ada4.WaitPresence(ctx, demoted); err != nil {
			t.Fatalf("the default role did not take ownership back: %v", err)
		}
	})
}

// TestSetPolicyAllOwners switches a token room to all-owners at run time:
// the participant present becomes owner, and so does the next joiner.
func TestSetPolicyAllOwners(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		room := newRoom("")
		host, part, late := login(t, srv), login(t, srv), login(t, srv)
		knockJoin(t, host, room, mint(t, room, true, nil), "host")
		knockJoin(t, part, room, mint(t, room, false, nil), "part")
		ctx := ctxT(t, 10*time.Second)
		promoted := after(host, func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/part") && p.Type == "" && p.Affiliation == "owner"
		})
		if err := g.cmds.SetPolicy(ctx, room, commands.PolicyAllOwners, "test"); err != nil {
			t.Fatal(err)
		}
		if _, err := host.WaitPresence(ctx, promoted); err != nil {
			t.Fatalf("part did not become owner: %v", err)
		}
		if res, _ := knockJoin(t, late, room, mint(t, room, false, nil), "late"); res.Affiliation != "owner" || res.Reason != policy.ReasonAllOwners {
			t.Errorf("a joiner after the switch: %+v", res)
		}
		if err := g.cmds.SetPolicy(ctx, room, "everyone", "test"); err == nil {
			t.Error("an unknown policy was accepted")
		}
		if srv.Name != "prosody" {
			return
		}
		if _, err := runCommand(t, adminClient(t), "set-policy", "room", room, "policy", "token"); err != nil {
			t.Fatalf("ad-hoc set-policy: %v", err)
		}
		// The ad-hoc set-role for a user id, before the user arrives.
		if _, err := runCommand(t, adminClient(t), "set-role", "room", room, "user", "viewer-"+srv.Name, "role", "viewer"); err != nil {
			t.Fatalf("ad-hoc set-role by user id: %v", err)
		}
	})
}

// TestWaitForHost: until a moderator is in the room, other knocks are
// answered wait/resource-constraint with host-absent; then they pass.
func TestWaitForHost(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		ten := tenant(policy.Token, policy.GuestsDeny)
		ten.Policy.WaitForHost = true
		startModerated(t, srv, map[string]Tenant{"": ten}, nil)
		room := newRoom("")
		host, part := login(t, srv), login(t, srv)
		ctx := ctxT(t, 10*time.Second)
		tok := mint(t, room, false, nil)
		_, err := part.Knock(ctx, prosodytest.Component, room, tok)
		wantRefusal(t, err, "wait", "resource-constraint", "host-absent")
		knockJoin(t, host, room, mint(t, room, true, nil), "host")
		if res, _ := knockJoin(t, part, room, tok, "part"); res.Role != "participant" {
			t.Errorf("part after the host came: %+v", res)
		}
	})
}

// TestEndWithoutHost: once the last moderator has been gone for the
// tenant's timeout (on the fake clock), gavel destroys the room.
func TestEndWithoutHost(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		ten := tenant(policy.Token, policy.GuestsDeny)
		ten.Policy.EndWithoutHost = 2 * time.Minute
		clock := &fakeClock{now: time.Now()}
		startModeratedWith(t, srv, MUC{Domain: prosodytest.MUC}, map[string]Tenant{"": ten}, nil, func(o *ModerationOptions) { o.Clock = clock })
		room := newRoom("")
		host, part := login(t, srv), login(t, srv)
		knockJoin(t, host, room, mint(t, room, true, nil), "host")
		knockJoin(t, part, room, mint(t, room, false, nil), "part")
		ctx := ctxT(t, 10*time.Second)
		hostGone := after(part, func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/host") && p.Type == "unavailable"
		})
		if err := host.Leave(ctx, room, "host"); err != nil {
			t.Fatal(err)
		}
		if _, err := part.WaitPresence(ctx, hostGone); err != nil {
			t.Fatal(err)
		}
		destroyed := after(part, func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/part") && p.Type == "unavailable"
		})
		// The policy's timer is armed once gavel has seen the leave: keep
		// moving the clock until the room is destroyed.
		deadline := time.Now().Add(10 * time.Second)
		for {
			clock.Advance(2*time.Minute + time.Second)
			wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			_, err := part.WaitPresence(wctx, destroyed)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the room without its host was not destroyed")
			}
		}
	})
}

// TestRoleByUserIDSurvivesServerRestart: a role set for a user id holds
// after the server restarts, cleanly (rooms restored from disk) or by a
// crash (rooms lost): the user's next knock gets it.
func TestRoleByUserIDSurvivesServerRestart(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "SIGTERM", true: "SIGKILL"}[crash], func(t *testing.T) {
			onEachServer(t, func(t *testing.T, srv *server) {
				srv = restartable(t, srv, prosodytest.Options{RestrictRoomCreation: true})
				tenants := map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}
				g := startModeratedWith(t, srv, MUC{Domain: prosodytest.MUC}, tenants, boltStore(t), nil)
				room := newRoom("")
				uid := "ada-" + srv.Name
				tok := func() string { return mint(t, room, false, func(r *auth.MintRequest) { r.UserID = uid }) }
				ada := login(t, srv)
				knockJoin(t, ada, room, tok(), "ada")
				ctx := ctxT(t, 20*time.Second)
				if _, err := g.cmds.AssignRole(ctx, commands.RoleRequest{Room: room, UserID: uid, Role: commands.RoleModerator}, "test"); err != nil {
					t.Fatal(err)
				}
				stop := srv.Stop
				if crash {
					stop = srv.Kill
				}
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				if err := srv.Restart(); err != nil {
					t.Fatal(err)
				}
				g.waitConnected(t, 5*time.Second)
				ada = login(t, srv)
				res, p := knockJoin(t, ada, room, tok(), "ada")
				if res.Affiliation != "owner" || res.Reason != policy.ReasonAdminRole || p.Affiliation != "owner" {
					t.Fatalf("after the server's restart: knock %+v, joined as %s/%s", res, p.Affiliation, p.Role)
				}
			})
		})
	}
}
