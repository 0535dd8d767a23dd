package component

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// shared is one Prosody for the tests that do not restart it.
var shared *prosodytest.Server

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gavel-prosody-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared, err = prosodytest.Start(dir, prosodytest.Options{RestrictRoomCreation: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = shared.Close()
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "prosody directory kept: %s\n", dir)
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
func startServer(t *testing.T, opts prosodytest.Options) *prosodytest.Server {
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
	return s
}

// running is a component started by a test.
type running struct {
	c      *Component
	logs   *observer.ObservedLogs
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startComponent(t *testing.T, srv *prosodytest.Server, mutate func(*Options)) *running {
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

var userSeq = 0

// login registers a fresh user on srv and logs in.
func login(t *testing.T, srv *prosodytest.Server) *xclient.Client {
	t.Helper()
	userSeq++
	user := fmt.Sprintf("u%d-%d", userSeq, time.Now().UnixNano()%100000)
	if err := srv.Register(user, prosodytest.Host, "pw"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := xclient.Login(ctx, srv.C2SAddr, user, prosodytest.Host, "pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
