package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"
)

const (
	// FileName is the name of the database file in the data directory.
	FileName = "gavel.db"
	// SchemaVersion is the newest schema of gavel.db this package reads
	// and the one it writes.
	SchemaVersion = 1
	// DefaultLockTimeout is how long Open waits for the file lock when
	// Options.LockTimeout is zero.
	DefaultLockTimeout = time.Second
)

// Bucket and key names of schema 1. The meta bucket holds the schema version
// as a decimal string; the bans bucket maps tenant\x00kind\x00value to the
// ban as JSON.
var (
	metaBucket = []byte("meta")
	schemaKey  = []byte("schema")
	bansBucket = []byte("bans")
	// outcastsBucket maps Outcast.encode() to nothing. It was added to
	// schema 1 without a version change: older gavels ignore it.
	outcastsBucket = []byte("outcasts")
	// roomsBucket maps a room JID to its RoomState as JSON (schema 1 too).
	roomsBucket = []byte("rooms")
)

// Options tune Open.
type Options struct {
	// LockTimeout is how long Open waits for another process to release
	// gavel.db before it fails with ErrLocked; zero means
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// Logger receives what the store reports; nil means none.
	Logger *zap.Logger
	// InitEmpty makes Open take an empty (0-byte) gavel.db as a new
	// database; without it Open refuses such a file with ErrEmptyFile.
	InitEmpty bool
}

// Bolt is a Store kept in a bbolt file, gavel.db, in a data directory. Every
// write is committed with an fsync before it returns. The file is locked
// while it is open, so a second process (or a second Open in this one) fails
// with ErrLocked.
type Bolt struct {
	ix      *index
	out     outcasts
	dbmu    sync.RWMutex // reopen holds it; batched writes hold it for reading
	db      *bolt.DB     // nil while a failed write's reopen failed; writes reopen it
	path    string
	log     *zap.Logger
	timeout time.Duration

	// health is nil while writes succeed, else the last write's failure;
	// lastProbe is when Check last tried a write (both under ix.wmu).
	health    atomic.Pointer[error]
	lastProbe time.Time
}

var _ Store = (*Bolt)(nil)

