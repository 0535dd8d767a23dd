package ejabberdtest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/xclient"
)

// The harness starts, registers, restarts and stops a server, and leaves no
// process behind: neither the VM's helpers nor an epmd; on the system's
// ejabberd (23.01) and on the 24.12 make deps-servers unpacks beside it.
func TestStartRegisterRestartClose(t *testing.T) {
	for _, tc := range []struct{ name, root, version string }{
		{"ejabberd-23", DefaultRoot(), "23."},
		{"ejabberd-24", Root24(), "24.12"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := InstalledAt(tc.root); err != nil {
				// On CI every server must be there; elsewhere make
				// deps-servers may not have run.
				if os.Getenv("GAVEL_SKIP_EJABBERD") == "1" || os.Getenv("CI") != "true" {
					t.Skip(err)
				}
				t.Fatal(err)
			}
			v, err := Version(tc.root)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(v, tc.version) {
				t.Fatalf("%s is ejabberd %s, want %s", tc.root, v, tc.version)
			}
			t.Logf("ejabberd %s in %s", v, tc.root)
			startRegisterRestartClose(t, tc.root)
		})
	}
}

func startRegisterRestartClose(t *testing.T, root string) {
	dir, err := os.MkdirTemp("", "gavel-ejabberdtest-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := Start(dir, Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pid := s.PID()
	login := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := xclient.Login(ctx, s.C2SAddr, "alice", Host, "pw")
		if err != nil {
			t.Fatalf("login: %v\n%s", err, s.Log())
		}
		c.Close()
	}
	if err := s.Register("alice", Host, "pw"); err != nil {
		t.Fatal(err)
	}
	if err := s.Register("alice", Host, "pw"); err != nil {
		t.Errorf("registering again: %v", err)
	}
	login()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	login() // accounts survive a restart
	pid2 := s.PID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{pid, pid2} {
		if err := syscall.Kill(-p, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("processes are left in group %d: %v", p, err)
		}
	}
	// Nothing started an epmd with this server's environment.
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmd, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		if !bytes.Contains(cmd, []byte("epmd")) {
			continue
		}
		env, _ := os.ReadFile(filepath.Join(p, "environ"))
		if bytes.Contains(env, []byte("HOME="+dir+"\x00")) {
			t.Errorf("an epmd was started: %s", p)
		}
	}
}
