package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// PostgresSchemaVersion is the newest schema of the shared database this
// package applies and understands.
const PostgresSchemaVersion = 3

// The channel gavels LISTEN on; the payload is the new event's seq.
const notifyChannel = "gavel_events"

// Advisory lock keys (the first of two int4 keys; the second is 0 or a
// hash): one for migrations, one for the order of events.
const (
	lockMigrate = 0x6761_7601 // "gav" 1
	lockEvents  = 0x6761_7602
	lockMUC     = 0x6761_7603
)

// Event kinds the store writes itself.
const (
	EventBanAdd    = "ban.add"
	EventBanRemove = "ban.remove"
	EventGovern    = "govern"
)

// Event is one entry of the shared log: a ban change, or a command another
// package published (kick, destroy, ...). Body is JSON.
type Event struct {
	Seq     int64
	Kind    string
	Origin  string
	Body    []byte
	Created time.Time
}

// BanEvent is the body of EventBanAdd and EventBanRemove (for a removal only
// the key is set).
type BanEvent struct {
	Tenant  string    `json:"tenant"`
	Kind    Kind      `json:"kind"`
	Value   string    `json:"value"`
	Reason  string    `json:"reason,omitempty"`
	By      string    `json:"by,omitempty"`
	Created time.Time `json:"created,omitzero"`
	Expires time.Time `json:"expires,omitzero"`
}

// Ban returns the ban the event carries.
func (e BanEvent) Ban() Ban {
	return Ban(e)
}

// PostgresOptions tune OpenPostgres.
type PostgresOptions struct {
	// DSN is the connection string (a URL or key=value pairs).
	DSN string
	// Scope names this gavel (its component JID): governed-room state and
	// outcasts are kept per scope, and events name it as their origin.
	Scope string
	// Logger receives what the store reports; nil means none.
	Logger *zap.Logger
	// ReconnectMin and ReconnectMax bound the backoff of the listening
	// connection; zero means 100 ms and 5 s.
	ReconnectMin, ReconnectMax time.Duration
	// MaxConns bounds the pool of connections for writes; zero means 8.
	MaxConns int32
	// Resume makes the subscriber start where this scope's previous run
	// left off in the event log (its cursor in gavel_cursors), not at the
	// end: events are queued from the open on and delivered once Subscribe
	// is called, and the cursor follows what was delivered. A running
	// gavel's bus sets it; a tool that only reads does not.
	Resume bool
	// EventRetention and EventRetainMax bound the event log: events older
	// than EventRetention, and all but the newest EventRetainMax, are
	// deleted every PruneInterval by whichever gavel gets there. Zero means
	// 24 h, 1,000,000 and 1 min.
	EventRetention time.Duration
	EventRetainMax int64
	PruneInterval  time.Duration
}

