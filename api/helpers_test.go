package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/store"
)

// The test tenant, its governed MUC domain and a room of it.
const (
	testTenant = "acme"
	testDomain = "conference.example.test"
	testRoom   = "[acme]standup@conference.example.test"
)

var (
	testSecret  = []byte("0123456789abcdef0123456789abcdef")
	otherSecret = []byte("fedcba9876543210fedcba9876543210")
	testEpoch   = time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC)

	rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
	ecKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	edKey = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// call is one recorded call to fakeCommands.
type call struct {
	Method string
	Ban    commands.BanRequest
	Tenant string
	Kind   store.Kind
	Value  string
	Room   string
	Nick   string
	Reason string
	By     string
	// SET_ROLE and SET_POLICY.
	UserID, Role, Policy string
	Until                time.Time
	Locked               bool // LOCK, UNLOCK
}

// fakeCommands is a test double of our own Commands interface: it records
// calls and returns configured results.
type fakeCommands struct {
	mu        sync.Mutex
	calls     []call
	err       error // returned by Ban, Unban, Bans, Kick and Destroy
	tenantErr error // returned by TenantOf
	removed   int
	notFound  bool
	bans      []store.Ban
	panics    bool
	block     chan struct{} // when set, commands wait for it to close
	started   chan struct{} // when set, receives a value as a command starts
}

func (f *fakeCommands) record(c call) error {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	err, panics, block, started := f.err, f.panics, f.block, f.started
	f.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	if block != nil {
		<-block
	}
	if panics {
		panic("fake command panics")
	}
	return err
}

// set changes the fake's configuration under its lock.
func (f *fakeCommands) set(edit func(f *fakeCommands)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	edit(f)
}

func (f *fakeCommands) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// Ban answers with the ban as the command layer would store it.
func (f *fakeCommands) Ban(_ context.Context, req commands.BanRequest) (commands.BanResult, error) {
	if err := f.record(call{Method: "Ban", Ban: req}); err != nil {
		return commands.BanResult{}, err
	}
	k, err := commands.NormalizeKey(req.Tenant, req.Kind, req.Value, false)
	if err != nil {
		return commands.BanResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := store.Ban{Tenant: k.Tenant, Kind: k.Kind, Value: k.Value, Reason: req.Reason, By: req.By, Expires: req.Expires}
	return commands.BanResult{Ban: b, Removed: f.removed}, nil
}

func (f *fakeCommands) Unban(_ context.Context, req commands.UnbanRequest) (commands.Key, error) {
	if err := f.record(call{Method: "Unban", Tenant: req.Tenant, Kind: req.Kind, Value: req.Value, By: req.By}); err != nil {
		return commands.Key{}, err
	}
	k, err := commands.NormalizeKey(req.Tenant, req.Kind, req.Value, true)
	if err != nil {
		return k, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.notFound {
		return k, commands.ErrNoSuchBan
	}
	return k, nil
}

func (f *fakeCommands) Bans(_ context.Context, tenant string) ([]store.Ban, error) {
	if err := f.record(call{Method: "Bans", Tenant: tenant}); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bans, nil
}

func (f *fakeCommands) Kick(_ context.Context, roomJID, nick, reason, by string) error {
	return f.record(call{Method: "Kick", Room: roomJID, Nick: nick, Reason: reason, By: by})
}

func (f *fakeCommands) AssignRole(_ context.Context, req commands.RoleRequest, by string) (int, error) {
	return 1, f.record(call{Method: "AssignRole", Room: req.Room, Nick: req.Participant, UserID: req.UserID, Role: req.Role, Until: req.Until, By: by})
}

func (f *fakeCommands) SetPolicy(_ context.Context, roomJID, policy, by string) error {
	return f.record(call{Method: "SetPolicy", Room: roomJID, Policy: policy, By: by})
}

func (f *fakeCommands) SetLock(_ context.Context, roomJID string, locked bool, by string) error {
	return f.record(call{Method: "SetLock", Room: roomJID, Locked: locked, By: by})
}

func (f *fakeCommands) Destroy(_ context.Context, roomJID, reason, by string) error {
	return f.record(call{Method: "Destroy", Room: roomJID, Reason: reason, By: by})
}

// TenantOf parses the room like the command layer does; only testDomain is
// governed.
func (f *fakeCommands) TenantOf(roomJID string) (string, error) {
	f.mu.Lock()
	tenantErr := f.tenantErr
	f.mu.Unlock()
	if tenantErr != nil {
		return "", tenantErr
	}
	ar, err := auth.ParseRoom(roomJID)
	if err != nil {
		return "", fmt.Errorf("%w: %v", commands.ErrInvalid, err)
	}
	if ar.Domain != testDomain {
		return "", commands.ErrNotGoverned
	}
	return ar.Tenant, nil
}

// fixture is a running test server with its fake, logs and clock.
type fixture struct {
	srv   *Server
	ts    *httptest.Server
	cmds  *fakeCommands
	logs  *observer.ObservedLogs
	clock *clock
	reg   *prometheus.Registry
}

// newFixture starts an httptest.Server on loopback; edit adjusts the options.
func newFixture(t *testing.T, edit func(*Options)) *fixture {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	f := &fixture{cmds: &fakeCommands{}, logs: logs, clock: &clock{t: testEpoch}, reg: prometheus.NewRegistry()}
	opts := Options{
		Commands: f.cmds,
		Keys: AdminKeys{
			Secrets:    [][]byte{testSecret},
			PublicKeys: []auth.PublicKey{{Key: &rsaKey().PublicKey}, {Key: &ecKey().PublicKey}, {Key: edKey().Public()}},
			Leeway:     30 * time.Second,
		},
		Registry:      f.reg,
		Logger:        zap.New(core),
		RatePerMinute: 100000,
		Now:           f.clock.Now,
	}
	if edit != nil {
		edit(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv = srv
	f.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(f.ts.Close)
	return f
}

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   string
}

// errorCode returns the "error" member of a JSON error body.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if e.Message == "" {
		t.Errorf("error body %q has no message", r.body)
	}
	return e.Error
}

// do sends a request; an empty token sends no Authorization header, a token
// starting with "raw:" sends the rest as the header's value.
func (f *fixture) do(t *testing.T, method, path, token, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.HasPrefix(token, "raw:"):
		req.Header.Set("Authorization", strings.TrimPrefix(token, "raw:"))
	case token != "":
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

// logText renders every observed log entry, fields included.
func (f *fixture) logText() string {
	var b strings.Builder
	for _, e := range f.logs.All() {
		fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}

// mint signs an admin token for testTenant at the fixture's time; edit
// adjusts the request.
func mint(t *testing.T, now time.Time, edit func(*auth.MintRequest)) string {
	t.Helper()
	req := auth.MintRequest{
		Secret:   testSecret,
		Subject:  testTenant,
		Issuer:   "gavel-admin",
		Audience: []string{"gavel"},
		IssuedAt: now,
		TTL:      time.Hour,
		Extra:    map[string]any{"admin": true},
	}
	if edit != nil {
		edit(&req)
	}
	tok, err := auth.Mint(req)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// signRaw signs claims with any method and key, for tokens Mint refuses to
// make.
func signRaw(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return tok
}

// rsaPublicPEM is the PEM of the test RSA public key, the "secret" of an
// algorithm-confusion attack.
func rsaPublicPEM(t *testing.T) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&rsaKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// tokenHash is the hex hash the command layer stores for a token ban.
func tokenHash(tok string) string {
	h := auth.TokenHash(tok)
	return hex.EncodeToString(h[:])
}
