package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/internal/pgtest"
	"github.com/gavelxmpp/gavel/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// shard is the XMPP side of one gavel, as the command layer sees it: it
// records what it was asked to do in the rooms of its MUC service.
type shard struct {
	domain string
	mu     sync.Mutex
	did    []string
	signal chan string
}

func newShard(domain string) *shard { return &shard{domain: domain, signal: make(chan string, 100)} }

func (s *shard) record(what string) {
	s.mu.Lock()
	s.did = append(s.did, what)
	s.mu.Unlock()
	s.signal <- what
}

func (s *shard) Governs(d string) bool { return d == s.domain }
func (s *shard) EnforceBan(_ context.Context, b store.Ban) (int, error) {
	s.record("ban " + b.Tenant + "/" + b.Value)
	return 1, nil
}
func (s *shard) LiftOutcasts(_ context.Context, l []store.Outcast) ([]store.Outcast, error) {
	return l, nil
}
func (s *shard) Kick(_ context.Context, room, nick, reason string) error {
	s.record("kick " + room + "/" + nick + " " + reason)
	return nil
}
func (s *shard) Destroy(_ context.Context, room, reason string) error {
	s.record("destroy " + room + " " + reason)
	return nil
}
func (s *shard) SetRole(_ context.Context, req commands.RoleRequest) (int, error) {
	s.record("role " + req.Room + "/" + req.Participant + " " + req.Role)
	return 1, nil
}
func (s *shard) SetPolicy(_ context.Context, room, policy string) error {
	s.record("policy " + room + " " + policy)
	return nil
}
func (s *shard) SetRoomOptions(_ context.Context, room string, o commands.RoomOptions) error {
	s.record(fmt.Sprintf("options %s locked=%v", room, o.Locked != nil && *o.Locked))
	return nil
}

// expect waits for the shard's next action and checks it.
func (s *shard) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-s.signal:
		if got != want {
			t.Fatalf("%s did %q, want %q", s.domain, got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not %q within 10s", s.domain, want)
	}
}

type gavel struct {
	st    *store.Postgres
	bus   *Bus
	shard *shard
}

func startGavel(t *testing.T, dsn, scope, muc string) *gavel {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Scope: scope, Logger: zaptest.NewLogger(t).Named(scope),
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Govern(ctx, []string{muc}); err != nil {
		t.Fatal(err)
	}
	sh := newShard(muc)
	b, err := New(Options{Local: sh, Store: st, Logger: zaptest.NewLogger(t).Named(scope)})
	if err != nil {
		t.Fatal(err)
	}
	b.Start(ctx)
	return &gavel{st: st, bus: b, shard: sh}
}

func TestCommandsReachTheOtherShard(t *testing.T) {
	srv, err := pgtest.Shared()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dsn, err := srv.CreateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := startGavel(t, dsn, "mod.a.test", "conference.a.test")
	b := startGavel(t, dsn, "mod.b.test", "conference.b.test")

	// A knows that B governs conference.b.test, so the command layer
	// accepts rooms there.
	deadline := time.Now().Add(10 * time.Second)
	for !a.bus.Governs("conference.b.test") {
		if time.Now().After(deadline) {
			t.Fatal("a never learned that b governs conference.b.test")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if a.bus.Governs("conference.c.test") {
		t.Error("a governs a MUC nobody claimed")
	}

	// A ban through A: A enforces it itself (the command layer calls
	// EnforceBan), B on the announcement.
	svc, err := commands.New(commands.Options{Store: a.st, Rooms: a.bus})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Ban(ctx, commands.BanRequest{Tenant: "acme", Kind: store.KindUser, Value: "troll"}); err != nil {
		t.Fatal(err)
	}
	a.shard.expect(t, "ban acme/troll")
	b.shard.expect(t, "ban acme/troll")

	if err := svc.Kick(ctx, "room@conference.b.test", "nick1", "bye", "admin"); err != nil {
		t.Fatal(err)
	}
	b.shard.expect(t, "kick room@conference.b.test/nick1 bye")
	if err := svc.Destroy(ctx, "room@conference.b.test", "over", "admin"); err != nil {
		t.Fatal(err)
	}
	b.shard.expect(t, "destroy room@conference.b.test over")
	// A room of A's own shard is reached directly.
	if err := svc.Kick(ctx, "room@conference.a.test", "nick2", "", "admin"); err != nil {
		t.Fatal(err)
	}
	a.shard.expect(t, "kick room@conference.a.test/nick2 ")

	// A kick published after B's destroy is seen in order by B, and A
	// never applies another shard's commands.
	if err := svc.Kick(ctx, "room@conference.b.test", "nick3", "", "admin"); err != nil {
		t.Fatal(err)
	}
	b.shard.expect(t, "kick room@conference.b.test/nick3 ")
	// SET_ROLE travels the same way; in A's own rooms it is direct.
	if err := svc.SetRole(ctx, "room@conference.b.test", "nick4", commands.RoleViewer, "admin"); err != nil {
		t.Fatal(err)
	}
	b.shard.expect(t, "role room@conference.b.test/nick4 viewer")
	if err := svc.SetRole(ctx, "room@conference.a.test", "nick5", commands.RoleModerator, "admin"); err != nil {
		t.Fatal(err)
	}
	a.shard.expect(t, "role room@conference.a.test/nick5 moderator")
	// A lock through A for a room of B, and a policy switch.
	if err := svc.SetLock(ctx, "room@conference.b.test", true, "admin"); err != nil {
		t.Fatal(err)
	}
	b.shard.expect(t, "options room@conference.b.test locked=true")
	if err := svc.SetPolicy(ctx, "room@conference.b.test", "all-owners", "admin"); err != nil {
		t.Fatal(err)
	}
	b.shard.expect(t, "policy room@conference.b.test all-owners")
	a.shard.mu.Lock()
	if len(a.shard.did) != 3 {
		t.Errorf("a did %q, want only its ban, its own kick and its own role", a.shard.did)
	}
	a.shard.mu.Unlock()
}

func TestUnavailableIs503(t *testing.T) {
	srv, err := pgtest.Start(pgtest.Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	dsn, err := srv.CreateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := startGavel(t, dsn, "mod.a.test", "conference.a.test")
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = a.bus.Kick(cctx, "room@conference.b.test", "n", "")
	if !errors.Is(err, commands.ErrStoreUnavailable) {
		t.Fatalf("Kick while PostgreSQL is down = %v, want ErrStoreUnavailable", err)
	}
	// The own shard does not need PostgreSQL for a kick.
	if err := a.bus.Kick(cctx, "room@conference.a.test", "n", ""); err != nil {
		t.Fatal(err)
	}
}
