package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/pgtest"
	"github.com/gavelxmpp/gavel/store"
)

// TestStoreMigrate moves a bbolt store into PostgreSQL: bans, outcasts and
// rooms arrive, expired bans do not, and running it twice is harmless.
func TestStoreMigrate(t *testing.T) {
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
	dir := t.TempDir()
	b, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ban := range []store.Ban{
		{Tenant: "acme", Kind: store.KindUser, Value: "u1", Reason: "spam"},
		{Tenant: "acme", Kind: store.KindJID, Value: "x@example.test", Expires: time.Now().Add(time.Hour)},
		{Tenant: "acme", Kind: store.KindUser, Value: "old", Created: time.Now().Add(-2 * time.Hour), Expires: time.Now().Add(-time.Hour)},
	} {
		if err := b.AddBan(ctx, ban); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AddOutcasts(ctx, []store.Outcast{{Tenant: "acme", Kind: store.KindUser, Value: "u1", Room: "r@conference.example.test", JID: "u1@example.test"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutRooms(ctx, []store.RoomState{{Room: "r@conference.example.test", Updated: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GAVEL_TEST_DSN", dsn)
	for range 2 {
		var out, errb bytes.Buffer
		code := run([]string{"store", "migrate", "-from", "bbolt:" + dir, "-to", "postgres:env:GAVEL_TEST_DSN", "-scope", "mod.example.test"}, &out, &errb)
		if code != 0 || !strings.HasPrefix(out.String(), "moved 2 bans, 1 outcasts, 1 rooms") {
			t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
		}
	}
	pg, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Scope: "mod.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if got, ok := pg.Banned("acme", store.KindUser, "u1", time.Now()); !ok || got.Reason != "spam" {
		t.Errorf("Banned u1 = %+v, %v", got, ok)
	}
	bans, _ := pg.ListBans(ctx, "", time.Now())
	outs, _ := pg.Outcasts(ctx)
	rooms, _ := pg.Rooms(ctx)
	if len(bans) != 2 || len(outs) != 1 || len(rooms) != 1 {
		t.Errorf("in PostgreSQL: %d bans, %d outcasts, %d rooms", len(bans), len(outs), len(rooms))
	}

	var out, errb bytes.Buffer
	if code := run([]string{"store", "migrate", "-from", "bbolt:" + dir}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage: gavel store migrate") {
		t.Errorf("without -to: exit %d, %q", code, errb.String())
	}
}
