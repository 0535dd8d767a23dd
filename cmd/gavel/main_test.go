package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

const secret = "cmd-test-secret-0123456789"

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// gavelBinary builds the gavel binary once for all tests that run it.
func gavelBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gavel-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "gavel")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gavel.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const baseConfig = `
component:
  jid: mod.example.test
  secret: s3cret
muc:
  - domain: conference.example.test
tenants:
  default:
    token:
      app_id: myapp
      secrets: ["` + secret + `"]
`

func TestCheck(t *testing.T) {
	t.Setenv("GAVEL_COMPONENT_SECRET", "example")
	good := writeConfig(t, baseConfig)
	bad := writeConfig(t, baseConfig+"  acme:\n    polcy: token\n")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"valid", []string{"-config", good, "-check"}, 0, good + ": ok", ""},
		{"unknown key", []string{"-config", bad, "-check"}, 1, "", `unknown key "tenants.acme.polcy"`},
		{"missing file", []string{"-config", "/nonexistent.yml", "-check"}, 1, "", "no such file"},
		{"no config", []string{"-check"}, 2, "", "usage: gavel -config FILE"},
		{"stray argument", []string{"-config", good, "extra"}, 2, "", "usage"},
		{"version", []string{"-version"}, 0, "gavel ", ""},
		{"example config", []string{"-config", "../../gavel.example.yml", "-check"}, 0, "gavel.example.yml: ok", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %s)", code, tt.code, errb.String())
			}
			if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stdout %q stderr %q", out.String(), errb.String())
			}
		})
	}
}

// TestCheckOneLinePerError: -check exits non-zero and prints one line per
// error, each naming the file, the line and the key path.
func TestCheckOneLinePerError(t *testing.T) {
	cfg := writeConfig(t, `component:
  jid: mod.example.test
  secret: s3cret
  reconnect_min: fast
muc:
  - domain: conference.example.test
  - domain: [conference.other.test]
    trust_identity: maybe
tenants:
  acme:
    knocks_per_minute: lots
`)
	want := strings.Join([]string{
		"config: " + cfg + `:4: component.reconnect_min: must be a duration like 250ms, 30s or 5m, got "fast"`,
		"config: " + cfg + `:7: muc[1].domain: must be a single value, got a list`,
		"config: " + cfg + `:8: muc[1].trust_identity: must be true or false, got "maybe"`,
		"config: " + cfg + `:11: tenants.acme.knocks_per_minute: must be a whole number, got "lots"`,
	}, "\n") + "\n"
	var out, errb bytes.Buffer
	if code := run([]string{"-config", cfg, "-check"}, &out, &errb); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if errb.String() != want || out.Len() != 0 {
		t.Errorf("stdout %q\nstderr:\n%s\nwant:\n%s", out.String(), errb.String(), want)
	}
}

func TestTokenVerify(t *testing.T) {
	cfg := writeConfig(t, baseConfig)
	room := "standup@conference.example.test"
	mk := func(mut func(*auth.MintRequest)) string {
		r := auth.MintRequest{Secret: []byte(secret), Issuer: "myapp", Audience: []string{"jitsi"}, Subject: "example.test", Room: "standup", UserID: "alice", Moderator: true, TTL: time.Hour}
		if mut != nil {
			mut(&r)
		}
		tok, err := auth.Mint(r)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		want  string
	}{
		{"valid", []string{"-config", cfg, "-room", room, mk(nil)}, "", 0, "valid: accepted for room standup@conference.example.test"},
		{"from stdin", []string{"-config", cfg, "-room", room, "-"}, mk(nil) + "\n", 0, "moderator: true"},
		{"expired", []string{"-config", cfg, "-room", room, mk(func(r *auth.MintRequest) {
			r.TTL = 0
			r.Expires = time.Now().Add(-time.Hour)
			r.IssuedAt = time.Now().Add(-2 * time.Hour)
		})}, "", 1, "refused: expired"},
		{"wrong room", []string{"-config", cfg, "-room", "retro@conference.example.test", mk(nil)}, "", 1, "refused: wrong-room"},
		{"json", []string{"-config", cfg, "-room", room, "-json", "garbage"}, "", 1, `"reason": "malformed"`},
		{"bad room flag", []string{"-config", cfg, "-room", "no-at", mk(nil)}, "", 2, ""},
		{"no config", []string{"-room", room, mk(nil)}, "", 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := tokenVerify(tt.args, strings.NewReader(tt.stdin), &out, &errb)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stdout %s stderr %s", code, tt.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("stdout %q lacks %q", out.String(), tt.want)
			}
		})
	}
}

