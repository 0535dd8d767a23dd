package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// However many distinct keys arrive, the table stays at its capacity.
func TestKeyedStaysAtCapacity(t *testing.T) {
	const capacity = 1000
	k := NewKeyed(capacity)
	l := PerMinute(30, 10)
	for i := 0; i < 100000; i++ {
		k.Allow(fmt.Sprintf("guest-%d@example.test", i), l, t0)
		if n := k.Len(); n > capacity {
			t.Fatalf("after %d keys the limiter holds %d (capacity %d)", i+1, n, capacity)
		}
	}
	if n := k.Len(); n != capacity {
		t.Errorf("holds %d keys, want %d", n, capacity)
	}
}

// A key that keeps knocking gets its burst once and then its rate, with no
// fresh burst at any time boundary.
func TestKeyedNeverResets(t *testing.T) {
	k := NewKeyed(10)
	l := PerMinute(6, 5) // one token every 10 s
	allowed := 0
	now := t0
	for step := 0; step < 1200; step++ { // 20 minutes, a knock every second
		if k.Allow("a@example.test", l, now) {
			allowed++
		}
		now = now.Add(time.Second)
	}
	// burst + rate * 20 min (the first refill lands after 10 s)
	if want := 5 + 120; allowed > want {
		t.Errorf("allowed %d knocks in 20 minutes, at most %d expected", allowed, want)
	}
	if allowed < 120 {
		t.Errorf("allowed only %d knocks in 20 minutes", allowed)
	}
}

func TestKeyedRefillsAndEvictsLeastRecent(t *testing.T) {
	k := NewKeyed(2)
	l := Limit{Rate: 1, Burst: 1}
	if !k.Allow("a", l, t0) || k.Allow("a", l, t0) {
		t.Fatal("burst of one")
	}
	if !k.Allow("a", l, t0.Add(time.Second)) {
		t.Fatal("no refill after a second")
	}
	k.Allow("b", l, t0)
	k.Allow("a", l, t0) // a is now the most recent
	k.Allow("c", l, t0) // evicts b
	if got := k.Tokens("a", l, t0); got != 0 {
		t.Errorf("a was evicted (tokens %v)", got)
	}
	if k.Len() != 2 {
		t.Errorf("len %d", k.Len())
	}
}
