package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFullDiskAnswers503: while the data directory is full, a ban is
// answered 503 store-unavailable (nothing acknowledged), /readyz says the
// store is failing, gavel keeps running, and once space returns /readyz is
// 200 again and bans are stored.
func TestFullDiskAnswers503(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	dataDir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dataDir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dataDir).Run() })

	g := startGavelHTTPIn(t, dataDir, fmt.Sprintf(`
muc:
  - domain: conference.example.test
tenants:
  default:
    token:
      app_id: myapp
      secrets: [%q]
`, secret))
	readyz := func() (int, string) {
		resp, err := http.Get(g.base + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitReady := func(want int) string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, body := readyz()
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz = %d %s, want %d", code, body, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	admin := adminToken(t, "example.test")
	ban := func(user, reason string) (int, map[string]any) {
		return g.do(t, "POST", "/jaccess/v1/access-management/example.test/ban/user/"+user, admin, fmt.Sprintf(`{"reason":%q}`, reason))
	}

	// Fill the disk.
	filler := filepath.Join(dataDir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()

	// The reason is large so that a ban needs new pages in gavel.db; a few
	// may still fit in pages freed earlier.
	code, out := ban("during-full", strings.Repeat("r", 900))
	for i := 0; code == 200 && i < 50; i++ {
		code, out = ban(fmt.Sprintf("during-full-%d", i), strings.Repeat("r", 900))
	}
	if code != 503 || out["error"] != "store-unavailable" || !strings.Contains(fmt.Sprint(out["message"]), "no space left") {
		t.Fatalf("ban on a full disk: %d %v, want 503 store-unavailable naming the cause", code, out)
	}
	if body := waitReady(503); !strings.Contains(body, "no space left") {
		t.Errorf("/readyz while full says %q", body)
	}
	select {
	case <-g.exited:
		t.Fatal("gavel exited on a full disk")
	default:
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitReady(200)
	if code, out := ban("after-full", "spam"); code != 200 {
		t.Fatalf("ban after space returned: %d %v", code, out)
	}
}
