package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// smallDisk mounts a tmpfs of size bytes at a new directory and returns it;
// it needs root, which CI and the developers' machines have.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file until the file system is full; removing it frees the
// space again.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !strings.Contains(err.Error(), "no space left") {
				t.Fatalf("filling the disk: %v", err)
			}
			return path
		}
	}
}

// waitHealthy polls Check until it reports nil (a positive signal; the
// deadline only bounds a failure).
func waitHealthy(t *testing.T, s Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Check(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store still failing: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bigBan needs new pages in the file, so it cannot fit in freed ones.
func bigBan(value string) Ban {
	return Ban{Tenant: "acme", Kind: KindUser, Value: value, Reason: strings.Repeat("r", 256<<10)}
}

// TestFullDisk: a ban that cannot be written is refused with
// ErrUnavailable, leaves no trace (not listed, not there after a restart),
// Check fails until space returns, and then writes work again.
func TestFullDisk(t *testing.T) {
	dir := smallDisk(t, "2m")
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.AddBan(ctx, Ban{Tenant: "acme", Kind: KindUser, Value: "before"}); err != nil {
		t.Fatal(err)
	}
	filler := fill(t, dir)

	err = b.AddBan(ctx, bigBan("during"))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "nothing was stored") {
		t.Fatalf("AddBan on a full disk: %v, want ErrUnavailable naming the cause", err)
	}
	if _, ok := b.Banned("acme", KindUser, "during", time.Now()); ok {
		t.Error("a refused ban is enforced")
	}
	if err := b.Check(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Check on a full disk = %v, want ErrUnavailable", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, b)
	if err := b.AddBan(ctx, Ban{Tenant: "acme", Kind: KindUser, Value: "after"}); err != nil {
		t.Fatalf("AddBan after space returned: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	now := time.Now()
	for value, want := range map[string]bool{"before": true, "during": false, "after": true} {
		if _, ok := b.Banned("acme", KindUser, value, now); ok != want {
			t.Errorf("after a restart, ban %q present = %v, want %v", value, ok, want)
		}
	}
}

// TestReadOnlyDisk: a data directory on a read-only file system stops
// gavel at start with the cause, instead of running without a store.
func TestReadOnlyDisk(t *testing.T) {
	dir := smallDisk(t, "4m")
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v: %s", err, out)
	}
	_, err = Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "read-only file system") {
		t.Fatalf("Open on a read-only file system: %v", err)
	}
}

// TestEmptyFileRefused: a 0-byte gavel.db is a truncated database, not a
// new one: Open refuses it unless told to start afresh.
func TestEmptyFileRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrEmptyFile) || !strings.Contains(err.Error(), "-init-store") {
		t.Fatalf("Open of an empty gavel.db: %v, want ErrEmptyFile telling how to start afresh", err)
	}
	b, err := Open(dir, Options{InitEmpty: true})
	if err != nil {
		t.Fatalf("Open with InitEmpty: %v", err)
	}
	defer b.Close()
	if err := b.AddBan(context.Background(), Ban{Tenant: "acme", Kind: KindUser, Value: "u"}); err != nil {
		t.Fatal(err)
	}
}
