package component

import (
	"context"
	"errors"
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

func withUser(id string) func(*auth.MintRequest) {
	return func(r *auth.MintRequest) { r.UserID = id }
}

func TestBanUserRemovesEverywhereAndHolds(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		roomA, roomB := newRoom(""), newRoom("")
		host := login(t, srv)
		knockJoin(t, host, roomA, mint(t, roomA, true, nil), "host")
		knockJoin(t, host, roomB, mint(t, roomB, true, nil), "host")
		troll := login(t, srv)
		knockJoin(t, troll, roomA, mint(t, roomA, false, withUser("troll")), "troll")
		knockJoin(t, troll, roomB, mint(t, roomB, false, withUser("troll")), "troll")

		ar, _ := auth.ParseRoom(roomA)
		start := time.Now()
		res, err := g.cmds.Ban(context.Background(), commands.BanRequest{Tenant: ar.Tenant, Kind: store.KindUser, Value: "troll", Reason: "spam", By: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Removed != 2 {
			t.Errorf("removed %d occupants, want 2 (one per room)", res.Removed)
		}
		for _, room := range []string{roomA, roomB} {
			p, err := host.WaitPresence(ctxT(t, 2*time.Second), func(p xclient.Presence) bool {
				return strings.EqualFold(p.From, room+"/troll") && p.Type == "unavailable"
			})
			if err != nil {
				t.Fatalf("troll still in %s: %v", room, err)
			}
			if p.Affiliation != "outcast" {
				t.Errorf("troll left %s as %s, want outcast", room, p.Affiliation)
			}
		}
		elapsed := time.Since(start)
		t.Logf("banned user removed from 2 rooms in %v", elapsed)
		if elapsed > 100*time.Millisecond {
			t.Logf("note: removal took over 100 ms on this machine")
		}
		// A new JID with a fresh token for the same user id is refused.
		again := login(t, srv)
		_, err = again.Knock(ctxT(t, 5*time.Second), prosodytest.Component, roomA, mint(t, roomA, false, withUser("troll")))
		wantRefusal(t, err, "auth", "forbidden", "banned")
		// The old JID cannot skip the knock: it is an outcast of a members-only
		// room (Prosody checks membership first, so the condition says so).
		_, err = troll.Join(ctxT(t, 5*time.Second), roomA, "troll2")
		var xe *xclient.Error
		if !errors.As(err, &xe) || (xe.Condition != "forbidden" && xe.Condition != "registration-required") {
			t.Errorf("banned JID rejoining directly: %v, want a refusal", err)
		}
		// Unban lets the user back in with a new JID.
		if _, err := g.cmds.Unban(context.Background(), commands.UnbanRequest{Tenant: ar.Tenant, Kind: store.KindUser, Value: "troll", By: "test"}); err != nil {
			t.Fatalf("unban: %v", err)
		}
		knockJoin(t, again, roomA, mint(t, roomA, false, withUser("troll")), "troll3")
	})
}

func TestBanToken(t *testing.T) {
	g := startModerated(t, shared, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	room := newRoom("")
	host := login(t, shared)
	knockJoin(t, host, room, mint(t, room, true, nil), "host")
	leaked := mint(t, room, false, nil)
	user := login(t, shared)
	knockJoin(t, user, room, leaked, "leaker")
	ar, _ := auth.ParseRoom(room)
	res, err := g.cmds.Ban(context.Background(), commands.BanRequest{Tenant: ar.Tenant, Kind: store.KindToken, Value: leaked, By: "test"})
	if err != nil || res.Removed != 1 {
		t.Fatalf("ban token: removed %d, %v", res.Removed, err)
	}
	other := login(t, shared)
	_, err = other.Knock(ctxT(t, 5*time.Second), prosodytest.Component, room, leaked)
	wantRefusal(t, err, "auth", "forbidden", "banned")
	for _, b := range mustBans(t, g) {
		if strings.Contains(b.Value, leaked[:20]) {
			t.Error("the raw token was stored")
		}
	}
}

func mustBans(t *testing.T, g *moderated) []store.Ban {
	bans, err := g.cmds.Bans(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return bans
}

func TestKickAndDestroy(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		room := newRoom("")
		host, user := login(t, srv), login(t, srv)
		knockJoin(t, host, room, mint(t, room, true, nil), "host")
		knockJoin(t, user, room, mint(t, room, false, nil), "user")
		ctx := ctxT(t, 10*time.Second)
		if err := g.cmds.Kick(ctx, room, "user", "be nice", "test"); err != nil {
			t.Fatal(err)
		}
		p, err := user.WaitPresence(ctx, func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/user") && p.Type == "unavailable"
		})
		if err != nil || !p.Self() {
			t.Fatalf("kick not seen: %v %+v", err, p)
		}
		if err := g.cmds.Kick(ctx, room, "nobody", "", "test"); !errors.Is(err, commands.ErrParticipantNotFound) {
			t.Errorf("kick unknown nick: %v", err)
		}
		if err := g.cmds.Kick(ctx, "ghost@"+prosodytest.MUC, "x", "", "test"); !errors.Is(err, commands.ErrRoomNotFound) {
			t.Errorf("kick in unknown room: %v", err)
		}
		if err := g.cmds.Kick(ctx, "r@conference.elsewhere.test", "x", "", "test"); !errors.Is(err, commands.ErrNotGoverned) {
			t.Errorf("kick in ungoverned room: %v", err)
		}

		if err := g.cmds.Destroy(ctx, room, "meeting over", "test"); err != nil {
			t.Fatal(err)
		}
		p, err = host.WaitPresence(ctx, func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/host") && p.Type == "unavailable"
		})
		if err != nil || !p.Destroyed {
			t.Fatalf("destroy not seen by the host: %v %+v", err, p)
		}
		if err := g.cmds.Destroy(ctx, "ghost@"+prosodytest.MUC, "", "test"); !errors.Is(err, commands.ErrRoomNotFound) {
			t.Errorf("destroy unknown room: %v", err)
		}
		// gavel forgets the destroyed room.
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) && len(g.mod.Rooms()) > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		if rooms := g.mod.Rooms(); len(rooms) != 0 {
			t.Errorf("rooms after destroy: %v", rooms)
		}
	})
}

