package component

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

// waitAffiliation waits until watcher sees nick in room with affiliation aff.
func waitAffiliation(t *testing.T, watcher *xclient.Client, room, nick, aff string) xclient.Presence {
	t.Helper()
	p, err := watcher.WaitPresence(ctxT(t, 5*time.Second), func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/"+nick) && p.Affiliation == aff && p.Type == ""
	})
	if err != nil {
		t.Fatalf("%s never seen as %s in %s: %v", nick, aff, room, err)
	}
	return p
}

func anonymous(t *testing.T, srv *server) *xclient.Client {
	t.Helper()
	c, err := xclient.Login(ctxT(t, 10*time.Second), srv.C2SAddr, "", prosodytest.GuestHost, "")
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, c)
	return c
}

func TestAutoOwner(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		startModerated(t, srv, map[string]Tenant{"acme": tenant(policy.AutoOwner, policy.GuestsMember), "": tenant(policy.Token, policy.GuestsDeny)}, nil)
		room := newRoom("acme")
		carol, dave, erin := login(t, srv), login(t, srv), login(t, srv)
		res, p := knockJoin(t, carol, room, mint(t, room, false, nil), "carol")
		if res.Reason != "first-joiner" || p.Affiliation != "owner" || p.Role != "moderator" {
			t.Fatalf("first joiner: %+v, presence %s/%s", res, p.Affiliation, p.Role)
		}
		_, p = knockJoin(t, dave, room, mint(t, room, false, nil), "dave")
		if p.Role != "participant" {
			t.Errorf("second joiner role %s", p.Role)
		}
		_, p = knockJoin(t, erin, room, "", "erin") // a guest: member setting
		if p.Role != "participant" {
			t.Errorf("guest role %s", p.Role)
		}
		// The owner leaves: the longest-present occupant (dave) is promoted at once.
		start := time.Now()
		if err := carol.Leave(ctxT(t, time.Second), room, "carol"); err != nil {
			t.Fatal(err)
		}
		waitAffiliation(t, erin, room, "dave", "owner")
		t.Logf("handover seen %v after the owner left", time.Since(start))
		// dave is kicked by... dave leaves too: erin (the guest) is next.
		_ = dave.Leave(ctxT(t, time.Second), room, "dave")
		waitAffiliation(t, erin, room, "erin", "owner")
	})
}

func TestAllOwners(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		ten := tenant(policy.AllOwners, policy.GuestsMember)
		ten.Policy.ModeratedRooms = []string{"board"}
		startModerated(t, srv, map[string]Tenant{"party": ten, "": tenant(policy.Token, policy.GuestsDeny)}, nil)
		room := newRoom("party")
		for i := 0; i < 3; i++ {
			cl := anonymous(t, srv)
			res, p := knockJoin(t, cl, room, "", fmt.Sprintf("g%d", i))
			if p.Affiliation != "owner" || res.Reason != "all-owners" {
				t.Errorf("joiner %d: %+v presence %s/%s", i, res, p.Affiliation, p.Role)
			}
		}
		// A moderated room of the same tenant uses the token policy.
		board := "[party]board@" + prosodytest.MUC
		cl := anonymous(t, srv)
		_, p := knockJoin(t, cl, board, mint(t, board, false, nil), "member")
		if p.Affiliation == "owner" {
			t.Errorf("moderated room gave owner to a participant token")
		}
		boss := login(t, srv)
		_, p = knockJoin(t, boss, board, mint(t, board, true, nil), "boss")
		if p.Affiliation != "owner" {
			t.Errorf("moderated room: moderator token got %s", p.Affiliation)
		}
	})
}