// Postgres is a Store shared by several gavels in one PostgreSQL database.
// A write returns once its transaction has committed. Banned answers from a
// local cache of the bans, loaded at start and kept current from the event
// log (LISTEN/NOTIFY, and a read of the log on every notification and every
// reconnect), so a knock never waits for the network. While PostgreSQL is
// unreachable the cache keeps its last state, writes fail with
// ErrUnavailable, Check says why, and the listener reconnects with backoff.
type Postgres struct {
	ix    *index
	pool  *pgxpool.Pool
	scope string
	log   *zap.Logger
	dsn   string

	minBackoff, maxBackoff time.Duration

	// syncMu orders the application of events to the cache; last is the
	// seq of the newest applied event.
	syncMu sync.Mutex
	last   int64

	// The subscriber's durable position (postgres_log.go).
	resume    bool
	delivered atomic.Int64 // seq of the last event the subscriber returned from
	logOpts   logOptions
	logState  logState // the listener's; Close's once the listener stopped

	// health is nil while the listener is connected, else why not.
	health    atomic.Pointer[error]
	pingMu    sync.Mutex
	lastPing  time.Time
	pingError error

	// Delivery of events to the subscriber, in seq order.
	qmu     sync.Mutex
	qcond   *sync.Cond
	queue   []Event
	sub     func(Event)
	stopped bool

	govMu     sync.RWMutex
	governors map[string]string // MUC domain -> scope
	claims    []string          // MUC domains this gavel claimed
	wake      chan struct{}     // wakes the listener to take new claims

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects, applies the migrations the database lacks (refusing
// with ErrSchema a database that a newer gavel migrated), loads the bans into
// the cache and starts listening for changes. It fails, rather than start
// with an empty cache, when PostgreSQL cannot be reached.
func OpenPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if opts.DSN == "" {
		return nil, errors.New("store: PostgreSQL DSN is empty")
	}
	if err := validString("scope", opts.Scope); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		// pgx's message may quote the DSN with its password: do not.
		return nil, errors.New("store: the PostgreSQL DSN cannot be parsed (see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING)")
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 8
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "gavel " + opts.Scope
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, unavailable("connect", err)
	}
	p := &Postgres{
		ix: newIndex(), pool: pool, scope: opts.Scope, log: log, dsn: opts.DSN,
		minBackoff: opts.ReconnectMin, maxBackoff: opts.ReconnectMax,
		governors: map[string]string{}, wake: make(chan struct{}, 1),
	}
	if p.minBackoff <= 0 {
		p.minBackoff = 100 * time.Millisecond
	}
	if p.maxBackoff < p.minBackoff {
		p.maxBackoff = max(5*time.Second, p.minBackoff)
	}
	p.qcond = sync.NewCond(&p.qmu)
	p.resume = opts.Resume
	p.logOpts = newLogOptions(opts)
	if err := Migrate(ctx, pool, log); err != nil {
		pool.Close()
		return nil, err
	}
	if err := p.reload(ctx, true); err != nil {
		pool.Close()
		return nil, err
	}
	if err := p.resumeCursor(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	log.Info("store opened", zap.String("backend", "postgres"), zap.Int("bans", len(p.ix.bans)), zap.Int64("seq", p.last))
	lctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(2)
	go p.listen(lctx)
	go p.deliver()
	return p, nil
}

// migration is one numbered file of store/migrations.
type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("store: migration %s has no number", base)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out, nil
}

// Migrate brings the database's schema up to PostgresSchemaVersion, one
// transaction per migration, under an advisory lock so that gavels starting
// together migrate once. A database migrated by a newer gavel is refused
// with ErrSchema and left untouched.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *zap.Logger) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return unavailable("connect", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, 0)", lockMigrate); err != nil {
		return unavailable("lock for migration", err)
	}
	defer func() {
		_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1, 0)", lockMigrate)
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS gavel_schema (
		version int PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return unavailable("create gavel_schema", err)
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM gavel_schema").Scan(&current); err != nil {
		return unavailable("read schema version", err)
	}
	if current > PostgresSchemaVersion {
		return newError(ErrSchema, nil, "store: the PostgreSQL database has schema version %d, this gavel understands up to %d: upgrade gavel", current, PostgresSchemaVersion)
	}
	list, err := migrations()
	if err != nil {
		return err
	}
	for _, m := range list {
		if m.version <= current {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO gavel_schema (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %s: %w", m.name, err)
		}
		if log != nil {
			log.Info("schema migrated", zap.String("migration", m.name), zap.Int("version", m.version))
		}
	}
	return nil
}

// unavailable wraps a failure to reach PostgreSQL (or a statement it
// refused) in ErrUnavailable; a cancelled or expired context stays itself.
func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return newError(ErrUnavailable, err, "store: PostgreSQL: %s: %v", what, err)
}

// pgTime is t as PostgreSQL keeps it: microseconds, UTC.
func pgTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Truncate(time.Microsecond).UTC()
}

