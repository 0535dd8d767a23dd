package auth

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestCacheHitAndRecheck(t *testing.T) {
	clock := newFakeClock(testNow)
	v := newTestVerifier(t, nil, Options{Now: clock.Now})
	ctx := context.Background()
	token := tok(t, nil)
	room := mustRoom(t, defaultRoomJID)

	first, err := v.Verify(ctx, token, room)
	if err != nil {
		t.Fatal(err)
	}
	if v.cache.len() != 1 {
		t.Fatalf("cache has %d entries after a miss", v.cache.len())
	}
	first.Moderator = false // a caller's change must not leak into the cache
	first.Name = "changed"
	second, err := v.Verify(ctx, token, room)
	if err != nil {
		t.Fatal(err)
	}
	if second == first || !second.Moderator || second.Name != "Ada" || second.Tenant != "example.test" {
		t.Fatalf("cached claims wrong: %+v", second)
	}

	// The room is re-checked on a hit.
	if _, err := v.Verify(ctx, token, mustRoom(t, "other@conference.example.test")); ReasonOf(err) != ReasonWrongRoom {
		t.Fatalf("other room: %v", err)
	}
	// So is the tenant (sub against the domain).
	if _, err := v.Verify(ctx, token, mustRoom(t, "standup@conference.other.test")); ReasonOf(err) != ReasonWrongTenant {
		t.Fatalf("other domain: %v", err)
	}
	// A tenant with other settings re-verifies with its own keys.
	if _, err := v.Verify(ctx, token, mustRoom(t, "[acme]standup@conference.example.test")); ReasonOf(err) != ReasonBadSignature {
		t.Fatalf("other tenant: %v", err)
	}
	if _, err := v.Verify(ctx, token, room); err != nil {
		t.Fatalf("still valid for its room: %v", err)
	}

	// Expiry is re-checked on a hit, and the entry dropped.
	clock.Advance(time.Hour + time.Minute)
	if _, err := v.Verify(ctx, token, room); ReasonOf(err) != ReasonExpired {
		t.Fatalf("after expiry: %v", err)
	}
	if v.cache.len() != 0 {
		t.Fatalf("expired entry kept")
	}
}

func TestCacheForget(t *testing.T) {
	v := newTestVerifier(t, nil, Options{})
	ctx := context.Background()
	room := mustRoom(t, defaultRoomJID)
	token := tok(t, nil)
	other := tok(t, map[string]any{"jti": "other"})
	c, err := v.Verify(ctx, token, room)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, other, room); err != nil {
		t.Fatal(err)
	}
	if v.cache.len() != 2 {
		t.Fatalf("cache len %d", v.cache.len())
	}
	v.Forget(c.TokenHash)
	if v.cache.len() != 1 {
		t.Fatalf("Forget left %d entries", v.cache.len())
	}
	if e := v.cache.get(maphashOf(v, token), token); e != nil {
		t.Fatal("forgotten token still cached")
	}
	v.Forget(TokenHash(token)) // forgetting twice is harmless
	if _, err := v.Verify(ctx, token, room); err != nil {
		t.Fatal(err)
	}
	if v.cache.len() != 2 {
		t.Fatal("re-verified token not cached again")
	}
}

func TestCacheForgetAllSpellings(t *testing.T) {
	// Two valid signatures over the same signed part (ECDSA signs with a
	// random nonce) share a TokenHash; Forget drops both.
	v := newTestVerifier(t, nil, Options{})
	ctx := context.Background()
	room := mustRoom(t, defaultRoomJID)
	p := payload(nil)
	a := signRaw(t, "ES256", fx().ec256, hdr("ES256"), p)
	b := signRaw(t, "ES256", fx().ec256, hdr("ES256"), p)
	if a == b {
		t.Skip("identical ECDSA signatures")
	}
	if TokenHash(a) != TokenHash(b) {
		t.Fatal("TokenHash depends on the signature")
	}
	for _, tk := range []string{a, b} {
		if _, err := v.Verify(ctx, tk, room); err != nil {
			t.Fatal(err)
		}
	}
	if v.cache.len() != 2 {
		t.Fatalf("cache len %d", v.cache.len())
	}
	v.Forget(TokenHash(a))
	if v.cache.len() != 0 {
		t.Fatalf("Forget left %d entries", v.cache.len())
	}
}

