package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
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

	bin := gavelBinary(t)
	srv, err := prosodytest.Start(t.TempDir(), prosodytest.Options{RestrictRoomCreation: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	httpAddr := l.Addr().String()
	l.Close()
	cfg := writeConfig(t, fmt.Sprintf(`
component:
  jid: mod.example.test
  address: %s
  secret: %q
muc:
  - domain: conference.example.test
http:
  listen: %s
  admin_token:
    secrets: [%q]
data_dir: %s
tenants:
  default:
    token:
      app_id: myapp
      secrets: [%q]
`, srv.ComponentAddr, srv.Secret, httpAddr, adminSecret, dataDir, secret))
	cmd := exec.Command(bin, "-config", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill(); <-exited }()
	base := "http://" + httpAddr
	readyz := func() (int, string) {
		resp, err := http.Get(base + "/readyz")
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
	waitReady(200)

	admin, _ := auth.Mint(auth.MintRequest{Secret: []byte(adminSecret), Subject: "example.test", Issuer: "x", Audience: []string{"x"}, TTL: time.Hour, Extra: map[string]any{"admin": true}})
	ban := func(user, reason string) (int, map[string]any) {
		body := fmt.Sprintf(`{"reason":%q}`, reason)
		req, _ := http.NewRequest("POST", base+"/jaccess/v1/access-management/example.test/ban/user/"+user, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out
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

	// The reason is large so that the ban needs new pages in gavel.db.
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
	case err := <-exited:
		t.Fatalf("gavel exited on a full disk: %v", err)
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
