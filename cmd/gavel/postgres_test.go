package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/pgtest"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/store"
)

// TestPostgresStoreEndToEnd runs the gavel binary on the shared store: a
// ban through the API is committed to PostgreSQL and removes the occupant;
// a second gavel for the same MUC refuses to start; with PostgreSQL killed,
// /readyz and a ban answer 503, and both recover after its restart.
func TestPostgresStoreEndToEnd(t *testing.T) {
	bin := gavelBinary(t)
	pg, dsn, ctx := startPostgres(t, 90*time.Second)
	srv, err := prosodytest.Start(t.TempDir(), prosodytest.Options{RestrictRoomCreation: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	httpAddr := l.Addr().String()
	l.Close()
	config := func(jid string) string {
		return writeConfig(t, fmt.Sprintf(`
component:
  jid: %s
  address: %s
  secret: %q
muc:
  - domain: conference.example.test
http:
  listen: %s
  admin_token:
    secrets: [%q]
data_dir: %s
store:
  postgres:
    dsn_env: GAVEL_TEST_PG_DSN
    reconnect_min: 20ms
    reconnect_max: 200ms
tenants:
  default:
    token:
      app_id: myapp
      secrets: [%q]
`, jid, srv.ComponentAddr, srv.Secret, httpAddr, adminSecret, t.TempDir(), secret))
	}
	t.Setenv("GAVEL_TEST_PG_DSN", dsn)
	cmd := exec.Command(bin, "-config", config("mod.example.test"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "http://" + httpAddr
	readyz := func() int {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitReady := func(want int) {
		t.Helper()
		for i := 0; readyz() != want; i++ {
			if i > 300 {
				t.Fatalf("/readyz never became %d; gavel's log:\n%s", want, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitReady(200)

	room := "standup@conference.example.test"
	join := func(user, userID string) *xclient.Client {
		if err := srv.Register(user, prosodytest.Host, "pw"); err != nil {
			t.Fatal(err)
		}
		cl, err := xclient.Login(ctx, srv.C2SAddr, user, prosodytest.Host, "pw")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		tok, _ := auth.Mint(auth.MintRequest{Secret: []byte(secret), Issuer: "myapp", Audience: []string{"jitsi"}, Subject: "example.test", Room: "standup", UserID: userID, Moderator: userID == "host-id", TTL: time.Hour})
		if _, err := cl.Knock(ctx, prosodytest.Component, room, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Join(ctx, room, user); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	host := join("host", "host-id")
	join("troll", "troll-id")

	admin, _ := auth.Mint(auth.MintRequest{Secret: []byte(adminSecret), Subject: "example.test", Issuer: "x", Audience: []string{"x"}, TTL: time.Hour, Extra: map[string]any{"admin": true}})
	ban := func(user string) (int, string) {
		req, _ := http.NewRequest("POST", base+"/jaccess/v1/access-management/example.test/ban/user/"+user, strings.NewReader(`{"reason":"spam"}`))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := ban("troll-id"); code != 200 {
		t.Fatalf("ban: %d %s", code, body)
	}
	if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/troll") && p.Type == "unavailable"
	}); err != nil {
		t.Fatalf("banned user not removed: %v", err)
	}
	other, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Scope: "reader.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := other.Banned("example.test", store.KindUser, "troll-id", time.Now()); !ok {
		t.Error("the acknowledged ban is not in PostgreSQL")
	}
	other.Close()

	// A second gavel for the same MUC refuses to start, naming the first.
	out, err := exec.Command(bin, "-config", config("mod2.example.test")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another gavel (mod.example.test) governs the MUC service conference.example.test") {
		t.Errorf("second gavel for the same MUC: %v\n%s", err, out)
	}

	// PostgreSQL down: not ready, bans refused with the reason.
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	waitReady(503)
	if code, body := ban("late-id"); code != 503 || !strings.Contains(body, "store-unavailable") {
		t.Errorf("ban while PostgreSQL is down: %d %s", code, body)
	}
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitReady(200)
	if code, body := ban("late-id"); code != 200 {
		t.Errorf("ban after PostgreSQL is back: %d %s", code, body)
	}
}

// startPostgres starts a PostgreSQL for the test (stopped at its end) with a
// fresh database, and returns it, the database's DSN and a context that
// bounds the test to d.
func startPostgres(t *testing.T, d time.Duration) (*pgtest.Server, string, context.Context) {
	t.Helper()
	pg, err := pgtest.Start(pgtest.Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	dsn, err := pg.CreateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return pg, dsn, ctx
}
