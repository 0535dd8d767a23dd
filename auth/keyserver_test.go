package auth

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// asapServer is a test key server on loopback.
type asapServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    map[string][]byte // by file name
	status  atomic.Int32      // non-zero: answer this status
	hang    atomic.Bool       // block until the request is canceled
	gate    chan struct{}     // when non-nil, requests wait for it to close
	arrived chan struct{}     // receives once per request
	hits    atomic.Int64
	paths   sync.Map
}

func newASAPServer(t testing.TB) *asapServer {
	s := &asapServer{keys: map[string][]byte{}, arrived: make(chan struct{}, 10000)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.paths.Store(r.URL.Path, true)
		s.arrived <- struct{}{}
		s.mu.Lock()
		gate := s.gate
		s.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if s.hang.Load() {
			<-r.Context().Done()
			return
		}
		if st := s.status.Load(); st != 0 {
			w.WriteHeader(int(st))
			return
		}
		name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		s.mu.Lock()
		b, ok := s.keys[name]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func kidFile(kid string) string {
	sum := sha256.Sum256([]byte(kid))
	return hexString(sum[:]) + ".pem"
}

func (s *asapServer) put(t testing.TB, kid string, pub any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[kidFile(kid)] = pubPEM(t, pub)
}

func (s *asapServer) putRaw(kid string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[kidFile(kid)] = b
}

func (s *asapServer) remove(kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, kidFile(kid))
}

const asapRoomJID = "[asap]standup@conference.example.test"

func asapToken(t testing.TB, key *rsa.PrivateKey, kid string) string {
	return signRaw(t, "RS256", key, hdrKID("RS256", kid), payload(map[string]any{"sub": "asap", "iss": "asap-app"}))
}

func newASAPVerifier(t testing.TB, srv *asapServer, base string, opts Options) *Verifier {
	s := DefaultSettings("asap-app")
	s.KeyServer = base
	opts.HTTPClient = srv.Client()
	t.Cleanup(srv.Client().CloseIdleConnections)
	return newTestVerifier(t, map[string]Settings{"asap": s, "": defaultSettings()}, opts)
}

func TestKeyServerPathAndRotation(t *testing.T) {
	k := fx()
	for _, base := range []string{"/asap", "/asap/"} {
		t.Run(base, func(t *testing.T) {
			srv := newASAPServer(t)
			srv.put(t, "jitsi/key-1", &k.rsa.PublicKey)
			v := newASAPVerifier(t, srv, srv.URL+base, Options{CacheSize: -1})
			ctx, room := context.Background(), mustRoom(t, asapRoomJID)
			if _, err := v.Verify(ctx, asapToken(t, k.rsa, "jitsi/key-1"), room); err != nil {
				t.Fatal(err)
			}
			if _, ok := srv.paths.Load("/asap/" + kidFile("jitsi/key-1")); !ok {
				t.Fatalf("key not fetched from base/hex(sha256(kid)).pem")
			}
			// Rotation: a new kid is fetched, the old one stays cached.
			srv.put(t, "jitsi/key-2", &k.rsa2.PublicKey)
			if _, err := v.Verify(ctx, asapToken(t, k.rsa2, "jitsi/key-2"), room); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(ctx, asapToken(t, k.rsa, "jitsi/key-1"), room); err != nil {
				t.Fatal(err)
			}
			if got := srv.hits.Load(); got != 2 {
				t.Fatalf("%d fetches, want 2", got)
			}
			// A key of one kid never verifies another kid's token.
			if _, err := v.Verify(ctx, asapToken(t, k.rsa, "jitsi/key-2"), room); ReasonOf(err) != ReasonBadSignature {
				t.Fatalf("cross-kid: %v", err)
			}
		})
	}
}

func TestKeyServerOutageKeepsKey(t *testing.T) {
	k := fx()
	srv := newASAPServer(t)
	srv.put(t, "kid", &k.rsa.PublicKey)
	clock := newFakeClock(testNow)
	v := newASAPVerifier(t, srv, srv.URL, Options{Now: clock.Now, KeyTTL: time.Minute, CacheSize: -1})
	ctx, room := context.Background(), mustRoom(t, asapRoomJID)
	token := asapToken(t, k.rsa, "kid")
	if _, err := v.Verify(ctx, token, room); err != nil {
		t.Fatal(err)
	}
	srv.status.Store(http.StatusServiceUnavailable)
	clock.Advance(2 * time.Minute) // key is stale
	if _, err := v.Verify(ctx, token, room); err != nil {
		t.Fatalf("outage dropped the last good key: %v", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("%d fetches, want 2 (one refresh attempt)", got)
	}
	// Within the transient negative TTL no new attempt is made.
	for i := 0; i < 10; i++ {
		if _, err := v.Verify(ctx, token, room); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("%d fetches during the outage, want 2", got)
	}
	// Recovery refreshes the key.
	srv.status.Store(0)
	clock.Advance(10 * time.Second)
	if _, err := v.Verify(ctx, token, room); err != nil {
		t.Fatal(err)
	}
	if got := srv.hits.Load(); got != 3 {
		t.Fatalf("%d fetches after recovery, want 3", got)
	}
	// Revocation: the server no longer has the kid.
	srv.remove("kid")
	clock.Advance(2 * time.Minute)
	if _, err := v.Verify(ctx, token, room); ReasonOf(err) != ReasonUnknownKey {
		t.Fatalf("revoked key: %v", err)
	}
}

func TestKeyServerUnavailableWithoutKey(t *testing.T) {
	srv := newASAPServer(t)
	srv.status.Store(http.StatusInternalServerError)
	v := newASAPVerifier(t, srv, srv.URL, Options{})
	_, err := v.Verify(context.Background(), asapToken(t, fx().rsa, "kid"), mustRoom(t, asapRoomJID))
	if ReasonOf(err) != ReasonKeyUnavailable {
		t.Fatalf("want key-unavailable, got %v", err)
	}
}

func TestKeyServerSameKidStorm(t *testing.T) {
	k := fx()
	srv := newASAPServer(t)
	srv.put(t, "new-kid", &k.rsa.PublicKey)
	gate := make(chan struct{})
	srv.mu.Lock()
	srv.gate = gate
	srv.mu.Unlock()
	v := newASAPVerifier(t, srv, srv.URL, Options{CacheSize: -1, KeyFetchBurst: 1, KeyFetchRate: 0.001})
	room := mustRoom(t, asapRoomJID)
	token := asapToken(t, k.rsa, "new-kid")
	const joiners = 200
	var wg sync.WaitGroup
	errs := make(chan error, joiners)
	for i := 0; i < joiners; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Verify(context.Background(), token, room)
			errs <- err
		}()
	}
	<-srv.arrived
	time.Sleep(50 * time.Millisecond) // let the others pile up behind the fetch
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("%d fetches for one new kid, want 1", got)
	}
}

