package component

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gavelxmpp/gavel/internal/ejabberdtest"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// server is an XMPP server the tests run against: Prosody or ejabberd.
// Both harnesses use the same host, MUC and component names.
type server struct {
	Name                           string // "prosody-0.12", "ejabberd-24", ...: the matrix entry
	Kind                           string // "prosody" or "ejabberd"
	Version                        string // what the server reports: "0.12.3", "24.12"
	C2SAddr, ComponentAddr, Secret string
	Register                       func(user, host, password string) error
	Stop, Kill, Restart, Close     func() error
	Log                            func() string
	prosody                        string // the prosody executable (Kind "prosody")
	version                        func() (string, error)
}

func fromProsody(s *prosodytest.Server) *server {
	return &server{Name: "prosody", Kind: "prosody", C2SAddr: s.C2SAddr, ComponentAddr: s.ComponentAddr, Secret: s.Secret,
		Register: s.Register, Stop: s.Stop, Kill: s.Kill, Restart: s.Restart, Close: s.Close, Log: s.Log,
		prosody: s.Prosody, version: s.Version}
}

func fromEjabberd(s *ejabberdtest.Server) *server {
	return &server{Name: "ejabberd", Kind: "ejabberd", C2SAddr: s.C2SAddr, ComponentAddr: s.ComponentAddr, Secret: s.Secret,
		Register: s.Register, Stop: s.Stop, Kill: s.Kill, Restart: s.Restart, Close: s.Close, Log: s.Log,
		version: s.Version}
}

// shared is one Prosody (the system's, 0.12) for the tests that do not
// restart it; it is also the matrix's prosody-0.12.
var shared *server

// matrixServer is one server of the matrix onEachServer runs on. The
// shared ones other than Prosody 0.12 boot in the background while the
// first tests run (ejabberd takes about a second); get waits for one.
type matrixServer struct {
	name string
	want string // the version prefix it must report
	// env names the variable that chose it, if one did: a server picked
	// by hand may run another version than its name says.
	env   string
	start func(dir string) (*server, error)

	once    sync.Once
	ready   chan struct{}
	srv     *server
	missing error // not installed: a skip, a failure under CI=true
	err     error // installed, but it did not start
	dir     string
}

func envSet(name string) string {
	if os.Getenv(name) != "" {
		return name
	}
	return ""
}

// The matrix: the system's Prosody and ejabberd (make deps), and the
// second versions make deps-servers unpacks beside them.
var matrix = []*matrixServer{
	{name: "prosody-0.12", want: "0.12.", env: envSet("GAVEL_PROSODY"), start: func(string) (*server, error) {
		return shared, nil
	}},
	{name: "prosody-13", want: "13.", env: envSet("GAVEL_PROSODY13"), start: func(dir string) (*server, error) {
		bin, err := prosodytest.Prosody13()
		if err != nil {
			return nil, errMissing{err}
		}
		p, err := prosodytest.Start(dir, prosodytest.Options{RestrictRoomCreation: true, Prosody: bin})
		if err != nil {
			return nil, err
		}
		return fromProsody(p), nil
	}},
	{name: "ejabberd-23", want: "23.", env: envSet("GAVEL_EJABBERD_ROOT"), start: func(dir string) (*server, error) {
		return startEjabberd(dir, ejabberdtest.DefaultRoot())
	}},
	{name: "ejabberd-24", want: "24.12", env: envSet("GAVEL_EJABBERD24_ROOT"), start: func(dir string) (*server, error) {
		return startEjabberd(dir, ejabberdtest.Root24())
	}},
}

// errMissing marks a server that is not installed.
type errMissing struct{ error }

func startEjabberd(dir, root string) (*server, error) {
	if err := ejabberdtest.InstalledAt(root); err != nil {
		return nil, errMissing{err}
	}
	s, err := ejabberdtest.Start(dir, ejabberdtest.Options{RestrictRoomCreation: true, Root: root})
	if err != nil {
		return nil, err
	}
	return fromEjabberd(s), nil
}

// boot starts the server in the background, once.
func (m *matrixServer) boot() {
	m.once.Do(func() {
		m.ready = make(chan struct{})
		go func() {
			defer close(m.ready)
			if m.name != "prosody-0.12" {
				// The ejabberd user must reach it: not a testing.T.TempDir.
				if m.dir, m.err = os.MkdirTemp("", "gavel-"+m.name+"-"); m.err != nil {
					return
				}
			}
			srv, err := m.start(m.dir)
			var missing errMissing
			if errors.As(err, &missing) {
				m.missing = missing.error
				return
			}
			if err != nil {
				m.err = fmt.Errorf("%s: %w", m.name, err)
				return
			}
			srv.Version, err = srv.version()
			if err != nil {
				_ = srv.Close()
				m.err = err
				return
			}
			srv.Name = m.name
			m.srv = srv
		}()
	})
}

func ejabberdRoot(name string) string {
	if name == "ejabberd-24" {
		return ejabberdtest.Root24()
	}
	return ejabberdtest.DefaultRoot()
}

// get waits for the server. One that is not installed skips the test, or
// fails it under CI=true, where every server must run (.ci/run installs
// them all); GAVEL_SKIP_EJABBERD=1 skips the ejabberd ones anyway.
func (m *matrixServer) get(t *testing.T) *server {
	t.Helper()
	m.boot()
	<-m.ready
	if m.missing != nil {
		skip := os.Getenv("CI") != "true" ||
			(strings.HasPrefix(m.name, "ejabberd") && os.Getenv("GAVEL_SKIP_EJABBERD") == "1")
		if skip {
			t.Skipf("%s: %v", m.name, m.missing)
		}
		t.Fatalf("%s: %v (CI=true: every server of the matrix must run)", m.name, m.missing)
	}
	if m.err != nil {
		t.Fatal(m.err)
	}
	if !strings.HasPrefix(m.srv.Version, m.want) {
		if m.env == "" {
			t.Fatalf("%s runs version %s, want %s*", m.name, m.srv.Version, m.want)
		}
		t.Logf("%s runs version %s (chosen by $%s)", m.name, m.srv.Version, m.env)
	}
	if m.name != "prosody-0.12" {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s log:\n%s", m.name, m.srv.Log())
			}
		})
	}
	return m.srv
}

