package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// CPUs used when pinning: Prosody on one, everything else on the other.
const (
	prosodyCPU = 0
	loadCPU    = 1
)

// appID is the issuer of the benchmark's tokens.
const appID = "gavel-bench"

// env is the running system under test: Prosody, gavel and the keys the
// load generator signs tokens with.
type env struct {
	o        options
	dir      string
	srv      *prosodytest.Server
	gavelBin string
	gavelLog string
	gavel    *exec.Cmd
	done     chan struct{} // closed when gavel exits
	// gavelStarted is when the gavel process was last started (after its
	// config was checked).
	gavelStarted time.Time
	secret       []byte
	rsaKey       *rsa.PrivateKey
	pinned       bool
	gcOK         bool
	// countGavel: Prosody loads benchCountModule (togavel.go), and rounds
	// count the stanzas routed to gavel.
	countGavel bool
	perfWarn   sync.Once
}

// logf prints a progress line.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gavel-bench: "+format+"\n", args...)
}

// start builds gavel if needed, pins this process, and starts Prosody and
// gavel on loopback.
func start(ctx context.Context, o options) (*env, error) {
	e := &env{o: o, dir: o.dir}
	if e.dir == "" {
		d, err := os.MkdirTemp("", "gavel-bench-")
		if err != nil {
			return nil, err
		}
		e.dir = d
	} else if err := os.MkdirAll(e.dir, 0o750); err != nil {
		return nil, err
	}
	e.dir, _ = filepath.Abs(e.dir)
	e.gavelBin = o.gavel
	if e.gavelBin == "" {
		e.gavelBin = filepath.Join(e.dir, "gavel")
		logf("building gavel: go build -o %s ./cmd/gavel", e.gavelBin)
		out, err := exec.CommandContext(ctx, "go", "build", "-o", e.gavelBin, "./cmd/gavel").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go build ./cmd/gavel (run from the repository root, or pass -gavel): %v\n%s", err, out)
		}
	}
	e.gavelBin, _ = filepath.Abs(e.gavelBin)

	if o.pin {
		if runtime.NumCPU() < 2 {
			logf("only %d CPU: not pinning", runtime.NumCPU())
		} else if err := pin(os.Getpid(), loadCPU); err != nil {
			logf("not pinning: %v", err)
		} else {
			e.pinned = true
			// One CPU for this process: more Ps only add switching.
			runtime.GOMAXPROCS(1)
		}
	}

	if err := e.startProsody(); err != nil {
		return nil, err
	}
	if err := e.writeKeys(); err != nil {
		e.close()
		return nil, err
	}
	if err := e.startGavel(ctx); err != nil {
		e.close()
		return nil, err
	}
	e.gcOK = o.gc
	if o.gc {
		if _, err := e.prosodyGC(ctx); err != nil {
			logf("full Lua GC in Prosody is not available, relying on alternating rounds and medians: %v", err)
			e.gcOK = false
		}
	}
	return e, nil
}

// startProsody starts a Prosody in which clients may create rooms (the
// bare side needs that), with the admin shell for garbage collections and
// a room cache large enough for every room of the run.
func (e *env) startProsody() error {
	// Prosody keeps 100 live rooms by default and swaps the others to disk
	// and back; the benchmark holds up to -recovery-rooms.
	extra := fmt.Sprintf("muc_room_cache_size = %d\n", max(e.o.recRooms, e.o.m, e.o.burstRooms)*2+100)
	if e.o.prosodyGC != "" {
		extra += fmt.Sprintf("gc = { mode = %q }\n", e.o.prosodyGC)
	}
	var mucCfg string
	if e.o.mucStorage != "" {
		mucCfg = fmt.Sprintf("\tstorage = %q\n", e.o.mucStorage)
	}
	plugins, err := writeStandIn(e.dir)
	if err != nil {
		return err
	}
	srv, err := prosodytest.Start(filepath.Join(e.dir, "prosody"), prosodytest.Options{
		ExtraModules: []string{"admin_shell"},
		ExtraConfig:  extra,
		MUCConfig:    mucCfg,
		PluginPaths:  []string{plugins},
		MUCModules:   []string{standInModule},
		Prosody:      e.o.prosody,
	})
	if err != nil {
		return err
	}
	for _, a := range []string{srv.C2SAddr, srv.ComponentAddr} {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			srv.Close()
			return fmt.Errorf("prosody listens on %s, not loopback", a)
		}
	}
	e.srv = srv
	return e.pinProsody()
}

// pinProsody binds the running Prosody to its CPU.
func (e *env) pinProsody() error {
	if !e.pinned {
		return nil
	}
	return pin(e.srv.PID(), prosodyCPU)
}

