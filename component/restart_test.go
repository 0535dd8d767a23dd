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
	"github.com/gavelxmpp/gavel/store"
)

// boltStore opens a bbolt store in a temporary directory for the test.
func boltStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// restartGavel stops g and starts a new gavel on the same store, as a
// restart of the process would. crash drops the connection first, so gavel
// leaves nothing behind cleanly (as after kill -9: its occupant stays in
// the rooms as a ghost).
func restartGavel(t *testing.T, srv *server, g *moderated, tenants map[string]Tenant, crash bool) *moderated {
	t.Helper()
	if crash {
		crashStop(g)
	} else {
		g.stop()
	}
	return startModeratedWith(t, srv, MUC{Domain: prosodytest.MUC}, tenants, g.store, nil)
}

// crashStop drops g's connection first, so gavel leaves nothing behind
// cleanly (as after kill -9), and stops it.
func crashStop(g *moderated) {
	g.c.mu.Lock()
	sess := g.c.sess
	g.c.mu.Unlock()
	if sess != nil {
		_ = sess.conn.Close()
	}
	g.stop()
}

// after returns a presence filter that skips the presences cl had received
// when after was called.
func after(cl *xclient.Client, f func(xclient.Presence) bool) func(xclient.Presence) bool {
	skip := len(cl.Presences())
	return func(p xclient.Presence) bool {
		if skip > 0 {
			skip--
			return false
		}
		return f(p)
	}
}

// gavelBack waits until cl sees gavel's new occupant join room.
func gavelBack(t *testing.T, cl *xclient.Client, room string, from func(xclient.Presence) bool) {
	t.Helper()
	if _, err := cl.WaitPresence(ctxT(t, 10*time.Second), from); err != nil {
		t.Fatalf("gavel did not come back into %s: %v", room, err)
	}
}

func isGavel(room string) func(xclient.Presence) bool {
	return func(p xclient.Presence) bool {
		nick, ok := strings.CutPrefix(strings.ToLower(p.From), strings.ToLower(room)+"/")
		return ok && strings.HasPrefix(nick, "gavel") && p.Type == "" && p.Affiliation == "owner"
	}
}

// TestRestartKeepsAutoOwnerOrder: after gavel restarts (crash or clean
// stop), the owner's leave still promotes the longest present occupant, and
// a ban by user id issued after the restart removes the present occupant.
// (Before, nobody was promoted and the ban removed no one.)
func TestRestartKeepsAutoOwnerOrder(t *testing.T) {
	for _, crash := range []bool{true, false} {
		name := map[bool]string{true: "crash", false: "clean stop"}[crash]
		t.Run(name, func(t *testing.T) {
			onEachServer(t, func(t *testing.T, srv *server) {
				tenants := map[string]Tenant{"": tenant(policy.AutoOwner, policy.GuestsMember)}
				g := startModeratedWith(t, srv, MUC{Domain: prosodytest.MUC}, tenants, boltStore(t), nil)
				room := newRoom("")
				alice, bob, carl := login(t, srv), login(t, srv), login(t, srv)
				if res, _ := knockJoin(t, alice, room, mint(t, room, false, nil), "alice"); res.Affiliation != "owner" {
					t.Fatalf("alice: %+v", res)
				}
				knockJoin(t, bob, room, mint(t, room, false, nil), "bob")
				carlTok := mint(t, room, false, func(r *auth.MintRequest) { r.UserID = "carl-" + name })
				knockJoin(t, carl, room, carlTok, "carl")

				back := after(carl, isGavel(room))
				g = restartGavel(t, srv, g, tenants, crash)
				gavelBack(t, carl, room, back)
				waitRooms(t, g.mod, 1)

				promoted := after(carl, func(p xclient.Presence) bool {
					return strings.EqualFold(p.From, room+"/bob") && p.Affiliation == "owner"
				})
				if err := alice.Leave(ctxT(t, 5*time.Second), room, "alice"); err != nil {
					t.Fatal(err)
				}
				if _, err := carl.WaitPresence(ctxT(t, 10*time.Second), promoted); err != nil {
					t.Fatalf("bob, present longest, was not promoted after the restart: %v", err)
				}

				res, err := g.cmds.Ban(context.Background(), commands.BanRequest{Tenant: "example.test", Kind: store.KindUser, Value: "carl-" + name, By: "test"})
				if err != nil || res.Removed != 1 {
					t.Fatalf("ban by user id after the restart: %+v, %v (want 1 removed)", res, err)
				}
				if _, err := bob.WaitPresence(ctxT(t, 10*time.Second), func(p xclient.Presence) bool {
					return strings.EqualFold(p.From, room+"/carl") && p.Type == "unavailable"
				}); err != nil {
					t.Fatalf("banned carl not removed: %v", err)
				}
			})
		})
	}
}

