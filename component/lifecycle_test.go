package component

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

func waitRooms(t *testing.T, m *Moderation, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && len(m.Rooms()) != n {
		time.Sleep(10 * time.Millisecond)
	}
	if got := len(m.Rooms()); got != n {
		t.Fatalf("gavel governs %d rooms, want %d: %v", got, n, m.Rooms())
	}
}

func TestShutdownLeavesRooms(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
		room := newRoom("")
		host := login(t, srv)
		knockJoin(t, host, room, mint(t, room, true, nil), "host")
		start := time.Now()
		g.stop()
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("shutdown took %v", took)
		}
		if _, err := host.WaitPresence(ctxT(t, 3*time.Second), func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/gavel") && p.Type == "unavailable"
		}); err != nil {
			t.Errorf("gavel did not leave the room on shutdown: %v", err)
		}
	})
}

func TestLeavesRoomWhenLastPersonLeaves(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
		room := newRoom("")
		a, b := login(t, srv), login(t, srv)
		knockJoin(t, a, room, mint(t, room, true, nil), "a")
		knockJoin(t, b, room, mint(t, room, false, nil), "b")
		waitRooms(t, g.mod, 1)
		_ = a.Leave(ctxT(t, time.Second), room, "a")
		// gavel has seen a leave once it tracks one occupant; it is still
		// in the room then.
		waitFor(t, "gavel to see a leave", func() bool { return gauge(g.mod.metrics.Occupants) == 1 })
		if len(g.mod.Rooms()) != 1 {
			t.Fatal("gavel left while someone was still in the room")
		}
		_ = b.Leave(ctxT(t, time.Second), room, "b")
		waitRooms(t, g.mod, 0)
		// A new knock brings gavel back.
		knockJoin(t, a, room, mint(t, room, true, nil), "a")
		waitRooms(t, g.mod, 1)
	})
}

func TestClearOnLeaveOnTheServer(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		room := newRoom("")
		host, guest := login(t, srv), login(t, srv)
		knockJoin(t, host, room, mint(t, room, true, nil), "host")
		knockJoin(t, guest, room, mint(t, room, false, nil), "guest")
		members := func() string {
			var res struct {
				Items []struct {
					JID string `xml:"jid,attr"`
				} `xml:"http://jabber.org/protocol/muc#admin query>item"`
			}
			if err := host.IQ(ctxT(t, 5*time.Second), room, "get", `<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query>`, &res); err != nil {
				t.Fatal(err)
			}
			var jids []string
			for _, it := range res.Items {
				jids = append(jids, it.JID)
			}
			return strings.Join(jids, ",")
		}
		guestBare := guest.JID.Bare().String()
		if !strings.Contains(members(), guestBare) {
			t.Fatalf("guest is not a member while present: %s", members())
		}
		_ = guest.Leave(ctxT(t, time.Second), room, "guest")
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) && strings.Contains(members(), guestBare) {
			time.Sleep(20 * time.Millisecond)
		}
		if strings.Contains(members(), guestBare) {
			t.Errorf("the member affiliation gavel granted stayed after the guest left")
		}
	})
}

func TestDestroyRoomGavelIsNotIn(t *testing.T) {
	srv := startServer(t, prosodytest.Options{}) // clients may create rooms here
	g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
	owner := login(t, srv)
	room := "private@" + prosodytest.MUC
	ctx := ctxT(t, 10*time.Second)
	if _, err := owner.Join(ctx, room, "owner"); err != nil {
		t.Fatal(err)
	}
	// Unlock the new room (instant room).
	if err := owner.IQ(ctx, room, "set", `<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>`, nil); err != nil {
		t.Fatal(err)
	}
	if err := g.cmds.Destroy(context.Background(), room, "closed by admin", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.WaitPresence(ctx, func(p xclient.Presence) bool { return p.Destroyed }); err != nil {
		t.Fatalf("destroy not seen: %v", err)
	}
}
