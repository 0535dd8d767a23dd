package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// appID is the issuer of the soak's tokens.
const appID = "gavel-soak"

// Tenants of the soak, one per policy. Rooms are "[tenant]name@MUC".
const (
	tenantToken = "tok"
	tenantAuto  = "auto"
	tenantAll   = "all"
)

// knockTimeout bounds every knock: no IQ response within it is a knock
// left unanswered.
const knockTimeout = 5 * time.Second

// opTimeout bounds every other single operation (login, join, leave).
const opTimeout = 10 * time.Second

// env is one system under test: a Prosody and a gavel process with a
// written config, restarted and killed by the scenarios.
type env struct {
	dir      string
	srv      *prosodytest.Server
	gavelBin string
	cfgPath  string
	logPath  string
	httpAddr string
	secret   []byte
	admin    []byte
	logLevel string
	setup    envSetup

	mu    sync.Mutex
	gavel *exec.Cmd
	done  chan struct{} // closed when the current gavel exits
	// started is when the current gavel process was started.
	started time.Time
}

// logf prints a progress line.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gavel-soak: "+time.Now().Format("15:04:05.000")+" "+format+"\n", args...)
}

// envSetup shapes an env's Prosody and gavel where a scenario needs
// another deployment than the knock's (the bridge scenario: Jitsi's).
type envSetup struct {
	// prosody replaces the knock deployment's Prosody options (rooms
	// created only by admins, that is through a knock).
	prosody *prosodytest.Options
	// mucYAML and tenantYAML are added to gavel's muc entry and its
	// default tenant (indented keys, one per line).
	mucYAML, tenantYAML string
}

// newEnv starts Prosody and gavel under dir. logLevel is gavel's log level
// ("info", or "debug" to see every reconnection attempt).
func newEnv(ctx context.Context, dir, gavelBin, logLevel string) (*env, error) {
	return newEnvWith(ctx, dir, gavelBin, logLevel, envSetup{})
}

// newEnvWith is newEnv with another deployment (setup).
func newEnvWith(ctx context.Context, dir, gavelBin, logLevel string, setup envSetup) (*env, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	e := &env{dir: dir, gavelBin: gavelBin, logLevel: logLevel, setup: setup}
	popts := prosodytest.Options{
		RestrictRoomCreation: true,
		ExtraConfig:          "muc_room_cache_size = 1000\n",
	}
	if setup.prosody != nil {
		popts = *setup.prosody
	}
	srv, err := prosodytest.Start(filepath.Join(dir, "prosody"), popts)
	if err != nil {
		return nil, err
	}
	for _, a := range []string{srv.C2SAddr, srv.ComponentAddr} {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			srv.Close()
			return nil, fmt.Errorf("prosody listens on %s, not loopback", a)
		}
	}
	e.srv = srv
	e.secret, e.admin = randomKey(), randomKey()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.close()
		return nil, err
	}
	e.httpAddr = l.Addr().String()
	l.Close()
	if err := e.writeConfig(ctx); err != nil {
		e.close()
		return nil, err
	}
	if err := e.startGavel(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func randomKey() []byte {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return []byte(hex.EncodeToString(b))
}

// gavelConfig: one tenant per policy, no leeway (expiry checks are exact),
// knock and HTTP limits far above the soak's rates, and guests denied.
const gavelConfig = `# written by gavel-soak
component:
  jid: %s
  address: %s
  secret: %q
  reconnect_min: 100ms
  reconnect_max: 1s
muc:
  - domain: %s
%slog:
  level: %s
  format: json
http:
  listen: %s
  rate_per_minute: 10000000
  admin_token:
    secrets: [%q]
data_dir: %s
tenants:
  default:
    policy: token
    guests: deny
    clear_on_leave: true
    knocks_per_minute: 100000000
    knocks_per_minute_per_jid: 100000000
    token:
      app_id: %s
      secrets: [%q]
      leeway: 0s
%s  %s:
    policy: token
  %s:
    policy: auto-owner
  %s:
    policy: all-owners
`

func (e *env) writeConfig(ctx context.Context) error {
	e.cfgPath = filepath.Join(e.dir, "gavel.yml")
	body := fmt.Sprintf(gavelConfig, prosodytest.Component, e.srv.ComponentAddr, e.srv.Secret, prosodytest.MUC, e.setup.mucYAML,
		e.logLevel, e.httpAddr, string(e.admin), filepath.Join(e.dir, "gavel-data"), appID, string(e.secret), e.setup.tenantYAML,
		tenantToken, tenantAuto, tenantAll)
	if err := os.WriteFile(e.cfgPath, []byte(body), 0o600); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, e.gavelBin, "-config", e.cfgPath, "-check").CombinedOutput(); err != nil {
		return fmt.Errorf("gavel -check: %v\n%s", err, out)
	}
	e.logPath = filepath.Join(e.dir, "gavel.log")
	return nil
}

// startGavel starts gavel (appending to its log) and waits until /readyz
// is 200.
func (e *env) startGavel(ctx context.Context) error {
	if err := e.spawnGavel(); err != nil {
		return err
	}
	return e.waitReady(ctx, 30*time.Second)
}

// spawnGavel starts the gavel process and returns at once.
func (e *env) spawnGavel() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gavel != nil {
		return errors.New("gavel is already running")
	}
	logFile, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(e.gavelBin, "-config", e.cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	e.gavel, e.done, e.started = cmd, done, time.Now()
	return nil
}

// stopGavel ends gavel with sig and waits for it to exit.
func (e *env) stopGavel(sig syscall.Signal) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gavel == nil {
		return nil
	}
	_ = e.gavel.Process.Signal(sig)
	select {
	case <-e.done:
	case <-time.After(15 * time.Second):
		_ = e.gavel.Process.Kill()
		<-e.done
		e.gavel = nil
		return fmt.Errorf("gavel did not exit within 15 s of %v; killed", sig)
	}
	e.gavel = nil
	return nil
}