// TestRestartEndsExpiredOwnerAndClearsLeavers: after a restart, owner
// rights from a token still end at its expiry, and an owner who left while
// gavel was down is not owner when it comes back with a participant token.
func TestRestartEndsExpiredOwnerAndClearsLeavers(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		tenants := map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}
		g := startModeratedWith(t, srv, MUC{Domain: prosodytest.MUC}, tenants, boltStore(t), nil)
		room := newRoom("")
		short, leaver, watcher := login(t, srv), login(t, srv), login(t, srv)
		// Rights end at exp plus the leeway: exp a leeway minus 4 s ago
		// leaves 4 s, enough for the restart.
		exp := time.Now().Add(4*time.Second - auth.DefaultLeeway)
		shortTok := mint(t, room, true, func(r *auth.MintRequest) { r.TTL = 0; r.Expires = exp; r.IssuedAt = exp.Add(-time.Minute) })
		if res, _ := knockJoin(t, short, room, shortTok, "short"); res.Affiliation != "owner" {
			t.Fatalf("short: %+v", res)
		}
		leaverID := "leaver-" + srv.Name
		if res, _ := knockJoin(t, leaver, room, mint(t, room, true, func(r *auth.MintRequest) { r.UserID = leaverID }), "leaver"); res.Affiliation != "owner" {
			t.Fatalf("leaver: %+v", res)
		}
		knockJoin(t, watcher, room, mint(t, room, false, nil), "watcher")

		g.stop()
		// While gavel is down, the leaver leaves.
		gone := after(watcher, func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/leaver") && p.Type == "unavailable"
		})
		if err := leaver.Leave(ctxT(t, 5*time.Second), room, "leaver"); err != nil {
			t.Fatal(err)
		}
		if _, err := watcher.WaitPresence(ctxT(t, 5*time.Second), gone); err != nil {
			t.Fatal(err)
		}
		back := after(watcher, isGavel(room))
		expired := after(watcher, func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/short") && p.Type == "" && p.Affiliation != "owner"
		})
		g = startModeratedWith(t, srv, MUC{Domain: prosodytest.MUC}, tenants, g.store, nil)
		gavelBack(t, watcher, room, back)

		// The leaver comes back with a participant token: not owner.
		res, _ := knockJoin(t, leaver, room, mint(t, room, false, func(r *auth.MintRequest) { r.UserID = leaverID }), "leaver2")
		if res.Affiliation == "owner" {
			t.Errorf("an owner who left while gavel was down came back as owner with a participant token: %+v", res)
		}
		if _, err := watcher.WaitPresence(ctxT(t, 10*time.Second), expired); err != nil {
			t.Fatalf("owner rights did not end with the token after the restart: %v", err)
		}
		_ = g
	})
}