func TestAdHocCommands(t *testing.T) {
	startModerated(t, shared, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	if err := shared.Register("admin", prosodytest.Host, "pw"); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 10*time.Second)
	admin, err := xclient.Login(ctx, shared.C2SAddr, "admin", prosodytest.Host, "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	var items struct {
		Query struct {
			Items []struct {
				Node string `xml:"node,attr"`
			} `xml:"item"`
		} `xml:"http://jabber.org/protocol/disco#items query"`
	}
	if err := admin.IQ(ctx, prosodytest.Component, "get", `<query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/>`, &items); err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, it := range items.Query.Items {
		nodes = append(nodes, it.Node)
	}
	if strings.Join(nodes, ",") != "ban-user,ban-token,unban,list-bans,kick,set-role,set-policy,lock,unlock,admit,destroy" {
		t.Errorf("command nodes = %v", nodes)
	}

	type cmdResp struct {
		Command struct {
			Status    string `xml:"status,attr"`
			SessionID string `xml:"sessionid,attr"`
			Note      string `xml:"note"`
			Fields    []struct {
				Var string `xml:"var,attr"`
			} `xml:"jabber:x:data x>field"`
		} `xml:"http://jabber.org/protocol/commands command"`
	}
	var form cmdResp
	if err := admin.IQ(ctx, prosodytest.Component, "set", `<command xmlns='http://jabber.org/protocol/commands' node='ban-user' action='execute'/>`, &form); err != nil {
		t.Fatal(err)
	}
	if form.Command.Status != "executing" || len(form.Command.Fields) != 4 {
		t.Fatalf("ban-user form: %+v", form.Command)
	}
	var done cmdResp
	submit := `<command xmlns='http://jabber.org/protocol/commands' node='ban-user' sessionid='` + form.Command.SessionID + `'><x xmlns='jabber:x:data' type='submit'>` +
		`<field var='tenant'><value>example.test</value></field><field var='user'><value>adhoc-troll</value></field>` +
		`<field var='duration'><value>1h</value></field></x></command>`
	if err := admin.IQ(ctx, prosodytest.Component, "set", submit, &done); err != nil {
		t.Fatal(err)
	}
	if done.Command.Status != "completed" || !strings.Contains(done.Command.Note, "banned") {
		t.Errorf("ban-user result: %+v", done.Command)
	}
	var list cmdResp
	if err := admin.IQ(ctx, prosodytest.Component, "set", `<command xmlns='http://jabber.org/protocol/commands' node='list-bans'><x xmlns='jabber:x:data' type='submit'><field var='tenant'><value>example.test</value></field></x></command>`, &list); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list.Command.Note, "adhoc-troll") {
		t.Errorf("list-bans: %q", list.Command.Note)
	}
	// Bad input is a bad-request with the reason.
	err = admin.IQ(ctx, prosodytest.Component, "set", `<command xmlns='http://jabber.org/protocol/commands' node='ban-user'><x xmlns='jabber:x:data' type='submit'><field var='tenant'><value>example.test</value></field><field var='user'><value>x</value></field><field var='duration'><value>soon</value></field></x></command>`, nil)
	var xe *xclient.Error
	if !errors.As(err, &xe) || xe.Condition != "bad-request" || !strings.Contains(xe.Text, "duration") {
		t.Errorf("bad duration: %v", err)
	}
	// Others are forbidden.
	other := login(t, shared)
	err = other.IQ(ctx, prosodytest.Component, "set", `<command xmlns='http://jabber.org/protocol/commands' node='ban-user' action='execute'/>`, nil)
	if !errors.As(err, &xe) || xe.Condition != "forbidden" {
		t.Errorf("non-admin: %v, want forbidden", err)
	}
}

