package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// diskKeys returns the keys in the bans bucket of an open Bolt store.
func diskKeys(t *testing.T, b *Bolt) []string {
	t.Helper()
	var keys []string
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bansBucket).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestOpenCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	b := openTestBolt(t, dir)
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("data dir mode = %v, want 0700", perm)
	}
	info, err = os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("gavel.db mode = %v, want 0600", perm)
	}
	if b.Path() != filepath.Join(dir, FileName) {
		t.Errorf("Path = %s", b.Path())
	}
	if b.db.NoSync {
		t.Error("bbolt NoSync is set: commits would not be fsynced")
	}
	err = b.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(metaBucket).Get(schemaKey); string(v) != "1" {
			t.Errorf("schema = %q, want \"1\"", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	expired := Ban{Tenant: "acme", Kind: KindUser, Value: "soon", Created: hourAgo, Expires: time.Now().Add(50 * time.Millisecond)}
	for _, b := range append(fixture(), expired) {
		if err := s.AddBan(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.RemoveBan(ctx, "beta", KindUser, "u1"); !ok || err != nil {
		t.Fatalf("RemoveBan = %v, %v", ok, err)
	}
	want, err := s.ListBans(ctx, "", time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let "soon" expire

	r := openTestBolt(t, dir)
	got, err := r.ListBans(ctx, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !sameBans(got, want) {
		t.Errorf("after reopen:\n got %+v\nwant %+v", got, want)
	}
	if _, ok := r.Banned("beta", KindUser, "u1", time.Now()); ok {
		t.Error("removed ban came back")
	}
	for _, k := range diskKeys(t, r) {
		if strings.HasSuffix(k, "soon") {
			t.Error("expired ban not pruned from disk at Open")
		}
	}
	if len(r.ix.bans) != len(want) {
		t.Errorf("index holds %d bans, want %d", len(r.ix.bans), len(want))
	}
}

// TestDurableAfterKill has a child process add bans in a tight loop and
// kills it with SIGKILL after a number of acknowledgements: every
// acknowledged ban must be in the file when it is reopened, intact.
func TestDurableAfterKill(t *testing.T) {
	for _, killAfter := range []int{1, 7, 20, 33, helperCount} {
		t.Run(fmt.Sprintf("after %d acks", killAfter), func(t *testing.T) {
			dir := t.TempDir()
			h := startHelper(t, "add", dir)
			acked := 0
			for acked < killAfter {
				line := h.next(t)
				var i int
				if _, err := fmt.Sscanf(line, "ACK %d", &i); err != nil || i != acked {
					t.Fatalf("helper said %q, want ACK %d", line, acked)
				}
				acked++
			}
			h.kill()

			s := openTestBolt(t, dir)
			got, err := s.ListBans(ctx, "acme", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) < acked {
				t.Fatalf("%d bans after kill -9, want at least the %d acknowledged", len(got), acked)
			}
			for i, b := range got {
				if want := helperBan(i); !sameBan(b, want) {
					t.Errorf("ban %d = %+v, want %+v", i, b, want)
				}
			}
			t.Logf("%d acknowledged, %d found", acked, len(got))
		})
	}
}

func TestLockedSameProcess(t *testing.T) {
	dir := t.TempDir()
	openTestBolt(t, dir)
	start := time.Now()
	_, err := Open(dir, Options{LockTimeout: 200 * time.Millisecond})
	checkLocked(t, err, time.Since(start), 200*time.Millisecond)
}

func TestLockedOtherProcess(t *testing.T) {
	dir := t.TempDir()
	h := startHelper(t, "hold", dir)
	if line := h.next(t); line != "OPEN" {
		t.Fatalf("helper said %q, want OPEN", line)
	}
	start := time.Now()
	_, err := Open(dir, Options{LockTimeout: 300 * time.Millisecond})
	checkLocked(t, err, time.Since(start), 300*time.Millisecond)

	// The kernel drops the lock with the process.
	h.kill()
	openTestBolt(t, dir)
}

func checkLocked(t *testing.T, err error, took, timeout time.Duration) {
	t.Helper()
	const want = "store: gavel.db is locked by another process (is another gavel running with the same data_dir?)"
	if err == nil || err.Error() != want || !errors.Is(err, ErrLocked) {
		t.Fatalf("Open = %v, want ErrLocked %q", err, want)
	}
	// bbolt polls every 50ms and gives up one poll early.
	if took < timeout-100*time.Millisecond || took > timeout+2*time.Second {
		t.Errorf("Open gave up after %v, want about %v", took, timeout)
	}
}

// writeRawDB makes dir/gavel.db a bbolt file that fill shapes.
func writeRawDB(t *testing.T, dir string, fill func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fill); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// gavelDB fills a schema-1 gavel database with extra records.
func gavelDB(schema string, records map[string]string) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(metaBucket)
		if err != nil {
			return err
		}
		if err := meta.Put(schemaKey, []byte(schema)); err != nil {
			return err
		}
		bans, err := tx.CreateBucket(bansBucket)
		if err != nil {
			return err
		}
		for k, v := range records {
			if err := bans.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	}
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(1, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// realDB returns the bytes of a real store holding n bans.
func realDB(t *testing.T, n int) []byte {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := s.AddBan(ctx, helperBan(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// truncated writes a real store cut to half its size.
func truncated(t *testing.T, dir string) {
	data := realDB(t, 200)
	writeFile(data[:len(data)/2])(t, dir)
}

// damage writes a real store with part of it overwritten by random bytes
// from off (in pages) for n pages (0: to the end).
func damage(off, n int) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		data := realDB(t, 200)
		path := filepath.Join(dir, FileName)
		page := os.Getpagesize()
		end := len(data)
		if n > 0 {
			end = (off + n) * page
		}
		copy(data[off*page:end], randomBytes(end-off*page))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenCorrupt(t *testing.T) {
	validRecord := `{"tenant":"acme","kind":"user","value":"u1","created":"2025-01-01T00:00:00Z"}`
	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		wantText string // a part of the message besides the path
	}{
		{name: "text file", setup: writeFile([]byte("not a database\n")), wantText: "invalid database"},
		{name: "random 4KiB", setup: writeFile(randomBytes(4096)), wantText: "file size too small"},
		{name: "random 64KiB", setup: writeFile(randomBytes(64 << 10)), wantText: "invalid database"},
		{name: "zeros 32KiB", setup: writeFile(make([]byte, 32<<10)), wantText: "invalid database"},
		{name: "meta pages damaged", setup: damage(0, 2), wantText: "invalid database"},
		{name: "data pages damaged", setup: damage(2, 0), wantText: "bbolt panicked"},
		{name: "truncated", setup: truncated, wantText: "bbolt panicked"},
		{
			name:     "another program's bbolt file",
			setup:    raw(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err }),
			wantText: "it has buckets but no meta bucket",
		},
		{name: "schema not a number", setup: raw(gavelDB("one", nil)), wantText: `bad schema version "one"`},
		{name: "schema zero", setup: raw(gavelDB("0", nil)), wantText: `bad schema version "0"`},
		{
			name: "schema missing",
			setup: raw(func(tx *bolt.Tx) error {
				_, err := tx.CreateBucket(metaBucket)
				return err
			}),
			wantText: `bad schema version ""`,
		},
		{
			name: "no bans bucket",
			setup: raw(func(tx *bolt.Tx) error {
				meta, err := tx.CreateBucket(metaBucket)
				if err != nil {
					return err
				}
				return meta.Put(schemaKey, []byte("1"))
			}),
			wantText: "no bans bucket",
		},
		{
			name:     "record not JSON",
			setup:    raw(gavelDB("1", map[string]string{"acme\x00user\x00u1": "{"})),
			wantText: `ban "acme\x00user\x00u1": unexpected end of JSON input`,
		},
		{
			name:     "record under another key",
			setup:    raw(gavelDB("1", map[string]string{"acme\x00user\x00u2": validRecord})),
			wantText: "record does not match its key",
		},
		{
			name:     "record with unknown kind",
			setup:    raw(gavelDB("1", map[string]string{"acme\x00ip\x00u1": strings.Replace(validRecord, `"user"`, `"ip"`, 1)})),
			wantText: `ban "acme\x00ip\x00u1": ban kind "ip" is unknown`,
		},
		{
			name:     "record without created",
			setup:    raw(gavelDB("1", map[string]string{"acme\x00user\x00u1": `{"tenant":"acme","kind":"user","value":"u1"}`})),
			wantText: "no created time",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			path := filepath.Join(dir, FileName)
			// Twice: a failed Open must release the file.
			for range 2 {
				s, err := Open(dir, Options{LockTimeout: 100 * time.Millisecond})
				if err == nil {
					_ = s.Close()
					t.Fatal("Open succeeded on a corrupt file")
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Open = %v, want ErrCorrupt", err)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, "store: "+path+" is corrupt or not a gavel database: ") || !strings.Contains(msg, tt.wantText) {
					t.Fatalf("Open = %q, want the path and %q", msg, tt.wantText)
				}
			}
		})
	}
}

func writeFile(data []byte) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func raw(fill func(tx *bolt.Tx) error) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) { writeRawDB(t, dir, fill) }
}

func TestOpenNewerSchema(t *testing.T) {
	tests := []struct {
		name, schema, want string
	}{
		{name: "next", schema: "2", want: "store: gavel.db has schema version 2, this gavel understands up to 1"},
		{name: "far future", schema: "17", want: "store: gavel.db has schema version 17, this gavel understands up to 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// An expired ban that a schema-1 Open would prune.
			writeRawDB(t, dir, gavelDB(tt.schema, map[string]string{
				"acme\x00user\x00u1": `{"tenant":"acme","kind":"user","value":"u1","created":"2020-01-01T00:00:00Z","expires":"2020-01-02T00:00:00Z"}`,
			}))
			path := filepath.Join(dir, FileName)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Open(dir, Options{})
			if err == nil || err.Error() != tt.want || !errors.Is(err, ErrSchema) {
				t.Fatalf("Open = %v, want ErrSchema %q", err, tt.want)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Error("Open changed a file of a newer schema")
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name     string
		dir      func(t *testing.T) string
		wantText string
		rootSkip bool
	}{
		{name: "empty dir name", dir: func(*testing.T) string { return "" }, wantText: "store: data dir is empty"},
		{
			name: "dir is a file",
			dir: func(t *testing.T) string {
				p := filepath.Join(t.TempDir(), "file")
				writeFile(nil)(t, filepath.Dir(p))
				if err := os.Rename(filepath.Join(filepath.Dir(p), FileName), p); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantText: "store: create data dir: mkdir ",
		},
		{
			name: "parent is a file",
			dir: func(t *testing.T) string {
				d := t.TempDir()
				writeFile(nil)(t, d)
				return filepath.Join(d, FileName, "sub")
			},
			wantText: "not a directory",
		},
		{
			name: "gavel.db is a directory",
			dir: func(t *testing.T) string {
				d := t.TempDir()
				if err := os.Mkdir(filepath.Join(d, FileName), 0o700); err != nil {
					t.Fatal(err)
				}
				return d
			},
			wantText: "/gavel.db: is a directory",
		},
		{
			name: "dir not writable",
			dir: func(t *testing.T) string {
				d := filepath.Join(t.TempDir(), "ro")
				if err := os.Mkdir(d, 0o500); err != nil {
					t.Fatal(err)
				}
				return d
			},
			wantText: "/gavel.db: permission denied",
			rootSkip: true,
		},
		{
			name: "gavel.db read-only",
			dir: func(t *testing.T) string {
				d := t.TempDir()
				if err := os.WriteFile(filepath.Join(d, FileName), nil, 0o400); err != nil {
					t.Fatal(err)
				}
				return d
			},
			wantText: "/gavel.db: permission denied",
			rootSkip: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rootSkip && os.Geteuid() == 0 {
				t.Skip("root ignores file permissions")
			}
			s, err := Open(tt.dir(t), Options{})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.HasPrefix(err.Error(), "store: ") || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("Open = %q, want it to contain %q", err, tt.wantText)
			}
		})
	}
}

// TestOpenDamagedFile damages a real store in many random ways: Open and
// writes may succeed (bbolt keeps no checksums of its data pages, and free
// pages may be hit) or fail with ErrCorrupt, but never crash the process or
// leave the file locked.
func TestOpenDamagedFile(t *testing.T) {
	orig := realDB(t, 300)
	page := os.Getpagesize()
	pages := len(orig) / page
	tests := []struct {
		name   string
		damage func(r *rand.Rand, data []byte) []byte
	}{
		{name: "page overwritten", damage: func(r *rand.Rand, data []byte) []byte {
			p := 2 + r.IntN(pages-2)
			copy(data[p*page:(p+1)*page], randomBytes(page))
			return data
		}},
		{name: "bytes flipped", damage: func(r *rand.Rand, data []byte) []byte {
			for range 20 {
				data[2*page+r.IntN(len(data)-2*page)] ^= byte(1 + r.IntN(255))
			}
			return data
		}},
		{name: "truncated", damage: func(r *rand.Rand, data []byte) []byte {
			return data[:2*page+r.IntN(len(data)-2*page)]
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outcomes := map[string]int{}
			for seed := range 40 {
				r := rand.New(rand.NewPCG(uint64(seed), 7))
				dir := t.TempDir()
				writeFile(tt.damage(r, bytes.Clone(orig)))(t, dir)
				for range 2 {
					outcomes[openDamaged(t, dir)]++
				}
			}
			t.Logf("outcomes: %v", outcomes)
		})
	}
}

// openDamaged opens a damaged store, adds bans if that works, and says how
// it went; it fails the test on anything but success or ErrCorrupt.
func openDamaged(t *testing.T, dir string) string {
	t.Helper()
	s, err := Open(dir, Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("Open = %v, want success or ErrCorrupt", err)
		}
		return "corrupt at open"
	}
	defer func() { _ = s.Close() }()
	for i := range 20 {
		if err := s.AddBan(ctx, helperBan(1000+i)); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("AddBan = %v, want success or ErrCorrupt", err)
			}
			return "corrupt at write"
		}
	}
	return "ok"
}

func TestMissingDirs(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name string
		dir  string
		want []string
	}{
		{name: "exists", dir: root, want: nil},
		{name: "one level", dir: filepath.Join(root, "a"), want: []string{root}},
		{name: "two levels", dir: filepath.Join(root, "a", "b"), want: []string{filepath.Join(root, "a"), root}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := missingDirs(tt.dir); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("missingDirs(%s) = %v, want %v", tt.dir, got, tt.want)
			}
		})
	}
}
