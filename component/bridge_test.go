package component

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

// sessionTokenModule is a test-only stand-in for Jitsi's token login
// (mod_auth_token with mod_jitsi_session), which keeps the raw token on
// the Prosody session as session.auth_token. Jitsi Meet hands the token
// over at login (?jwt= on the BOSH or WebSocket URL); here the client
// hands it over in an IQ to its own server, after logging in and before
// joining. The module checks nothing, as Jitsi's login keeps the token
// whatever gavel later thinks of it.
const sessionTokenModule = `-- written by gavel's tests: a stand-in for Jitsi's token login
local st = require "util.stanza";

module:hook("iq-set/host/urn:gavel:test:session-token:token", function(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "c2s" then return; end
	origin.auth_token = stanza.tags[1]:get_text();
	origin.send(st.reply(stanza));
	return true;
end);
`

// bridgeFocus is the account that plays Jicofo's focus: the bridge never
// asks about it (gavel_bridge_bypass), and it creates rooms first.
const bridgeFocus = "focus"

var bridgeServers sync.Map // matrix name -> *bridgeServer

type bridgeServer struct {
	once sync.Once
	srv  *server
	p    *prosodytest.Server // for its admin shell (bridgeShell)
	err  error
}

// sharedBridge returns, for the Prosody base runs, a Prosody shaped as a
// Jitsi deployment with the bridge: mod_gavel_bridge on the MUC (the file
// shipped in prosody-modules/), the session-token and identity stand-ins
// on the hosts, no room locking, the focus bypassed.
func sharedBridge(t *testing.T, base *server) *server {
	t.Helper()
	return sharedBridgeWith(t, base, "")
}

// sharedBridgeWith is sharedBridge with more options for the MUC
// component (a Prosody of its own per distinct muc).
func sharedBridgeWith(t *testing.T, base *server, muc string) *server {
	t.Helper()
	v, _ := bridgeServers.LoadOrStore(base.Name+"\x00"+muc, &bridgeServer{})
	b := v.(*bridgeServer)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "gavel-bridge-")
		if err != nil {
			b.err = err
			return
		}
		plugins := filepath.Join(dir, "plugins")
		if err := os.MkdirAll(plugins, 0o755); err != nil {
			b.err = err
			return
		}
		for name, src := range map[string]string{
			"mod_test_session_token.lua":     sessionTokenModule,
			"mod_test_presence_identity.lua": identityModule,
		} {
			if err := os.WriteFile(filepath.Join(plugins, name), []byte(src), 0o644); err != nil {
				b.err = err
				return
			}
		}
		shipped, err := filepath.Abs("../prosody-modules")
		if err != nil {
			b.err = err
			return
		}
		p, err := prosodytest.Start(filepath.Join(dir, "prosody"), prosodytest.Options{
			Prosody:       base.prosody,
			PluginPaths:   []string{plugins, shipped},
			ExtraModules:  []string{"test_session_token", "test_presence_identity", "admin_shell"},
			MUCModules:    []string{"gavel_bridge"},
			NoRoomLocking: true,
			MUCConfig: fmt.Sprintf("\tgavel_bridge_component = %q\n\tgavel_bridge_bypass = { %q }\n",
				prosodytest.Component, bridgeFocus+"@"+prosodytest.Host) + muc,
		})
		if err != nil {
			b.err = err
			return
		}
		if err := p.Register(bridgeFocus, prosodytest.Host, "pw"); err != nil {
			b.err = err
			return
		}
		b.srv, b.p = fromProsody(p), p
		b.srv.Name, b.srv.Version = base.Name, base.Version
		atExit(func(ok bool) {
			_ = p.Close()
			if ok {
				os.RemoveAll(dir)
			} else {
				fmt.Fprintf(os.Stderr, "bridge prosody directory kept: %s\n", dir)
			}
		})
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prosody log:\n%s", b.srv.Log())
		}
	})
	return b.srv
}

// onEachProsody runs f on a bridge Prosody of every Prosody version of the
// matrix (the bridge is a Prosody module).
func onEachProsody(t *testing.T, f func(t *testing.T, srv *server)) {
	for _, m := range matrix {
		if !strings.HasPrefix(m.name, "prosody") {
			continue
		}
		t.Run(m.name, func(t *testing.T) { f(t, sharedBridge(t, m.get(t))) })
	}
}