// graceTenant is the rejoin phase's tenant: gavel's default with resets
// held for rejoinGrace (only written when the phase runs, so that a gavel
// without clear_on_leave_grace can run the other phases).
const graceTenant = `  grace:
    policy: token
    guests: deny
    clear_on_leave: true
    clear_on_leave_grace: 2s
    knocks_per_minute: 100000000
    knocks_per_minute_per_jid: 100000000
    token:
      app_id: %s
      secrets: [%q]
      public_keys: [%q]
`

// writeKeys makes the HS256 secret and the RS256 key pair of the run.
func (e *env) writeKeys() error {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	e.secret = []byte(hex.EncodeToString(b))
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	e.rsaKey = k
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(e.dir, "rs256.pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
}

// gavelConfig is gavel's configuration for the run: the token policy with
// guests as members in the default tenant (so bare and moderated rooms are
// both open rooms), guests denied in tenant "deny" (gavel's default: its
// rooms are members-only and every participant's knock grants member), an
// HS256 secret and an RS256 public key, and knock limits far above the
// benchmark's rates.
const gavelConfig = `# written by gavel-bench
component:
  jid: %s
  address: %s
  secret: %q
  reconnect_min: 100ms
  reconnect_max: 500ms
muc:
  - domain: %s
log:
  level: info
  format: json
data_dir: %s
tenants:
  default:
    policy: token
    guests: member
    clear_on_leave: true
    knocks_per_minute: 100000000
    knocks_per_minute_per_jid: 100000000
    token:
      app_id: %s
      secrets: [%q]
      public_keys: [%q]
  # gavel's default: guests denied, members-only rooms ([deny]room).
  deny:
    policy: token
    guests: deny
    clear_on_leave: true
    knocks_per_minute: 100000000
    knocks_per_minute_per_jid: 100000000
    token:
      app_id: %[6]s
      secrets: [%[7]q]
      public_keys: [%[8]q]
%[9]s  # The flood phase's tenant: gavel's default knock limits, guests denied.
  flood:
    guests: deny
    knocks_per_minute: 6000
    knocks_per_minute_per_jid: 30
`

func (e *env) startGavel(ctx context.Context) error {
	cfg := filepath.Join(e.dir, "gavel.yml")
	var grace string
	if e.o.phases["rejoin"] {
		grace = fmt.Sprintf(graceTenant, appID, string(e.secret), filepath.Join(e.dir, "rs256.pub.pem"))
	}
	data := filepath.Join(e.dir, "gavel-data")
	if e.o.gavelData != "" {
		data = e.o.gavelData
	}
	body := fmt.Sprintf(gavelConfig, prosodytest.Component, e.srv.ComponentAddr, e.srv.Secret, prosodytest.MUC,
		data, appID, string(e.secret), filepath.Join(e.dir, "rs256.pub.pem"), grace)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, e.gavelBin, "-config", cfg, "-check").CombinedOutput(); err != nil {
		return fmt.Errorf("gavel -check: %v\n%s", err, out)
	}
	e.gavelLog = filepath.Join(e.dir, "gavel.log")
	logFile, err := os.Create(e.gavelLog)
	if err != nil {
		return err
	}
	// Started from this process, gavel inherits its CPU: the load
	// generator's, not Prosody's.
	cmd := exec.Command(e.gavelBin, "-config", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	e.gavelStarted = time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	e.gavel = cmd
	e.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(e.done)
	}()
	probe, err := e.login(ctx, "probe")
	if err != nil {
		return err
	}
	defer probe.Close()
	return e.waitGavel(ctx, probe, 15*time.Second)
}