func TestKeyServerUnknownKidStorm(t *testing.T) {
	k := fx()
	srv := newASAPServer(t)
	clock := newFakeClock(testNow)
	v := newASAPVerifier(t, srv, srv.URL, Options{Now: clock.Now, KeyFetchRate: 1, KeyFetchBurst: 5, CacheSize: -1})
	room := mustRoom(t, asapRoomJID)
	tokens := make([]string, 300)
	for i := range tokens {
		tokens[i] = asapToken(t, k.rsaEvil, fmt.Sprintf("random-%d", i))
	}
	var unknown, unavailable atomic.Int64
	var wg sync.WaitGroup
	for i := range tokens {
		wg.Add(1)
		go func(tk string) {
			defer wg.Done()
			_, err := v.Verify(context.Background(), tk, room)
			switch ReasonOf(err) {
			case ReasonUnknownKey:
				unknown.Add(1)
			case ReasonKeyUnavailable:
				unavailable.Add(1)
			default:
				t.Errorf("unexpected %v", err)
			}
		}(tokens[i])
	}
	wg.Wait()
	// The limiter runs on real time: allow the burst plus what refills
	// during the test.
	if got := srv.hits.Load(); got > 8 {
		t.Fatalf("%d fetches for 300 unknown kids, limit burst 5 at 1/s", got)
	}
	if unknown.Load()+unavailable.Load() != 300 || unavailable.Load() < 290 {
		t.Fatalf("unknown %d unavailable %d", unknown.Load(), unavailable.Load())
	}
	// Known-unknown kids are answered from the negative cache.
	before := srv.hits.Load()
	for i := range tokens {
		_, _ = v.Verify(context.Background(), tokens[i], room)
	}
	if got := srv.hits.Load() - before; got > 3 {
		t.Fatalf("%d more fetches on a second storm", got)
	}
}

func TestKeyServerNegativeCache(t *testing.T) {
	k := fx()
	srv := newASAPServer(t)
	clock := newFakeClock(testNow)
	v := newASAPVerifier(t, srv, srv.URL, Options{Now: clock.Now, NegativeTTL: time.Minute, CacheSize: -1})
	ctx, room := context.Background(), mustRoom(t, asapRoomJID)
	token := asapToken(t, k.rsa, "late-kid")
	for i := 0; i < 3; i++ {
		if _, err := v.Verify(ctx, token, room); ReasonOf(err) != ReasonUnknownKey {
			t.Fatalf("want unknown-key, got %v", err)
		}
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("%d fetches, want 1", got)
	}
	srv.put(t, "late-kid", &k.rsa.PublicKey)
	clock.Advance(61 * time.Second)
	if _, err := v.Verify(ctx, token, room); err != nil {
		t.Fatalf("after the negative TTL: %v", err)
	}
}