func maphashOf(v *Verifier, token string) uint64 {
	return maphash.String(v.seed, token)
}

func TestCacheGenerationBlocksStaleAdd(t *testing.T) {
	c := newTokenCache(64)
	gen := c.gen.Load()
	c.forget([32]byte{1})
	c.add(1, "t", &Claims{}, nil, gen, fromStatic, 0)
	if c.len() != 0 {
		t.Fatal("an add that started before a Forget was stored")
	}
	c.add(1, "t", &Claims{}, nil, c.gen.Load(), fromStatic, 0)
	if c.len() != 1 {
		t.Fatal("a current add was dropped")
	}
}

func TestCacheBoundedLRU(t *testing.T) {
	c := newTokenCache(3 * cacheShards)            // 3 per shard
	key := func(i int) uint64 { return uint64(i) } // all in shard 0
	claims := func(i int) *Claims { return &Claims{TokenHash: [32]byte{byte(i)}} }
	for i := 1; i <= 3; i++ {
		c.add(key(i), fmt.Sprint(i), claims(i), nil, 0, fromStatic, 0)
	}
	if c.get(key(1), "1") == nil { // 1 becomes the newest
		t.Fatal("1 missing")
	}
	c.add(key(4), "4", claims(4), nil, 0, fromStatic, 0) // evicts 2, the oldest
	if c.get(key(2), "2") != nil {
		t.Fatal("LRU kept the oldest entry")
	}
	for _, i := range []int{1, 3, 4} {
		if c.get(key(i), fmt.Sprint(i)) == nil {
			t.Fatalf("%d evicted", i)
		}
	}
	if c.get(key(3), "collision") != nil {
		t.Fatal("a hash collision hit")
	}
	c.add(key(3), "3b", claims(3), nil, 0, fromStatic, 0) // replaces in place
	if c.get(key(3), "3") != nil || c.get(key(3), "3b") == nil || c.len() != 3 {
		t.Fatal("replacement wrong")
	}
	for i := 0; i < 1000; i++ {
		c.add(uint64(i)<<52, fmt.Sprint("x", i), claims(i), nil, 0, fromStatic, 0)
	}
	if n := c.len(); n > 3*cacheShards {
		t.Fatalf("cache grew to %d", n)
	}
}

func TestCacheBoundedThroughVerify(t *testing.T) {
	v := newTestVerifier(t, nil, Options{CacheSize: 32})
	room := mustRoom(t, defaultRoomJID)
	for i := 0; i < 200; i++ {
		if _, err := v.Verify(context.Background(), tok(t, map[string]any{"jti": fmt.Sprint(i)}), room); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.cache.len(); n > 32 {
		t.Fatalf("cache holds %d entries, limit 32", n)
	}
}

func TestCacheConcurrent(t *testing.T) {
	v := newTestVerifier(t, nil, Options{CacheSize: 64})
	room := mustRoom(t, defaultRoomJID)
	tokens := make([]string, 100)
	for i := range tokens {
		tokens[i] = tok(t, map[string]any{"jti": fmt.Sprint(i)})
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				tk := tokens[(i*7+g)%len(tokens)]
				c, err := v.Verify(context.Background(), tk, room)
				if err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					v.Forget(c.TokenHash)
				}
			}
		}()
	}
	wg.Wait()
}

func TestCacheDisabled(t *testing.T) {
	v := newTestVerifier(t, nil, Options{CacheSize: -1})
	if v.cache != nil {
		t.Fatal("cache built")
	}
	room := mustRoom(t, defaultRoomJID)
	c, err := v.Verify(context.Background(), tok(t, nil), room)
	if err != nil {
		t.Fatal(err)
	}
	v.Forget(c.TokenHash)
}

