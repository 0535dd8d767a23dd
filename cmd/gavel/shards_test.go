package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/pgtest"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/store"
)

// The tests in this file run two or more gavel binaries on one real
// PostgreSQL (docs/scale-out.md). Shards have their own Prosody with their
// own domains: the bus routes a room by its MUC domain. The rooms are in
// one tenant, acme ([acme]room@conference.X.test), as a JaaS-style tenant
// spans the shards.

// shardTenant is the tenant whose rooms live on every shard.
const shardTenant = "acme"

// syncBuffer is a bytes.Buffer that the process writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testShard is one shard: a Prosody with its own domains and the gavel
// binary governing its MUC, on the shared store.
type testShard struct {
	t      *testing.T
	bin    string
	names  prosodytest.Names
	srv    *prosodytest.Server
	cfg    string
	base   string
	admin  string
	logs   *syncBuffer
	cmd    *exec.Cmd
	exited chan struct{}
}

// startShard starts shard name's Prosody (name.test, conference.name.test,
// mod.name.test) and its gavel, reading the DSN from GAVEL_TEST_PG_DSN.
func startShard(t *testing.T, bin, name string) *testShard {
	t.Helper()
	names := prosodytest.Names{Host: name + ".test", MUC: "conference." + name + ".test", Component: "mod." + name + ".test"}
	srv, err := prosodytest.Start(t.TempDir(), prosodytest.Options{RestrictRoomCreation: true, Names: names})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := l.Addr().String()
	l.Close()
	s := &testShard{t: t, bin: bin, names: srv.Names, srv: srv, base: "http://" + httpAddr}
	s.cfg = writeConfig(t, fmt.Sprintf(`
component:
  jid: %s
  address: %s
  secret: %q
muc:
  - domain: %s
http:
  listen: %s
  admin_token:
    secrets: [%q]
data_dir: %s
store:
  postgres:
    dsn_env: GAVEL_TEST_PG_DSN
    reconnect_min: 20ms
    reconnect_max: 200ms
tenants:
  default:
    knocks_per_minute: 1000000
    knocks_per_minute_per_jid: 1000000
    token:
      app_id: myapp
      secrets: [%q]
`, names.Component, srv.ComponentAddr, srv.Secret, names.MUC, httpAddr, adminSecret, t.TempDir(), secret))
	s.admin, _ = auth.Mint(auth.MintRequest{Secret: []byte(adminSecret), Subject: shardTenant, Issuer: "x", Audience: []string{"x"}, TTL: time.Hour, Extra: map[string]any{"admin": true}})
	s.start()
	return s
}

// start runs the gavel binary; the test's end kills it.
func (s *testShard) start() {
	s.t.Helper()
	s.logs = &syncBuffer{}
	cmd := exec.Command(s.bin, "-config", s.cfg)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	s.t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
}

// room is a room of the tenant on this shard.
func (s *testShard) room(name string) string {
	return "[" + shardTenant + "]" + name + "@" + s.names.MUC
}

// waitReady polls /readyz until it answers want.
func (s *testShard) waitReady(want int) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.base + "/readyz")
		code := 0
		if err == nil {
			code = resp.StatusCode
			resp.Body.Close()
		}
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: /readyz is %d, never %d; gavel's log:\n%s", s.names.Component, code, want, s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// do sends an admin request of the tenant; a transport error is code 0.
func (s *testShard) do(ctx context.Context, method, path, body string) (int, map[string]any) {
	req, _ := http.NewRequestWithContext(ctx, method, s.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, map[string]any{"transport": err.Error()}
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func (s *testShard) ban(ctx context.Context, userID string) (int, map[string]any) {
	return s.do(ctx, "POST", "/jaccess/v1/access-management/"+shardTenant+"/ban/user/"+userID, `{"reason":"spam"}`)
}

func (s *testShard) meeting(ctx context.Context, action string, payload map[string]string) (int, map[string]any) {
	b, _ := json.Marshal(map[string]any{"action": action, "payload": payload})
	return s.do(ctx, "POST", "/conference-commands/v1/meeting", string(b))
}

// bans lists the tenant's bans as PostgreSQL has them.
func (s *testShard) bans(ctx context.Context) map[string]bool {
	s.t.Helper()
	code, out := s.do(ctx, "GET", "/jaccess/v1/access-management/"+shardTenant+"/bans", "")
	if code != 200 {
		s.t.Fatalf("list bans: %d %v", code, out)
	}
	got := map[string]bool{}
	list, _ := out["bans"].([]any)
	for _, x := range list {
		if m, ok := x.(map[string]any); ok {
			got[fmt.Sprint(m["value"])] = true
		}
	}
	return got
}

// token is a user's token for a room of the tenant.
func shardToken(userID string, moderator bool) string {
	tok, _ := auth.Mint(auth.MintRequest{Secret: []byte(secret), Issuer: "myapp", Audience: []string{"jitsi"}, Subject: shardTenant, Room: "*", UserID: userID, Moderator: moderator, TTL: time.Hour})
	return tok
}

// login registers user on the shard's host and logs in.
func (s *testShard) login(ctx context.Context, user string) *xclient.Client {
	s.t.Helper()
	if err := s.srv.Register(user, s.names.Host, "pw"); err != nil {
		s.t.Fatal(err)
	}
	cl, err := xclient.Login(ctx, s.srv.C2SAddr, user, s.names.Host, "pw")
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cl.Close() })
	return cl
}

