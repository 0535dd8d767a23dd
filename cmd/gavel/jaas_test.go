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

// gavelHTTP is a running gavel binary with its HTTP API, against srv.
type gavelHTTP struct {
	base string
	srv  *prosodytest.Server
	// exited is closed when the gavel process ends.
	exited <-chan struct{}
}

// startGavelHTTP runs the gavel binary against a fresh Prosody with the
// given muc and tenants sections, and waits until /readyz says 200.
func startGavelHTTP(t *testing.T, mucAndTenants string) *gavelHTTP {
	t.Helper()
	return startGavelHTTPIn(t, t.TempDir(), mucAndTenants)
}

// startGavelHTTPIn is startGavelHTTP with gavel's data in dataDir.
func startGavelHTTPIn(t *testing.T, dataDir, mucAndTenants string) *gavelHTTP {
	t.Helper()
	bin := gavelBinary(t)
	srv, err := prosodytest.Start(t.TempDir(), prosodytest.Options{RestrictRoomCreation: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := l.Addr().String()
	l.Close()
	cfg := writeConfig(t, fmt.Sprintf(`
component:
  jid: mod.example.test
  address: %s
  secret: %q
http:
  listen: %s
  admin_token:
    secrets: [%q]
data_dir: %s
`, srv.ComponentAddr, srv.Secret, httpAddr, adminSecret, dataDir)+mucAndTenants)
	cmd := exec.Command(bin, "-config", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	g := &gavelHTTP{base: "http://" + httpAddr, srv: srv, exited: exited}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(g.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return g
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never became 200")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// do sends one request, as curl would, and decodes the JSON answer.
func (g *gavelHTTP) do(t *testing.T, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, g.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// login registers user and logs in.
func (g *gavelHTTP) login(t *testing.T, ctx context.Context, user string) *xclient.Client {
	t.Helper()
	if err := g.srv.Register(user, prosodytest.Host, "pw"); err != nil {
		t.Fatal(err)
	}
	cl, err := xclient.Login(ctx, g.srv.C2SAddr, user, prosodytest.Host, "pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func adminToken(t *testing.T, sub string) string {
	t.Helper()
	tok, err := auth.Mint(auth.MintRequest{Secret: []byte(adminSecret), Subject: sub, Issuer: "x", Audience: []string{"x"}, TTL: time.Hour, Extra: map[string]any{"admin": true}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// userToken is a JaaS-style user token: sub is the app id.
func userToken(t *testing.T, appID, room, userID string, moderator bool) string {
	t.Helper()
	tok, err := auth.Mint(auth.MintRequest{Secret: []byte(secret), Issuer: "myapp", Audience: []string{"jitsi"}, Subject: appID, Room: room, UserID: userID, Moderator: moderator, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

const jaasConfig = `
muc:
  - domain: conference.example.test
    tenant_subdomains: true
tenants:
  default:
    token:
      app_id: myapp
      secrets: ["` + secret + `"]
`

// TestJaaSCurlCommands runs the three JaaS curl commands (ban a user, ban a
// JWT, destroy), as written but for the host and the token, against rooms
// named both ways: "[appId]room@conference.domain" and JaaS's
// "room@conference.<appId>.domain". The user tokens and the admin token
// have sub = the app id, as JaaS's do.
func TestJaaSCurlCommands(t *testing.T) {
	g := startGavelHTTP(t, jaasConfig)
	const appID = "acme"
	admin := adminToken(t, appID)
	for i, form := range []string{"[acme]%s@conference.example.test", "%s@conference.acme.example.test"} {
		t.Run(strings.SplitN(form, "@", 2)[1], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			name := fmt.Sprintf("standup%d", i)
			room := fmt.Sprintf(form, name)
			server := "[acme]" + name + "@conference.example.test" // the room Prosody holds
			join := func(user, userID string, moderator bool) (*xclient.Client, string) {
				cl := g.login(t, ctx, fmt.Sprintf("%s%d", user, i))
				tok := userToken(t, appID, name, userID, moderator)
				res, err := cl.Knock(ctx, prosodytest.Component, room, tok)
				if err != nil {
					t.Fatalf("knock %s at %s with sub %s: %v", user, room, appID, err)
				}
				if res.Room != server {
					t.Fatalf("knock answered room %q, want %q", res.Room, server)
				}
				if _, err := cl.Join(ctx, res.Room, user); err != nil {
					t.Fatal(err)
				}
				return cl, tok
			}
			host, _ := join("host", fmt.Sprintf("host-%d", i), true)
			join("troll", fmt.Sprintf("troll-%d", i), false)
			leaker, leaked := join("leaker", fmt.Sprintf("leaker-%d", i), false)

			// curl -X POST -H "Authorization: Bearer $ADMIN" .../jaccess/v1/access-management/{appId}/ban/user/{userId}
			code, out := g.do(t, "POST", fmt.Sprintf("/jaccess/v1/access-management/%s/ban/user/troll-%d", appID, i), admin, "")
			if code != 200 || out["removed"] != float64(1) || out["tenant"] != appID {
				t.Fatalf("ban user: %d %v", code, out)
			}
			if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool {
				return strings.EqualFold(p.From, server+"/troll") && p.Type == "unavailable"
			}); err != nil {
				t.Fatalf("banned user not removed: %v", err)
			}
			// curl -X POST -H "Authorization: Bearer $ADMIN" -d '{"jwt": "eyJ..."}' .../ban/jwt
			code, out = g.do(t, "POST", "/jaccess/v1/access-management/"+appID+"/ban/jwt", admin, `{"jwt": "`+leaked+`"}`)
			if code != 200 || out["removed"] != float64(1) {
				t.Fatalf("ban jwt: %d %v", code, out)
			}
			if _, err := leaker.Knock(ctx, prosodytest.Component, room, leaked); err == nil || !strings.Contains(err.Error(), "banned") {
				t.Errorf("knock with the banned token: %v, want banned", err)
			}
			// curl -X POST -H "Authorization: Bearer $ADMIN" -d '{"action": "DESTROY", "payload": {"conferenceFullName": "..."}}' .../conference-commands/v1/meeting
			code, out = g.do(t, "POST", "/conference-commands/v1/meeting", admin, `{"action": "DESTROY", "payload": {"conferenceFullName": "`+room+`"}}`)
			if code != 200 {
				t.Fatalf("destroy: %d %v", code, out)
			}
			if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool { return p.Destroyed }); err != nil {
				t.Fatalf("destroy not seen: %v", err)
			}
			// Another app's admin may not touch the room.
			code, out = g.do(t, "POST", "/conference-commands/v1/meeting", adminToken(t, "other"), `{"action": "DESTROY", "payload": {"conferenceFullName": "`+room+`"}}`)
			if code != 403 || out["error"] != "wrong-tenant" {
				t.Errorf("destroy by another app: %d %v", code, out)
			}
		})
	}
}

// TestJitsiEndpoints drives Jitsi's own HTTP endpoints, end-meeting and
// kick-participant, and their 200, 400, 401 and 404 answers.
func TestJitsiEndpoints(t *testing.T) {
	g := startGavelHTTP(t, jaasConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := adminToken(t, "acme")
	server := "[acme]daily@conference.example.test"
	join := func(user string, moderator bool) *xclient.Client {
		cl := g.login(t, ctx, user)
		if _, err := cl.Knock(ctx, prosodytest.Component, server, userToken(t, "acme", "daily", user+"-id", moderator)); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Join(ctx, server, user); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	host := join("host", true)
	join("guest", false)

	// SET_ROLE in the JaaS shape, with the JaaS name of the room.
	setRole := `{"action": "SET_ROLE", "payload": {"conferenceFullName": "daily@conference.acme.example.test", "participantId": "guest", "role": "moderator"}}`
	for {
		code, out := g.do(t, "POST", "/conference-commands/v1/meeting", admin, setRole)
		if code == 200 {
			break
		}
		// gavel sees the guest's join a moment after the guest does.
		if code != 404 || ctx.Err() != nil {
			t.Fatalf("SET_ROLE: %d %v", code, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, server+"/guest") && p.Affiliation == "owner"
	}); err != nil {
		t.Fatalf("SET_ROLE moderator not applied: %v", err)
	}
	if code, out := g.do(t, "POST", "/conference-commands/v1/meeting", admin, `{"action": "SET_ROLE", "payload": {"conferenceFullName": "`+server+`", "participantId": "guest", "role": "owner"}}`); code != 400 {
		t.Errorf("SET_ROLE to an unknown role: %d %v", code, out)
	}

	kick := "/kick-participant?room=daily&prefix=acme"
	for _, tc := range []struct {
		name, path, token, body string
		code                    int
	}{
		{"no token", kick, "", `{"participantId": "guest"}`, 401},
		{"another tenant's token", kick, adminToken(t, "other"), `{"participantId": "guest"}`, 401},
		{"no body", kick, admin, "", 400},
		{"both fields", kick, admin, `{"participantId": "guest", "number": "+1555"}`, 400},
		{"no room", "/kick-participant?prefix=acme", admin, `{"participantId": "guest"}`, 400},
		{"no such participant", kick, admin, `{"participantId": "nobody"}`, 404},
		{"no such room", "/kick-participant?room=nosuch&prefix=acme", admin, `{"participantId": "guest"}`, 404},
		{"kick", kick, admin, `{"participantId": "guest"}`, 200},
	} {
		if code, out := g.do(t, "PUT", tc.path, tc.token, tc.body); code != tc.code {
			t.Errorf("%s: %d %v, want %d", tc.name, code, out, tc.code)
		}
	}
	if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, server+"/guest") && p.Type == "unavailable"
	}); err != nil {
		t.Fatalf("kicked participant not removed: %v", err)
	}

	end := "/end-meeting?conference=daily@conference.acme.example.test"
	for _, tc := range []struct {
		name, path, token string
		code              int
	}{
		{"no token", end, "", 401},
		{"another tenant's token", end, adminToken(t, "other"), 401},
		{"no conference", "/end-meeting", admin, 400},
		{"no such room", "/end-meeting?conference=nosuch@conference.acme.example.test", admin, 404},
		{"end", end + "&silent-reconnect=true", admin, 200},
	} {
		if code, out := g.do(t, "POST", tc.path, tc.token, ""); code != tc.code {
			t.Errorf("%s: %d %v, want %d", tc.name, code, out, tc.code)
		}
	}
	if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool { return p.Destroyed }); err != nil {
		t.Fatalf("end-meeting did not destroy the room: %v", err)
	}
}
