package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// banKey identifies a ban: at most one ban exists per key.
type banKey struct {
	tenant string
	kind   Kind
	value  string
}

func keyOf(b *Ban) banKey { return banKey{tenant: b.Tenant, kind: b.Kind, value: b.Value} }

// persistFunc makes a change durable before the index applies it: it deletes
// the bans of dels, then stores put if it is not nil. It runs with the
// writer lock held, so changes reach it one at a time and in order.
type persistFunc func(put *Ban, dels []banKey) error

// index is the in-memory view of the bans that Bolt and Memory share. Writers
// are serialized by wmu and change bans only while also holding mu; readers
// take mu for reading. A writer holding wmu may therefore read bans without mu.
type index struct {
	wmu    sync.Mutex
	closed atomic.Bool

	mu   sync.RWMutex
	bans map[banKey]Ban
	// nextExpiry is the earliest Expires among the bans, or zero if none
	// expires. It may be earlier than the truth (after a removal) but is
	// never later, so a scan for expired bans is needed only once it has
	// passed.
	nextExpiry time.Time
}

func newIndex() *index {
	return &index{bans: make(map[banKey]Ban)}
}

// banned is Store.Banned. It must not allocate.
func (ix *index) banned(tenant string, kind Kind, value string, now time.Time) (Ban, bool) {
	ix.mu.RLock()
	b, ok := ix.bans[banKey{tenant: tenant, kind: kind, value: value}]
	ix.mu.RUnlock()
	if !ok || !b.Active(now) {
		return Ban{}, false
	}
	return b, true
}

// list is Store.ListBans.
func (ix *index) list(ctx context.Context, tenant string, now time.Time) ([]Ban, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list bans: %w", err)
	}
	if ix.closed.Load() {
		return nil, ErrClosed
	}
	ix.mu.RLock()
	out := make([]Ban, 0, len(ix.bans))
	for _, b := range ix.bans {
		if (tenant == "" || b.Tenant == tenant) && b.Active(now) {
			out = append(out, b)
		}
	}
	ix.mu.RUnlock()
	slices.SortFunc(out, compareBans)
	return out, nil
}

// compareBans orders by Created, then Value, then Tenant and Kind so that the
// order is total.
func compareBans(a, b Ban) int {
	return cmp.Or(
		a.Created.Compare(b.Created),
		cmp.Compare(a.Value, b.Value),
		cmp.Compare(a.Tenant, b.Tenant),
		cmp.Compare(a.Kind, b.Kind),
	)
}

// add is Store.AddBan; persist may be nil for a store without a disk.
func (ix *index) add(ctx context.Context, b Ban, persist persistFunc) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: add ban: %w", err)
	}
	now := time.Now()
	b, err := normalize(b, now)
	if err != nil {
		return err
	}
	_, err = ix.update(ctx, now, &b, nil, persist)
	return err
}

// remove is Store.RemoveBan; persist may be nil for a store without a disk.
func (ix *index) remove(ctx context.Context, tenant string, kind Kind, value string, persist persistFunc) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("store: remove ban: %w", err)
	}
	value, err := validKey(tenant, kind, value)
	if err != nil {
		return false, err
	}
	k := banKey{tenant: tenant, kind: kind, value: value}
	return ix.update(ctx, time.Now(), nil, &k, persist)
}

// update applies one write: it deletes del (if stored) and the bans expired
// at now, then stores put (if not nil). It reports whether del was stored.
func (ix *index) update(ctx context.Context, now time.Time, put *Ban, del *banKey, persist persistFunc) (bool, error) {
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	if ix.closed.Load() {
		return false, ErrClosed
	}
	// Waiting for the lock may have taken a while: do not write for a
	// caller that has gone.
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("store: %w", err)
	}

	dels, next, scanned := ix.expired(now)
	existed := false
	if del != nil {
		if _, existed = ix.bans[*del]; existed {
			dels = append(dels, *del)
		}
	}
	if put == nil && len(dels) == 0 {
		return false, nil
	}
	if persist != nil {
		if err := persist(put, dels); err != nil {
			return false, err
		}
	}

	ix.mu.Lock()
	for _, k := range dels {
		delete(ix.bans, k)
	}
	if scanned {
		ix.nextExpiry = next
	}
	if put != nil {
		ix.bans[keyOf(put)] = *put
		ix.noteExpiry(put.Expires)
	}
	ix.mu.Unlock()
	return existed, nil
}

// expired returns the keys of the bans that are not active at now, and the
// earliest expiry among the others, if nextExpiry says a scan is due;
// scanned reports whether it was. The caller holds wmu.
func (ix *index) expired(now time.Time) (keys []banKey, next time.Time, scanned bool) {
	if ix.nextExpiry.IsZero() || now.Before(ix.nextExpiry) {
		return nil, time.Time{}, false
	}
	for k, b := range ix.bans {
		switch {
		case b.Expires.IsZero():
		case !b.Active(now):
			keys = append(keys, k)
		case next.IsZero() || b.Expires.Before(next):
			next = b.Expires
		}
	}
	return keys, next, true
}

// noteExpiry lowers nextExpiry to t if t is an earlier expiry. The caller
// holds mu for writing, or owns the index alone.
func (ix *index) noteExpiry(t time.Time) {
	if !t.IsZero() && (ix.nextExpiry.IsZero() || t.Before(ix.nextExpiry)) {
		ix.nextExpiry = t
	}
}

// exclusive runs fn as a writer (holding wmu), unless the index is closed.
func (ix *index) exclusive(fn func() error) error {
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	if ix.closed.Load() {
		return ErrClosed
	}
	return fn()
}

// close marks the index closed once in-flight writes are done and runs fn
// (which may be nil) the first time only.
func (ix *index) close(fn func() error) error {
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	if ix.closed.Swap(true) || fn == nil {
		return nil
	}
	return fn()
}
