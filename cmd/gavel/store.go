package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/config"
	"github.com/gavelxmpp/gavel/store"
)

// openStore opens the store the config chooses: bbolt in data_dir, or the
// shared PostgreSQL, on which it also claims the configured MUC services
// (a second gavel for the same MUC is refused). pg is nil for bbolt.
func openStore(ctx context.Context, cfg *config.Config, log *zap.Logger, so serveOptions) (st store.Store, pg *store.Postgres, err error) {
	if !cfg.Store.Postgres.Enabled() {
		b, err := store.Open(cfg.DataDir, store.Options{Logger: log, InitEmpty: so.InitStore})
		return b, nil, err
	}
	c := cfg.Store.Postgres
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pg, err = store.OpenPostgres(octx, store.PostgresOptions{
		DSN: c.DSN.Reveal(), Scope: cfg.Component.JID, Logger: log,
		ReconnectMin: c.ReconnectMin, ReconnectMax: c.ReconnectMax,
		// The bus resumes where this gavel stopped (docs/scale-out.md).
		Resume: true,
	})
	if err != nil {
		return nil, nil, err
	}
	mucs := make([]string, len(cfg.MUC))
	for i, m := range cfg.MUC {
		mucs[i] = m.Domain
	}
	if err := pg.Govern(octx, mucs); err != nil {
		_ = pg.Close()
		return nil, nil, err
	}
	return pg, pg, nil
}

// storeCmd is `gavel store migrate`.
func storeCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "migrate" {
		fmt.Fprintln(stderr, "usage: gavel store migrate -from bbolt:DIR -to postgres:DSN -scope COMPONENT_JID")
		return 2
	}
	fs := flag.NewFlagSet("gavel store migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "bbolt:DIR, the data_dir of the gavel to move (stop it first)")
	to := fs.String("to", "", "postgres:DSN, or postgres:env:VAR to read the DSN from the environment variable VAR")
	scope := fs.String("scope", "", "the moved gavel's component JID: its rooms and outcasts are kept under it")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	dir, okFrom := strings.CutPrefix(*from, "bbolt:")
	dsn, okTo := strings.CutPrefix(*to, "postgres:")
	if !okFrom || dir == "" || !okTo || dsn == "" || *scope == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: gavel store migrate -from bbolt:DIR -to postgres:DSN -scope COMPONENT_JID")
		fs.PrintDefaults()
		return 2
	}
	if name, ok := strings.CutPrefix(dsn, "env:"); ok {
		dsn = os.Getenv(name)
		if dsn == "" {
			fmt.Fprintf(stderr, "gavel store migrate: environment variable %s is not set or empty\n", name)
			return 1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n, err := migrateStore(ctx, dir, dsn, *scope)
	if err != nil {
		fmt.Fprintln(stderr, "gavel store migrate:", err)
		return 1
	}
	fmt.Fprintf(stdout, "moved %d bans, %d outcasts, %d rooms from %s to PostgreSQL (scope %s)\n", n.bans, n.outcasts, n.rooms, dir, *scope)
	return 0
}

type moved struct{ bans, outcasts, rooms int }

// migrateStore copies the active bans, the outcasts and the governed-room
// state of a bbolt store into PostgreSQL. Running it again is harmless: a
// ban replaces the same ban, outcasts and rooms are set, not added.
func migrateStore(ctx context.Context, dir, dsn, scope string) (moved, error) {
	var n moved
	if _, err := os.Stat(dir + "/" + store.FileName); err != nil {
		return n, fmt.Errorf("no %s in %s: %w", store.FileName, dir, err)
	}
	src, err := store.Open(dir, store.Options{})
	if err != nil {
		return n, err
	}
	defer src.Close()
	dst, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Scope: scope})
	if err != nil {
		return n, err
	}
	defer dst.Close()
	bans, err := src.ListBans(ctx, "", time.Now())
	if err != nil {
		return n, err
	}
	for _, b := range bans {
		if err := dst.AddBan(ctx, b); err != nil {
			return n, fmt.Errorf("ban %s/%s: %w", b.Tenant, b.Kind, err)
		}
		n.bans++
	}
	outs, err := src.Outcasts(ctx)
	if err != nil {
		return n, err
	}
	if err := dst.AddOutcasts(ctx, outs); err != nil {
		return n, err
	}
	n.outcasts = len(outs)
	rooms, err := src.Rooms(ctx)
	if err != nil {
		return n, err
	}
	if err := dst.PutRooms(ctx, rooms); err != nil {
		return n, err
	}
	n.rooms = len(rooms)
	if err := dst.Check(ctx); err != nil && !errors.Is(err, store.ErrClosed) {
		return n, err
	}
	return n, nil
}
