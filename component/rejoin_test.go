package component

import (
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

// TestOwnerRejoinsAsParticipant: an owner (by token) who leaves and comes
// straight back with a participant token joins as what the knock promised,
// not as owner: clear_on_leave's reset and the new grant reach the server
// in order.
func TestOwnerRejoinsAsParticipant(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		logsOnFailure(t, g)
		room := newRoom("")
		host, watcher := login(t, srv), login(t, srv)
		id := "host-" + srv.Name
		withID := func(r *auth.MintRequest) { r.UserID = id }
		knockJoin(t, watcher, room, mint(t, room, false, nil), "watcher")
		for i := 0; i < 5; i++ {
			nick := "host" + string(rune('a'+i))
			if res, p := knockJoin(t, host, room, mint(t, room, true, withID), nick); res.Affiliation != "owner" || p.Affiliation != "owner" {
				t.Fatalf("round %d: owner knock %+v joined as %s", i, res, p.Affiliation)
			}
			// Leave and knock at once: the leave and the knock race
			// through the server to gavel.
			if err := host.Leave(ctxT(t, 5*time.Second), room, nick); err != nil {
				t.Fatal(err)
			}
			res, p := knockJoin(t, host, room, mint(t, room, false, withID), nick+"-p")
			if res.Affiliation != p.Affiliation || res.Role != p.Role || p.Affiliation == "owner" {
				t.Fatalf("round %d: participant knock promised %s/%s (%s), joined as %s/%s", i, res.Affiliation, res.Role, res.Reason, p.Affiliation, p.Role)
			}
			if err := host.Leave(ctxT(t, 5*time.Second), room, nick+"-p"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestOwnerLeavesThenRejoinsSameNick: an owner who leaves and, once the
// leave is through, comes back under the same nick with a participant token
// joins as what the knock promised. (The test client once took the old
// session's self-presence for the answer to the new join.)
func TestOwnerLeavesThenRejoinsSameNick(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		logsOnFailure(t, g)
		room := newRoom("")
		host, watcher := login(t, srv), login(t, srv)
		id := "c-" + srv.Name
		withID := func(r *auth.MintRequest) { r.UserID = id }
		knockJoin(t, watcher, room, mint(t, room, false, nil), "watcher")
		knockJoin(t, host, room, mint(t, room, true, withID), "c")
		gone := after(watcher, func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/c") && p.Type == "unavailable"
		})
		if err := host.Leave(ctxT(t, 5*time.Second), room, "c"); err != nil {
			t.Fatal(err)
		}
		if _, err := watcher.WaitPresence(ctxT(t, 5*time.Second), gone); err != nil {
			t.Fatal(err)
		}
		res, p := knockJoin(t, host, room, mint(t, room, false, withID), "c")
		if res.Affiliation != p.Affiliation || p.Affiliation == "owner" {
			t.Fatalf("promised %s/%s (%s), joined as %s/%s", res.Affiliation, res.Role, res.Reason, p.Affiliation, p.Role)
		}
	})
}

// logsOnFailure prints gavel's log when the test fails.
func logsOnFailure(t *testing.T, g *moderated) {
	t.Cleanup(func() {
		if t.Failed() {
			for _, e := range g.logs.All() {
				t.Logf("%s %s %v", e.Level, e.Message, e.ContextMap())
			}
		}
	})
}
