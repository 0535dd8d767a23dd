package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gavelxmpp/gavel/store"
)

// recorder subscribes to a store and keeps the bodies of other gavels'
// events in order.
type recorder struct {
	mu     sync.Mutex
	bodies []string
}

func (r *recorder) add(e store.Event) {
	r.mu.Lock()
	r.bodies = append(r.bodies, string(e.Body))
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

func openResuming(t *testing.T, dsn, scope string, opts store.PostgresOptions) *store.Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts.DSN, opts.Scope, opts.Logger, opts.Resume = dsn, scope, zaptest.NewLogger(t), true
	opts.ReconnectMin, opts.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	p, err := store.OpenPostgres(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func publish(t *testing.T, p *store.Postgres, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := p.Publish(context.Background(), "test", fmt.Appendf(nil, `"e%d"`, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPostgresResumeAtCursor: with Resume, a gavel that was closed (or
// killed: the cursor is written every second) receives, when it opens
// again, the events published while it was away, and none it had already.
func TestPostgresResumeAtCursor(t *testing.T) {
	_, dsn := pgDB(t)
	other := openPG(t, dsn, "mod.b.test")
	g := openResuming(t, dsn, "mod.a.test", store.PostgresOptions{})
	var first recorder
	g.Subscribe(first.add)
	publish(t, other, 0, 3)
	waitFor(t, "three events", func() bool { return len(first.list()) == 3 })
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	publish(t, other, 3, 6) // while a is down

	g = openResuming(t, dsn, "mod.a.test", store.PostgresOptions{})
	var second recorder
	g.Subscribe(second.add)
	waitFor(t, "the three missed events", func() bool { return len(second.list()) >= 3 })
	publish(t, other, 6, 7)
	waitFor(t, "the next event", func() bool { return len(second.list()) >= 4 })
	if got, want := fmt.Sprint(second.list()), `["e3" "e4" "e5" "e6"]`; got != want {
		t.Errorf("after the restart: %s, want %s", got, want)
	}
}

// TestPostgresPrune: the log keeps the newest EventRetainMax events; a
// gavel whose cursor is behind the pruned part starts after it, with every
// ban loaded.
func TestPostgresPrune(t *testing.T) {
	_, dsn := pgDB(t)
	ctx := context.Background()
	other := openResuming(t, dsn, "mod.b.test", store.PostgresOptions{EventRetainMax: 5, PruneInterval: time.Hour})
	g := openResuming(t, dsn, "mod.a.test", store.PostgresOptions{})
	g.Subscribe(func(store.Event) {})
	if err := g.Close(); err != nil { // its cursor stays at the start
		t.Fatal(err)
	}
	if err := other.AddBan(ctx, store.Ban{Tenant: "acme", Kind: store.KindUser, Value: "early"}); err != nil {
		t.Fatal(err)
	}
	publish(t, other, 0, 20)
	// (other's listener prunes too, at its start: how many this call
	// deletes depends on when that ran.)
	if _, err := other.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := other.Prune(ctx); err != nil || n != 0 {
		t.Errorf("second prune: %d, %v", n, err)
	}

	g = openResuming(t, dsn, "mod.a.test", store.PostgresOptions{})
	if _, ok := g.Banned("acme", store.KindUser, "early", time.Now()); !ok {
		t.Error("the ban whose event was pruned is not loaded")
	}
	var rec recorder
	g.Subscribe(rec.add)
	publish(t, other, 20, 21)
	waitFor(t, "the new event", func() bool {
		l := rec.list()
		return len(l) > 0 && l[len(l)-1] == `"e20"`
	})
	// 21 events (the ban's and e0..e19), the newest 5 kept: a resumes
	// with e15.
	if got, want := fmt.Sprint(rec.list()), `["e15" "e16" "e17" "e18" "e19" "e20"]`; got != want {
		t.Errorf("after the horizon: %s, want %s", got, want)
	}
}