func TestTwentyJoinersAtOnce(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		for _, kind := range []policy.Kind{policy.Token, policy.AutoOwner, policy.AllOwners} {
			t.Run(kind.String(), func(t *testing.T) {
				startModerated(t, srv, map[string]Tenant{"": tenant(kind, policy.GuestsMember)}, nil)
				room := newRoom("")
				const n = 20
				clients := make([]*xclient.Client, n)
				for i := range clients {
					clients[i] = login(t, srv)
				}
				var wg sync.WaitGroup
				got := make([]xclient.Presence, n)
				errs := make([]error, n)
				for i := range clients {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						ctx := ctxT(t, 20*time.Second)
						if _, err := clients[i].Knock(ctx, prosodytest.Component, room, mint(t, room, kind == policy.Token && i == 7, nil)); err != nil {
							errs[i] = err
							return
						}
						got[i], errs[i] = clients[i].Join(ctx, room, fmt.Sprintf("p%d", i))
					}(i)
				}
				wg.Wait()
				owners := 0
				for i := range got {
					if errs[i] != nil {
						t.Fatalf("joiner %d: %v", i, errs[i])
					}
					if got[i].Affiliation == "owner" {
						owners++
					}
				}
				want := map[policy.Kind]int{policy.Token: 1, policy.AutoOwner: 1, policy.AllOwners: n}[kind]
				if owners != want {
					t.Errorf("%d owners in first presences, want %d", owners, want)
				}
				if kind == policy.Token && got[7].Affiliation != "owner" {
					t.Errorf("the moderator token holder got %s", got[7].Affiliation)
				}
			})
		}
	})
}

func TestOwnerLeavesDuringJoins(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		startModerated(t, srv, map[string]Tenant{"": tenant(policy.AutoOwner, policy.GuestsMember)}, nil)
		room := newRoom("")
		first := login(t, srv)
		knockJoin(t, first, room, mint(t, room, false, nil), "first")
		clients := make([]*xclient.Client, 10)
		for i := range clients {
			clients[i] = login(t, srv)
		}
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func(i int, c *xclient.Client) {
				defer wg.Done()
				knockJoin(t, c, room, mint(t, room, false, nil), fmt.Sprintf("j%d", i))
			}(i, c)
			if i == 4 {
				_ = first.Leave(ctxT(t, time.Second), room, "first")
			}
		}
		wg.Wait()
		// One more knock and join: gavel answers it only after handling
		// every presence the server sent before it, and the joiner gets
		// the room as the server has it then.
		last := login(t, srv)
		knockJoin(t, last, room, mint(t, room, false, nil), "last")
		owners := map[string]bool{}
		for _, p := range last.Presences() {
			if !strings.HasPrefix(strings.ToLower(p.From), room+"/") || p.Type != "" {
				continue
			}
			nick := p.From[strings.IndexByte(p.From, '/')+1:]
			if nick == "gavel" {
				continue
			}
			owners[nick] = p.Affiliation == "owner"
		}
		n := 0
		for _, o := range owners {
			if o {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d owners after the owner left during joins: %v", n, owners)
		}
	})
}

func TestTokenExpiryRevokesOwner(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
		room := newRoom("")
		host, watcher := login(t, srv), login(t, srv)
		// Rights end at exp plus the leeway (auth's one rule): an exp that
		// passed a leeway minus 2 s ago leaves 2 s.
		exp := time.Now().Add(2*time.Second - auth.DefaultLeeway)
		tok := mint(t, room, true, func(r *auth.MintRequest) { r.TTL = 0; r.Expires = exp; r.IssuedAt = exp.Add(-time.Minute) })
		res, p := knockJoin(t, host, room, tok, "host")
		if p.Affiliation != "owner" || res.Expires == "" {
			t.Fatalf("host: %+v %s", res, p.Affiliation)
		}
		knockJoin(t, watcher, room, mint(t, room, false, nil), "watcher")
		start := time.Now()
		p, err := watcher.WaitPresence(ctxT(t, 6*time.Second), func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/host") && p.Affiliation != "owner" && p.Type == ""
		})
		if err != nil {
			t.Fatalf("owner rights did not end with the token: %v", err)
		}
		if p.Role == "moderator" {
			t.Errorf("after expiry host is still moderator")
		}
		t.Logf("owner revoked %v after the watcher joined (token expired 2s after minting)", time.Since(start))
	})
}