// pgText makes s storable in a text column: PostgreSQL refuses NUL bytes.
func pgText(s string) string { return strings.ReplaceAll(s, "\x00", "\uFFFD") }

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// write runs fn in a transaction that holds the events lock, so that the
// events it appends become visible in seq order, then brings the cache up to
// date. It returns once the transaction committed.
func (p *Postgres) write(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	if p.ix.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, 0)", lockEvents); err != nil {
			return err
		}
		return fn(tx)
	})
	if err != nil {
		var inv *storeError
		if errors.As(err, &inv) {
			return err
		}
		return unavailable(what, err)
	}
	// The change is committed: acknowledged from here on. Bring the cache
	// up to it, so that Banned agrees with the write that just returned.
	if err := p.sync(ctx); err != nil {
		p.log.Warn("cache not refreshed after a write; the listener will", zap.Error(err))
	}
	return nil
}

// appendEvent writes an event in tx (which holds the events lock) and
// notifies the listeners when tx commits.
func appendEvent(ctx context.Context, tx pgx.Tx, kind, origin string, body []byte) (int64, error) {
	var seq int64
	err := tx.QueryRow(ctx, `INSERT INTO gavel_events (seq, kind, origin, body)
		VALUES (nextval('gavel_events_seq'), $1, $2, $3) RETURNING seq`, kind, origin, pgText(string(body))).Scan(&seq)
	if err != nil {
		return 0, err
	}
	_, err = tx.Exec(ctx, "SELECT pg_notify($1, $2)", notifyChannel, strconv.FormatInt(seq, 10))
	return seq, err
}