// join knocks (as userID) and joins room as nick user.
func (s *testShard) join(ctx context.Context, room, user, userID string, moderator bool) *xclient.Client {
	s.t.Helper()
	cl := s.login(ctx, user)
	if _, err := cl.Knock(ctx, s.names.Component, room, shardToken(userID, moderator)); err != nil {
		s.t.Fatalf("%s knocks on %s: %v", user, room, err)
	}
	if _, err := cl.Join(ctx, room, user); err != nil {
		s.t.Fatalf("%s joins %s: %v", user, room, err)
	}
	return cl
}

// refusedAsBanned reports whether a knock as userID is refused for a ban.
func (s *testShard) refusedAsBanned(ctx context.Context, cl *xclient.Client, room, userID string) (bool, error) {
	_, err := cl.Knock(ctx, s.names.Component, room, shardToken(userID, false))
	var xe *xclient.Error
	if errors.As(err, &xe) {
		return xe.App == "banned", nil
	}
	return false, err
}

// outcast reports whether jid is an outcast of room, as its owner c reads
// the list.
func outcast(ctx context.Context, t *testing.T, c *xclient.Client, room, jid string) bool {
	t.Helper()
	var res struct {
		Items []struct {
			JID string `xml:"jid,attr"`
		} `xml:"http://jabber.org/protocol/muc#admin query>item"`
	}
	if err := c.IQ(ctx, room, "get", `<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast'/></query>`, &res); err != nil {
		t.Fatalf("outcast list of %s: %v", room, err)
	}
	for _, it := range res.Items {
		if strings.EqualFold(it.JID, jid) {
			return true
		}
	}
	return false
}