func TestBansSurviveGavelRestart(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tenants := map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}
	g := startModerated(t, shared, tenants, st)
	room := newRoom("")
	ar, _ := auth.ParseRoom(room)
	if _, err := g.cmds.Ban(context.Background(), commands.BanRequest{Tenant: ar.Tenant, Kind: store.KindUser, Value: "persistent-troll", By: "test"}); err != nil {
		t.Fatal(err)
	}
	g.stop()
	st.Close()

	st2, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	startModerated(t, shared, tenants, st2)
	cl := login(t, shared)
	_, err = cl.Knock(ctxT(t, 5*time.Second), prosodytest.Component, room, mint(t, room, false, withUser("persistent-troll")))
	wantRefusal(t, err, "auth", "forbidden", "banned")
}

// adminClient registers (once) and logs in the admin of startModerated.
func adminClient(t *testing.T) *xclient.Client {
	t.Helper()
	_ = shared.Register("admin", prosodytest.Host, "pw") // may exist already
	admin, err := xclient.Login(ctxT(t, 10*time.Second), shared.C2SAddr, "admin", prosodytest.Host, "pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return admin
}

// runCommand submits an ad-hoc command form and returns its note.
func runCommand(t *testing.T, cl *xclient.Client, node string, fields ...string) (string, error) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`<command xmlns='http://jabber.org/protocol/commands' node='` + node + `'><x xmlns='jabber:x:data' type='submit'>`)
	for i := 0; i+1 < len(fields); i += 2 {
		b.WriteString(`<field var='` + fields[i] + `'><value>` + fields[i+1] + `</value></field>`)
	}
	b.WriteString(`</x></command>`)
	var resp struct {
		Command struct {
			Status string `xml:"status,attr"`
			Note   string `xml:"note"`
		} `xml:"http://jabber.org/protocol/commands command"`
	}
	err := cl.IQ(ctxT(t, 10*time.Second), prosodytest.Component, "set", b.String(), &resp)
	return resp.Command.Note, err
}

