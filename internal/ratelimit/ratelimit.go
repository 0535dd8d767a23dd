// Package ratelimit is a keyed token-bucket limiter with a bounded number of
// keys, for limits keyed by values that come from outside (JIDs, tenant
// names): however many distinct keys arrive, it holds at most its capacity.
//
// A key's bucket holds up to Burst tokens and refills at Rate tokens per
// second; each allowed event takes one. When the table is full, the least
// recently used key is forgotten. A bucket that has been idle long enough to
// refill is the same as no bucket, so forgetting it loses nothing; only a
// table churned by more than Capacity active keys forgets a spent bucket
// early. There is no periodic reset.
package ratelimit

import (
	"container/list"
	"sync"
	"time"
)

// Limit is a bucket's shape: Rate tokens per second, up to Burst.
type Limit struct {
	Rate  float64
	Burst float64
}

// PerMinute returns the limit of n events a minute with the given burst.
func PerMinute(n int, burst int) Limit {
	return Limit{Rate: float64(n) / 60, Burst: float64(burst)}
}

// Keyed is a set of token buckets by key, at most Capacity of them. It is
// safe for concurrent use.
type Keyed struct {
	capacity int

	mu    sync.Mutex
	keys  map[string]*list.Element
	order list.List // front: most recently used
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
}

// NewKeyed returns a limiter that holds at most capacity keys (at least 1).
func NewKeyed(capacity int) *Keyed {
	return &Keyed{capacity: max(capacity, 1), keys: map[string]*list.Element{}}
}

// Allow takes a token from key's bucket of shape l at now, and reports
// whether there was one. A key seen for the first time starts full.
func (k *Keyed) Allow(key string, l Limit, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.get(key, l, now)
	b.refill(l, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Tokens returns what key's bucket holds at now (full for an unknown key),
// without taking any.
func (k *Keyed) Tokens(key string, l Limit, now time.Time) float64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.keys[key]
	if e == nil {
		return l.Burst
	}
	b := *e.Value.(*bucket)
	b.refill(l, now)
	return b.tokens
}

// Len returns how many keys the limiter holds.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.keys)
}

func (k *Keyed) get(key string, l Limit, now time.Time) *bucket {
	if e := k.keys[key]; e != nil {
		k.order.MoveToFront(e)
		return e.Value.(*bucket)
	}
	if len(k.keys) >= k.capacity {
		oldest := k.order.Back()
		k.order.Remove(oldest)
		delete(k.keys, oldest.Value.(*bucket).key)
	}
	b := &bucket{key: key, tokens: l.Burst, last: now}
	k.keys[key] = k.order.PushFront(b)
	return b
}

func (b *bucket) refill(l Limit, now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.Burst, b.tokens+d.Seconds()*l.Rate)
		b.last = now
	}
	if b.tokens > l.Burst { // the limit was lowered by a reload
		b.tokens = l.Burst
	}
}