// loginToken logs in a fresh account whose session holds token (none when
// token is empty), as Jitsi's token login leaves it.
func loginToken(t *testing.T, srv *server, token string) *xclient.Client {
	t.Helper()
	cl := loginAs(t, srv, "jm")
	if token != "" {
		err := cl.IQ(ctxT(t, 5*time.Second), prosodytest.Host, "set",
			`<token xmlns='urn:gavel:test:session-token'>`+token+`</token>`, nil)
		if err != nil {
			t.Fatalf("session token: %v", err)
		}
	}
	return cl
}

func loginFocus(t *testing.T, srv *server) *xclient.Client {
	t.Helper()
	c, err := xclient.Login(ctxT(t, 10*time.Second), srv.C2SAddr, bridgeFocus, prosodytest.Host, "pw")
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, c)
	return c
}

func bridgeMUC() MUC { return MUC{Domain: prosodytest.MUC, Bridge: true} }

// With the bridge, joiners that never knock get their role in their first
// presence, whenever they join after the focus created the room, and so
// does a joiner that creates the room itself.
func TestBridgeFirstPresence(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		startModeratedMUC(t, srv, bridgeMUC(), map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		focus := loginFocus(t, srv)
		const perDelay = 3
		total, right := 0, 0
		for _, delay := range []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond} {
			for i := 0; i < perDelay; i++ {
				room := newRoom("")
				host := loginToken(t, srv, mint(t, room, true, nil))
				part := loginToken(t, srv, mint(t, room, false, nil))
				joinWith(t, focus, room, "focus", "")
				time.Sleep(delay) // the joiners' delay after room creation
				ph := joinWith(t, host, room, "host", "")
				pp := joinWith(t, part, room, "part", "")
				total += 2
				if ph.Affiliation == "owner" && ph.Role == "moderator" {
					right++
				} else {
					t.Errorf("delay %v: moderator's first presence %s/%s", delay, ph.Affiliation, ph.Role)
				}
				if pp.Affiliation != "owner" && pp.Role == "participant" {
					right++
				} else {
					t.Errorf("delay %v: participant's first presence %s/%s", delay, pp.Affiliation, pp.Role)
				}
				_ = focus.Leave(ctxT(t, 5*time.Second), room, "focus")
			}
		}
		t.Logf("first presence right in %d of %d joins", right, total)

		// A joiner that creates the room gets what its token says, not
		// the creator's ownership.
		room := newRoom("")
		p := loginToken(t, srv, mint(t, room, false, nil))
		if pr := joinWith(t, p, room, "creator", ""); pr.Affiliation == "owner" || pr.Role != "participant" {
			t.Errorf("participant creating a room joined as %s/%s", pr.Affiliation, pr.Role)
		}
		room2 := newRoom("")
		h := loginToken(t, srv, mint(t, room2, true, nil))
		if pr := joinWith(t, h, room2, "creator", ""); pr.Affiliation != "owner" || pr.Role != "moderator" {
			t.Errorf("moderator creating a room joined as %s/%s", pr.Affiliation, pr.Role)
		}
	})
}

// The bridge refuses before the join, with gavel's precise error.
func TestBridgeRefusals(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		startModeratedMUC(t, srv, bridgeMUC(), map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		focus := loginFocus(t, srv)
		room := newRoom("")
		joinWith(t, focus, room, "focus", "")

		expired := mint(t, room, true, func(r *auth.MintRequest) {
			r.TTL = 0
			r.Expires = time.Now().Add(-time.Hour)
			r.IssuedAt = r.Expires.Add(-time.Hour)
		})
		cases := []struct {
			name, token, typ, cond, app string
		}{
			{"expired", expired, "auth", "not-authorized", "token-expired"},
			{"wrong room", mint(t, newRoom(""), true, nil), "auth", "forbidden", "token-wrong-room"},
			{"bad signature", mint(t, room, true, func(r *auth.MintRequest) { r.Secret = []byte("another secret entirely") }), "auth", "not-authorized", "token-bad-signature"},
			{"no token", "", "auth", "not-authorized", "token-required"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				cl := loginToken(t, srv, c.token)
				_, err := cl.Join(ctxT(t, 10*time.Second), room, "x")
				wantRefusal(t, err, c.typ, c.cond, c.app)
			})
		}
		// Refused joiners never entered: the focus saw none of them.
		for _, p := range focus.Presences() {
			if strings.EqualFold(p.From, room+"/x") {
				t.Errorf("a refused joiner entered: %+v", p)
			}
		}
	})
}