func TestGuestsOnAnonymousHost(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		cases := []struct {
			guests   policy.Guests
			wantRole string
			wantApp  string
		}{
			{policy.GuestsDeny, "", "token-required"},
			{policy.GuestsMember, "participant", ""},
			{policy.GuestsVisitor, "visitor", ""},
		}
		for _, c := range cases {
			t.Run(c.guests.String(), func(t *testing.T) {
				startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, c.guests)}, nil)
				room := newRoom("")
				host := login(t, srv)
				knockJoin(t, host, room, mint(t, room, true, nil), "host")
				guest := anonymous(t, srv)
				ctx := ctxT(t, 10*time.Second)
				_, err := guest.Knock(ctx, prosodytest.Component, room, "")
				if c.wantApp != "" {
					wantRefusal(t, err, "auth", "not-authorized", c.wantApp)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				p, err := guest.Join(ctx, room, "guest")
				if err != nil {
					t.Fatal(err)
				}
				if p.Role != c.wantRole {
					t.Errorf("guest role %s, want %s", p.Role, c.wantRole)
				}
				if c.guests == policy.GuestsVisitor {
					// A token participant still gets voice in the moderated room.
					part := login(t, srv)
					_, p := knockJoin(t, part, room, mint(t, room, false, nil), "part")
					if p.Role != "participant" {
						t.Errorf("token participant in a visitor room: %s", p.Role)
					}
				}
			})
		}
	})
}

// TestViewerClaim: a viewer's first presence is already visitor, and the
// server refuses its messages, on both servers, in rooms of a tenant that
// admits viewers (the room is moderated from its creation, also where
// guests are denied). Where rooms are not moderated the viewer is refused:
// it would get voice first.
func TestViewerClaim(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		for _, guests := range []policy.Guests{policy.GuestsDeny, policy.GuestsMember} {
			t.Run("guests "+guests.String(), func(t *testing.T) {
				ten := tenant(policy.Token, guests)
				ten.Policy.Viewers = true
				startModerated(t, srv, map[string]Tenant{"": ten}, nil)
				room := newRoom("")
				host, part, viewer := login(t, srv), login(t, srv), login(t, srv)
				knockJoin(t, host, room, mint(t, room, true, nil), "host")
				res, p := knockJoin(t, viewer, room, mint(t, room, false, func(r *auth.MintRequest) { r.Role = "viewer" }), "viewer")
				if res.Role != "visitor" || p.Role != "visitor" {
					t.Errorf("viewer: knock %+v, first presence %s/%s, want visitor", res, p.Affiliation, p.Role)
				}
				_, pp := knockJoin(t, part, room, mint(t, room, false, nil), "part")
				if pp.Role != "participant" {
					t.Errorf("token participant in a room with viewers: %s/%s", pp.Affiliation, pp.Role)
				}
				ctx := ctxT(t, 5*time.Second)
				if err := viewer.Send(ctx, `<message to='`+room+`' type='groupchat' id='v1'><body>from the viewer</body></message>`); err != nil {
					t.Fatal(err)
				}
				if _, err := viewer.WaitMessage(ctx, func(m xclient.Message) bool {
					return m.Type == "error" && strings.HasPrefix(strings.ToLower(m.From), room)
				}); err != nil {
					t.Errorf("the viewer's message was not refused: %v", err)
				}
				if err := part.Send(ctx, `<message to='`+room+`' type='groupchat'><body>from the participant</body></message>`); err != nil {
					t.Fatal(err)
				}
				if _, err := viewer.WaitMessage(ctx, func(m xclient.Message) bool {
					return m.Type == "groupchat" && m.Body == "from the participant"
				}); err != nil {
					t.Errorf("the participant's message did not go through: %v", err)
				}
				for _, m := range host.Messages() {
					if m.Body == "from the viewer" {
						t.Errorf("the viewer's message reached the host")
					}
				}
			})
		}
		t.Run("not admitted", func(t *testing.T) {
			startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
			room := newRoom("")
			host, viewer := login(t, srv), login(t, srv)
			knockJoin(t, host, room, mint(t, room, true, nil), "host")
			_, err := viewer.Knock(ctxT(t, 5*time.Second), prosodytest.Component, room, mint(t, room, false, func(r *auth.MintRequest) { r.Role = "viewer" }))
			wantRefusal(t, err, "auth", "forbidden", "viewer-not-admitted")
		})
	})
}

