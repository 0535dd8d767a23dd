package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// logLines collects gavel's JSON log lines and lets a test wait for one.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   []string
	added chan struct{}
}

func readLogs(r io.Reader) *logLines {
	l := &logLines{added: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var m map[string]any
			_ = json.Unmarshal(sc.Bytes(), &m)
			l.mu.Lock()
			l.lines = append(l.lines, m)
			l.raw = append(l.raw, sc.Text())
			l.mu.Unlock()
			select {
			case l.added <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// since returns the lines after the first n.
func (l *logLines) since(n int) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.lines[n:]...)
}

func (l *logLines) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// wait returns the first line after the first n whose msg is msg.
func (l *logLines) wait(t *testing.T, n int, msg string) map[string]any {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		for _, m := range l.since(n) {
			if m["msg"] == msg {
				return m
			}
		}
		select {
		case <-l.added:
		case <-deadline:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("no log line %q within 20s; log:\n%s", msg, strings.Join(l.raw, "\n"))
		}
	}
}

// TestReloadOnSIGHUP runs the binary against Prosody, changes the file and
// sends SIGHUP: a new token secret, admin API key and admins take effect
// while an occupant stays in its room and the XMPP connection stays up; a
// restart-only change is reported; an invalid file is refused with -check's
// messages and changes nothing.
func TestReloadOnSIGHUP(t *testing.T) {
	bin := gavelBinary(t)
	srv, err := prosodytest.Start(t.TempDir(), prosodytest.Options{RestrictRoomCreation: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	httpAddr := l.Addr().String()
	l.Close()
	const (
		oldToken = "old-token-secret-0123456789"
		newToken = "new-token-secret-0123456789"
		oldAdmin = "old-admin-secret-0123456789"
		newAdmin = "new-admin-secret-0123456789"
	)
	data := t.TempDir()
	config := func(tokenSecret, adminSecret, nick, extra string) string {
		return fmt.Sprintf(`
component:
  jid: mod.example.test
  address: %s
  secret: %q
  nick: %s
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
%s`, srv.ComponentAddr, srv.Secret, nick, httpAddr, adminSecret, data, tokenSecret, extra)
	}
	cfg := writeConfig(t, config(oldToken, oldAdmin, "gavel", ""))
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
	logs.wait(t, 0, "component connected")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	room := "standup@conference.example.test"
	mint := func(key, user string) string {
		tok, err := auth.Mint(auth.MintRequest{Secret: []byte(key), Issuer: "myapp", Audience: []string{"jitsi"}, Subject: "example.test", Room: "standup", UserID: user, Moderator: true, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	client := func(user string) *xclient.Client {
		if err := srv.Register(user, prosodytest.Host, "pw"); err != nil {
			t.Fatal(err)
		}
		cl, err := xclient.Login(ctx, srv.C2SAddr, user, prosodytest.Host, "pw")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	knock := func(cl *xclient.Client, key, user string) error {
		_, err := cl.Knock(ctx, prosodytest.Component, room, mint(key, user))
		return err
	}
	wantBadSignature := func(err error, what string) {
		t.Helper()
		var xe *xclient.Error
		if !errors.As(err, &xe) || xe.App != "token-bad-signature" {
			t.Errorf("%s: knock gave %v, want token-bad-signature", what, err)
		}
	}
	admin := func(key string) int {
		tok, _ := auth.Mint(auth.MintRequest{Secret: []byte(key), Subject: "example.test", Issuer: "x", Audience: []string{"x"}, TTL: time.Hour, Extra: map[string]any{"admin": true}})
		req, _ := http.NewRequest("POST", "http://"+httpAddr+"/jaccess/v1/access-management/example.test/ban/user/nobody-id", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	alice := client("alice")
	if err := knock(alice, oldToken, "alice-id"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Join(ctx, room, "alice"); err != nil {
		t.Fatal(err)
	}
	bob := client("bob")
	wantBadSignature(knock(bob, newToken, "bob-id"), "new secret before the reload")
	if code := admin(newAdmin); code != http.StatusUnauthorized {
		t.Errorf("new admin key before the reload: %d, want 401", code)
	}

	// A valid change, with one key that needs a restart.
	if err := os.WriteFile(cfg, []byte(config(newToken, newAdmin, "gavel2", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	n := logs.count()
	_ = cmd.Process.Signal(syscall.SIGHUP)
	logs.wait(t, n, "config reloaded")
	restart := false
	for _, m := range logs.since(n) {
		if m["msg"] == "config reload: this change needs a restart; the running value stays" {
			if m["key"] != "component.nick" {
				t.Errorf("needs a restart: key %v, want component.nick", m["key"])
			}
			restart = true
		}
	}
	if !restart {
		t.Error("the nick change was not reported as needing a restart")
	}
	if err := knock(bob, newToken, "bob-id"); err != nil {
		t.Fatalf("new secret after the reload: %v", err)
	}
	if _, err := bob.Join(ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	// Alice is still there: bob sees her in the room.
	if _, err := bob.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/alice") && p.Type == ""
	}); err != nil {
		t.Fatalf("alice is not in the room after the reload: %v", err)
	}
	carol := client("carol")
	wantBadSignature(knock(carol, oldToken, "carol-id"), "old secret after the reload")
	if code := admin(newAdmin); code != http.StatusOK {
		t.Errorf("new admin key after the reload: %d, want 200", code)
	}
	if code := admin(oldAdmin); code != http.StatusUnauthorized {
		t.Errorf("old admin key after the reload: %d, want 401", code)
	}

	// An invalid file: refused with -check's lines; nothing changes.
	bad := config(oldToken, oldAdmin, "gavel", "    policy: bogus\n    knocks_per_minute: 0\n")
	if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	check, _ := exec.Command(bin, "-config", cfg, "-check").CombinedOutput()
	wantLines := strings.Split(strings.TrimSpace(string(check)), "\n")
	if len(wantLines) != 2 {
		t.Fatalf("-check printed %q, want two lines", check)
	}
	n = logs.count()
	_ = cmd.Process.Signal(syscall.SIGHUP)
	logs.wait(t, n, "config reload refused: the running config stays")
	// The refusal lines come together; wait for the second one.
	var got []string
	for deadline := time.Now().Add(5 * time.Second); len(got) < len(wantLines) && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		got = got[:0]
		for _, m := range logs.since(n) {
			if m["msg"] == "config reload refused: the running config stays" {
				got = append(got, fmt.Sprint(m["error"]))
			}
		}
	}
	if strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("reload refused with\n%s\nwant -check's\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
	}
	dave := client("dave")
	if err := knock(dave, newToken, "dave-id"); err != nil {
		t.Errorf("the running config changed after an invalid file: new secret refused: %v", err)
	}
	wantBadSignature(knock(dave, oldToken, "dave-id"), "old secret after an invalid file")
	if code := admin(newAdmin); code != http.StatusOK {
		t.Errorf("admin key after an invalid file: %d, want 200", code)
	}
	for _, m := range logs.since(0) {
		if msg, _ := m["msg"].(string); strings.HasPrefix(msg, "component disconnected") || msg == "gavel stopped" {
			t.Errorf("%s: %v", msg, m)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("gavel exited with %v after SIGTERM", err)
	}
}