// gavelPID returns the running gavel's process id, or 0.
func (e *env) gavelPID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gavel == nil {
		return 0
	}
	select {
	case <-e.done:
		return 0
	default:
		return e.gavel.Process.Pid
	}
}

// readyz returns /readyz's status code (0 when gavel does not answer).
func (e *env) readyz(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+e.httpAddr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady polls /readyz until it is 200.
func (e *env) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if e.gavelPID() == 0 {
			return fmt.Errorf("gavel exited; see %s", e.logPath)
		}
		if e.readyz(ctx) == 200 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("gavel's /readyz was not 200 within %v; see %s", limit, e.logPath)
}

// connections counts gavel's "component connected" log lines so far.
func (e *env) connections() int {
	lines, _ := readLog(e.logPath)
	n := 0
	for _, l := range lines {
		if l.Msg == "component connected" {
			n++
		}
	}
	return n
}

// waitReconnected waits until gavel has connected again (more than
// before "component connected" lines) and /readyz is 200: after a Prosody
// restart, a /readyz that gavel has not yet turned 503 is no answer.
func (e *env) waitReconnected(ctx context.Context, before int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for e.connections() <= before {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gavel did not connect again within %v; see %s", limit, e.logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return e.waitReady(ctx, time.Until(deadline))
}

// close stops gavel and Prosody; the directory stays for inspection.
func (e *env) close() {
	_ = e.stopGavel(syscall.SIGTERM)
	if e.srv != nil {
		_ = e.srv.Close()
	}
}

// room returns the JID of room name in tenant.
func room(tenant, name string) string {
	return "[" + tenant + "]" + name + "@" + prosodytest.MUC
}

// token mints a meeting token for roomJID and user, valid for ttl.
func (e *env) token(roomJID, user string, moderator bool, ttl time.Duration) string {
	return e.tokenUntil(roomJID, user, moderator, time.Now().Add(ttl))
}

// tokenUntil mints a meeting token for roomJID and user that expires at exp.
func (e *env) tokenUntil(roomJID, user string, moderator bool, exp time.Time) string {
	ar, err := auth.ParseRoom(roomJID)
	if err != nil {
		panic(err) // the soak's own room names
	}
	t, err := auth.Mint(auth.MintRequest{
		Secret: e.secret, Issuer: appID, Audience: []string{"jitsi"}, Subject: ar.Tenant,
		Room: ar.Name, UserID: user, Name: user, Moderator: moderator, Expires: exp,
	})
	if err != nil {
		panic(err)
	}
	return t
}

// login registers user (if needed) and logs in.
func (e *env) login(ctx context.Context, user string) (*xclient.Client, error) {
	if err := e.srv.Register(user, prosodytest.Host, "pw"); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return xclient.Login(ctx, e.srv.C2SAddr, user, prosodytest.Host, "pw")
}

// apiResult is an admin API answer.
type apiResult struct {
	Code int
	Body map[string]any
	Raw  string
}

// api calls the admin API of tenant with a fresh admin token.
func (e *env) api(ctx context.Context, method, path, tenant, body string) (apiResult, error) {
	admin, err := auth.Mint(auth.MintRequest{Secret: e.admin, Subject: tenant, Issuer: "soak", Audience: []string{"soak"},
		TTL: time.Hour, Extra: map[string]any{"admin": true}})
	if err != nil {
		return apiResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+e.httpAddr+path, strings.NewReader(body))
	if err != nil {
		return apiResult{}, err
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return apiResult{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := apiResult{Code: resp.StatusCode, Raw: strings.TrimSpace(string(b))}
	_ = json.Unmarshal(b, &r.Body)
	return r, nil
}

// ban is one ban the soak issues: kind "user" (a context.user.id), "jid"
// (a bare JID) or "token" (a JWT).
type ban struct {
	Kind, Value string
	Duration    string // optional Go duration
}

// issue sends the ban to the API.
func (e *env) issue(ctx context.Context, tenant string, b ban) (apiResult, error) {
	dur := ""
	if b.Duration != "" {
		dur = fmt.Sprintf(`,"duration":%q`, b.Duration)
	}
	base := "/jaccess/v1/access-management/" + tenant
	if b.Kind == "token" {
		return e.api(ctx, "POST", base+"/ban/jwt", tenant, fmt.Sprintf(`{"jwt":%q,"reason":"soak"%s}`, b.Value, dur))
	}
	return e.api(ctx, "POST", base+"/ban/user/"+b.Value, tenant, fmt.Sprintf(`{"reason":"soak"%s}`, dur))
}

// unban lifts a user or JID ban.
func (e *env) unban(ctx context.Context, tenant, value string) (apiResult, error) {
	return e.api(ctx, "DELETE", "/jaccess/v1/access-management/"+tenant+"/ban/user/"+value, tenant, "")
}

// listedBan is one entry of the ban list.
type listedBan struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// bans lists the active bans of tenant.
func (e *env) bans(ctx context.Context, tenant string) ([]listedBan, error) {
	r, err := e.api(ctx, "GET", "/jaccess/v1/access-management/"+tenant+"/bans", tenant, "")
	if err != nil {
		return nil, err
	}
	if r.Code != 200 {
		return nil, fmt.Errorf("list bans: %d %s", r.Code, r.Raw)
	}
	var out struct {
		Bans []listedBan `json:"bans"`
	}
	if err := json.NewDecoder(bytes.NewReader([]byte(r.Raw))).Decode(&out); err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	return out.Bans, nil
}
