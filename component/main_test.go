package component

import (
	"context"
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
	Name                           string // "prosody" or "ejabberd"
	C2SAddr, ComponentAddr, Secret string
	Register                       func(user, host, password string) error
	Stop, Kill, Restart, Close     func() error
	Log                            func() string
}

func fromProsody(s *prosodytest.Server) *server {
	return &server{Name: "prosody", C2SAddr: s.C2SAddr, ComponentAddr: s.ComponentAddr, Secret: s.Secret,
		Register: s.Register, Stop: s.Stop, Kill: s.Kill, Restart: s.Restart, Close: s.Close, Log: s.Log}
}

func fromEjabberd(s *ejabberdtest.Server) *server {
	return &server{Name: "ejabberd", C2SAddr: s.C2SAddr, ComponentAddr: s.ComponentAddr, Secret: s.Secret,
		Register: s.Register, Stop: s.Stop, Kill: s.Kill, Restart: s.Restart, Close: s.Close, Log: s.Log}
}

// shared is one Prosody for the tests that do not restart it.
var shared *server

// The shared ejabberd boots in the background while the Prosody tests run
// (it takes about a second); sharedEjabberd waits for it.
var (
	ejOnce  sync.Once
	ejReady = make(chan struct{})
	ejSrv   *server
	ejErr   error
	ejDir   string
)

func startSharedEjabberd() {
	ejOnce.Do(func() {
		go func() {
			defer close(ejReady)
			if ejErr = ejabberdtest.Installed(); ejErr != nil {
				return
			}
			if ejDir, ejErr = os.MkdirTemp("", "gavel-ejabberd-"); ejErr != nil {
				return
			}
			var s *ejabberdtest.Server
			if s, ejErr = ejabberdtest.Start(ejDir, ejabberdtest.Options{RestrictRoomCreation: true}); ejErr == nil {
				ejSrv = fromEjabberd(s)
			}
		}()
	})
}

// sharedEjabberd returns the shared ejabberd. Without ejabberd installed
// the test fails (make deps installs it), unless GAVEL_SKIP_EJABBERD=1.
func sharedEjabberd(t *testing.T) *server {
	t.Helper()
	startSharedEjabberd()
	<-ejReady
	if ejErr != nil {
		if os.Getenv("GAVEL_SKIP_EJABBERD") == "1" {
			t.Skipf("ejabberd: %v (GAVEL_SKIP_EJABBERD=1)", ejErr)
		}
		t.Fatalf("%v (set GAVEL_SKIP_EJABBERD=1 to skip the ejabberd runs)", ejErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ejabberd log:\n%s", ejSrv.Log())
		}
	})
	return ejSrv
}

// onEachServer runs f against the shared Prosody and the shared ejabberd,
// as subtests named after the server.
func onEachServer(t *testing.T, f func(t *testing.T, srv *server)) {
	t.Run("prosody", func(t *testing.T) { f(t, shared) })
	t.Run("ejabberd", func(t *testing.T) { f(t, sharedEjabberd(t)) })
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
	startSharedEjabberd()
	code := m.Run()
	for _, f := range exits {
		f(code == 0)
	}
	_ = shared.Close()
	<-ejReady
	if ejSrv != nil {
		_ = ejSrv.Close()
	}
	if code == 0 {
		os.RemoveAll(dir)
		if ejDir != "" {
			os.RemoveAll(ejDir)
		}
	} else {
		fmt.Fprintf(os.Stderr, "prosody directory kept: %s\n", dir)
		if ejDir != "" {
			fmt.Fprintf(os.Stderr, "ejabberd directory kept: %s\n", ejDir)
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
// of its own (opts), or the shared ejabberd, which boots too slowly to start
// one per test; it is running again when the test ends.
func restartable(t *testing.T, srv *server, opts prosodytest.Options) *server {
	t.Helper()
	if srv.Name == "prosody" {
		return startServer(t, opts)
	}
	t.Cleanup(func() {
		if err := srv.Restart(); err != nil && !strings.Contains(err.Error(), "already running") {
			t.Errorf("restarting the shared ejabberd: %v", err)
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