// TestUnbanLetsBackIn: after an unban, and after a timed ban ends, the
// person gets back into every room the ban removed them from, also when
// gavel restarted in between. (Before, the outcast affiliations stayed:
// "you are banned from this room".)
func TestUnbanLetsBackIn(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		tenants := map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}
		g := startModeratedWith(t, srv, MUC{Domain: prosodytest.MUC}, tenants, boltStore(t), nil)
		rooms := []string{newRoom(""), newRoom("")}
		watcher, victim := login(t, srv), login(t, srv)
		victimID := "victim-" + srv.Name
		tok := func(room string) string {
			return mint(t, room, false, func(r *auth.MintRequest) { r.UserID = victimID })
		}
		for _, room := range rooms {
			knockJoin(t, watcher, room, mint(t, room, true, nil), "watcher")
			knockJoin(t, victim, room, tok(room), "victim")
		}
		ctx := ctxT(t, 30*time.Second)
		banAndWait := func(expires time.Time) {
			t.Helper()
			res, err := g.cmds.Ban(ctx, commands.BanRequest{Tenant: "example.test", Kind: store.KindUser, Value: victimID, By: "test", Expires: expires})
			if err != nil || res.Removed != 2 {
				t.Fatalf("ban: %+v, %v (want 2 removed)", res, err)
			}
		}
		// rejoin knocks and joins every room again, retrying while the
		// ban holds (the deadline bounds a failure).
		rejoin := func(nick string) {
			t.Helper()
			for _, room := range rooms {
				deadline := time.Now().Add(10 * time.Second)
				for {
					_, err := victim.Knock(ctx, prosodytest.Component, room, tok(room))
					if err == nil {
						_, err = victim.Join(ctx, room, nick)
					}
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the victim could not get back into %s: %v", room, err)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}

		banAndWait(time.Time{})
		if oc, _ := g.store.Outcasts(ctx); len(oc) != 2 {
			t.Fatalf("outcasts recorded: %v", oc)
		}
		// gavel restarts between the ban and its lifting.
		g = restartGavel(t, srv, g, tenants, false)
		if _, err := g.cmds.Unban(ctx, commands.UnbanRequest{Tenant: "example.test", Kind: store.KindUser, Value: victimID, By: "test"}); err != nil {
			t.Fatal(err)
		}
		// A room still on its way back lifts its outcast when it is back
		// (commands.Service.Run retries).
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			oc, _ := g.store.Outcasts(ctx)
			if len(oc) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("outcasts left after the unban: %v", oc)
			}
		}
		rejoin("victim2")

		// A timed ban lifts itself when it ends.
		banAndWait(time.Now().Add(2 * time.Second))
		rejoin("victim3")
	})
}

// TestProsodyRestartRetriesResets: an owner who leaves through a clean
// server restart (the server kicks everyone as it stops, gavel's reset
// cannot reach it, the server restores the room with its affiliations) does
// not keep owner rights: the reset is sent again when gavel is back, and
// the owner's participant token makes it a participant. The lost resets are
// not logged as refusals, one per occupant.
func TestProsodyRestartRetriesResets(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		srv = restartable(t, srv, prosodytest.Options{RestrictRoomCreation: true})
		g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, boltStore(t))
		room := newRoom("")
		id := "owner-" + srv.Name
		host, part := login(t, srv), login(t, srv)
		knockJoin(t, host, room, mint(t, room, true, func(r *auth.MintRequest) { r.UserID = id }), "host")
		knockJoin(t, part, room, mint(t, room, false, nil), "part")
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		g.waitConnected(t, 5*time.Second)
		// The participant comes back first; gavel's rejoin shows there.
		part = login(t, srv)
		back := after(part, isGavel(room))
		knockJoin(t, part, room, mint(t, room, false, nil), "part")
		gavelBack(t, part, room, back)
		waitRooms(t, g.mod, 1)
		// The owner comes back without knocking: its owner affiliation was
		// reset, so the members-only room does not let it in.
		host = login(t, srv)
		deadline := time.Now().Add(10 * time.Second)
		for {
			p, err := host.Join(ctxT(t, 5*time.Second), room, "host")
			if err != nil {
				break // refused: nothing left to enter with
			}
			_ = host.Leave(ctxT(t, 5*time.Second), room, "host")
			if time.Now().After(deadline) {
				t.Fatalf("the owner who left through the restart still enters without a knock, as %s/%s", p.Affiliation, p.Role)
			}
			time.Sleep(100 * time.Millisecond)
		}
		res, p := knockJoin(t, host, room, mint(t, room, false, func(r *auth.MintRequest) { r.UserID = id }), "host2")
		if res.Affiliation == "owner" || p.Affiliation == "owner" || p.Role == "moderator" {
			t.Errorf("the owner who left through the restart: knock %s/%s (%s), joined as %s/%s", res.Affiliation, res.Role, res.Reason, p.Affiliation, p.Role)
		}
		for _, e := range g.logs.All() {
			if strings.Contains(e.Message, "refused a change") || strings.Contains(e.Message, "did not answer a change") {
				t.Errorf("logged %q %v", e.Message, e.ContextMap())
			}
		}
	})
}