// TestTokenVerifyWithoutComponentSecret: verifying a token connects to
// nothing, so it works where only the token keys are available (a
// developer's machine, a CI job), not the component secret.
func TestTokenVerifyWithoutComponentSecret(t *testing.T) {
	t.Setenv("GAVEL_TEST_TOKEN_SECRET", secret)
	cfg := writeConfig(t, `
component:
  jid: mod.example.test
  secret_env: GAVEL_SURELY_UNSET_COMPONENT_SECRET
muc:
  - domain: conference.example.test
http:
  listen: 127.0.0.1:8080
  admin_token:
    secret_files: [/nonexistent/admin.secret]
tenants:
  default:
    token:
      app_id: myapp
      secret_envs: [GAVEL_TEST_TOKEN_SECRET]
`)
	room := "standup@conference.example.test"
	mint := func(key string) string {
		tok, err := auth.Mint(auth.MintRequest{Secret: []byte(key), Issuer: "myapp", Audience: []string{"jitsi"}, Subject: "example.test", Room: "standup", UserID: "alice", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(secret)
	tests := []struct {
		name   string
		token  string
		code   int
		stdout string
	}{
		{"good token", good, 0, "valid: accepted for room standup@conference.example.test"},
		{"signed with another key", mint("another-secret-0123456789"), 1, "refused: bad-signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run([]string{"token", "verify", "-config", cfg, "-room", room, tt.token}, &out, &errb)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stdout %s stderr %s", code, tt.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tt.stdout) {
				t.Errorf("stdout %q lacks %q", out.String(), tt.stdout)
			}
		})
	}
	// The token keys are still checked.
	t.Setenv("GAVEL_TEST_TOKEN_SECRET", "")
	var out, errb bytes.Buffer
	if code := run([]string{"token", "verify", "-config", cfg, "-room", room, good}, &out, &errb); code != 2 {
		t.Errorf("exit %d, want 2; stderr %s", code, errb.String())
	}
	if want := "tenants.default.token.secret_envs[0]: environment variable GAVEL_TEST_TOKEN_SECRET is not set or empty"; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr %q lacks %q", errb.String(), want)
	}
}

func TestTokenMintRoundTrip(t *testing.T) {
	var out, errb bytes.Buffer
	t.Setenv("MINT_SECRET", secret)
	if code := run([]string{"token", "mint", "-secret-env", "MINT_SECRET", "-iss", "myapp", "-sub", "example.test", "-room", "standup", "-user-id", "u1", "-moderator"}, &out, &errb); code != 0 {
		t.Fatalf("mint exit %d: %s", code, errb.String())
	}
	cfg := writeConfig(t, baseConfig)
	var vout bytes.Buffer
	if code := tokenVerify([]string{"-config", cfg, "-room", "standup@conference.example.test", strings.TrimSpace(out.String())}, nil, &vout, &errb); code != 0 {
		t.Fatalf("minted token refused: %s", vout.String())
	}
	if code := run([]string{"token", "mint"}, &out, &errb); code != 2 {
		t.Errorf("mint without a key: exit %d", code)
	}
}