// Bans by token, user id and JID hold for joiners that never knock.
func TestBridgeBans(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		g := startModeratedMUC(t, srv, bridgeMUC(), map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		room := newRoom("")
		ar, _ := auth.ParseRoom(room)
		focus := loginFocus(t, srv)
		joinWith(t, focus, room, "focus", "")

		tok := mint(t, room, false, nil)
		cl := loginToken(t, srv, tok)
		joinWith(t, cl, room, "banned", "")
		waitGoverned(t, g, room, "banned")
		res, err := g.cmds.Ban(context.Background(), commands.BanRequest{Tenant: ar.Tenant, Kind: store.KindToken, Value: tok, By: "test"})
		if err != nil || res.Removed != 1 {
			t.Fatalf("ban: removed %d, %v", res.Removed, err)
		}
		waitRemoved(t, cl, room, "banned", 301)
		// The same token on another account is refused before the join.
		again := loginToken(t, srv, tok)
		_, err = again.Join(ctxT(t, 10*time.Second), room, "again")
		wantRefusal(t, err, "auth", "forbidden", "banned")

		uid := fmt.Sprintf("banned-user-%d", roomSeq.Add(1))
		if _, err := g.cmds.Ban(context.Background(), commands.BanRequest{Tenant: ar.Tenant, Kind: store.KindUser, Value: uid, By: "test"}); err != nil {
			t.Fatal(err)
		}
		u := loginToken(t, srv, mint(t, room, true, func(r *auth.MintRequest) { r.UserID = uid }))
		_, err = u.Join(ctxT(t, 10*time.Second), room, "user")
		wantRefusal(t, err, "auth", "forbidden", "banned")
	})
}

// Owner rights given through the bridge end when the session's token
// expires: gavel entered the room when the module told it was created.
func TestBridgeExpiryRevokesOwner(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		startModeratedMUC(t, srv, bridgeMUC(), map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
		room := newRoom("")
		exp := time.Now().Add(3*time.Second - auth.DefaultLeeway)
		tok := mint(t, room, true, func(r *auth.MintRequest) { r.TTL = 0; r.Expires = exp; r.IssuedAt = exp.Add(-time.Minute) })
		host := loginToken(t, srv, tok)
		if p := joinWith(t, host, room, "host", ""); p.Affiliation != "owner" {
			t.Fatalf("host joined as %s", p.Affiliation)
		}
		watcher := loginToken(t, srv, mint(t, room, false, nil))
		joinWith(t, watcher, room, "watcher", "")
		if _, err := watcher.WaitPresence(ctxT(t, 8*time.Second), func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/host") && p.Type == "" && p.Affiliation != "owner" && p.Role != "moderator"
		}); err != nil {
			t.Fatalf("owner rights did not end with the token: %v", err)
		}
	})
}

// A client that knocked is admitted by the bridge with what its knock
// was granted, in a room that refuses guests.
func TestBridgeAdmitsKnockers(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		startModeratedMUC(t, srv, bridgeMUC(), map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		room := newRoom("")
		cl := login(t, srv) // its session holds no token: it knocks with one
		res, p := knockJoin(t, cl, room, mint(t, room, true, nil), "k")
		if res.Affiliation != "owner" || p.Affiliation != "owner" || p.Role != "moderator" {
			t.Errorf("knocker: %+v, presence %s/%s", res, p.Affiliation, p.Role)
		}
		other := login(t, srv)
		res, p = knockJoin(t, other, room, mint(t, room, false, nil), "k2")
		if p.Role != "participant" || p.Affiliation == "owner" {
			t.Errorf("participant knocker: %+v, presence %s/%s", res, p.Affiliation, p.Role)
		}
	})
}

// Only the MUC service itself may speak the bridge protocol: a client
// that sends a join request for someone else is refused, and nothing
// changes in the room.
func TestBridgeRequestsOnlyFromTheMUC(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		startModeratedMUC(t, srv, bridgeMUC(), map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		room := newRoom("")
		cl := login(t, srv)
		for _, payload := range []string{
			`<join xmlns='` + NSBridge + `' room='` + room + `' jid='victim@` + prosodytest.Host + `/r' nick='v' new='true'/>`,
			`<room xmlns='` + NSBridge + `' jid='` + room + `' event='created'/>`,
		} {
			err := cl.IQ(ctxT(t, 5*time.Second), prosodytest.Component, "set", payload, nil)
			var xe *xclient.Error
			if !errors.As(err, &xe) || xe.Condition != "forbidden" {
				t.Errorf("forged bridge request: %v, want cancel/forbidden", err)
			}
		}
	})
}

