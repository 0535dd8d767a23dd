package clients_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/loopback"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// tokenSecret signs the test tokens (tenant "default", issuer "clients").
const tokenSecret = "clients-test-secret-0123456789abcdef"

// adminSecret signs the admin tokens of the API and the console.
const adminSecret = "clients-admin-secret-0123456789abcdef"

// password is every test user's password.
const password = "pw"

// harness is one Prosody (with WebSocket) and one gavel, shared by the
// tests of this package and started by the first test that needs them.
type harness struct {
	dir   string
	gavel string // the binary, for `gavel token mint`
	srv   *prosodytest.Server
	http  string // gavel's HTTP address (API and console)
	proc  *exec.Cmd
	done  chan error
}

var (
	shared     *harness
	sharedErr  error
	sharedOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "gavel and Prosody files kept: %s\n", shared.dir)
		}
		shared.close(code == 0)
	}
	os.Exit(code)
}

// need returns the shared Prosody and gavel, starting them on first use.
func need(t *testing.T) *harness {
	t.Helper()
	if _, err := prosodytest.Binary(); err != nil {
		missing(t, err.Error())
	}
	sharedOnce.Do(func() { shared, sharedErr = start() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// missing skips a test whose tool is not installed, except on CI
// (CI=true), where it is a failure: `make clients-deps` installs it.
func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (make clients-deps installs it)", what)
	}
	t.Skipf("%s: run make clients-deps", what)
}

// tool returns the path of the first of names that exists (a command
// name on PATH or an absolute path), or calls missing.
func tool(t *testing.T, why string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	missing(t, fmt.Sprintf("%s: none of %s found", why, strings.Join(names, ", ")))
	return ""
}

func start() (h *harness, err error) {
	dir, err := os.MkdirTemp("", "gavel-clients-")
	if err != nil {
		return nil, err
	}
	h = &harness{dir: dir, gavel: filepath.Join(dir, "gavel")}
	defer func() {
		if err != nil {
			h.close(false)
			err = fmt.Errorf("%w (files: %s)", err, dir)
		}
	}()
	if out, err := exec.Command("go", "build", "-o", h.gavel, "../cmd/gavel").CombinedOutput(); err != nil {
		return h, fmt.Errorf("build gavel: %v\n%s", err, out)
	}
	h.srv, err = prosodytest.Start(filepath.Join(dir, "prosody"), prosodytest.Options{RestrictRoomCreation: true, WebSocket: true})
	if err != nil {
		return h, err
	}
	ports, err := loopback.Ports(1)
	if err != nil {
		return h, err
	}
	cfg := filepath.Join(dir, "gavel.yml")
	h.http = fmt.Sprintf("127.0.0.1:%d", ports[0])
	body := fmt.Sprintf(gavelConfig, h.srv.ComponentAddr, h.srv.Secret, ports[0], adminSecret, filepath.Join(dir, "data"), tokenSecret)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		return h, err
	}
	logf, err := os.Create(filepath.Join(dir, "gavel.log"))
	if err != nil {
		return h, err
	}
	h.proc = exec.Command(h.gavel, "-config", cfg)
	h.proc.Stdout, h.proc.Stderr = logf, logf
	h.proc.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.proc.Start(); err != nil {
		logf.Close()
		return h, err
	}
	h.done = make(chan error, 1)
	go func() { h.done <- h.proc.Wait(); logf.Close() }()
	return h, h.waitConnected()
}

