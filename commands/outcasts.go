package commands

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/store"
)

// A ban makes the JIDs it removes outcasts in their rooms, and the store
// records each one (store.Outcast) before it is applied. When the ban ends
// (unban, expiry, or it is gone after a restart), those outcasts are
// orphans: liftOrphans restores them to none, unless another active ban
// still holds the same JID out of the same room, and forgets them.

// liftRetry is how soon Run tries again when outcasts could not be lifted
// (gavel not connected, the room not answering).
const liftRetry = 2 * time.Second

// liftOrphans lifts every recorded outcast whose ban is no longer active.
// It returns when the next still-recorded ban with outcasts expires (zero:
// none expires), and an error when some orphans could not be lifted.
func (s *Service) liftOrphans(ctx context.Context) (next time.Time, err error) {
	s.liftMu.Lock()
	defer s.liftMu.Unlock()
	list, err := s.store.Outcasts(ctx)
	if err != nil || len(list) == 0 {
		return time.Time{}, err
	}
	now := s.now()
	type place struct{ room, jid string }
	held := map[place]bool{} // held out by an active ban
	var orphans []store.Outcast
	for _, o := range list {
		b, active := s.store.Banned(o.Tenant, o.Kind, o.Value, now)
		if active {
			held[place{o.Room, o.JID}] = true
			if !b.Expires.IsZero() && (next.IsZero() || b.Expires.Before(next)) {
				next = b.Expires
			}
			continue
		}
		orphans = append(orphans, o)
	}
	if len(orphans) == 0 {
		return next, nil
	}
	var lift, forget []store.Outcast
	seen := map[place]bool{}
	for _, o := range orphans {
		p := place{o.Room, o.JID}
		if held[p] || seen[p] {
			forget = append(forget, o) // another ban keeps it out, or lifted once
			continue
		}
		seen[p] = true
		lift = append(lift, o)
	}
	lifted, lerr := s.rooms.LiftOutcasts(ctx, lift)
	for _, o := range lifted {
		s.log.Info("outcast lifted", zap.String("room", o.Room), zap.String("jid", o.JID),
			zap.String("tenant", o.Tenant), zap.String("ban", string(o.Kind)))
	}
	// Forget what was lifted, and the duplicates of it.
	done := map[place]bool{}
	for _, o := range lifted {
		done[place{o.Room, o.JID}] = true
	}
	for _, o := range orphans {
		if done[place{o.Room, o.JID}] {
			forget = append(forget, o)
		}
	}
	if len(forget) > 0 {
		if err := s.store.RemoveOutcasts(ctx, forget); err != nil {
			return next, storeErr(err)
		}
	}
	if lerr != nil {
		return next, lerr
	}
	if len(lifted) < len(lift) {
		return next, fmt.Errorf("commands: %d of %d outcast(s) not lifted yet", len(lift)-len(lifted), len(lift))
	}
	return next, nil
}

// wakeLifter asks Run to look at the outcasts again.
func (s *Service) wakeLifter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run lifts the outcasts of bans that ended, until ctx ends: at once (bans
// lifted while gavel was down), when a timed ban with outcasts expires, and
// again shortly after a lift that could not be done (gavel disconnected).
func (s *Service) Run(ctx context.Context) {
	for {
		next, err := s.liftOrphans(ctx)
		wait := time.Hour
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Debug("lifting outcasts: trying again", zap.Error(err))
			wait = liftRetry
		}
		if !next.IsZero() {
			if d := next.Sub(s.now()) + 10*time.Millisecond; d < wait {
				wait = max(d, 10*time.Millisecond)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}