// TestShardsShareCommands runs two shards (two Prosody, two gavel binaries)
// on one PostgreSQL: a ban through A removes the occupant of a room on B
// and refuses their knock there; an unban through A lifts the outcast on B;
// a role set through A changes a present
// occupant on B; bans through A keep being acknowledged and enforced on B
// across a restart of PostgreSQL, none lost; a destroy through A ends B's
// room.
func TestShardsShareCommands(t *testing.T) {
	bin := gavelBinary(t)
	pg, dsn, ctx := startPostgres(t, 150*time.Second)
	t.Setenv("GAVEL_TEST_PG_DSN", dsn)
	a := startShard(t, bin, "a")
	b := startShard(t, bin, "b")
	a.waitReady(200)
	b.waitReady(200)

	room := b.room("standup")
	host := b.join(ctx, room, "host", "host-id", true)
	troll := b.join(ctx, room, "troll", "troll-id", false)
	b.join(ctx, room, "guest", "guest-id", false)

	// A ban through A: committed, announced, and B removes the occupant.
	start := time.Now()
	if code, out := a.ban(ctx, "troll-id"); code != 200 {
		t.Fatalf("ban through A: %d %v", code, out)
	}
	acked := time.Since(start)
	if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/troll") && p.Type == "unavailable"
	}); err != nil {
		t.Fatalf("the banned occupant is still in B's room: %v\nA:\n%s\nB:\n%s", err, a.logs.String(), b.logs.String())
	}
	t.Logf("ban through A: 2xx after %v, removed on B after %v", acked, time.Since(start))
	// And B refuses their knock, from its cache.
	if banned, err := b.refusedAsBanned(ctx, troll, room, "troll-id"); !banned {
		t.Fatalf("B let the banned user knock again: %v", err)
	}

	// An unban through A lifts the outcast B set in its room.
	if !outcast(ctx, t, host, room, "troll@"+b.names.Host) {
		t.Fatal("the ban did not make the occupant an outcast of B's room")
	}
	if code, out := a.do(ctx, "DELETE", "/jaccess/v1/access-management/"+shardTenant+"/ban/user/troll-id", ""); code != 200 && code != 204 {
		t.Fatalf("unban through A: %d %v", code, out)
	}
	trollJID := "troll@" + b.names.Host
	for deadline := time.Now().Add(10 * time.Second); outcast(ctx, t, host, room, trollJID); {
		if time.Now().After(deadline) {
			t.Fatalf("the unban through A did not lift %s's outcast on B\nB:\n%s", trollJID, b.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// SET_ROLE through A for an occupant of B's room. A learns B's MUC
	// from PostgreSQL; until it has, the room is not governed (404).
	var code int
	var out map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, out = a.meeting(ctx, "SET_ROLE", map[string]string{"conferenceFullName": room, "participantId": "guest", "role": "moderator"})
		if code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("SET_ROLE through A: %d %v", code, out)
	}
	if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/guest") && p.Affiliation == "owner" && p.Role == "moderator"
	}); err != nil {
		t.Fatalf("the role set through A did not change the occupant on B: %v\nB:\n%s", err, b.logs.String())
	}

	// Bans through A, one after another, while PostgreSQL is killed and
	// restarted. Every acknowledged one must be in PostgreSQL and enforced
	// on B; a refused one answers 503.
	var (
		mu         sync.Mutex
		ackedBans  []string
		refused    int
		otherCodes []string
	)
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(ackedBans), refused
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			user := fmt.Sprintf("u-%d", i)
			code, out := a.ban(ctx, user)
			mu.Lock()
			switch code {
			case 200:
				ackedBans = append(ackedBans, user)
			case 503:
				refused++
			default:
				otherCodes = append(otherCodes, fmt.Sprintf("%s: %d %v", user, code, out))
			}
			mu.Unlock()
			if code == 503 {
				time.Sleep(10 * time.Millisecond) // do not spin while PostgreSQL is down
			}
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s never happened", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("10 bans acknowledged", func() bool { n, _ := count(); return n >= 10 })
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor("a ban refused while PostgreSQL is down", func() bool { _, r := count(); return r > 0 })
	before, _ := count()
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	a.waitReady(200)
	b.waitReady(200)
	waitFor("10 bans acknowledged after the restart", func() bool { n, _ := count(); return n >= before+10 })
	close(stop)
	<-done
	mu.Lock()
	if len(otherCodes) > 0 {
		t.Errorf("bans answered neither 200 nor 503: %q", otherCodes)
	}
	list := append([]string(nil), ackedBans...)
	t.Logf("across the PostgreSQL restart: %d bans acknowledged (%d before the kill), %d refused with 503", len(list), before, refused)
	mu.Unlock()

	stored := b.bans(ctx)
	for _, u := range list {
		if !stored[u] {
			t.Errorf("acknowledged ban of %s is not in PostgreSQL", u)
		}
	}
	// B's cache has every one of them: B refuses each user's knock. The
	// last acknowledged ban is the latest event; poll for it, then check
	// the rest at once.
	probe := b.login(ctx, "probe")
	last := list[len(list)-1]
	waitFor("B refusing the last acknowledged ban", func() bool {
		banned, _ := b.refusedAsBanned(ctx, probe, room, last)
		return banned
	})
	for _, u := range list {
		if banned, err := b.refusedAsBanned(ctx, probe, room, u); !banned {
			t.Errorf("B does not refuse %s, whose ban A acknowledged: %v", u, err)
		}
	}

	// A destroy through A ends B's room.
	if code, out := a.meeting(ctx, "DESTROY", map[string]string{"conferenceFullName": room, "reason": "over"}); code != 200 {
		t.Fatalf("DESTROY through A: %d %v", code, out)
	}
	if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool { return p.Destroyed }); err != nil {
		t.Fatalf("B's room was not destroyed: %v\nB:\n%s", err, b.logs.String())
	}
}