// waitConnected asks gavel for disco#info, as a client would, until it
// answers: then it is connected to Prosody.
func (h *harness) waitConnected() error {
	if err := h.srv.Register("probe", prosodytest.Host, password); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	probe, err := xclient.Login(ctx, h.srv.C2SAddr, "probe", prosodytest.Host, password)
	if err != nil {
		return err
	}
	defer probe.Close()
	for {
		select {
		case err := <-h.done:
			return fmt.Errorf("gavel exited at start: %v; see %s", err, filepath.Join(h.dir, "gavel.log"))
		default:
		}
		qctx, qcancel := context.WithTimeout(ctx, time.Second)
		err := probe.IQ(qctx, prosodytest.Component, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`, nil)
		qcancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return errors.New("gavel did not connect to Prosody within 15s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) close(removeFiles bool) {
	if h.proc != nil && h.proc.Process != nil {
		_ = h.proc.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			_ = h.proc.Process.Kill()
			<-h.done
		}
	}
	if h.srv != nil {
		_ = h.srv.Close()
	}
	if removeFiles {
		os.RemoveAll(h.dir)
	}
}

// logs returns gavel's and Prosody's logs, for a failing test.
func (h *harness) logs() string {
	g, _ := os.ReadFile(filepath.Join(h.dir, "gavel.log"))
	return "gavel log:\n" + string(g) + "\nprosody log:\n" + h.srv.Log()
}

// mint runs `gavel token mint` for the default tenant.
func (h *harness) mint(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(h.gavel, append([]string{"token", "mint", "-secret-env", "GAVEL_CLIENTS_SECRET", "-iss", "clients", "-sub", prosodytest.Host}, args...)...)
	cmd.Env = append(os.Environ(), "GAVEL_CLIENTS_SECRET="+tokenSecret)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gavel token mint %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(out.String())
}

// fixture is what one client's tests get: four users, a room of the
// default tenant (policy token, guests denied) with tokens for it, and a
// room of tenant "slow" (one knock per JID and minute). The last user is
// for the slow room alone: gavel keeps one knock limiter per bare JID,
// made with the settings of the first tenant it knocked on.
type fixture struct {
	Users    []string          `json:"users"`
	Room     string            `json:"room"`
	SlowRoom string            `json:"slowRoom"`
	Tokens   map[string]string `json:"tokens"`
}

// fixture registers prefix-alice, -bob, -carol and -dave and mints
// their tokens for room prefix-standup.
func (h *harness) fixture(t *testing.T, prefix string) fixture {
	t.Helper()
	f := fixture{
		Room:     prefix + "-standup@" + prosodytest.MUC,
		SlowRoom: "[slow]" + prefix + "-lobby@" + prosodytest.MUC,
	}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		if err := h.srv.Register(prefix+"-"+u, prosodytest.Host, password); err != nil {
			t.Fatal(err)
		}
		f.Users = append(f.Users, prefix+"-"+u)
	}
	room := prefix + "-standup"
	f.Tokens = map[string]string{
		"moderator":   h.mint(t, "-room", room, "-user-id", prefix+"-alice", "-name", "Alice", "-moderator"),
		"participant": h.mint(t, "-room", room, "-user-id", prefix+"-bob", "-name", "Bob"),
		"expired":     h.mint(t, "-room", room, "-user-id", prefix+"-carol", "-ttl", "-10m"),
		"wrongRoom":   h.mint(t, "-room", "elsewhere", "-user-id", prefix+"-carol"),
	}
	return f
}

// common is what every client needs to reach the servers.
func (h *harness) common() map[string]any {
	return map[string]any{
		"tcp":       h.srv.C2SAddr,
		"websocket": h.srv.WebSocketURL(),
		"domain":    prosodytest.Host,
		"component": prosodytest.Component,
		"password":  password,
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// run runs a client's test command in dir with env added, within a
// minute, and fails the test with its output unless it exits 0.
func (h *harness) run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	begin := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), time.Since(begin).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out, h.logs())
	}
	return string(out)
}

const gavelConfig = `# written by the clients tests
component:
  jid: mod.example.test
  address: %s
  secret: %q
muc:
  - domain: conference.example.test
log:
  level: debug
  format: console
http:
  listen: 127.0.0.1:%d
  admin_token:
    secrets: [%q]
data_dir: %s
tenants:
  default:
    policy: token
    guests: deny
    token:
      app_id: clients
      secrets: [%q]
  slow:
    policy: auto-owner
    guests: member
    knocks_per_minute_per_jid: 1
  rival:
    policy: token
    guests: deny
`
