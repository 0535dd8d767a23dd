package commands

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/store"
)

// TestUnbanLiftsOutcasts: an unban restores the outcasts its ban set, but
// not where another active ban still holds the same JID out of the room.
// (Before, an unbanned person stayed "banned from this room" everywhere.)
func TestUnbanLiftsOutcasts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ban := func(kind store.Kind, value string) {
		if _, err := f.svc.Ban(ctx, BanRequest{Tenant: "acme", Kind: kind, Value: value, By: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	ban(store.KindUser, "u1")
	ban(store.KindJID, "x@example.test")
	// What EnforceBan recorded in two rooms (component records them).
	rec := []store.Outcast{
		{Tenant: "acme", Kind: store.KindUser, Value: "u1", Room: "[acme]a@" + governed, JID: "x@example.test"},
		{Tenant: "acme", Kind: store.KindUser, Value: "u1", Room: "[acme]b@" + governed, JID: "y@example.test"},
		{Tenant: "acme", Kind: store.KindJID, Value: "x@example.test", Room: "[acme]a@" + governed, JID: "x@example.test"},
	}
	if err := f.store.AddOutcasts(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Unban(ctx, UnbanRequest{Tenant: "acme", Kind: store.KindUser, Value: "u1", By: "t"}); err != nil {
		t.Fatal(err)
	}
	// y is lifted in b; x stays out of a (the JID ban holds it).
	if len(f.rooms.lifted) != 1 || f.rooms.lifted[0] != rec[1] {
		t.Fatalf("lifted %v, want only %v", f.rooms.lifted, rec[1])
	}
	left, _ := f.store.Outcasts(ctx)
	if len(left) != 1 || left[0] != rec[2] {
		t.Fatalf("outcasts left %v, want only the JID ban's", left)
	}
	if _, err := f.svc.Unban(ctx, UnbanRequest{Tenant: "acme", Kind: store.KindJID, Value: "x@example.test", By: "t"}); err != nil {
		t.Fatal(err)
	}
	if len(f.rooms.lifted) != 2 || f.rooms.lifted[1] != rec[2] {
		t.Fatalf("lifted %v after the second unban", f.rooms.lifted)
	}
	if left, _ := f.store.Outcasts(ctx); len(left) != 0 {
		t.Fatalf("outcasts left %v", left)
	}
}

// TestRunLiftsExpiredAndRetries: Run lifts a timed ban's outcasts when it
// ends, and keeps what could not be lifted (gavel disconnected) until it
// can.
func TestRunLiftsExpiredAndRetries(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	st, rm := store.NewMemory(), &rooms{liftErr: errors.New("not connected")}
	svc, err := New(Options{Store: st, Rooms: rm, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := svc.Ban(ctx, BanRequest{Tenant: "acme", Kind: store.KindUser, Value: "u1", By: "t", Expires: now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	o := store.Outcast{Tenant: "acme", Kind: store.KindUser, Value: "u1", Room: "[acme]a@" + governed, JID: "x@example.test"}
	if err := st.AddOutcasts(ctx, []store.Outcast{o}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	clock.Add(int64(2 * time.Minute)) // the ban has ended
	svc.wakeLifter()
	// Not connected: the outcast is kept for later.
	waitFor(t, func() bool {
		left, _ := st.Outcasts(ctx)
		return len(left) == 1
	})
	rm.mu.Lock()
	rm.liftErr = nil
	rm.mu.Unlock()
	waitFor(t, func() bool {
		rm.mu.Lock()
		defer rm.mu.Unlock()
		return slices.Contains(rm.lifted, o)
	})
	if left, _ := st.Outcasts(ctx); len(left) != 0 {
		t.Fatalf("outcasts left after lifting: %v", left)
	}
}

// waitFor polls cond until it holds; the deadline only bounds a failure.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