// TestPostgresKill9DuringConcurrentBans sends 200 bans at once to the
// gavel binary on the shared store and kills it with SIGKILL after the
// fifth answer: every ban answered 2xx is in PostgreSQL (fsync on), and the
// gavel started again refuses those users' knocks.
func TestPostgresKill9DuringConcurrentBans(t *testing.T) {
	bin := gavelBinary(t)
	pg, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dsn, err := pg.CreateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GAVEL_TEST_PG_DSN", dsn)
	a := startShard(t, bin, "a")
	a.waitReady(200)

	const n = 200
	type result struct {
		user string
		code int
	}
	results := make(chan result, n)
	gate := make(chan struct{})
	var answered atomic.Int32
	for i := range n {
		go func() {
			user := fmt.Sprintf("victim-%d", i)
			<-gate
			code, _ := a.ban(ctx, user)
			// The fifth answer kills gavel at once, while the other
			// requests are in flight.
			if answered.Add(1) == 5 {
				_ = a.cmd.Process.Signal(syscall.SIGKILL)
			}
			results <- result{user, code}
		}()
	}
	close(gate)
	var acked []string
	codes := map[int]int{}
	for range n {
		r := <-results
		codes[r.code]++
		if r.code >= 200 && r.code < 300 {
			acked = append(acked, r.user)
		}
	}
	<-a.exited
	t.Logf("answers: %v", codes)
	if len(acked) == n {
		t.Fatal("every ban was answered before the kill: the test killed nothing")
	}
	reader, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Scope: "reader.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	bans, err := reader.ListBans(ctx, shardTenant, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, b := range bans {
		stored[b.Value] = true
	}
	for _, u := range acked {
		if !stored[u] {
			t.Errorf("ban of %s answered 2xx, not in PostgreSQL", u)
		}
	}
	t.Logf("%d of %d bans acknowledged before the kill, %d stored", len(acked), n, len(stored))

	a.start()
	a.waitReady(200)
	probe := a.login(ctx, "probe")
	for _, u := range acked {
		if banned, err := a.refusedAsBanned(ctx, probe, a.room("r"), u); !banned {
			t.Errorf("the restarted gavel does not refuse %s: %v", u, err)
		}
	}
}

// TestShardRestartAppliesMissedCommands: commands for B's room accepted
// through A while B's gavel is down (killed with SIGKILL) are applied when
// it starts again: it resumes the event log at its cursor, so the ban
// removes the occupant it restored and the role is set.
func TestShardRestartAppliesMissedCommands(t *testing.T) {
	bin := gavelBinary(t)
	_, dsn, ctx := startPostgres(t, 90*time.Second)
	t.Setenv("GAVEL_TEST_PG_DSN", dsn)
	a := startShard(t, bin, "a")
	b := startShard(t, bin, "b")
	a.waitReady(200)
	b.waitReady(200)
	room := b.room("standup")
	host := b.join(ctx, room, "host", "host-id", true)
	b.join(ctx, room, "troll", "troll-id", false)
	b.join(ctx, room, "guest", "guest-id", false)

	// B has stored its room with the three occupants: what it restores.
	reader, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Scope: b.names.Component})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		rooms, err := reader.Rooms(ctx)
		if err == nil && len(rooms) == 1 && len(rooms[0].Occupants) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B never stored its room with three occupants: %v %+v", err, rooms)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A knows that B governs its MUC (a harmless command through A: the
	// host is a moderator already).
	learned := time.Now()
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, out := a.meeting(ctx, "SET_ROLE", map[string]string{"conferenceFullName": room, "participantId": "host", "role": "moderator"})
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A never accepted a command for B's room: %d %v\nA:\n%s", code, out, a.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("A accepted a command for B's room after %v", time.Since(learned))

	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.exited
	if code, out := a.ban(ctx, "troll-id"); code != 200 {
		t.Fatalf("ban through A while B is down: %d %v", code, out)
	}
	if code, out := a.meeting(ctx, "SET_ROLE", map[string]string{"conferenceFullName": room, "participantId": "guest", "role": "moderator"}); code != 200 {
		t.Fatalf("SET_ROLE through A while B is down: %d %v\nA:\n%s", code, out, a.logs.String())
	}

	b.start()
	b.waitReady(200)
	if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/troll") && p.Type == "unavailable"
	}); err != nil {
		t.Fatalf("the ban issued while B was down did not remove the occupant: %v\nB:\n%s", err, b.logs.String())
	}
	if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/guest") && p.Affiliation == "owner" && p.Role == "moderator"
	}); err != nil {
		t.Fatalf("the role set while B was down was not applied: %v\nB:\n%s", err, b.logs.String())
	}
}