// TestAdHocNormalizesAndAnswers: an ad-hoc ban for tenant " ACME " applies
// in [acme] rooms (before, it was stored under that spelling and never
// applied); an unban of an unknown kind is bad-request (before,
// internal-server-error); an unban of a missing ban is item-not-found "no
// such ban" (before, "no such room").
func TestAdHocNormalizesAndAnswers(t *testing.T) {
	startModerated(t, shared, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	admin := adminClient(t)
	room := newRoom("acme")
	note, err := runCommand(t, admin, "ban-user", "tenant", " ACME ", "user", " adhoc-spelt ")
	if err != nil {
		t.Fatalf("ban-user: %v", err)
	}
	if !strings.Contains(note, "in acme") {
		t.Errorf("ban-user note %q does not name the prepared tenant", note)
	}
	cl := login(t, shared)
	_, err = cl.Knock(ctxT(t, 5*time.Second), prosodytest.Component, room, mint(t, room, false, withUser("adhoc-spelt")))
	wantRefusal(t, err, "auth", "forbidden", "banned")

	var xe *xclient.Error
	_, err = runCommand(t, admin, "unban", "tenant", "acme", "kind", "ip", "value", "1.2.3.4")
	if !errors.As(err, &xe) || xe.Condition != "bad-request" || !strings.Contains(xe.Text, "unknown") {
		t.Errorf("unban of an unknown kind: %v, want bad-request", err)
	}
	_, err = runCommand(t, admin, "unban", "tenant", "acme", "kind", "user", "value", strings.Repeat("u", 3000))
	if !errors.As(err, &xe) || xe.Condition != "bad-request" {
		t.Errorf("unban of a 3,000-character user id: %v, want bad-request", err)
	}
	_, err = runCommand(t, admin, "unban", "tenant", "acme", "kind", "user", "value", "nobody")
	if !errors.As(err, &xe) || xe.Condition != "item-not-found" || !strings.Contains(xe.Text, "no such ban") {
		t.Errorf("unban of a missing ban: %v, want item-not-found: no such ban", err)
	}
	if _, err := runCommand(t, admin, "unban", "tenant", "Acme", "kind", "user", "value", "adhoc-spelt"); err != nil {
		t.Errorf("unban by another spelling: %v", err)
	}
}

// TestCommandsHiddenFromNonAdmins: disco lists the commands to the admins
// only, and describes a command node to them only.
func TestCommandsHiddenFromNonAdmins(t *testing.T) {
	startModerated(t, shared, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	ctx := ctxT(t, 10*time.Second)
	var items struct {
		Query struct {
			Items []struct {
				Node string `xml:"node,attr"`
			} `xml:"item"`
		} `xml:"http://jabber.org/protocol/disco#items query"`
	}
	const list = `<query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/>`
	const info = `<query xmlns='http://jabber.org/protocol/disco#info' node='ban-user'/>`
	other := login(t, shared)
	if err := other.IQ(ctx, prosodytest.Component, "get", list, &items); err != nil {
		t.Fatal(err)
	}
	if len(items.Query.Items) != 0 {
		t.Errorf("a non-admin sees %d commands", len(items.Query.Items))
	}
	var xe *xclient.Error
	if err := other.IQ(ctx, prosodytest.Component, "get", info, nil); !errors.As(err, &xe) || xe.Condition != "item-not-found" {
		t.Errorf("disco#info of a command node for a non-admin: %v, want item-not-found", err)
	}
	admin := adminClient(t)
	items.Query.Items = nil
	if err := admin.IQ(ctx, prosodytest.Component, "get", list, &items); err != nil || len(items.Query.Items) != len(commandList) {
		t.Errorf("the admin sees %d commands, %v", len(items.Query.Items), err)
	}
	if err := admin.IQ(ctx, prosodytest.Component, "get", info, nil); err != nil {
		t.Errorf("disco#info of a command node for the admin: %v", err)
	}
}

// blockRoom holds the worker of roomJID until the returned function is
// called.
func blockRoom(t *testing.T, g *moderated, roomJID string) (release func()) {
	t.Helper()
	block, held := make(chan struct{}), make(chan struct{})
	if !g.mod.deliver(roomJID, false, event{kind: evCommand, cmd: func(*room) error { close(held); <-block; return nil }}) {
		t.Fatalf("no worker for %s", roomJID)
	}
	<-held
	var once sync.Once
	release = func() { once.Do(func() { close(block) }) }
	t.Cleanup(release)
	return release
}

// TestKickAfterItsRequestEnded: a kick whose context ended, before it was
// queued or while it was, is not sent. (Before, it still ran once the
// room worker reached it.)
func TestKickAfterItsRequestEnded(t *testing.T) {
	g := startModerated(t, shared, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	room := newRoom("")
	host, user := login(t, shared), login(t, shared)
	knockJoin(t, host, room, mint(t, room, true, nil), "host")
	knockJoin(t, user, room, mint(t, room, false, nil), "user")
	ar, _ := auth.ParseRoom(room)

	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.mod.Kick(ended, ar.JID, "user", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("kick with an ended context: %v", err)
	}
	release := blockRoom(t, g, ar.JID)
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := g.mod.Kick(short, ar.JID, "user", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("kick that timed out while queued: %v", err)
	}
	release()
	if err := g.mod.Destroy(ended, ar.JID, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("destroy with an ended context: %v", err)
	}
	// The user is still there: a live kick finds them.
	if err := g.cmds.Kick(ctxT(t, 10*time.Second), room, "user", "", "test"); err != nil {
		t.Fatalf("the user was already kicked: %v", err)
	}
}

// TestEnforceBanIncomplete: when a room does not answer before ctx ends,
// EnforceBan returns the count so far and an error that says how many
// rooms did not answer (before, a partial count with no error).
func TestEnforceBanIncomplete(t *testing.T) {
	g := startModerated(t, shared, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	room := newRoom("slow")
	host := login(t, shared)
	knockJoin(t, host, room, mint(t, room, true, nil), "host")
	ar, _ := auth.ParseRoom(room)
	blockRoom(t, g, ar.JID)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res, err := g.cmds.Ban(ctx, commands.BanRequest{Tenant: "slow", Kind: store.KindUser, Value: "x", By: "test"})
	if !errors.Is(err, commands.ErrIncomplete) || !strings.Contains(err.Error(), "1 of 1 room(s) did not answer") {
		t.Errorf("ban with a room that does not answer: %+v, %v", res, err)
	}
	if _, ok := g.store.Banned("slow", store.KindUser, "x", time.Now()); !ok {
		t.Error("the ban is not stored")
	}
}