// record is a ban as it is stored on disk. It is kept apart from Ban so that
// the file's format does not change with the Go type.
type record struct {
	Tenant  string    `json:"tenant"`
	Kind    Kind      `json:"kind"`
	Value   string    `json:"value"`
	Reason  string    `json:"reason,omitempty"`
	By      string    `json:"by,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

// Open opens (creating it, and dir with mode 0700, if missing) the store in
// dir/gavel.db, loads its bans into memory and prunes the expired ones. It
// fails with ErrLocked if another process holds the file for longer than
// opts.LockTimeout, ErrCorrupt if the file is not a usable gavel database,
// and ErrSchema if a newer gavel wrote it.
func Open(dir string, opts Options) (*Bolt, error) {
	if dir == "" {
		return nil, errors.New("store: data dir is empty")
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	newDirs := missingDirs(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	fi, err := os.Stat(path)
	created := errors.Is(err, fs.ErrNotExist)
	if err == nil && fi.Size() == 0 {
		if !opts.InitEmpty {
			return nil, newError(ErrEmptyFile, nil, "store: %s is empty (0 bytes), which a gavel database never is: it was truncated, and every ban it held is gone. Restore it from a backup, or start afresh with an empty database (gavel -init-store)", path)
		}
		log.Warn("gavel.db is empty: starting a new database, as asked (-init-store)", zap.String("path", path))
		created = true
	}

	start := time.Now()
	db, err := openBolt(path, timeout)
	if err != nil {
		return nil, err
	}
	b := &Bolt{ix: newIndex(), db: db, path: path, log: log.With(zap.String("path", path)), timeout: timeout}
	if created {
		// The entries of the new file and directories must be durable
		// too, or a power cut could lose gavel.db with its first bans.
		for _, d := range append([]string{dir}, newDirs...) {
			if err := syncDir(d); err != nil {
				b.log.Warn("cannot fsync a directory after creating gavel.db", zap.String("dir", d), zap.Error(err))
			}
		}
	}
	pruned, err := b.load()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	b.log.Info("store opened",
		zap.Bool("created", created),
		zap.Int("bans", len(b.ix.bans)),
		zap.Int("pruned", pruned),
		zap.Duration("took", time.Since(start)))
	return b, nil
}

// openBolt opens the bbolt file and turns its failures into the package's
// errors: ErrLocked, an error about opening the file (permissions and the
// like), or ErrCorrupt for whatever bbolt found wrong with its contents. bbolt
// can panic on some damaged files; that is reported as ErrCorrupt too, after
// releasing the file's lock (its memory map, if any, leaks).
func openBolt(path string, timeout time.Duration) (db *bolt.DB, err error) {
	var file *os.File
	// A page past the end of a truncated file faults (SIGBUS) when bbolt
	// reads it through its memory map; make that a panic to recover.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				unlock(file)
				_ = file.Close()
			}
			db, err = nil, corrupt(path, fmt.Errorf("bbolt panicked: %v", r))
		}
	}()
	opts := *bolt.DefaultOptions
	opts.Timeout = timeout
	opts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	db, err = bolt.Open(path, 0o600, &opts)
	if err == nil {
		// Room state is written in batches (PutRooms): a grant waits at
		// most this long for others to share its fsync.
		db.MaxBatchDelay = time.Millisecond
	}
	var (
		pathErr *fs.PathError
		errno   syscall.Errno
	)
	switch {
	case err == nil:
		if db.NoSync {
			// Durability rests on this; bbolt's default, checked anyway.
			_ = db.Close()
			return nil, errors.New("store: bbolt opened without fsync")
		}
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, newError(ErrLocked, err, "%s", ErrLocked.Error())
	case errors.As(err, &pathErr), errors.As(err, &errno):
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	default:
		// ErrInvalid, ErrChecksum, ErrVersionMismatch, "file size too
		// small" and the like: the contents are wrong.
		return nil, corrupt(path, err)
	}
}

func corrupt(path string, cause error) error {
	return newError(ErrCorrupt, cause, "store: %s is corrupt or not a gavel database: %v", path, cause)
}

// missingDirs returns the parents of the directories that MkdirAll(dir) is
// about to create: the directories whose new entries need an fsync.
func missingDirs(dir string) []string {
	var parents []string
	for d := filepath.Clean(dir); ; {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			return parents
		}
		parent := filepath.Dir(d)
		if parent == d {
			return parents
		}
		parents = append(parents, parent)
		d = parent
	}
}

// syncDir fsyncs a directory so that an entry created in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// load checks the schema, fills the index with the active bans and deletes
// the expired ones; it initializes a new file. It returns how many bans it
// pruned.
func (b *Bolt) load() (int, error) {
	now := time.Now()
	var (
		fresh, needOutcasts bool
		expired             []banKey
	)
	err := b.guard(b.db.View, func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		if meta == nil {
			errForeign := errors.New("it has buckets but no meta bucket")
			err := tx.ForEach(func([]byte, *bolt.Bucket) error { return errForeign })
			if err != nil {
				return corrupt(b.path, err)
			}
			fresh = true
			return nil
		}
		raw := meta.Get(schemaKey)
		version, err := strconv.Atoi(string(raw))
		if err != nil || version < 1 {
			return corrupt(b.path, fmt.Errorf("bad schema version %q", raw))
		}
		if version > SchemaVersion {
			return newError(ErrSchema, nil, "store: %s has schema version %d, this gavel understands up to %d", FileName, version, SchemaVersion)
		}
		if oc := tx.Bucket(outcastsBucket); oc != nil {
			var list []Outcast
			err := oc.ForEach(func(k, _ []byte) error {
				o, err := decodeOutcast(k)
				if err != nil {
					return corrupt(b.path, err)
				}
				list = append(list, o)
				return nil
			})
			if err != nil {
				return err
			}
			b.out.apply(true, list)
		} else {
			needOutcasts = true
		}
		if tx.Bucket(roomsBucket) == nil {
			needOutcasts = true
		}
		bans := tx.Bucket(bansBucket)
		if bans == nil {
			return corrupt(b.path, errors.New("no bans bucket"))
		}
		return bans.ForEach(func(k, v []byte) error {
			ban, err := decodeBan(k, v)
			if err != nil {
				return corrupt(b.path, fmt.Errorf("ban %q: %w", k, err))
			}
			if !ban.Active(now) {
				expired = append(expired, keyOf(&ban))
				return nil
			}
			b.ix.bans[keyOf(&ban)] = ban
			b.ix.noteExpiry(ban.Expires)
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	if fresh {
		err = b.guard(b.db.Update, func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucket(metaBucket)
			if err != nil {
				return err
			}
			if err := meta.Put(schemaKey, []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return err
			}
			_, err = tx.CreateBucket(bansBucket)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("store: initialize %s: %w", b.path, err)
		}
		needOutcasts = true
	}
	if needOutcasts {
		err = b.guard(b.db.Update, func(tx *bolt.Tx) error {
			if _, err := tx.CreateBucketIfNotExists(roomsBucket); err != nil {
				return err
			}
			_, err := tx.CreateBucketIfNotExists(outcastsBucket)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("store: initialize %s: %w", b.path, err)
		}
	}
	if len(expired) > 0 {
		if err := b.write(nil, expired); err != nil {
			return 0, err
		}
	}
	return len(expired), nil
}

// guard runs fn in a bbolt transaction (run is db.View or db.Update) and
// turns a panic of bbolt's, which it raises on some damaged pages, or a fault
// reading a page past the end of a truncated file, into ErrCorrupt. bbolt
// rolls the transaction back on the way out.
func (b *Bolt) guard(run func(func(*bolt.Tx) error) error, fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = corrupt(b.path, fmt.Errorf("bbolt panicked: %v", r))
		}
	}()
	return run(fn)
}

// write is the persistFunc of Bolt: one transaction, committed with fsync.
// When the commit fails (a full disk, a read-only file system, an I/O
// error), the file itself is asked what it now holds: a commit can fail
// after its meta page reached the file (the last fsync), and then the
// change is there for the next start to read. write reports such a change
// as stored, so that what gavel acknowledged and what it reads back after
// a restart agree; anything else is ErrUnavailable, with nothing stored.
func (b *Bolt) write(put *Ban, dels []banKey) error {
	if b.db == nil {
		if err := b.reopen(); err != nil {
			return b.unavailable(err)
		}
	}
	err := b.commit(put, dels)
	if err == nil {
		b.health.Store(nil)
		return nil
	}
	if errors.Is(err, ErrCorrupt) {
		b.health.Store(&err)
		return err
	}
	stored, verr := b.landed(put, dels)
	if verr == nil && stored {
		b.health.Store(&err)
		b.log.Warn("a write failed, but the change reached gavel.db: reported as stored", zap.Error(err))
		return nil
	}
	return b.unavailable(err)
}

// unavailable records a failed write and wraps it in ErrUnavailable.
func (b *Bolt) unavailable(cause error) error {
	err := newError(ErrUnavailable, cause, "store: cannot write %s (%v): nothing was stored", b.path, rootCause(cause))
	b.health.Store(&err)
	b.log.Error("store write failed", zap.Error(cause))
	return err
}

// rootCause is the innermost error, for messages: "no space left on device".
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// landed reopens the file after a failed commit and reports whether the
// change is in it: put stored as given, or (without put) the deletions done.
// bbolt's transactions are atomic, so one key tells.
func (b *Bolt) landed(put *Ban, dels []banKey) (bool, error) {
	if err := b.reopen(); err != nil {
		return false, err
	}
	var found bool
	err := b.guard(b.db.View, func(tx *bolt.Tx) error {
		bans := tx.Bucket(bansBucket)
		if bans == nil {
			return errors.New("no bans bucket")
		}
		if put != nil {
			want, err := encodeBan(put)
			if err != nil {
				return err
			}
			found = bytes.Equal(bans.Get(encodeKey(keyOf(put))), want)
			return nil
		}
		found = len(dels) > 0 && bans.Get(encodeKey(dels[0])) == nil
		return nil
	})
	return found, err
}

// reopen closes and opens the file again, so that bbolt's view of it is
// read from the file and not from the state of a failed transaction. On
// failure b.db is nil and the next write tries again.
func (b *Bolt) reopen() error {
	b.dbmu.Lock()
	defer b.dbmu.Unlock()
	if b.db != nil {
		_ = b.db.Close()
		b.db = nil
	}
	db, err := openBolt(b.path, b.timeout)
	if err != nil {
		return err
	}
	b.db = db
	return nil
}

// minFreeBytes is the free space a failed store needs before Check calls it
// writable again.
const minFreeBytes = 1 << 20

// probeKey is written by Check to see whether a failed store recovered.
var probeKey = []byte("probe")

// Check reports nil while writes succeed. After a failed write it tries a
// small write of its own (at most once a second) and reports
// ErrUnavailable until one succeeds.
func (b *Bolt) Check(ctx context.Context) error {
	if p := b.health.Load(); p == nil {
		if b.ix.closed.Load() {
			return ErrClosed
		}
		return nil
	}
	err := b.ix.exclusive(func() error {
		p := b.health.Load()
		if p == nil {
			return nil
		}
		if time.Since(b.lastProbe) < time.Second {
			return *p
		}
		b.lastProbe = time.Now()
		if b.db == nil {
			if err := b.reopen(); err != nil {
				return b.unavailable(err)
			}
		}
		// A full disk may still take a write this small (into pages
		// freed earlier): ask the file system for room as well.
		if free, ok := freeBytes(filepath.Dir(b.path)); ok && free < minFreeBytes {
			return b.unavailable(fmt.Errorf("%d bytes free in %s, %d needed: %w", free, filepath.Dir(b.path), minFreeBytes, syscall.ENOSPC))
		}
		err := b.guard(b.db.Update, func(tx *bolt.Tx) error {
			return tx.Bucket(metaBucket).Put(probeKey, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
		})
		if err != nil {
			_ = b.reopen()
			return b.unavailable(err)
		}
		b.health.Store(nil)
		b.log.Info("store writable again")
		return nil
	})
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrClosed) {
		return err
	}
	if err != nil {
		return newError(ErrUnavailable, err, "store: %v", err)
	}
	return nil
}

// commit writes one transaction and fsyncs it.
func (b *Bolt) commit(put *Ban, dels []banKey) error {
	err := b.guard(b.db.Update, func(tx *bolt.Tx) error {
		bans := tx.Bucket(bansBucket)
		for _, k := range dels {
			if err := bans.Delete(encodeKey(k)); err != nil {
				return err
			}
		}
		if put == nil {
			return nil
		}
		v, err := encodeBan(put)
		if err != nil {
			return err
		}
		return bans.Put(encodeKey(keyOf(put)), v)
	})
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: write %s: %w", b.path, err)
	}
	if put != nil {
		b.log.Debug("ban stored", zap.String("tenant", put.Tenant), zap.String("kind", string(put.Kind)), zap.String("value", put.Value))
	}
	if len(dels) > 0 {
		b.log.Debug("bans deleted", zap.Int("count", len(dels)))
	}
	return nil
}

func encodeKey(k banKey) []byte {
	key := make([]byte, 0, len(k.tenant)+len(k.kind)+len(k.value)+2)
	key = append(key, k.tenant...)
	key = append(key, 0)
	key = append(key, k.kind...)
	key = append(key, 0)
	return append(key, k.value...)
}

func encodeBan(b *Ban) ([]byte, error) {
	return json.Marshal(record{
		Tenant:  b.Tenant,
		Kind:    b.Kind,
		Value:   b.Value,
		Reason:  b.Reason,
		By:      b.By,
		Created: b.Created,
		Expires: b.Expires,
	})
}

// decodeBan reads a stored ban and checks it: it must be valid and match its
// key.
func decodeBan(k, v []byte) (Ban, error) {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return Ban{}, err
	}
	b := Ban{
		Tenant:  r.Tenant,
		Kind:    r.Kind,
		Value:   r.Value,
		Reason:  r.Reason,
		By:      r.By,
		Created: r.Created.UTC(),
		Expires: r.Expires,
	}
	if !b.Expires.IsZero() {
		b.Expires = b.Expires.UTC()
	}
	if b.Created.IsZero() {
		return Ban{}, errors.New("no created time")
	}
	n, err := normalize(b, time.Time{})
	if err != nil {
		// Wrapped in corrupt's message, which has the prefix already.
		return Ban{}, errors.New(strings.TrimPrefix(err.Error(), "store: "))
	}
	if n != b || !bytes.Equal(encodeKey(keyOf(&b)), k) {
		return Ban{}, errors.New("record does not match its key")
	}
	return b, nil
}

// AddBan stores b, replacing an existing ban with the same Tenant, Kind and
// Value, and returns once the change is fsynced to disk. A zero Created is
// set to the current time; a token hash is stored in lowercase. Bans expired
// by now are pruned in the same transaction.
func (b *Bolt) AddBan(ctx context.Context, ban Ban) error {
	return b.ix.add(ctx, ban, b.write)
}

// RemoveBan deletes a ban, returning once the change is fsynced to disk, and
// reports whether one was stored (even if it had expired).
func (b *Bolt) RemoveBan(ctx context.Context, tenant string, kind Kind, value string) (bool, error) {
	return b.ix.remove(ctx, tenant, kind, value, b.write)
}

// ListBans returns the bans of a tenant ("" for all tenants) that are active
// at now, sorted by Created, then Value. It reads the in-memory index, which
// mirrors the file.
func (b *Bolt) ListBans(ctx context.Context, tenant string, now time.Time) ([]Ban, error) {
	return b.ix.list(ctx, tenant, now)
}

// Banned returns the ban matching tenant, kind and value if one is active at
// now. It answers from memory and does not allocate; value must be in the
// form AddBan stores (for a token, the lowercase hex of auth.TokenHash).
func (b *Bolt) Banned(tenant string, kind Kind, value string, now time.Time) (Ban, bool) {
	return b.ix.banned(tenant, kind, value, now)
}

// AddOutcasts records outcasts, returning once they are fsynced.
func (b *Bolt) AddOutcasts(ctx context.Context, o []Outcast) error {
	return b.changeOutcasts(ctx, true, o)
}

// RemoveOutcasts forgets outcasts, returning once that is fsynced.
func (b *Bolt) RemoveOutcasts(ctx context.Context, o []Outcast) error {
	return b.changeOutcasts(ctx, false, o)
}

func (b *Bolt) changeOutcasts(ctx context.Context, add bool, list []Outcast) error {
	if err := validOutcasts(list); err != nil {
		return err
	}
	if len(list) == 0 {
		return nil
	}
	return b.ix.exclusive(func() error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if b.db == nil {
			if err := b.reopen(); err != nil {
				return b.unavailable(err)
			}
		}
		err := b.guard(b.db.Update, func(tx *bolt.Tx) error {
			bk := tx.Bucket(outcastsBucket)
			for _, o := range list {
				var err error
				if add {
					err = bk.Put(o.encode(), nil)
				} else {
					err = bk.Delete(o.encode())
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		if err != nil {
			_ = b.reopen()
			return b.unavailable(err)
		}
		b.health.Store(nil)
		b.out.apply(add, list)
		return nil
	})
}

// PutRooms stores rooms' governing state. Concurrent calls are committed
// together (bbolt's batch), so many rooms changing at once share an fsync.
func (b *Bolt) PutRooms(ctx context.Context, rooms []RoomState) error {
	vals := make([][]byte, len(rooms))
	for i, r := range rooms {
		if err := r.valid(); err != nil {
			return err
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		vals[i] = v
	}
	return b.batch(ctx, func(bk *bolt.Bucket) error {
		for i, r := range rooms {
			if err := bk.Put([]byte(r.Room), vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteRooms forgets rooms.
func (b *Bolt) DeleteRooms(ctx context.Context, rooms []string) error {
	return b.batch(ctx, func(bk *bolt.Bucket) error {
		for _, r := range rooms {
			if err := bk.Delete([]byte(r)); err != nil {
				return err
			}
		}
		return nil
	})
}

// batch runs fn on the rooms bucket in a batched, fsynced transaction. fn
// may run more than once (bbolt retries a failed batch one by one), so it
// must be idempotent.
func (b *Bolt) batch(ctx context.Context, fn func(*bolt.Bucket) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if b.ix.closed.Load() {
		return ErrClosed
	}
	b.dbmu.RLock()
	db := b.db
	var err error
	if db == nil {
		err = errors.New("gavel.db is not open after an earlier failure")
	} else {
		err = b.guard(db.Batch, func(tx *bolt.Tx) error { return fn(tx.Bucket(roomsBucket)) })
	}
	b.dbmu.RUnlock()
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	// Reopen under the writer lock, as the other writes do.
	return b.ix.exclusive(func() error {
		if b.db == db {
			_ = b.reopen()
		}
		return b.unavailable(err)
	})
}

// Rooms returns the stored governing state of every room, sorted by JID.
func (b *Bolt) Rooms(ctx context.Context) ([]RoomState, error) {
	if b.ix.closed.Load() {
		return nil, ErrClosed
	}
	b.dbmu.RLock()
	defer b.dbmu.RUnlock()
	if b.db == nil {
		return nil, newError(ErrUnavailable, nil, "store: %s is not open after an earlier failure", b.path)
	}
	var out []RoomState
	err := b.guard(b.db.View, func(tx *bolt.Tx) error {
		return tx.Bucket(roomsBucket).ForEach(func(k, v []byte) error {
			var r RoomState
			if err := json.Unmarshal(v, &r); err != nil {
				return corrupt(b.path, fmt.Errorf("room %q: %w", k, err))
			}
			if r.Room != string(k) {
				return corrupt(b.path, fmt.Errorf("room %q: record names %q", k, r.Room))
			}
			if err := r.valid(); err != nil {
				return corrupt(b.path, fmt.Errorf("room %q: %w", k, err))
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Outcasts returns every recorded outcast.
func (b *Bolt) Outcasts(ctx context.Context) ([]Outcast, error) {
	if b.ix.closed.Load() {
		return nil, ErrClosed
	}
	return b.out.list(), nil
}

// Path returns the database file's path.
func (b *Bolt) Path() string { return b.path }

// Close waits for in-flight writes and closes the file, releasing its lock.
// Later writes and lists fail with ErrClosed; Banned goes on answering from
// the last state. Closing twice is harmless.
func (b *Bolt) Close() error {
	return b.ix.close(func() error {
		if b.db == nil {
			return nil
		}
		if err := b.db.Close(); err != nil {
			return fmt.Errorf("store: close %s: %w", b.path, err)
		}
		b.log.Info("store closed")
		return nil
	})
}