// AddBan stores b, replacing an existing ban with the same key, and returns
// once the transaction committed. Times are kept to the microsecond; NUL
// bytes in Reason and By become U+FFFD.
func (p *Postgres) AddBan(ctx context.Context, b Ban) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: add ban: %w", err)
	}
	b, err := normalize(b, time.Now())
	if err != nil {
		return err
	}
	b.Created, b.Expires = pgTime(b.Created), pgTime(b.Expires)
	b.Reason, b.By = pgText(b.Reason), pgText(b.By)
	body, err := json.Marshal(BanEvent(b))
	if err != nil {
		return err
	}
	return p.write(ctx, "add ban", func(tx pgx.Tx) error {
		// Expired bans go in the same transaction, as Bolt prunes them.
		if _, err := tx.Exec(ctx, "DELETE FROM gavel_bans WHERE expires <= now() - interval '1 minute'"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO gavel_bans (tenant, kind, value, reason, by_who, created, expires)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (tenant, kind, value) DO UPDATE SET reason = $4, by_who = $5, created = $6, expires = $7`,
			b.Tenant, string(b.Kind), b.Value, b.Reason, b.By, b.Created, nullTime(b.Expires))
		if err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, EventBanAdd, p.scope, body)
		return err
	})
}

// RemoveBan deletes a ban, returning once the transaction committed, and
// reports whether one was stored.
func (p *Postgres) RemoveBan(ctx context.Context, tenant string, kind Kind, value string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("store: remove ban: %w", err)
	}
	value, err := validKey(tenant, kind, value)
	if err != nil {
		return false, err
	}
	body, err := json.Marshal(BanEvent{Tenant: tenant, Kind: kind, Value: value})
	if err != nil {
		return false, err
	}
	var found bool
	err = p.write(ctx, "remove ban", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM gavel_bans WHERE tenant = $1 AND kind = $2 AND value = $3", tenant, string(kind), value)
		if err != nil {
			return err
		}
		found = tag.RowsAffected() > 0
		if !found {
			return nil
		}
		_, err = appendEvent(ctx, tx, EventBanRemove, p.scope, body)
		return err
	})
	if err != nil {
		return false, err
	}
	return found, nil
}

// ListBans returns the bans of a tenant ("" for all tenants) that are active
// at now, read from the database (not the cache), sorted by Created, then
// Value.
func (p *Postgres) ListBans(ctx context.Context, tenant string, now time.Time) ([]Ban, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list bans: %w", err)
	}
	if p.ix.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := p.pool.Query(ctx, `SELECT tenant, kind, value, reason, by_who, created, expires FROM gavel_bans
		WHERE ($1 = '' OR tenant = $1) AND (expires IS NULL OR expires > $2)`, tenant, now)
	if err != nil {
		return nil, unavailable("list bans", err)
	}
	out, err := pgx.CollectRows(rows, scanBan)
	if err != nil {
		return nil, unavailable("list bans", err)
	}
	if out == nil {
		out = []Ban{}
	}
	slices.SortFunc(out, compareBans)
	return out, nil
}

func scanBan(row pgx.CollectableRow) (Ban, error) {
	var (
		b       Ban
		kind    string
		expires *time.Time
	)
	if err := row.Scan(&b.Tenant, &kind, &b.Value, &b.Reason, &b.By, &b.Created, &expires); err != nil {
		return Ban{}, err
	}
	b.Kind = Kind(kind)
	b.Created = b.Created.UTC()
	if expires != nil {
		b.Expires = expires.UTC()
	}
	return b, nil
}

// Banned answers from the local cache: no network, no allocation.
func (p *Postgres) Banned(tenant string, kind Kind, value string, now time.Time) (Ban, bool) {
	return p.ix.banned(tenant, kind, value, now)
}

// reload replaces the cache with the bans in the database and sets last to
// the newest event at the same snapshot. Events after a previous last are
// then applied again by sync: each event sets a key's whole state, so
// replaying them in order onto a later snapshot ends in that snapshot.
// With first, last starts there (events older than the start are not
// delivered); otherwise sync delivers what was missed while disconnected.
func (p *Postgres) reload(ctx context.Context, first bool) error {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	return p.reloadLocked(ctx, first)
}

// reloadLocked is reload with syncMu held.
func (p *Postgres) reloadLocked(ctx context.Context, first bool) error {
	bans := map[banKey]Ban{}
	gov := map[string]string{}
	var maxSeq int64
	err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT tenant, kind, value, reason, by_who, created, expires FROM gavel_bans")
		if err != nil {
			return err
		}
		list, err := pgx.CollectRows(rows, scanBan)
		if err != nil {
			return err
		}
		now := time.Now()
		for _, b := range list {
			if b.Active(now) {
				bans[keyOf(&b)] = b
			}
		}
		rows, err = tx.Query(ctx, "SELECT muc, scope FROM gavel_governors")
		if err != nil {
			return err
		}
		for rows.Next() {
			var muc, scope string
			if err := rows.Scan(&muc, &scope); err != nil {
				return err
			}
			gov[muc] = scope
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM gavel_events").Scan(&maxSeq)
	})
	if err != nil {
		return unavailable("load bans", err)
	}
	p.ix.mu.Lock()
	p.ix.bans = bans
	p.ix.nextExpiry = time.Time{}
	p.ix.mu.Unlock()
	p.govMu.Lock()
	p.governors = gov
	p.govMu.Unlock()
	if first {
		p.last = maxSeq
	}
	return nil
}

// syncBatch is how many events one read of the log takes.
const syncBatch = 500

// sync applies the events after last to the cache, in seq order, and queues
// them for the subscriber.
func (p *Postgres) sync(ctx context.Context) error {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	for {
		rows, err := p.pool.Query(ctx, "SELECT seq, kind, origin, body, created FROM gavel_events WHERE seq > $1 ORDER BY seq LIMIT $2", p.last, syncBatch)
		if err != nil {
			return unavailable("read events", err)
		}
		events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
			var (
				e    Event
				body string
			)
			err := row.Scan(&e.Seq, &e.Kind, &e.Origin, &body, &e.Created)
			e.Body = []byte(body)
			return e, err
		})
		if err != nil {
			return unavailable("read events", err)
		}
		if len(events) > 0 && events[0].Seq > p.last+1 {
			// A gap: a rolled-back append, or events pruned before this
			// gavel read them.
			if err := p.catchUpPruned(ctx); err != nil {
				return err
			}
		}
		for _, e := range events {
			p.apply(e)
			p.last = e.Seq
		}
		p.enqueue(events)
		if len(events) < syncBatch {
			return nil
		}
	}
}

// apply updates the cache for one event. A malformed body (written by
// something other than gavel) is logged and skipped.
func (p *Postgres) apply(e Event) {
	switch e.Kind {
	case EventBanAdd, EventBanRemove:
		var be BanEvent
		if err := json.Unmarshal(e.Body, &be); err != nil {
			p.log.Warn("malformed ban event skipped", zap.Int64("seq", e.Seq), zap.Error(err))
			return
		}
		k := banKey{tenant: be.Tenant, kind: be.Kind, value: be.Value}
		p.ix.mu.Lock()
		if e.Kind == EventBanAdd {
			p.ix.bans[k] = be.Ban()
		} else {
			delete(p.ix.bans, k)
		}
		p.ix.mu.Unlock()
	case EventGovern:
		var g struct{ MUC, Scope string }
		if err := json.Unmarshal(e.Body, &g); err != nil {
			p.log.Warn("malformed govern event skipped", zap.Int64("seq", e.Seq), zap.Error(err))
			return
		}
		p.govMu.Lock()
		p.governors[g.MUC] = g.Scope
		p.govMu.Unlock()
	}
}

func (p *Postgres) enqueue(events []Event) {
	if len(events) == 0 {
		return
	}
	p.qmu.Lock()
	if p.sub != nil || p.resume {
		p.queue = append(p.queue, events...)
		p.qcond.Signal()
	}
	p.qmu.Unlock()
}

// Subscribe makes fn receive every event appended from now on, by any
// gavel (this one included: compare Event.Origin with Scope), in seq order,
// on one goroutine. Events missed while PostgreSQL was unreachable are
// delivered after the reconnect. Only one subscriber is kept.
func (p *Postgres) Subscribe(fn func(Event)) {
	p.qmu.Lock()
	p.sub = fn
	p.qcond.Broadcast()
	p.qmu.Unlock()
}

// Scope returns the name this gavel writes in events and keeps its rooms
// and outcasts under.
func (p *Postgres) Scope() string { return p.scope }

func (p *Postgres) deliver() {
	defer p.wg.Done()
	for {
		p.qmu.Lock()
		for (len(p.queue) == 0 || p.sub == nil) && !p.stopped {
			p.qcond.Wait()
		}
		if p.stopped {
			p.qmu.Unlock()
			return
		}
		batch := p.queue
		p.queue = nil
		fn := p.sub
		p.qmu.Unlock()
		for _, e := range batch {
			fn(e)
			p.delivered.Store(e.Seq)
		}
	}
}

// Publish appends an event to the shared log and returns its seq once the
// transaction committed. Every gavel's subscriber receives it.
func (p *Postgres) Publish(ctx context.Context, kind string, body []byte) (int64, error) {
	if err := validString("event kind", kind); err != nil {
		return 0, err
	}
	var seq int64
	err := p.write(ctx, "publish "+kind, func(tx pgx.Tx) error {
		var err error
		seq, err = appendEvent(ctx, tx, kind, p.scope, body)
		return err
	})
	return seq, err
}

// listen holds the LISTEN connection: it reconnects with backoff, reloads
// the cache and reads the log after every reconnect, and reads it again on
// every notification (and every 5 s, should one be lost).
func (p *Postgres) listen(ctx context.Context) {
	defer p.wg.Done()
	backoff := p.minBackoff
	first := true
	for ctx.Err() == nil {
		err := p.session(ctx, first)
		if ctx.Err() != nil {
			return
		}
		first = false
		e := unavailable("listening connection lost", err)
		if p.health.Load() == nil {
			p.log.Error("PostgreSQL unreachable: knocks are decided from the cached bans, commands are refused until it is back", zap.Error(err))
		}
		p.health.Store(&e)
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(backoff*2, p.maxBackoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if p.connected() {
			backoff = p.minBackoff
		}
	}
}

func (p *Postgres) connected() bool { return p.health.Load() == nil }

// session runs one listening connection until it fails.
func (p *Postgres) session(ctx context.Context, first bool) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cfg, err := pgx.ParseConfig(p.dsn)
	if err != nil {
		cancel()
		return errors.New("the DSN cannot be parsed")
	}
	cfg.RuntimeParams["application_name"] = "gavel " + p.scope + " (listen)"
	// Waking up from WaitForNotification must not send the server a
	// cancel request (a connection of its own) every few seconds.
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	held := map[string]bool{}
	if err := p.claimAll(ctx, conn, held); err != nil {
		return err
	}
	if !first {
		// Listening again: what changed meanwhile is in the tables.
		if err := p.reload(ctx, false); err != nil {
			return err
		}
	}
	if err := p.sync(ctx); err != nil {
		return err
	}
	if p.health.Swap(nil) != nil {
		p.log.Info("PostgreSQL reachable again", zap.Int64("seq", p.lastSeq()))
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		stop := make(chan struct{})
		go func() {
			select {
			case <-p.wake:
				cancel()
			case <-stop:
			}
		}()
		err := conn.PgConn().WaitForNotification(wctx)
		close(stop)
		cancel()
		if cerr := p.claimAll(ctx, conn, held); cerr != nil {
			return cerr
		}
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			return err
		}
		if err := p.sync(ctx); err != nil {
			return err
		}
		if herr := p.housekeep(ctx); herr != nil {
			return herr
		}
		if err != nil {
			// The periodic read: also proves the connection lives.
			if err := conn.Ping(ctx); err != nil {
				return err
			}
		}
	}
}

func (p *Postgres) lastSeq() int64 {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	return p.last
}

// ErrGoverned is returned by Govern when another gavel governs the MUC
// service.
var ErrGoverned = errors.New("store: another gavel governs this MUC service")

// Govern claims the MUC services this gavel governs: two gavels configured
// for the same MUC are refused (ErrGoverned, naming the other). A claim is a
// session advisory lock held by the listening connection, so it ends when
// this gavel dies or loses PostgreSQL; it is taken again on reconnect.
func (p *Postgres) Govern(ctx context.Context, mucs []string) error {
	// Probe first, on a connection of its own, to fail at start rather
	// than later; then the listener takes the claims on its connection.
	conn, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		return unavailable("claim MUC services", err)
	}
	defer conn.Close(context.Background())
	for _, m := range mucs {
		if err := p.claim(ctx, conn, m, true); err != nil {
			return err
		}
	}
	p.govMu.Lock()
	p.claims = slices.Clone(mucs)
	p.govMu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// claimAll takes, on the listening connection, the claims Govern recorded
// that it does not hold yet.
func (p *Postgres) claimAll(ctx context.Context, conn *pgx.Conn, held map[string]bool) error {
	p.govMu.RLock()
	mucs := slices.Clone(p.claims)
	p.govMu.RUnlock()
	for _, m := range mucs {
		if held[m] {
			continue
		}
		if err := p.claim(ctx, conn, m, false); err != nil {
			return err
		}
		held[m] = true
	}
	return nil
}

// claim takes the advisory lock of muc on conn and records the claim. With
// probe, the lock is released at once (Govern's check at start). The lock
// may still be held by this gavel's own previous listening connection,
// which PostgreSQL has not noticed is gone: then the claim is retried for a
// few seconds.
func (p *Postgres) claim(ctx context.Context, conn *pgx.Conn, muc string, probe bool) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2))", lockMUC, muc).Scan(&ok); err != nil {
			return unavailable("claim "+muc, err)
		}
		if ok {
			break
		}
		var holder string
		err := conn.QueryRow(ctx, "SELECT scope FROM gavel_governors WHERE muc = $1", muc).Scan(&holder)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return unavailable("claim "+muc, err)
		}
		if holder == p.scope && probe {
			// This gavel's own listener holds it.
			return nil
		}
		if holder != p.scope || time.Now().After(deadline) {
			if holder == "" {
				holder = "unknown"
			}
			return newError(ErrGoverned, nil, "store: another gavel (%s) governs the MUC service %s: one gavel per MUC", holder, muc)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if probe {
		_, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1, hashtext($2))", lockMUC, muc)
		if err != nil {
			return unavailable("claim "+muc, err)
		}
		return nil
	}
	body, _ := json.Marshal(struct{ MUC, Scope string }{muc, p.scope})
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, 0)", lockEvents); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO gavel_governors (muc, scope, claimed) VALUES ($1, $2, now())
			ON CONFLICT (muc) DO UPDATE SET scope = $2, claimed = now()`, muc, p.scope)
		if err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, EventGovern, p.scope, body)
		return err
	})
}

