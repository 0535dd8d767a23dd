package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gavelxmpp/gavel/auth"
)

func TestNewValidates(t *testing.T) {
	weakRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ok := func(o *Options) {}
	cases := []struct {
		name string
		edit func(*Options)
		want string // a substring of the error; "" for success
	}{
		{"defaults", ok, ""},
		{"no keys", func(o *Options) { o.Keys = AdminKeys{} }, ""},
		{"no commands", func(o *Options) { o.Commands = nil }, "Commands is required"},
		{"negative body limit", func(o *Options) { o.MaxBodyBytes = -1 }, "MaxBodyBytes"},
		{"negative rate", func(o *Options) { o.RatePerMinute = -1 }, "RatePerMinute"},
		{"negative leeway", func(o *Options) { o.Keys.Leeway = -time.Second }, "Leeway"},
		{"short secret", func(o *Options) { o.Keys.Secrets = [][]byte{[]byte("short")} }, "at least 16"},
		{"empty secret", func(o *Options) { o.Keys.Secrets = [][]byte{nil} }, "at least 16"},
		{"weak RSA", func(o *Options) { o.Keys.PublicKeys = []auth.PublicKey{{Key: &weakRSA.PublicKey}} }, "1024 bits"},
		{"P-224", func(o *Options) { o.Keys.PublicKeys = []auth.PublicKey{{Key: &p224.PublicKey}} }, "curve"},
		{"private key", func(o *Options) { o.Keys.PublicKeys = []auth.PublicKey{{Key: rsaKey()}} }, "unsupported public key type *rsa.PrivateKey"},
		{"nil key", func(o *Options) { o.Keys.PublicKeys = []auth.PublicKey{{}} }, "public key #1: no key"},
		{"algorithm of another family", func(o *Options) {
			o.Keys.PublicKeys = []auth.PublicKey{{Key: &rsaKey().PublicKey, Algorithms: []string{"HS256"}}}
		}, "cannot verify"},
		{"algorithm none", func(o *Options) {
			o.Keys.PublicKeys = []auth.PublicKey{{Key: edKey().Public(), Algorithms: []string{"none"}}}
		}, `algorithm "none" can never be allowed`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Commands: &fakeCommands{}, Keys: AdminKeys{Secrets: [][]byte{testSecret}}}
			tc.edit(&opts)
			_, err := New(opts)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("New: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("New error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestSharedRegistry checks that two servers can share a registry.
func TestSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for i := range 2 {
		if _, err := New(Options{Commands: &fakeCommands{}, Registry: reg}); err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
	}
	if err := reg.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "gavel_http_requests_total", Help: "x"})); err == nil {
		t.Fatal("a clashing collector was accepted")
	}
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "gavel_http_requests_total", Help: "x"}))
	if _, err := New(Options{Commands: &fakeCommands{}, Registry: reg2}); err == nil {
		t.Error("New accepted a registry with a clashing metric")
	}
}

// TestServe runs Serve on loopback and stops it, with a request in flight.
func TestServe(t *testing.T) {
	cases := []struct {
		name     string
		inFlight bool
	}{
		{"idle", false},
		{"request in flight", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmds := &fakeCommands{}
			srv, err := New(Options{Commands: cmds, Keys: AdminKeys{Secrets: [][]byte{testSecret}}, Now: func() time.Time { return testEpoch }})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx, ln) }()
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			base := "http://" + ln.Addr().String()

			resp, err := client.Get(base + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok\n" {
				t.Fatalf("healthz: %d %q", resp.StatusCode, body)
			}

			var inflight chan int
			if tc.inFlight {
				release := make(chan struct{})
				started := make(chan struct{}, 1)
				cmds.set(func(f *fakeCommands) { f.block, f.started = release, started })
				inflight = make(chan int, 1)
				tok := mint(t, testEpoch, nil)
				go func() {
					req, _ := http.NewRequest("GET", base+"/jaccess/v1/access-management/acme/bans", nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := client.Do(req)
					if err != nil {
						inflight <- -1
						return
					}
					resp.Body.Close()
					inflight <- resp.StatusCode
				}()
				<-started
				cancel()
				time.Sleep(50 * time.Millisecond)
				close(release)
				if code := <-inflight; code != 200 {
					t.Errorf("in-flight request: %d", code)
				}
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve = %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return")
			}
			if _, err := client.Get(base + "/healthz"); err == nil {
				t.Error("the listener still answers")
			}
		})
	}
}

// TestServeListenerError checks that Serve reports a listener that fails.
func TestServeListenerError(t *testing.T) {
	srv, err := New(Options{Commands: &fakeCommands{}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = srv.Serve(context.Background(), ln)
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want the listener's error", err)
	}
}
