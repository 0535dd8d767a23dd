package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

const adminSecret = "admin-api-secret-0123456789"

// TestHTTPAPIEndToEnd drives the real binary over HTTP: readiness,
// metrics, a JaaS-shaped user ban that removes a present occupant, and
// DESTROY.
func TestHTTPAPIEndToEnd(t *testing.T) {
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
`, srv.ComponentAddr, srv.Secret, httpAddr, adminSecret, t.TempDir(), secret))
	cmd := exec.Command(bin, "-config", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "http://" + httpAddr
	ready := false
	for i := 0; i < 100 && !ready; i++ {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			ready = resp.StatusCode == 200
			resp.Body.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !ready {
		t.Fatal("/readyz never became 200")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room := "standup@conference.example.test"
	join := func(user, userID string, moderator bool) *xclient.Client {
		if err := srv.Register(user, prosodytest.Host, "pw"); err != nil {
			t.Fatal(err)
		}
		cl, err := xclient.Login(ctx, srv.C2SAddr, user, prosodytest.Host, "pw")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		tok, _ := auth.Mint(auth.MintRequest{Secret: []byte(secret), Issuer: "myapp", Audience: []string{"jitsi"}, Subject: "example.test", Room: "standup", UserID: userID, Moderator: moderator, TTL: time.Hour})
		if _, err := cl.Knock(ctx, prosodytest.Component, room, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Join(ctx, room, user); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	host := join("host", "host-id", true)
	join("troll", "troll-id", false)

	admin, _ := auth.Mint(auth.MintRequest{Secret: []byte(adminSecret), Subject: "example.test", Issuer: "x", Audience: []string{"x"}, TTL: time.Hour, Extra: map[string]any{"admin": true}})
	do := func(method, path, token, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
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
	post := func(path, token, body string) (int, map[string]any) { return do("POST", path, token, body) }
	if code, out := post("/jaccess/v1/access-management/example.test/ban/user/troll-id", "", ""); code != 401 {
		t.Errorf("no token: %d %v", code, out)
	}
	code, out := post("/jaccess/v1/access-management/example.test/ban/user/troll-id", admin, `{"reason":"spam"}`)
	if code != 200 || out["removed"] != float64(1) {
		t.Fatalf("ban: %d %v", code, out)
	}
	if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/troll") && p.Type == "unavailable"
	}); err != nil {
		t.Fatalf("banned user not removed: %v", err)
	}
	// The app id is prepared like a room's tenant: " EXAMPLE.TEST " is
	// example.test.
	code, out = post("/jaccess/v1/access-management/%20EXAMPLE.TEST%20/ban/user/other-id", admin, "")
	if code != 200 || out["tenant"] != "example.test" {
		t.Errorf("ban for a spelling of the tenant: %d %v", code, out)
	}
	// Bad input is a 400 with the reason, a missing ban a 404.
	code, out = do("DELETE", "/jaccess/v1/access-management/example.test/ban/user/"+strings.Repeat("u", 10000), admin, "")
	if code != 400 || out["error"] != "bad-request" {
		t.Errorf("unban of a 10,000-character user id: %d %v", code, out)
	}
	code, out = do("DELETE", "/jaccess/v1/access-management/"+strings.Repeat("t", 2000)+"/ban/user/x", admin, "")
	if code != 400 || out["error"] != "bad-request" {
		t.Errorf("unban in a 2,000-character tenant: %d %v", code, out)
	}
	code, out = do("DELETE", "/jaccess/v1/access-management/example.test/ban/user/nobody", admin, "")
	if code != 404 || out["error"] != "no-such-ban" {
		t.Errorf("unban of a missing ban: %d %v", code, out)
	}
	code, out = post("/conference-commands/v1/meeting", admin, `{"action":"DESTROY","payload":{"conferenceFullName":"`+room+`"}}`)
	if code != 200 {
		t.Fatalf("destroy: %d %v", code, out)
	}
	if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool { return p.Destroyed }); err != nil {
		t.Fatalf("destroy not seen: %v", err)
	}
	code, out = post("/conference-commands/v1/meeting", admin, `{"action":"DESTROY","payload":{"conferenceFullName":"nosuch@conference.example.test"}}`)
	if code != 404 || out["error"] != "room-not-found" {
		t.Errorf("destroy unknown room: %d %v", code, out)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`gavel_knocks_total{outcome="granted"} 2`, `gavel_commands_total{command="ban",result="ok"} 2`, "gavel_rooms", "gavel_http_requests_total"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
