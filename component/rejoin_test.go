package component

import (
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/policy"
)

// TestOwnerRejoinsAsParticipant: an owner (by token) who leaves and comes
// straight back with a participant token joins as what the knock promised,
// not as owner: clear_on_leave's reset and the new grant reach the server
// in order.
func TestOwnerRejoinsAsParticipant(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		t.Cleanup(func() {
			if t.Failed() {
				for _, e := range g.logs.All() {
					t.Logf("%s %s %v", e.Level, e.Message, e.ContextMap())
				}
			}
		})
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