func TestServerRestartMidMeeting(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		srv = restartable(t, srv, prosodytest.Options{RestrictRoomCreation: true})
		g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
		room := newRoom("")
		hostTok, partTok := mint(t, room, true, nil), mint(t, room, false, nil)
		host, part := login(t, srv), login(t, srv)
		knockJoin(t, host, room, hostTok, "host")
		knockJoin(t, part, room, partTok, "part")
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		g.waitConnected(t, 3*time.Second)
		// Clients come back, knock again and get their roles back.
		host, part = login(t, srv), login(t, srv)
		_, hp := knockJoin(t, host, room, hostTok, "host")
		_, pp := knockJoin(t, part, room, partTok, "part")
		if hp.Affiliation != "owner" || hp.Role != "moderator" || pp.Role != "participant" {
			t.Errorf("after restart: host %s/%s, part %s/%s", hp.Affiliation, hp.Role, pp.Affiliation, pp.Role)
		}
	})
}

var _ = errors.New

// With token_holders: member, a knocking token holder without the
// moderator claim is member in its first presence, on every server. Without
// the bridge that membership is an affiliation set for a JID not yet in the
// room, which the server announces to the occupants: one message per knock
// join, and one more for gavel's reset when the member leaves
// (clear_on_leave), the costs docs/jitsi.md states.
func TestTokenHoldersMemberKnock(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		members := tenant(policy.Token, policy.GuestsMember)
		members.Policy.TokenHolders = policy.Member
		startModerated(t, srv, map[string]Tenant{"": members}, nil)
		room := newRoom("")
		host := login(t, srv)
		if _, p := knockJoin(t, host, room, mint(t, room, true, nil), "host"); p.Affiliation != "owner" {
			t.Fatalf("moderator joined as %s/%s", p.Affiliation, p.Role)
		}
		if err := waitMessages(host, room, 1, 5*time.Second); err != nil {
			t.Fatalf("no subject: %v", err)
		}
		_, before := host.Count()
		const joiners = 3
		parts := make([]*xclient.Client, joiners)
		for i := range parts {
			nick := fmt.Sprintf("part%d", i)
			parts[i] = login(t, srv)
			res, p := knockJoin(t, parts[i], room, mint(t, room, false, nil), nick)
			if res.Affiliation != "member" || p.Affiliation != "member" || p.Role != "participant" {
				t.Errorf("%s: knock %+v, first presence %s/%s, want member/participant", nick, res, p.Affiliation, p.Role)
			}
		}
		// Each announcement reaches host before that joiner's presence: it
		// is sent while the knock is decided.
		waitAffiliation(t, host, room, fmt.Sprintf("part%d", joiners-1), "member")
		if _, after := host.Count(); after-before != joiners {
			t.Errorf("the host got %d messages for %d knock joins, want %d (one announcement each)", after-before, joiners, joiners)
		}
		for i, cl := range parts {
			if err := cl.Leave(ctxT(t, 5*time.Second), room, fmt.Sprintf("part%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := waitMessages(host, room, before+2*joiners, 5*time.Second); err != nil {
			_, after := host.Count()
			t.Errorf("the host got %d messages for %d knock joins and leaves, want %d: %v", after-before, joiners, 2*joiners, err)
		}
	})
}
