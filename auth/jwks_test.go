package auth

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

type jwkSpec struct {
	kid string
	alg string
	use jwkset.USE
	pub any
}

func jwksJSON(t testing.TB, specs ...jwkSpec) []byte {
	t.Helper()
	ctx := context.Background()
	store := jwkset.NewMemoryStorage()
	for _, s := range specs {
		j, err := jwkset.NewJWKFromKey(s.pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: s.kid, ALG: jwkset.ALG(s.alg), USE: s.use}})
		if err != nil {
			t.Fatalf("jwk %s: %v", s.kid, err)
		}
		if err := store.KeyWrite(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	b, err := store.JSONPublic(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer serves a settable JWKS on loopback.
type jwksServer struct {
	*httptest.Server
	body         atomic.Pointer[[]byte]
	cacheControl atomic.Pointer[string]
	status       atomic.Int32
	hits         atomic.Int64
	mu           sync.Mutex
	times        []time.Time
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	s := &jwksServer{}
	s.set(body, "")
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		s.times = append(s.times, time.Now())
		s.mu.Unlock()
		if st := s.status.Load(); st != 0 {
			w.WriteHeader(int(st))
			return
		}
		if cc := *s.cacheControl.Load(); cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte, cacheControl string) {
	s.body.Store(&body)
	s.cacheControl.Store(&cacheControl)
}

const jwksRoomJID = "[jw]standup@conference.example.test"

func jwksToken(t testing.TB, alg string, key any, kid string) string {
	h := hdr(alg)
	if kid != "" {
		h = hdrKID(alg, kid)
	}
	return signRaw(t, alg, key, h, payload(map[string]any{"sub": "jw", "iss": "jw-app"}))
}

func newJWKSVerifier(t testing.TB, srv *jwksServer, opts Options) *Verifier {
	s := DefaultSettings("jw-app")
	s.JWKSURL = srv.URL + "/.well-known/jwks.json"
	opts.HTTPClient = srv.Client()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = -1
	}
	t.Cleanup(srv.Client().CloseIdleConnections)
	v, err := New(map[string]Settings{"jw": s}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJWKSAlgorithmsAndKids(t *testing.T) {
	k := fx()
	srv := newJWKSServer(t, jwksJSON(t,
		jwkSpec{kid: "rsa", alg: "RS256", pub: &k.rsa.PublicKey},
		jwkSpec{kid: "ec", pub: &k.ec256.PublicKey},
		jwkSpec{kid: "ed", pub: k.ed.Public()},
		jwkSpec{kid: "enc", use: jwkset.UseEnc, pub: &k.rsa2.PublicKey},
	))
	v := newJWKSVerifier(t, srv, Options{JWKSMinRefresh: time.Hour})
	ctx, room := context.Background(), mustRoom(t, jwksRoomJID)
	for _, tc := range []struct {
		name string
		tok  string
		want Reason
	}{
		{"RS256 by kid", jwksToken(t, "RS256", k.rsa, "rsa"), ""},
		{"ES256 by kid", jwksToken(t, "ES256", k.ec256, "ec"), ""},
		{"EdDSA by kid", jwksToken(t, "EdDSA", k.ed, "ed"), ""},
		{"no kid tries every key", jwksToken(t, "ES256", k.ec256, ""), ""},
		{"JWK alg pins the algorithm", jwksToken(t, "PS256", k.rsa, "rsa"), ReasonUnknownKey},
		{"encryption key never verifies", jwksToken(t, "RS256", k.rsa2, "enc"), ReasonUnknownKey},
		{"kid of a key of another type", jwksToken(t, "RS256", k.rsa, "ec"), ReasonUnknownKey},
		{"attacker key under a known kid", jwksToken(t, "RS256", k.rsaEvil, "rsa"), ReasonBadSignature},
		{"HS256 never from a JWKS", jwksToken(t, "HS256", []byte("secret"), "rsa"), ReasonAlgorithmNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(ctx, tc.tok, room)
			if ReasonOf(err) != tc.want {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
		})
	}
}

func TestJWKSRotationOnUnknownKid(t *testing.T) {
	k := fx()
	srv := newJWKSServer(t, jwksJSON(t, jwkSpec{kid: "old", pub: &k.rsa.PublicKey}))
	v := newJWKSVerifier(t, srv, Options{JWKSMinRefresh: 20 * time.Millisecond, Now: time.Now})
	ctx := context.Background()
	room := mustRoom(t, jwksRoomJID)
	now := time.Now().Unix()
	mk := func(key *rsa.PrivateKey, kid string) string {
		return signRaw(t, "RS256", key, hdrKID("RS256", kid), payload(map[string]any{"sub": "jw", "iss": "jw-app", "exp": now + 3600, "nbf": now - 10, "iat": now - 10}))
	}
	if _, err := v.Verify(ctx, mk(k.rsa, "old"), room); err != nil {
		t.Fatal(err)
	}
	srv.set(jwksJSON(t, jwkSpec{kid: "new", pub: &k.rsa2.PublicKey}), "")
	time.Sleep(25 * time.Millisecond)
	if _, err := v.Verify(ctx, mk(k.rsa2, "new"), room); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	// The old key left the set: it no longer verifies.
	time.Sleep(25 * time.Millisecond)
	if _, err := v.Verify(ctx, mk(k.rsa, "old"), room); ReasonOf(err) != ReasonUnknownKey {
		t.Fatalf("removed key: %v", err)
	}
}

func TestJWKSOutageKeepsLastGoodSet(t *testing.T) {
	k := fx()
	srv := newJWKSServer(t, jwksJSON(t, jwkSpec{kid: "a", pub: &k.rsa.PublicKey}))
	srv.set(*srv.body.Load(), "max-age=0")
	v := newJWKSVerifier(t, srv, Options{JWKSMinRefresh: 10 * time.Millisecond, JWKSRefresh: 20 * time.Millisecond})
	ctx, room := context.Background(), mustRoom(t, jwksRoomJID)
	token := jwksToken(t, "RS256", k.rsa, "a")
	if _, err := v.Verify(ctx, token, room); err != nil {
		t.Fatal(err)
	}
	for _, broken := range []func(){
		func() { srv.status.Store(http.StatusBadGateway) },
		func() { srv.status.Store(0); srv.set([]byte("{not json"), "max-age=0") },
		func() { srv.set([]byte(`{"keys":[]}`), "max-age=0") },
		func() {
			srv.set([]byte(`{"keys":[{"kty":"oct","kid":"a","k":"`+base64.RawURLEncoding.EncodeToString([]byte("secret"))+`"}]}`), "max-age=0")
		},
		func() { srv.set([]byte(`{"keys":["`+strings.Repeat("A", maxJWKSBytes)+`"]}`), "max-age=0") },
	} {
		broken()
		before := srv.hits.Load()
		waitFor(t, "refresh attempts", func() bool { return srv.hits.Load() >= before+2 })
		if _, err := v.Verify(ctx, token, room); err != nil {
			t.Fatalf("last good set lost: %v", err)
		}
	}
	srv.status.Store(0)
	srv.set(jwksJSON(t, jwkSpec{kid: "b", pub: &k.rsa2.PublicKey}), "max-age=0")
	waitFor(t, "recovery", func() bool {
		_, err := v.Verify(ctx, jwksToken(t, "RS256", k.rsa2, "b"), room)
		return err == nil
	})
}

func TestJWKSNotLoaded(t *testing.T) {
	srv := newJWKSServer(t, nil)
	srv.status.Store(http.StatusInternalServerError)
	v := newJWKSVerifier(t, srv, Options{JWKSMinRefresh: time.Hour})
	_, err := v.Verify(context.Background(), jwksToken(t, "RS256", fx().rsa, "a"), mustRoom(t, jwksRoomJID))
	if ReasonOf(err) != ReasonKeyUnavailable {
		t.Fatalf("want key-unavailable, got %v", err)
	}
	if !strings.Contains(err.Error(), "not been loaded") {
		t.Errorf("detail: %v", err)
	}
}

func TestJWKSHonoursMaxAge(t *testing.T) {
	k := fx()
	body := jwksJSON(t, jwkSpec{kid: "a", pub: &k.rsa.PublicKey})
	with := newJWKSServer(t, body)
	with.set(body, "public, max-age=1")
	without := newJWKSServer(t, body)
	newJWKSVerifier(t, with, Options{JWKSMinRefresh: 100 * time.Millisecond, JWKSRefresh: time.Hour})
	newJWKSVerifier(t, without, Options{JWKSMinRefresh: 100 * time.Millisecond, JWKSRefresh: time.Hour})
	waitFor(t, "two refreshes", func() bool { return with.hits.Load() >= 3 })
	with.mu.Lock()
	gap := with.times[2].Sub(with.times[1])
	with.mu.Unlock()
	if gap < 900*time.Millisecond || gap > 3*time.Second {
		t.Errorf("refresh gap %v, want about 1s (max-age=1)", gap)
	}
	if got := without.hits.Load(); got != 1 {
		t.Errorf("server without max-age fetched %d times in %v, want 1", got, 2*time.Second)
	}
}

func TestJWKSUnknownKidStorm(t *testing.T) {
	k := fx()
	srv := newJWKSServer(t, jwksJSON(t, jwkSpec{kid: "a", pub: &k.rsa.PublicKey}))
	v := newJWKSVerifier(t, srv, Options{JWKSMinRefresh: time.Hour})
	room := mustRoom(t, jwksRoomJID)
	if _, err := v.Verify(context.Background(), jwksToken(t, "RS256", k.rsa, "a"), room); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 300; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := v.Verify(context.Background(), jwksToken(t, "RS256", k.rsaEvil, fmt.Sprint("storm-", i)), room)
			if ReasonOf(err) != ReasonUnknownKey {
				t.Errorf("want unknown-key, got %v", err)
			}
		}(i)
	}
	wg.Wait()
	if got := srv.hits.Load(); got > 2 {
		t.Fatalf("%d JWKS fetches for 300 unknown kids, want at most 2", got)
	}
}

func TestRefreshDelay(t *testing.T) {
	const def, lo, hi = 6 * time.Hour, time.Minute, 24 * time.Hour
	for _, tc := range []struct {
		cc   string
		want time.Duration
	}{
		{"", def},
		{"public", def},
		{"max-age=3600", time.Hour},
		{"public, max-age=600, must-revalidate", 10 * time.Minute},
		{"Max-Age=120", 2 * time.Minute},
		{`max-age="300"`, 5 * time.Minute},
		{"max-age=0", lo},
		{"max-age=5", lo},
		{"max-age=99999999999999", hi},
		{"max-age=-5", def},
		{"max-age=abc", def},
		{"no-cache", lo},
		{"no-store, max-age=3600", lo},
		{"s-maxage=60", def},
	} {
		if got := refreshDelay(tc.cc, def, lo, hi); got != tc.want {
			t.Errorf("refreshDelay(%q) = %v, want %v", tc.cc, got, tc.want)
		}
	}
}

// TestJWKSSkipsUnusableKeys: one key gavel cannot use ("use": "signing",
// a weak RSA key, an alg that does not fit, broken key material) is
// skipped, counted and logged once per refresh and kid; the other keys of
// the set stay usable.
func TestJWKSSkipsUnusableKeys(t *testing.T) {
	k := fx()
	set := string(jwksJSON(t,
		jwkSpec{kid: "good", pub: &k.rsa.PublicKey},
		jwkSpec{kid: "bad-use", pub: &k.rsa2.PublicKey},
		jwkSpec{kid: "weak", pub: &k.rsaSmall.PublicKey},
		jwkSpec{kid: "bad-alg", alg: "ES256", pub: &k.rsa2.PublicKey},
	))
	set = strings.Replace(set, `"kid":"bad-use"`, `"kid":"bad-use","use":"signing"`, 1)
	set = strings.Replace(set, `{"keys":[`, `{"keys":[{"kty":"RSA","kid":"broken","n":"!!","e":"AQAB"},`, 1)
	core, logs := observer.New(zapcore.WarnLevel)
	srv := newJWKSServer(t, []byte(set))
	v := newJWKSVerifier(t, srv, Options{Logger: zap.New(core)})
	// The first refresh runs in the background; the rest below are caused
	// by Verify and finish before it returns.
	waitFor(t, "the first refresh", func() bool { return v.SkippedJWKSKeys() == 4 })
	cases := []struct {
		name  string
		token string
		want  Reason
	}{
		{"good key verifies", jwksToken(t, "RS256", k.rsa, "good"), ""},
		{"skipped key's kid is unknown", jwksToken(t, "RS256", k.rsa2, "bad-use"), ReasonUnknownKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.token, mustRoom(t, jwksRoomJID))
			if ReasonOf(err) != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	refreshes := srv.hits.Load()
	if got, want := v.SkippedJWKSKeys(), 4*refreshes; got != want {
		t.Errorf("SkippedJWKSKeys = %d after %d refreshes, want %d", got, refreshes, want)
	}
	skipped := map[string]int{}
	for _, e := range logs.FilterMessageSnippet("JWKS key skipped").All() {
		skipped[e.ContextMap()["kid"].(string)]++
	}
	for _, kid := range []string{"bad-use", "weak", "bad-alg", "broken"} {
		if skipped[kid] != int(refreshes) {
			t.Errorf("kid %s logged %d times in %d refreshes, want once per refresh (log %v)", kid, skipped[kid], refreshes, skipped)
		}
	}
	if skipped["good"] != 0 {
		t.Errorf("usable key logged as skipped")
	}
}
