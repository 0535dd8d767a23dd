package auth

import (
	"context"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// requesterKey is the context key of WithRequester.
type requesterKey struct{}

// WithRequester returns a context that names who a verification is for (the
// component passes the knocker's bare JID). Fetches of keys for kids the
// key server has never answered are then shared fairly: each requester has
// its own small budget (Options.RequesterFetchBurst, refilled at
// Options.RequesterFetchRate) that is spent before the global one, and when
// the global budget is used up, the next fetch goes to the waiting
// requester that has spent the least. A requester whose own budget is used
// up is refused at once and takes nothing from the global budget.
func WithRequester(ctx context.Context, who string) context.Context {
	return context.WithValue(ctx, requesterKey{}, who)
}

// requesterOf returns the requester named by WithRequester, or "".
func requesterOf(ctx context.Context) string {
	who, _ := ctx.Value(requesterKey{}).(string)
	return who
}

// Bounds of the fair fetch limiter.
const (
	// maxRequesters bounds the per-requester budgets kept (LRU): an evicted
	// requester starts again with a full budget, which the global cap
	// still bounds.
	maxRequesters = 4096
	// maxFetchWaiters bounds the fetches waiting for the global budget;
	// past it a fetch is refused at once.
	maxFetchWaiters = 1024
	// maxRequesterBytes bounds a requester name kept as a key.
	maxRequesterBytes = 512
)

// fairLimiter is the global fetch cap of a key server, shared fairly
// between requesters.
type fairLimiter struct {
	global   *rate.Limiter
	perRate  rate.Limit
	perBurst int
	per      *lru.Cache[string, *rate.Limiter]
	maxWait  time.Duration // longest wait for the global budget

	mu      sync.Mutex
	waiters []*fetchWaiter
	seq     uint64
}

func newFairLimiter(o *Options) *fairLimiter {
	per, _ := lru.New[string, *rate.Limiter](maxRequesters)
	return &fairLimiter{
		global:   rate.NewLimiter(rate.Limit(o.KeyFetchRate), o.KeyFetchBurst),
		perRate:  rate.Limit(o.RequesterFetchRate),
		perBurst: o.RequesterFetchBurst,
		per:      per,
		maxWait:  o.FetchTimeout,
	}
}

// fetchWaiter is one fetch waiting for the global budget.
type fetchWaiter struct {
	own *rate.Limiter // its requester's own budget
	seq uint64        // arrival, for ties
}

// next returns the index of the waiter to serve: the one whose requester
// has spent the most of its own budget goes last, so that a requester
// flooding unknown kids queues behind one asking for its first. Ties go by
// arrival. f.mu is held.
func (f *fairLimiter) next() int {
	best, bestUsed := -1, 0.0
	for i, w := range f.waiters {
		used := float64(f.perBurst) - w.own.Tokens()
		if best < 0 || used < bestUsed || (used == bestUsed && w.seq < f.waiters[best].seq) {
			best, bestUsed = i, used
		}
	}
	return best
}

func (f *fairLimiter) remove(w *fetchWaiter) {
	for i, x := range f.waiters {
		if x == w {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			return
		}
	}
}

// wait takes one fetch from who's own budget, then one from the global
// budget, waiting for it (at most until ctx ends, and FetchTimeout) behind
// the requesters that have spent less of their own; an unnamed requester
// does not wait. Its errors are *Error with ReasonKeyUnavailable.
func (f *fairLimiter) wait(ctx context.Context, who string) *Error {
	var own *rate.Limiter
	if who != "" {
		if len(who) > maxRequesterBytes {
			who = who[:maxRequesterBytes]
		}
		f.mu.Lock()
		lim, ok := f.per.Get(who)
		if !ok {
			lim = rate.NewLimiter(f.perRate, f.perBurst)
			f.per.Add(who, lim)
		}
		allowed := lim.Allow()
		own = lim
		f.mu.Unlock()
		if !allowed {
			return newError(ReasonKeyUnavailable, "this requester's budget of key fetches for unknown kids is used up; try again shortly")
		}
	}
	f.mu.Lock()
	if len(f.waiters) == 0 && f.global.Allow() {
		f.mu.Unlock()
		return nil
	}
	if who == "" || len(f.waiters) >= maxFetchWaiters {
		// Only named requesters queue: without a name there is no
		// fairness to keep, and no caller is left waiting unbounded.
		f.mu.Unlock()
		return newError(ReasonKeyUnavailable, "key server fetch rate limit reached; try again shortly")
	}
	f.seq++
	w := &fetchWaiter{own: own, seq: f.seq}
	f.waiters = append(f.waiters, w)
	f.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, f.maxWait)
	defer cancel()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			f.mu.Lock()
			f.remove(w)
			f.mu.Unlock()
			return newError(ReasonKeyUnavailable, "key server fetch rate limit reached; gave up waiting: "+ctx.Err().Error())
		case <-timer.C:
		}
		f.mu.Lock()
		if f.waiters[f.next()] == w && f.global.Allow() {
			f.remove(w)
			f.mu.Unlock()
			return nil
		}
		// Sleep until the next global token (another waiter may take it;
		// then look again). Peek without reserving: a cancelled
		// reservation does not always give its token back.
		d := 5 * time.Millisecond
		if tokens := f.global.Tokens(); tokens < 1 {
			d = max(d, time.Duration((1-tokens)/float64(f.global.Limit())*float64(time.Second)))
		}
		f.mu.Unlock()
		timer.Reset(d)
	}
}