// Governor returns the scope of the gavel that claimed the MUC service
// muc, as last seen.
func (p *Postgres) Governor(muc string) (string, bool) {
	p.govMu.RLock()
	defer p.govMu.RUnlock()
	s, ok := p.governors[muc]
	return s, ok
}

// AddOutcasts records outcasts under this gavel's scope.
func (p *Postgres) AddOutcasts(ctx context.Context, list []Outcast) error {
	return p.changeOutcasts(ctx, true, list)
}

// RemoveOutcasts forgets outcasts.
func (p *Postgres) RemoveOutcasts(ctx context.Context, list []Outcast) error {
	return p.changeOutcasts(ctx, false, list)
}

func (p *Postgres) changeOutcasts(ctx context.Context, add bool, list []Outcast) error {
	if err := validOutcasts(list); err != nil {
		return err
	}
	if len(list) == 0 {
		return nil
	}
	return p.tx(ctx, "store outcasts", func(tx pgx.Tx) error {
		batch := &pgx.Batch{}
		for _, o := range list {
			if add {
				batch.Queue(`INSERT INTO gavel_outcasts (scope, tenant, kind, value, room, jid) VALUES ($1, $2, $3, $4, $5, $6)
					ON CONFLICT DO NOTHING`, p.scope, o.Tenant, string(o.Kind), o.Value, o.Room, o.JID)
			} else {
				batch.Queue(`DELETE FROM gavel_outcasts WHERE scope = $1 AND tenant = $2 AND kind = $3 AND value = $4 AND room = $5 AND jid = $6`,
					p.scope, o.Tenant, string(o.Kind), o.Value, o.Room, o.JID)
			}
		}
		return tx.SendBatch(ctx, batch).Close()
	})
}

