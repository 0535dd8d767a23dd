package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
)

// TestReadyzReportsServerCheck: against a Prosody 13 without
// component_admins_as_room_owners, a gavel that discovers rooms logs an
// error naming the option and /readyz answers 503 saying it.
func TestReadyzReportsServerCheck(t *testing.T) {
	p13, err := prosodytest.Prosody13()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	bin := gavelBinary(t)
	srv, err := prosodytest.Start(t.TempDir(), prosodytest.Options{Prosody: p13, RestrictRoomCreation: true, NoAdminsAsOwners: true})
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
    discover_rooms: true
http:
  listen: %s
data_dir: %s
tenants:
  default:
    token:
      app_id: myapp
      secrets: [%q]
`, srv.ComponentAddr, srv.Secret, httpAddr, t.TempDir(), secret))
	cmd := exec.Command(bin, "-config", cfg)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	logs := readLogs(out)
	line := logs.wait(t, 0, "server check failed: rooms created by Jicofo or clients cannot be governed (discover_rooms, trust_identity, bridge)")
	if p, _ := line["problem"].(string); !strings.Contains(p, "component_admins_as_room_owners = true") || line["level"] != "error" {
		t.Errorf("logged %v", line)
	}
	resp, err := http.Get("http://" + httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "component_admins_as_room_owners = true") {
		t.Errorf("/readyz: %d %s", resp.StatusCode, body)
	}
}