// TestAcknowledgedBanSurvivesKill9 runs the real binary: a ban acknowledged
// over an ad-hoc command must survive gavel being killed right after.
func TestAcknowledgedBanSurvivesKill9(t *testing.T) {
	bin := gavelBinary(t)
	srv, err := prosodytest.Start(t.TempDir(), prosodytest.Options{RestrictRoomCreation: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	data := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`
component:
  jid: mod.example.test
  address: %s
  secret: %q
muc:
  - domain: conference.example.test
data_dir: %s
admins: [admin@example.test]
log:
  level: debug
tenants:
  default:
    token:
      app_id: myapp
      secrets: [%q]
`, srv.ComponentAddr, srv.Secret, data, secret))
	for _, u := range []string{"admin", "user"} {
		if err := srv.Register(u, prosodytest.Host, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "-config", cfg)
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := xclient.Login(ctx, srv.C2SAddr, "admin", prosodytest.Host, "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	waitUp := func() {
		for i := 0; i < 100; i++ {
			qctx, c := context.WithTimeout(ctx, time.Second)
			err := admin.IQ(qctx, prosodytest.Component, "get", `<ping xmlns='urn:xmpp:ping'/>`, nil)
			c()
			if err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("gavel did not connect")
	}

	g := start()
	waitUp()
	for round := 0; round < 3; round++ {
		user := fmt.Sprintf("victim-%d", round)
		var res struct {
			Command struct {
				Status string `xml:"status,attr"`
			} `xml:"http://jabber.org/protocol/commands command"`
		}
		err := admin.IQ(ctx, prosodytest.Component, "set", `<command xmlns='http://jabber.org/protocol/commands' node='ban-user'><x xmlns='jabber:x:data' type='submit'><field var='tenant'><value>example.test</value></field><field var='user'><value>`+user+`</value></field></x></command>`, &res)
		if err != nil || res.Command.Status != "completed" {
			t.Fatalf("ban not acknowledged: %v %+v", err, res)
		}
		// Acknowledged: kill -9 at once.
		_ = g.Process.Signal(syscall.SIGKILL)
		_ = g.Wait()
		// Prosody must notice the dead component before a new one may connect.
		time.Sleep(200 * time.Millisecond)

		g = start()
		waitUp()
		cl, err := xclient.Login(ctx, srv.C2SAddr, "user", prosodytest.Host, "pw")
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := auth.Mint(auth.MintRequest{Secret: []byte(secret), Issuer: "myapp", Audience: []string{"jitsi"}, Subject: "example.test", Room: "*", UserID: user, TTL: time.Hour})
		_, err = cl.Knock(ctx, prosodytest.Component, "room@conference.example.test", tok)
		cl.Close()
		var xe *xclient.Error
		if !errors.As(err, &xe) || xe.App != "banned" {
			t.Fatalf("round %d: ban lost after kill -9: knock gave %v", round, err)
		}
	}
}

// TestStoreErrorsAtStart: a second gavel on the same data_dir, or an
// unusable one, stops at once with a message saying why.
func TestStoreErrorsAtStart(t *testing.T) {
	bin := gavelBinary(t)
	data := t.TempDir()
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFor := func(dir string) string {
		return writeConfig(t, fmt.Sprintf("component:\n  jid: mod.example.test\n  address: 127.0.0.1:1\n  secret: x\nmuc:\n  - domain: conference.example.test\ndata_dir: %s\n", dir))
	}
	first := exec.Command(bin, "-config", cfgFor(data))
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Process.Kill(); _ = first.Wait() }()
	time.Sleep(300 * time.Millisecond)
	tests := []struct {
		name, dir, want string
	}{
		{"locked", data, "locked by another process"},
		{"not a directory", notDir, "store:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "-config", cfgFor(tt.dir)).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want 1\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

// TestHTTPErrorsAtStart: when http.listen cannot be bound, gavel stops at
// start, before connecting, with a message naming the address and the
// cause, instead of running without health checks or the API; so it does
// when the API cannot start.
func TestHTTPErrorsAtStart(t *testing.T) {
	bin := gavelBinary(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// A file that exists (validation only checks that) but holds no key.
	notPEM := filepath.Join(t.TempDir(), "admin.pem")
	if err := os.WriteFile(notPEM, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	tests := []struct {
		name, listen, extra, want string
	}{
		{"port taken", taken.Addr().String(), "", "gavel: http.listen " + taken.Addr().String() + ": address already in use"},
		// 192.0.2.0/24 is TEST-NET-1, never an address of this machine.
		{"address not local", "192.0.2.1:8080", "", "gavel: http.listen 192.0.2.1:8080: cannot assign requested address"},
		// Bound, but the API cannot start: gavel must not run on without it.
		{"admin key unusable", freeAddr, "  admin_token:\n    public_keys: [" + notPEM + "]\n", "gavel: config: http.admin_token.public_keys[0]: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Nothing listens on the component port either: without the
			// fix gavel would keep retrying it, never exiting.
			cfg := writeConfig(t, fmt.Sprintf("component:\n  jid: mod.example.test\n  address: 127.0.0.1:1\n  secret: x\nmuc:\n  - domain: conference.example.test\nhttp:\n  listen: %s\n%sdata_dir: %s\n", tt.listen, tt.extra, t.TempDir()))
			// The timeout only bounds a failure; a passing run exits at once.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "-config", cfg).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("gavel still running after 30s, want a quick exit with %q:\n%s", tt.want, out)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want 1\n%s", err, out)
			}
			if !strings.Contains(string(out), "\n"+tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
			if tt.extra == "" && strings.Contains(string(out), "component unreachable") {
				t.Errorf("gavel tried to connect before binding http.listen:\n%s", out)
			}
		})
	}
}
