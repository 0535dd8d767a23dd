package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/gavelxmpp/gavel/internal/pgtest"
	"github.com/gavelxmpp/gavel/store"
	"github.com/gavelxmpp/gavel/store/storetest"
)

// pgDB returns the DSN of a new, empty database on the test binary's
// PostgreSQL.
func pgDB(t *testing.T) (*pgtest.Server, string) {
	t.Helper()
	srv, err := pgtest.Shared()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, err := srv.CreateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return srv, dsn
}

func openPG(t *testing.T, dsn, scope string) *store.Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Scope: scope, Logger: zaptest.NewLogger(t),
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestConformancePostgres(t *testing.T) {
	dsns := map[store.Store]string{}
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T) store.Store {
			_, dsn := pgDB(t)
			p := openPG(t, dsn, "mod.example.test")
			dsns[p] = dsn
			return p
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return openPG(t, dsns[s], "mod.example.test")
		},
	})
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPostgresSharedBans: a ban written through one gavel reaches the
// other's cache (Banned, no network), and so does its removal; the other's
// subscriber sees both events.
func TestPostgresSharedBans(t *testing.T) {
	_, dsn := pgDB(t)
	a := openPG(t, dsn, "a.example.test")
	b := openPG(t, dsn, "b.example.test")
	got := make(chan store.Event, 10)
	b.Subscribe(func(e store.Event) { got <- e })
	ctx := context.Background()
	if err := a.AddBan(ctx, store.Ban{Tenant: "acme", Kind: store.KindUser, Value: "troll"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ban in b's cache", func() bool {
		_, ok := b.Banned("acme", store.KindUser, "troll", time.Now())
		return ok
	})
	if e := <-got; e.Kind != store.EventBanAdd || e.Origin != "a.example.test" {
		t.Errorf("event = %+v", e)
	}
	if ok, err := a.RemoveBan(ctx, "acme", store.KindUser, "troll"); !ok || err != nil {
		t.Fatalf("RemoveBan = %v, %v", ok, err)
	}
	waitFor(t, "the unban in b's cache", func() bool {
		_, ok := b.Banned("acme", store.KindUser, "troll", time.Now())
		return !ok
	})
	if e := <-got; e.Kind != store.EventBanRemove {
		t.Errorf("event = %+v", e)
	}
	// Rooms and outcasts are per gavel.
	if err := a.PutRooms(ctx, []store.RoomState{{Room: "r@conference.a.test"}}); err != nil {
		t.Fatal(err)
	}
	if rooms, err := b.Rooms(ctx); err != nil || len(rooms) != 0 {
		t.Errorf("b sees a's rooms: %v, %v", rooms, err)
	}
}

// TestPostgresRestart: while PostgreSQL is down, Banned answers from the
// cache, writes fail with ErrUnavailable and Check says so; after the
// restart the store reconnects by itself, catches up with a ban written
// through another gavel meanwhile... and delivers it.
func TestPostgresRestart(t *testing.T) {
	srv, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	dsn, err := srv.CreateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := openPG(t, dsn, "a.example.test")
	b := openPG(t, dsn, "b.example.test")
	got := make(chan store.Event, 10)
	b.Subscribe(func(e store.Event) { got <- e })
	if err := a.AddBan(ctx, store.Ban{Tenant: "acme", Kind: store.KindUser, Value: "before"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first ban on b", func() bool { _, ok := b.Banned("acme", store.KindUser, "before", time.Now()); return ok })
	<-got

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Check to fail", func() bool { return errors.Is(b.Check(ctx), store.ErrUnavailable) })
	if _, ok := b.Banned("acme", store.KindUser, "before", time.Now()); !ok {
		t.Error("the cache forgot a ban while PostgreSQL is down")
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = a.AddBan(wctx, store.Ban{Tenant: "acme", Kind: store.KindUser, Value: "refused"})
	cancel()
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("AddBan while down = %v, want ErrUnavailable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Written straight into the tables while b may not be listening yet.
	writeBan(t, dsn, "during")
	waitFor(t, "b to reconnect", func() bool { return b.Check(ctx) == nil })
	waitFor(t, "the ban written meanwhile on b", func() bool { _, ok := b.Banned("acme", store.KindUser, "during", time.Now()); return ok })
	if e := <-got; e.Kind != store.EventBanAdd || e.Origin != "tester" {
		t.Errorf("event after reconnect = %+v", e)
	}
	if err := a.AddBan(ctx, store.Ban{Tenant: "acme", Kind: store.KindUser, Value: "after"}); err != nil {
		t.Fatalf("AddBan after the restart: %v", err)
	}
}

// writeBan writes a ban as another gavel would, on a connection of its own.
func writeBan(t *testing.T, dsn, value string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, 0)", 0x6761_7602); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO gavel_bans (tenant, kind, value, created) VALUES ('acme', 'user', $1, now())", value); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO gavel_events (seq, kind, origin, body) VALUES (nextval('gavel_events_seq'), 'ban.add', 'tester',
			json_build_object('tenant', 'acme', 'kind', 'user', 'value', $1::text)::text)`, value)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPostgresNewerSchemaRefused(t *testing.T) {
	_, dsn := pgDB(t)
	openPG(t, dsn, "a.example.test").Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "INSERT INTO gavel_schema (version, name) VALUES (99, '099_future.sql')"); err != nil {
		t.Fatal(err)
	}
	_, err = store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Scope: "a.example.test"})
	if !errors.Is(err, store.ErrSchema) || err.Error() != "store: the PostgreSQL database has schema version 99, this gavel understands up to 3: upgrade gavel" {
		t.Fatalf("OpenPostgres = %v, want ErrSchema", err)
	}
}

func TestPostgresGovernRefusesSecondGavel(t *testing.T) {
	_, dsn := pgDB(t)
	ctx := context.Background()
	a := openPG(t, dsn, "a.example.test")
	if err := a.Govern(ctx, []string{"conference.a.test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a's claim", func() bool { s, ok := a.Governor("conference.a.test"); return ok && s == "a.example.test" })
	b := openPG(t, dsn, "b.example.test")
	err := b.Govern(ctx, []string{"conference.b.test", "conference.a.test"})
	if !errors.Is(err, store.ErrGoverned) || err.Error() != "store: another gavel (a.example.test) governs the MUC service conference.a.test: one gavel per MUC" {
		t.Fatalf("second Govern = %v", err)
	}
	// Once a stops, its claim ends with its connection.
	a.Close()
	c := openPG(t, dsn, "c.example.test")
	waitFor(t, "a's claim to end", func() bool { return c.Govern(ctx, []string{"conference.a.test"}) == nil })
}

func TestPostgresBadDSN(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: "postgres://u:secret@127.0.0.1:1/x?connect_timeout=2", Scope: "s"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("unreachable: %v, want ErrUnavailable", err)
	}
	_, err = store.OpenPostgres(ctx, store.PostgresOptions{DSN: "postgres://u:sec ret@%zz", Scope: "s"})
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("unparsable: %v", err)
	}
	if err != nil && contains(err.Error(), "secret") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
