package component

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

// joinAs sends a join to room (spelt as the client likes) and waits for the
// self-presence or error from the room as the server names it.
func joinAs(t *testing.T, cl *xclient.Client, room, serverRoom, nick string) (xclient.Presence, error) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	if err := cl.Send(ctx, `<presence to='`+room+`/`+nick+`'><x xmlns='http://jabber.org/protocol/muc'/></presence>`); err != nil {
		t.Fatal(err)
	}
	p, err := cl.WaitPresence(ctx, func(p xclient.Presence) bool {
		return p.From == serverRoom+"/"+nick && (p.Self() || p.Type == "error")
	})
	if err != nil {
		t.Fatalf("join %s as %s: %v", room, nick, err)
	}
	if p.Error != nil {
		return p, p.Error
	}
	return p, nil
}

// TestRoomNamesPreparedAsServer: a room spelt with full-width letters, a
// sharp s or a ligature is the server's ASCII room; gavel must govern that
// room, answer the knock, and give the joiner its role there. (Before,
// gavel lowercased the name, joined another room than the server's, and the
// knock was never answered.)
func TestRoomNamesPreparedAsServer(t *testing.T) {
	g := startModerated(t, shared, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny), "acme": tenant(policy.Token, policy.GuestsDeny)}, nil)
	_ = g
	for i, spelt := range []struct{ local, prepared string }{
		{"[acme]ｖｉｃｔｉｍ%d", "[acme]victim%d"},
		{"[ACME]Straße%d", "[acme]strasse%d"},
		{"ﬀroom%d", "ffroom%d"},
	} {
		n := roomSeq.Add(1)
		room := fmt.Sprintf(spelt.local, n) + "@" + prosodytest.MUC
		serverRoom := fmt.Sprintf(spelt.prepared, n) + "@" + prosodytest.MUC
		t.Run(serverRoom, func(t *testing.T) {
			host := login(t, shared)
			ctx := ctxT(t, 10*time.Second)
			res, err := host.Knock(ctx, prosodytest.Component, room, mint(t, room, true, nil))
			if err != nil {
				t.Fatalf("knock into %q: %v", room, err)
			}
			if res.Affiliation != "owner" {
				t.Errorf("knock = %+v, want owner", res)
			}
			p, err := joinAs(t, host, room, serverRoom, fmt.Sprintf("host%d", i))
			if err != nil {
				t.Fatalf("join: %v", err)
			}
			if p.Affiliation != "owner" || p.Role != "moderator" {
				t.Errorf("first presence %s/%s, want owner/moderator", p.Affiliation, p.Role)
			}
			// A tokenless guest spelling the room the other way is refused
			// by gavel and by the server alike (members-only).
			guest := login(t, shared)
			_, err = guest.Knock(ctx, prosodytest.Component, strings.ToUpper(serverRoom), "")
			wantRefusal(t, err, "auth", "not-authorized", "token-required")
			if _, err := joinAs(t, guest, room, serverRoom, "guest"); err == nil {
				t.Errorf("a guest entered %s without a token", serverRoom)
			}
		})
	}
}