func TestKeyServerTimeoutAndCancel(t *testing.T) {
	srv := newASAPServer(t)
	srv.hang.Store(true)
	v := newASAPVerifier(t, srv, srv.URL, Options{FetchTimeout: 100 * time.Millisecond})
	room := mustRoom(t, asapRoomJID)
	start := time.Now()
	_, err := v.Verify(context.Background(), asapToken(t, fx().rsa, "slow"), room)
	if ReasonOf(err) != ReasonKeyUnavailable {
		t.Fatalf("want key-unavailable, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timeout took %v", d)
	}

	v2 := newASAPVerifier(t, srv, srv.URL, Options{FetchTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = v2.Verify(ctx, asapToken(t, fx().rsa, "slow-2"), room)
	if ReasonOf(err) != ReasonKeyUnavailable {
		t.Fatalf("want key-unavailable, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("caller's deadline ignored: %v", d)
	}
	_ = v2.Close() // cancels the fetch still hanging
}

func TestKeyServerBadAnswers(t *testing.T) {
	k := fx()
	srv := newASAPServer(t)
	srv.putRaw("huge", []byte(strings.Repeat("A", maxKeyBytes+10)))
	srv.put(t, "small", &k.rsaSmall.PublicKey)
	srv.put(t, "ed", k.ed.Public())
	srv.putRaw("private", privPEM(t, k.rsa))
	v := newASAPVerifier(t, srv, srv.URL, Options{})
	room := mustRoom(t, asapRoomJID)
	for _, kid := range []string{"huge", "small", "ed", "private"} {
		_, err := v.Verify(context.Background(), asapToken(t, k.rsa, kid), room)
		if ReasonOf(err) != ReasonUnknownKey {
			t.Errorf("%s: want unknown-key, got %v", kid, err)
		}
	}
}

// TestKeyServerFairUnknownKidFetches: 40 requesters flooding tokens with
// random kids drain the global fetch budget, yet a legitimate requester's
// token with a new, real kid verifies: it has spent nothing of its own
// budget, so it gets the next global fetch. Requesters whose own budget is
// used up are refused at once, and the global cap still holds.
func TestKeyServerFairUnknownKidFetches(t *testing.T) {
	k := fx()
	srv := newASAPServer(t)
	srv.put(t, "new-real-kid", &k.rsa.PublicKey)
	const rate, burst = 20.0, 5
	v := newASAPVerifier(t, srv, srv.URL, Options{KeyFetchRate: rate, KeyFetchBurst: burst, FetchTimeout: time.Second, CacheSize: -1})
	room := mustRoom(t, asapRoomJID)
	start := time.Now()
	var wg sync.WaitGroup
	var budgetRefusals atomic.Int64
	var flood [40][6]string
	for r := range flood {
		for i := range flood[r] {
			flood[r][i] = asapToken(t, k.rsaEvil, fmt.Sprintf("random-%d-%d", r, i))
		}
	}
	legit := asapToken(t, k.rsa, "new-real-kid")
	for r := range flood {
		for i := range flood[r] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := WithRequester(context.Background(), fmt.Sprintf("anon-%d@guest.example.test", r))
				_, err := v.Verify(ctx, flood[r][i], room)
				if err != nil && strings.Contains(err.Error(), "requester's budget") {
					budgetRefusals.Add(1)
				}
			}()
		}
	}
	// The flood has drained the global budget once fetches queue for it.
	lim := v.keyServers[0].limiter
	waitFor(t, "the flood to queue", func() bool {
		lim.mu.Lock()
		defer lim.mu.Unlock()
		return len(lim.waiters) > 0
	})
	ctx, cancel := context.WithTimeout(WithRequester(context.Background(), "alice@example.test"), time.Second)
	defer cancel()
	asked := time.Now()
	_, err := v.Verify(ctx, legit, room)
	t.Logf("the legitimate token verified in %v during the flood", time.Since(asked))
	if err != nil {
		t.Fatalf("legitimate token with a new kid during the flood: %v", err)
	}
	wg.Wait()
	// Each requester may spend its burst of 3 (the default), no more.
	if got := budgetRefusals.Load(); got < 40*(6-3) {
		t.Errorf("%d fetches refused by the requesters' own budgets, want at least %d", got, 40*3)
	}
	allowed := burst + int64(rate*time.Since(start).Seconds()) + 2
	if got := srv.hits.Load(); got > allowed {
		t.Errorf("%d fetches in %v, the global cap allows %d", got, time.Since(start), allowed)
	}
}