// While gavel is not connected, the bridge fails closed (the default):
// the join is refused with a clear, retryable error.
func TestBridgeFailsClosedWithoutGavel(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		room := newRoom("")
		cl := loginToken(t, srv, mint(t, room, true, nil))
		_, err := cl.Join(ctxT(t, 10*time.Second), room, "x")
		var xe *xclient.Error
		if !errors.As(err, &xe) || xe.Type != "wait" || xe.Condition != "service-unavailable" || xe.Text == "" {
			t.Errorf("join without gavel: %v, want wait/service-unavailable with a text", err)
		}
	})
}

// A joiner refused at pre-join keeps no ownership of the room its
// presence would have created. Prosody makes a new room's creator owner
// (muc-room-pre-create) and keeps the room before pre-join decides: left
// so, the refused creator joins later as owner whatever its token says,
// and gavel reads the owner as an existing affiliation. Found by
// gavel-soak's bridge scenario (participants joining as owner after a
// Prosody restart, while gavel was reconnecting).
func TestBridgeRefusedCreatorIsNotOwner(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		// Refused while gavel is away (fail closed).
		away := newRoom("")
		a := loginToken(t, srv, mint(t, away, false, nil))
		_, err := a.Join(ctxT(t, 10*time.Second), away, "a")
		wantRefusal(t, err, "wait", "service-unavailable", "")
		// Nor is the room left behind, empty.
		err = a.IQ(ctxT(t, 5*time.Second), away, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`, nil)
		var xe *xclient.Error
		if !errors.As(err, &xe) || xe.Condition != "item-not-found" {
			t.Errorf("disco#info of the room a refused creator would have made: %v, want item-not-found", err)
		}

		startModeratedMUC(t, srv, bridgeMUC(), map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		// Refused by gavel: the token has expired. The same session then
		// gets a valid participant token.
		refused := newRoom("")
		expired := mint(t, refused, true, func(r *auth.MintRequest) {
			r.TTL = 0
			r.Expires = time.Now().Add(-time.Hour)
			r.IssuedAt = r.Expires.Add(-time.Hour)
		})
		b := loginToken(t, srv, expired)
		_, err = b.Join(ctxT(t, 10*time.Second), refused, "b")
		wantRefusal(t, err, "auth", "not-authorized", "token-expired")
		if err := b.IQ(ctxT(t, 5*time.Second), prosodytest.Host, "set",
			`<token xmlns='urn:gavel:test:session-token'>`+mint(t, refused, false, nil)+`</token>`, nil); err != nil {
			t.Fatal(err)
		}

		for _, c := range []struct {
			cl         *xclient.Client
			room, nick string
		}{{a, away, "a"}, {b, refused, "b"}} {
			if p := joinWith(t, c.cl, c.room, c.nick, ""); p.Affiliation == "owner" || p.Role != "participant" {
				t.Errorf("%s, refused as the room's creator, joins with a participant token as %s/%s", c.nick, p.Affiliation, p.Role)
			}
		}
	})
}

// While the module waits for gavel's answer about a room's creator, the
// creator is not the room's owner. Prosody makes a new room's creator
// owner before pre-join; gavel, reading the owner list in that window
// (another joiner's report, Jicofo's focus, made it look at the room),
// took that owner for an existing affiliation and let a creator with a
// participant token in as owner. Found by gavel-soak's bridge scenario,
// after Prosody restarts.
func TestBridgeCreatorNotOwnerWhileAsked(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		// A gavel that reads everything and answers nothing: the module
		// waits for it (gavel_bridge_timeout, 2 s).
		sess, err := dial(ctxT(t, 10*time.Second), srv.ComponentAddr, prosodytest.Component, []byte(srv.Secret), 0)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = sess.readLoop(func(*stanza) {}) }()
		t.Cleanup(func() { sess.close(time.Now().Add(time.Second)) })

		room := newRoom("")
		c := loginToken(t, srv, mint(t, room, false, nil))
		joined := make(chan error, 1)
		go func() {
			_, err := c.Join(ctxT(t, 10*time.Second), room, "c")
			joined <- err
		}()
		// The room exists as soon as c's presence has reached the MUC.
		var owners []string
		deadline := time.Now().Add(time.Second)
		for {
			res, err := sess.iq(ctxT(t, 5*time.Second), prosodytest.Component, room, "get", func(b *xb) {
				b.open("query", "xmlns", nsMUCAdmin).empty("item", "affiliation", "owner").close("query")
			})
			var se *stanzaError
			if errors.As(err, &se) && se.Condition == "item-not-found" && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatalf("owner list while the creator waits: %v", err)
			}
			for _, it := range res.AdminQuery.Items {
				owners = append(owners, bareOf(it.JID))
			}
			break
		}
		if slices.Contains(owners, c.JID.Bare().String()) {
			t.Errorf("the creator is owner while gavel is asked about it: owners %v", owners)
		}
		wantRefusal(t, <-joined, "wait", "service-unavailable", "")
	})
}

// With gavel_bridge_fail = "open", a join gavel does not answer goes on
// with the server's defaults, as without the module: a room's creator is
// its owner (the module takes that ownership back only while it asks).
func TestBridgeFailOpenKeepsServerDefaults(t *testing.T) {
	for _, m := range matrix {
		if !strings.HasPrefix(m.name, "prosody") {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			srv := sharedBridgeWith(t, m.get(t), "\tgavel_bridge_fail = \"open\"\n")
			room := newRoom("")
			creator := loginToken(t, srv, mint(t, room, false, nil))
			if p := joinWith(t, creator, room, "creator", ""); p.Affiliation != "owner" || p.Role != "moderator" {
				t.Errorf("creator without gavel, failing open: %s/%s, want owner/moderator", p.Affiliation, p.Role)
			}
			other := loginToken(t, srv, mint(t, room, false, nil))
			if p := joinWith(t, other, room, "other", ""); p.Affiliation == "owner" || p.Role != "participant" {
				t.Errorf("second joiner without gavel, failing open: %s/%s, want the default participant", p.Affiliation, p.Role)
			}
		})
	}
}

// With the bridge, knockers into a members-only room get their membership
// from the module at pre-join: no affiliation is set for absent JIDs, so
// the occupants get no announcement per joiner (Prosody sends one for
// each member grant to a JID not in the room).
func TestBridgeKnockersNeedNoMemberGrant(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		// token_holders: member gives every knocker a membership, reset
		// when it leaves (clear_on_leave): both would be announced to the
		// room if gavel set them itself.
		ten := tenant(policy.Token, policy.GuestsDeny)
		ten.Policy.TokenHolders = policy.Member
		startModeratedMUC(t, srv, bridgeMUC(), map[string]Tenant{"": ten}, nil)
		room := newRoom("")
		first := login(t, srv)
		knockJoin(t, first, room, mint(t, room, true, nil), "first")
		// The room's subject follows the join (XEP-0045 7.2.15): count
		// from after it.
		if _, err := first.WaitMessage(ctxT(t, 5*time.Second), func(m xclient.Message) bool {
			return strings.EqualFold(m.From, room)
		}); err != nil {
			t.Fatalf("no subject: %v", err)
		}
		_, before := first.Count()
		const joiners = 10
		var cls []*xclient.Client
		for i := 0; i < joiners; i++ {
			cl := login(t, srv)
			cls = append(cls, cl)
			nick := fmt.Sprintf("j%d", i)
			_, p := knockJoin(t, cl, room, mint(t, room, false, nil), nick)
			if p.Affiliation != "member" || p.Role != "participant" {
				t.Errorf("%s joined as %s/%s, want member/participant", nick, p.Affiliation, p.Role)
			}
		}
		// Announcements would reach first before the last joiner's
		// presence: they are sent while that join is decided.
		if _, err := first.WaitPresence(ctxT(t, 5*time.Second), func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, fmt.Sprintf("%s/j%d", room, joiners-1))
		}); err != nil {
			t.Fatal(err)
		}
		if _, after := first.Count(); after != before {
			t.Errorf("the first occupant got %d messages for %d knock joins, want 0", after-before, joiners)
		}
		// Nor are the resets after they leave (clear_on_leave) announced:
		// the module writes them. One more knock join follows the leaves
		// through gavel's room worker, so any announcement comes first.
		for i, cl := range cls {
			if err := cl.Leave(ctxT(t, 5*time.Second), room, fmt.Sprintf("j%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		knockJoin(t, login(t, srv), room, mint(t, room, false, nil), "marker")
		if _, err := first.WaitPresence(ctxT(t, 5*time.Second), func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/marker")
		}); err != nil {
			t.Fatal(err)
		}
		if _, after := first.Count(); after != before {
			t.Errorf("the first occupant got %d messages for %d knock joins and leaves, want 0", after-before, joiners)
		}
		// A guest without a knock is still refused.
		_, err := login(t, srv).Join(ctxT(t, 10*time.Second), room, "guest")
		if err == nil {
			t.Error("a guest entered the members-only room")
		}
	})
}

// With token_holders: member, a token holder without the moderator claim
// who joins through the bridge is member in its first presence, as Jitsi's
// token_affiliation makes it, in a room that is neither members-only nor
// moderated; with the default (none) it joins at none. The module writes
// the membership at pre-join, so the occupant already there gets no
// affiliation announcement for it, nor for gavel's reset when the member
// leaves (clear_on_leave), which the module writes too.
func TestBridgeTokenHoldersMember(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		members := tenant(policy.Token, policy.GuestsMember)
		members.Policy.TokenHolders = policy.Member
		startModeratedMUC(t, srv, bridgeMUC(), map[string]Tenant{
			"":        tenant(policy.Token, policy.GuestsMember),
			"members": members,
		}, nil)
		focus := loginFocus(t, srv)
		for _, tc := range []struct {
			tenant, want string
		}{
			{"members", "member"},
			{"", "none"},
		} {
			room := newRoom(tc.tenant)
			joinWith(t, focus, room, "focus", "")
			host := loginToken(t, srv, mint(t, room, true, nil))
			if p := joinWith(t, host, room, "host", ""); p.Affiliation != "owner" || p.Role != "moderator" {
				t.Errorf("%s: moderator's first presence %s/%s", room, p.Affiliation, p.Role)
			}
			// The room's subject follows the join (XEP-0045 7.2.15): count
			// from after it.
			if _, err := host.WaitMessage(ctxT(t, 5*time.Second), func(m xclient.Message) bool {
				return strings.EqualFold(m.From, room)
			}); err != nil {
				t.Fatalf("%s: no subject: %v", room, err)
			}
			_, before := host.Count()
			part := loginToken(t, srv, mint(t, room, false, nil))
			if p := joinWith(t, part, room, "part", ""); p.Affiliation != tc.want || p.Role != "participant" {
				t.Errorf("%s: participant's first presence %s/%s, want %s/participant", room, p.Affiliation, p.Role, tc.want)
			}
			// An announcement would reach host before the participant's
			// presence: it is sent while the join is decided.
			if _, err := host.WaitPresence(ctxT(t, 5*time.Second), func(p xclient.Presence) bool {
				return strings.EqualFold(p.From, room+"/part") && p.Type == ""
			}); err != nil {
				t.Fatal(err)
			}
			if _, after := host.Count(); after != before {
				t.Errorf("%s: the host got %d messages for the participant's join, want 0", room, after-before)
			}
			if tc.want != "member" {
				continue
			}
			if err := part.Leave(ctxT(t, 5*time.Second), room, "part"); err != nil {
				t.Fatal(err)
			}
			// The reset when the member leaves (clear_on_leave) is written
			// by the module, unannounced: the member list loses it.
			bare := part.JID.Bare().String()
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				var list struct {
					Items []adminItem `xml:"query>item"`
				}
				if err := host.IQ(ctxT(t, 5*time.Second), room, "get", `<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query>`, &list); err != nil {
					t.Fatal(err)
				}
				if !slices.ContainsFunc(list.Items, func(it adminItem) bool { return strings.EqualFold(it.JID, bare) }) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s is still a member after leaving", room, bare)
				}
			}
			if _, after := host.Count(); after != before {
				t.Errorf("%s: the host got %d messages for the member's join and leave, want 0", room, after-before)
			}
		}
	})
}

// adminItem is an item of a muc#admin list.
type adminItem struct {
	JID string `xml:"jid,attr"`
}

// waitMessages waits until cl has received n messages from room.
func waitMessages(cl *xclient.Client, room string, n int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	seen := 0
	_, err := cl.WaitMessage(ctx, func(m xclient.Message) bool {
		if strings.EqualFold(m.From, room) {
			seen++
		}
		return seen >= n
	})
	return err
}
