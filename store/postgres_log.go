package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// This file keeps the event log bounded and each gavel's place in it.
//
// Cursor: with PostgresOptions.Resume, the seq of the last event the
// subscriber (the bus) returned from is written to gavel_cursors about once
// a second and at Close. A gavel that starts again resumes there: the
// commands published for its rooms while it was down (kicks, destroys,
// roles) are applied, and the bans issued meanwhile are enforced on the
// occupants of its rooms. Delivery is at least once: after a crash the last
// second's events come again (every command is idempotent: the second kick
// finds nobody, the second ban removes nobody).
//
// Pruning: every PruneInterval, a gavel deletes the events older than
// EventRetention and all but the newest EventRetainMax (at most pruneBatch
// per round, never the newest event), and records the horizon (the highest
// seq deleted) under the empty scope. A gavel behind the horizon reloads
// the bans in full, as on a reconnect; the commands it missed are gone and
// it says so.

// pruneBatch bounds the events one round of pruning deletes.
const pruneBatch = 50_000

// cursorEvery is how often the listener writes the cursor at most.
const cursorEvery = time.Second

type logOptions struct {
	retention time.Duration
	retainMax int64
	interval  time.Duration
}

func newLogOptions(o PostgresOptions) logOptions {
	l := logOptions{retention: o.EventRetention, retainMax: o.EventRetainMax, interval: o.PruneInterval}
	if l.retention <= 0 {
		l.retention = 24 * time.Hour
	}
	if l.retainMax <= 0 {
		l.retainMax = 1_000_000
	}
	if l.interval <= 0 {
		l.interval = time.Minute
	}
	return l
}

// logState is the listener's bookkeeping.
type logState struct {
	cursorWritten int64
	cursorAt      time.Time
	prunedAt      time.Time
}

// horizon returns the highest pruned seq (0: nothing pruned yet).
func (p *Postgres) horizon(ctx context.Context) (int64, error) {
	var h int64
	err := p.pool.QueryRow(ctx, "SELECT seq FROM gavel_cursors WHERE scope = ''").Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return h, err
}

// resumeCursor, at open with Resume, moves the start of delivery back to
// this scope's cursor. Without a cursor (the first run) it starts at the
// end and writes one.
func (p *Postgres) resumeCursor(ctx context.Context) error {
	p.delivered.Store(p.last)
	p.logState.cursorWritten = p.last
	if !p.resume {
		return nil
	}
	var cur int64
	err := p.pool.QueryRow(ctx, "SELECT seq FROM gavel_cursors WHERE scope = $1", p.scope).Scan(&cur)
	if errors.Is(err, pgx.ErrNoRows) {
		p.logState.cursorWritten = -1 // write it at the first chance
		return nil
	}
	if err != nil {
		return unavailable("read the cursor", err)
	}
	h, err := p.horizon(ctx)
	if err != nil {
		return unavailable("read the cursor", err)
	}
	if cur < h {
		p.log.Warn("this gavel was stopped longer than the event log is kept: the bans are loaded in full, the commands for its rooms published meanwhile are lost",
			zap.Int64("cursor", cur), zap.Int64("pruned_through", h))
		cur = h
	}
	if cur < p.last {
		p.log.Info("resuming the event log where the previous run stopped", zap.Int64("from", cur), zap.Int64("to", p.last))
		p.last = cur
	}
	p.delivered.Store(p.last)
	p.logState.cursorWritten = p.last
	return nil
}

// catchUpPruned runs in sync (syncMu held) when the log has a gap after
// last: when events were pruned there, the bans are reloaded and reading
// goes on after the horizon.
func (p *Postgres) catchUpPruned(ctx context.Context) error {
	h, err := p.horizon(ctx)
	if err != nil {
		return unavailable("read the pruning horizon", err)
	}
	if h <= p.last {
		return nil // a rolled-back append left the gap
	}
	p.log.Warn("this gavel fell behind the retained event log: bans reloaded in full, older commands for its rooms are lost",
		zap.Int64("last", p.last), zap.Int64("pruned_through", h))
	if err := p.reloadLocked(ctx, false); err != nil {
		return err
	}
	p.last = h
	return nil
}

// housekeep runs on the listener after every read of the log: it writes
// the cursor (at most once a second) and prunes (every PruneInterval).
func (p *Postgres) housekeep(ctx context.Context) error {
	now := time.Now()
	if p.resume && now.Sub(p.logState.cursorAt) >= cursorEvery {
		if err := p.writeCursor(ctx); err != nil {
			return err
		}
		p.logState.cursorAt = now
	}
	if now.Sub(p.logState.prunedAt) >= p.logOpts.interval {
		if _, err := p.Prune(ctx); err != nil {
			return err
		}
		p.logState.prunedAt = now
	}
	return nil
}

func (p *Postgres) writeCursor(ctx context.Context) error {
	d := p.delivered.Load()
	if d == p.logState.cursorWritten {
		return nil
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO gavel_cursors (scope, seq, updated) VALUES ($1, $2, now())
		ON CONFLICT (scope) DO UPDATE SET seq = $2, updated = now()`, p.scope, d)
	if err != nil {
		return unavailable("write the cursor", err)
	}
	p.logState.cursorWritten = d
	return nil
}

// saveCursor writes the cursor at Close (the listener has stopped).
func (p *Postgres) saveCursor() {
	if !p.resume {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.writeCursor(ctx); err != nil {
		p.log.Warn("cursor not saved at close: the next start applies the last events again", zap.Error(err))
	}
}

// Prune deletes the events older than the retention and beyond the count
// (never the newest), at most pruneBatch, records the horizon, and returns
// how many it deleted.
func (p *Postgres) Prune(ctx context.Context) (int64, error) {
	var deleted int64
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var top, old, h int64
		err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0),
			coalesce((SELECT max(seq) FROM gavel_events WHERE created < now() - make_interval(secs => $1)), 0),
			coalesce((SELECT seq FROM gavel_cursors WHERE scope = ''), 0)
			FROM gavel_events`, p.logOpts.retention.Seconds()).Scan(&top, &old, &h)
		if err != nil {
			return err
		}
		upTo := min(max(old, top-p.logOpts.retainMax), top-1, h+pruneBatch)
		if upTo <= h {
			return nil
		}
		tag, err := tx.Exec(ctx, "DELETE FROM gavel_events WHERE seq > $1 AND seq <= $2", h, upTo)
		if err != nil {
			return err
		}
		deleted = tag.RowsAffected()
		_, err = tx.Exec(ctx, `INSERT INTO gavel_cursors (scope, seq, updated) VALUES ('', $1, now())
			ON CONFLICT (scope) DO UPDATE SET seq = greatest(gavel_cursors.seq, $1), updated = now()`, upTo)
		return err
	})
	if err != nil {
		return 0, unavailable("prune the event log", err)
	}
	if deleted > 0 {
		p.log.Info("event log pruned", zap.Int64("events", deleted))
	}
	return deleted, nil
}
