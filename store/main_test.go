package store

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gavelxmpp/gavel/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Environment of the helper process: what it does and in which data dir.
const (
	helperEnv    = "GAVEL_STORE_HELPER"
	helperDirEnv = "GAVEL_STORE_HELPER_DIR"
	helperCount  = 50
)

// helperBan is the i-th ban the "add" helper stores.
func helperBan(i int) Ban {
	return Ban{
		Tenant:  "acme",
		Kind:    KindUser,
		Value:   fmt.Sprintf("user-%03d", i),
		Reason:  strings.Repeat("spam ", 100),
		By:      "admin@example.com",
		Created: time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC),
	}
}

// TestHelperProcess is not a test: it is the child process that the
// kill -9 and lock tests start. In mode "add" it stores helperCount bans,
// printing "ACK i" as soon as AddBan returns for the i-th; in mode "hold" it
// opens the store and prints "OPEN". Then it sleeps until it is killed (or,
// if the parent vanished, for at most a minute).
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	dir := os.Getenv(helperDirEnv)
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Printf("ERR %v\n", err)
		os.Exit(2)
	}
	switch mode {
	case "add":
		for i := range helperCount {
			if err := s.AddBan(context.Background(), helperBan(i)); err != nil {
				fmt.Printf("ERR %v\n", err)
				os.Exit(2)
			}
			fmt.Printf("ACK %d\n", i)
		}
		fmt.Println("DONE")
	case "hold":
		fmt.Println("OPEN")
	}
	time.Sleep(time.Minute)
	os.Exit(3)
}

// helper is a running helper process.
type helper struct {
	cmd    *exec.Cmd
	lines  *bufio.Scanner
	cancel context.CancelFunc
}

// startHelper runs the test binary as a helper process in mode on dir.
func startHelper(t *testing.T, mode, dir string) *helper {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, lines: bufio.NewScanner(out), cancel: cancel}
	t.Cleanup(h.kill)
	return h
}

// next returns the helper's next line of output, or fails the test if it
// ended.
func (h *helper) next(t *testing.T) string {
	t.Helper()
	if !h.lines.Scan() {
		err := h.lines.Err()
		if err == nil {
			err = io.EOF
		}
		t.Fatalf("helper process output ended: %v", err)
	}
	line := h.lines.Text()
	if strings.HasPrefix(line, "ERR ") {
		t.Fatalf("helper process: %s", line)
	}
	return line
}

// kill sends SIGKILL and reaps the process; it may be called more than once.
func (h *helper) kill() {
	if h.cmd.ProcessState == nil {
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
	}
	h.cancel()
}