// sharedEjabberd returns the shared ejabberd 23.01.
func sharedEjabberd(t *testing.T) *server {
	t.Helper()
	return matrix[2].get(t)
}

// onEachServer runs f on every server of the matrix (Prosody 0.12 and 13,
// ejabberd 23.01 and 24.12), as subtests named after the server.
func onEachServer(t *testing.T, f func(t *testing.T, srv *server)) {
	for _, m := range matrix {
		t.Run(m.name, func(t *testing.T) { f(t, m.get(t)) })
	}
}

// TestMatrix names the server and version behind each matrix entry
// (go test -v -run TestMatrix); it fails where a server is missing on CI.
func TestMatrix(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		where := srv.prosody
		if srv.Kind == "ejabberd" {
			where = ejabberdRoot(srv.Name)
		}
		t.Logf("%s %s (%s)", srv.Kind, srv.Version, where)
	})
}

// exits are run when the tests end (ok: they all passed), for servers
// shared by a group of tests.
var exits []func(ok bool)

func atExit(f func(ok bool)) { exits = append(exits, f) }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gavel-prosody-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p, err := prosodytest.Start(dir, prosodytest.Options{RestrictRoomCreation: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared = fromProsody(p)
	for _, s := range matrix {
		s.boot()
	}
	code := m.Run()
	for _, f := range exits {
		f(code == 0)
	}
	_ = shared.Close()
	dirs := []string{dir}
	for _, s := range matrix {
		<-s.ready
		if s.srv != nil && s.srv != shared {
			_ = s.srv.Close()
		}
		if s.dir != "" {
			dirs = append(dirs, s.dir)
		}
	}
	for _, d := range dirs {
		if code == 0 {
			os.RemoveAll(d)
		} else {
			fmt.Fprintf(os.Stderr, "server directory kept: %s\n", d)
		}
	}
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreCurrent()); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines left behind: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startServer starts a Prosody of the test's own (for tests that stop it).
func startServer(t *testing.T, opts prosodytest.Options) *server {
	t.Helper()
	s, err := prosodytest.Start(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		if t.Failed() {
			t.Logf("prosody log:\n%s", s.Log())
		}
	})
	return fromProsody(s)
}

// restartable returns a server the test may stop and restart: a Prosody
// of its own (opts, the same executable as srv), or the shared ejabberd,
// which boots too slowly to start one per test; it is running again when
// the test ends.
func restartable(t *testing.T, srv *server, opts prosodytest.Options) *server {
	t.Helper()
	if srv.Kind == "prosody" {
		opts.Prosody = srv.prosody
		own := startServer(t, opts)
		own.Name, own.Version = srv.Name, srv.Version
		return own
	}
	t.Cleanup(func() {
		if err := srv.Restart(); err != nil && !strings.Contains(err.Error(), "already running") {
			t.Errorf("restarting the shared %s: %v", srv.Name, err)
		}
	})
	return srv
}

// running is a component started by a test.
type running struct {
	c      *Component
	logs   *observer.ObservedLogs
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startComponent(t *testing.T, srv *server, mutate func(*Options)) *running {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	opts := Options{
		Domain:       prosodytest.Component,
		Address:      srv.ComponentAddr,
		Secret:       []byte(srv.Secret),
		ReconnectMin: 50 * time.Millisecond,
		ReconnectMax: 500 * time.Millisecond,
		Logger:       zap.New(core),
	}
	if mutate != nil {
		mutate(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.once.Do(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			panic("component did not stop within 15s")
		}
	})
}

func (r *running) waitConnected(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := r.c.WaitConnected(ctx); err != nil {
		t.Fatalf("not connected within %v: %v", d, err)
	}
}

var accountSeq atomic.Int64

// login registers a fresh user on srv and logs in.
func login(t *testing.T, srv *server) *xclient.Client {
	t.Helper()
	return loginAs(t, srv, "u")
}

// loginAs registers an account named prefix-<n> and logs in. On the Jitsi
// test server the name says what token the session holds (identityModule).
func loginAs(t *testing.T, srv *server, prefix string) *xclient.Client {
	t.Helper()
	user := fmt.Sprintf("%s-%d", prefix, accountSeq.Add(1))
	if err := srv.Register(user, prosodytest.Host, "pw"); err != nil {
		t.Fatal(err)
	}
	c, err := xclient.Login(ctxT(t, 10*time.Second), srv.C2SAddr, user, prosodytest.Host, "pw")
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, c)
	return c
}

var (
	closeMu sync.Mutex
	toClose = map[*testing.T][]*xclient.Client{}
)

// closeAtEnd closes c when t ends, together with t's other clients: a
// client's Close waits for the server to end the stream, which ejabberd
// does 100 ms later.
func closeAtEnd(t *testing.T, c *xclient.Client) {
	closeMu.Lock()
	first := len(toClose[t]) == 0
	toClose[t] = append(toClose[t], c)
	closeMu.Unlock()
	if !first {
		return
	}
	t.Cleanup(func() {
		closeMu.Lock()
		cs := toClose[t]
		delete(toClose, t)
		closeMu.Unlock()
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() { defer wg.Done(); c.Close() }()
		}
		wg.Wait()
	})
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