// waitGavel asks gavel for disco#info until it answers.
func (e *env) waitGavel(ctx context.Context, c *xclient.Client, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-e.done:
			return fmt.Errorf("gavel exited; see %s", e.gavelLog)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.IQ(qctx, prosodytest.Component, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`, nil)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("gavel did not answer within %v; see %s", limit, e.gavelLog)
}

// gavelPID returns gavel's process id, or 0 once it has exited.
func (e *env) gavelPID() int {
	select {
	case <-e.done:
		return 0
	default:
		return e.gavel.Process.Pid
	}
}

// register creates accounts named prefix0, prefix1, ...
func (e *env) register(prefix string, n int) ([]string, error) {
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("%s%d", prefix, i)
		if err := e.srv.Register(users[i], prosodytest.Host, "pw"); err != nil {
			return nil, err
		}
	}
	return users, nil
}

// login registers user (if needed) and logs in.
func (e *env) login(ctx context.Context, user string) (*xclient.Client, error) {
	if err := e.srv.Register(user, prosodytest.Host, "pw"); err != nil {
		return nil, err
	}
	return xclient.Login(ctx, e.srv.C2SAddr, user, prosodytest.Host, "pw")
}

// loginAll logs in every user with at most conc logins in flight.
func (e *env) loginAll(ctx context.Context, users []string, conc int) ([]*xclient.Client, error) {
	out := make([]*xclient.Client, len(users))
	err := parallel(ctx, len(users), conc, func(i int) error {
		c, err := xclient.Login(ctx, e.srv.C2SAddr, users[i], prosodytest.Host, "pw")
		out[i] = c
		return err
	})
	if err != nil {
		closeAll(out)
		return nil, err
	}
	return out, nil
}

func closeAll(cs []*xclient.Client) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.Close() }()
		}
	}
	wg.Wait()
}

// token signs a token for room (a bare room JID) with alg HS256 or RS256.
func (e *env) token(alg, room, user string, moderator bool) (string, error) {
	ar, err := auth.ParseRoom(room)
	if err != nil {
		return "", err
	}
	sub := prosodytest.Host
	if strings.HasPrefix(ar.Local, "[") {
		sub = ar.Tenant // a [tenant]room: sub names the tenant
	}
	req := auth.MintRequest{
		Issuer: appID, Audience: []string{"jitsi"}, Subject: sub,
		Room: ar.Name, UserID: user, Name: user, Moderator: moderator, TTL: 2 * time.Hour,
	}
	switch alg {
	case "HS256":
		req.Secret = e.secret
	case "RS256":
		req.PrivateKey = e.rsaKey
	default:
		return "", fmt.Errorf("unknown algorithm %q", alg)
	}
	return auth.Mint(req)
}

// prosodyGC runs a full Lua garbage collection in Prosody, so that each
// round starts from the same heap, and returns Prosody's Lua heap after it
// in KiB.
func (e *env) prosodyGC(ctx context.Context) (float64, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := e.srv.ProsodyCtl(cctx, "shell", `>(function() collectgarbage("collect"); return collectgarbage("count") end)()`)
	if err != nil {
		return 0, fmt.Errorf("prosodyctl shell: %v: %s", err, strings.TrimSpace(string(out)))
	}
	var kib float64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "Result: %g", &kib); err != nil {
		return 0, fmt.Errorf("prosodyctl shell: unexpected answer %q", strings.TrimSpace(string(out)))
	}
	return kib, nil
}

// luaGC runs collectgarbage(cmd) in Prosody ("stop", "restart").
func (e *env) luaGC(ctx context.Context, cmd string) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := e.srv.ProsodyCtl(cctx, "shell", fmt.Sprintf(`>collectgarbage(%q)`, cmd))
	if err != nil {
		return fmt.Errorf("prosodyctl shell: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// quiesce prepares a round: garbage collections in Prosody and here, and a
// short pause so that earlier traffic has drained. It returns Prosody's Lua
// heap after the collection in KiB (0 without -gc).
func (e *env) quiesce(ctx context.Context) float64 {
	var kib float64
	if e.gcOK {
		var err error
		if kib, err = e.prosodyGC(ctx); err != nil {
			logf("Lua GC failed: %v", err)
		}
	}
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	return kib
}

// usage is a CPU reading of the processes under test.
type usage struct {
	at                   time.Time
	prosody, gavel, self time.Duration
}

func (e *env) usage() usage {
	return usage{at: time.Now(), prosody: cpuTime(e.srv.PID()), gavel: cpuTime(e.gavelPID()), self: cpuTime(os.Getpid())}
}

// sub returns the CPU used between u0 and u.
func (u usage) sub(u0 usage) usage {
	return usage{at: u.at, prosody: u.prosody - u0.prosody, gavel: u.gavel - u0.gavel, self: u.self - u0.self}
}

// perfRecord starts `perf record` on pid into file and returns a stop
// function; without perf it warns once and does nothing.
func (e *env) perfRecord(pid int, file string) func() {
	if _, err := exec.LookPath("perf"); err != nil || pid <= 0 {
		e.perfWarn.Do(func() { logf("-perf: perf is not installed (apt-get install linux-perf); no profiles") })
		return func() {}
	}
	cmd := exec.Command("perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-g", "-p", fmt.Sprint(pid), "-o", file)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		logf("perf record: %v", err)
		return func() {}
	}
	time.Sleep(200 * time.Millisecond) // perf attaches
	return func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
	}
}

// close stops gavel (SIGTERM) and Prosody.
func (e *env) close() {
	if e.gavel != nil && e.gavelPID() != 0 {
		_ = e.gavel.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(10 * time.Second):
			_ = e.gavel.Process.Kill()
			<-e.done
		}
	}
	if e.srv != nil {
		_ = e.srv.Close()
	}
}

// parallel runs f(0..n-1) with at most conc calls at once and returns the
// first error; it stops starting calls after an error or when ctx ends.
func parallel(ctx context.Context, n, conc int, f func(i int) error) error {
	sem := make(chan struct{}, conc)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i := 0; i < n; i++ {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}