// tx runs fn in a transaction of its own (no event).
func (p *Postgres) tx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	if p.ix.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if err := pgx.BeginFunc(ctx, p.pool, fn); err != nil {
		return unavailable(what, err)
	}
	return nil
}

// Outcasts returns this gavel's outcasts, sorted by ban, room, JID.
func (p *Postgres) Outcasts(ctx context.Context) ([]Outcast, error) {
	if p.ix.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := p.pool.Query(ctx, "SELECT tenant, kind, value, room, jid FROM gavel_outcasts WHERE scope = $1", p.scope)
	if err != nil {
		return nil, unavailable("list outcasts", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Outcast, error) {
		var (
			o    Outcast
			kind string
		)
		err := row.Scan(&o.Tenant, &kind, &o.Value, &o.Room, &o.JID)
		o.Kind = Kind(kind)
		return o, err
	})
	if err != nil {
		return nil, unavailable("list outcasts", err)
	}
	slices.SortFunc(out, compareOutcasts)
	return out, nil
}

// PutRooms stores rooms' governing state under this gavel's scope, in one
// transaction.
func (p *Postgres) PutRooms(ctx context.Context, rooms []RoomState) error {
	vals := make([]string, len(rooms))
	for i, r := range rooms {
		if err := r.valid(); err != nil {
			return err
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		vals[i] = string(v)
	}
	return p.tx(ctx, "store rooms", func(tx pgx.Tx) error {
		batch := &pgx.Batch{}
		for i, r := range rooms {
			batch.Queue(`INSERT INTO gavel_rooms (scope, room, state, updated) VALUES ($1, $2, $3, $4)
				ON CONFLICT (scope, room) DO UPDATE SET state = $3, updated = $4`, p.scope, r.Room, vals[i], r.Updated)
		}
		return tx.SendBatch(ctx, batch).Close()
	})
}

// PutMeeting stores m, replacing a meeting with the same ID; the commit is
// the acknowledgement.
func (p *Postgres) PutMeeting(ctx context.Context, m Meeting) error {
	if err := m.valid(); err != nil {
		return err
	}
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return p.tx(ctx, "store meeting", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO gavel_meetings (id, tenant, start, meeting) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET tenant = $2, start = $3, meeting = $4`, m.ID, m.Tenant, m.Start, string(v))
		return err
	})
}

// Meetings returns the meetings of a tenant ("" for all), ended ones too,
// sorted by Start, then ID.
func (p *Postgres) Meetings(ctx context.Context, tenant string) ([]Meeting, error) {
	if p.ix.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := p.pool.Query(ctx, `SELECT id, meeting FROM gavel_meetings WHERE $1 = '' OR tenant = $1 ORDER BY start, id LIMIT $2`, tenant, MaxMeetingsPerTenant)
	if err != nil {
		return nil, unavailable("list meetings", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Meeting, error) {
		var id, raw string
		if err := row.Scan(&id, &raw); err != nil {
			return Meeting{}, err
		}
		var m Meeting
		if err := json.Unmarshal([]byte(raw), &m); err != nil || m.ID != id {
			return Meeting{}, fmt.Errorf("store: meeting %q in PostgreSQL is not a meeting: %v", id, err)
		}
		return m, nil
	})
	if err != nil {
		return nil, unavailable("list meetings", err)
	}
	sortMeetings(out)
	return out, nil
}

// DeleteRooms forgets rooms.
func (p *Postgres) DeleteRooms(ctx context.Context, rooms []string) error {
	return p.tx(ctx, "delete rooms", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM gavel_rooms WHERE scope = $1 AND room = ANY($2)", p.scope, rooms)
		return err
	})
}

// Rooms returns the stored state of this gavel's rooms, sorted by JID.
func (p *Postgres) Rooms(ctx context.Context) ([]RoomState, error) {
	if p.ix.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := p.pool.Query(ctx, "SELECT room, state FROM gavel_rooms WHERE scope = $1", p.scope)
	if err != nil {
		return nil, unavailable("list rooms", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RoomState, error) {
		var room, state string
		if err := row.Scan(&room, &state); err != nil {
			return RoomState{}, err
		}
		var r RoomState
		if err := json.Unmarshal([]byte(state), &r); err != nil {
			return r, newError(ErrCorrupt, err, "store: room %q in PostgreSQL: %v", room, err)
		}
		if r.Room != room {
			return r, newError(ErrCorrupt, nil, "store: room %q in PostgreSQL names %q", room, r.Room)
		}
		if err := r.valid(); err != nil {
			return r, newError(ErrCorrupt, err, "store: room %q in PostgreSQL: %v", room, err)
		}
		return r, nil
	})
	if errors.Is(err, ErrCorrupt) {
		return nil, err
	}
	if err != nil {
		return nil, unavailable("list rooms", err)
	}
	sortRooms(out)
	return out, nil
}

// Check reports nil while the listening connection is up and a ping (at
// most one a second) succeeds; else ErrUnavailable with the cause.
func (p *Postgres) Check(ctx context.Context) error {
	if p.ix.closed.Load() {
		return ErrClosed
	}
	if e := p.health.Load(); e != nil {
		return *e
	}
	p.pingMu.Lock()
	defer p.pingMu.Unlock()
	if time.Since(p.lastPing) < time.Second {
		return p.pingError
	}
	p.lastPing = time.Now()
	p.pingError = nil
	if err := p.pool.Ping(ctx); err != nil {
		p.pingError = unavailable("ping", err)
	}
	return p.pingError
}

// Close stops listening and closes the connections. Later writes and lists
// fail with ErrClosed; Banned goes on answering from the cache.
func (p *Postgres) Close() error {
	return p.ix.close(func() error {
		p.cancel()
		p.qmu.Lock()
		p.stopped = true
		p.qcond.Broadcast()
		p.qmu.Unlock()
		p.wg.Wait()
		p.saveCursor()
		p.pool.Close()
		p.log.Info("store closed")
		return nil
	})
}