// TestCacheDropsRevokedKeys: a cached verification does not outlive its
// key. Once a key is pulled from the JWKS, replaced, or no longer served by
// the key server, a token verified with it before is refused.
func TestCacheDropsRevokedKeys(t *testing.T) {
	k := fx()
	var clock atomic.Int64
	clock.Store(testNow.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	cases := []struct {
		name   string
		room   string
		setup  func(t *testing.T) (v *Verifier, token string, revoke func())
		after  Reason
		detail string
	}{
		{name: "JWKS key pulled", room: jwksRoomJID, after: ReasonUnknownKey, setup: func(t *testing.T) (*Verifier, string, func()) {
			srv := newJWKSServer(t, jwksJSON(t, jwkSpec{kid: "k1", pub: &k.rsa.PublicKey}))
			v := newJWKSVerifier(t, srv, Options{Now: now, CacheSize: 100})
			waitFor(t, "the first refresh", func() bool { return v.jwks[0].snap.Load() != nil })
			return v, jwksToken(t, "RS256", k.rsa, "k1"), func() {
				srv.set(jwksJSON(t, jwkSpec{kid: "k2", pub: &k.rsa2.PublicKey}), "")
				if _, err := v.jwks[0].refresh(); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{name: "JWKS key replaced under the same kid", room: jwksRoomJID, after: ReasonBadSignature, setup: func(t *testing.T) (*Verifier, string, func()) {
			srv := newJWKSServer(t, jwksJSON(t, jwkSpec{kid: "k1", pub: &k.rsa.PublicKey}))
			v := newJWKSVerifier(t, srv, Options{Now: now, CacheSize: 100})
			waitFor(t, "the first refresh", func() bool { return v.jwks[0].snap.Load() != nil })
			return v, jwksToken(t, "RS256", k.rsa, "k1"), func() {
				srv.set(jwksJSON(t, jwkSpec{kid: "k1", pub: &k.rsa2.PublicKey}), "")
				if _, err := v.jwks[0].refresh(); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{name: "key server no longer serves the key", room: asapRoomJID, after: ReasonUnknownKey, setup: func(t *testing.T) (*Verifier, string, func()) {
			srv := newASAPServer(t)
			srv.put(t, "k1", &k.rsa.PublicKey)
			v := newASAPVerifier(t, srv, srv.URL, Options{Now: now, CacheSize: 100, KeyTTL: time.Minute})
			return v, asapToken(t, k.rsa, "k1"), func() {
				srv.remove("k1")
				clock.Add(int64(time.Minute))
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock.Store(testNow.UnixNano())
			v, token, revoke := tc.setup(t)
			room := mustRoom(t, tc.room)
			for i := 0; i < 2; i++ { // the second is a cache hit
				if _, err := v.Verify(context.Background(), token, room); err != nil {
					t.Fatalf("before the change, verification %d: %v", i+1, err)
				}
			}
			if v.cache.len() != 1 {
				t.Fatalf("cache holds %d entries, want 1", v.cache.len())
			}
			revoke()
			_, err := v.Verify(context.Background(), token, room)
			if ReasonOf(err) != tc.after {
				t.Fatalf("after the change: %v, want %s", err, tc.after)
			}
		})
	}
}

// TestCacheKeepsEntriesWhenKeysStay: a refresh that loses no key keeps the
// cached verifications (a new key does not invalidate old tokens).
func TestCacheKeepsEntriesWhenKeysStay(t *testing.T) {
	k := fx()
	srv := newJWKSServer(t, jwksJSON(t, jwkSpec{kid: "k1", pub: &k.rsa.PublicKey}))
	v := newJWKSVerifier(t, srv, Options{CacheSize: 100})
	token := jwksToken(t, "RS256", k.rsa, "k1")
	if _, err := v.Verify(context.Background(), token, mustRoom(t, jwksRoomJID)); err != nil {
		t.Fatal(err)
	}
	before := v.cfgGen(t, "jw")
	srv.set(jwksJSON(t, jwkSpec{kid: "k1", pub: &k.rsa.PublicKey}, jwkSpec{kid: "k2", pub: &k.rsa2.PublicKey}), "")
	if _, err := v.jwks[0].refresh(); err != nil {
		t.Fatal(err)
	}
	if after := v.cfgGen(t, "jw"); after != before {
		t.Errorf("key generation changed from %d to %d on a refresh that only added a key", before, after)
	}
}

func (v *Verifier) cfgGen(t *testing.T, tenant string) uint64 {
	t.Helper()
	c := v.tenants[tenant]
	if c == nil {
		t.Fatalf("no tenant %q", tenant)
	}
	return c.keyGen()
}
