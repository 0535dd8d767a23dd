package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// maxJWKSBytes bounds a JWKS document.
const maxJWKSBytes = 1 << 20

// jwksSource keeps a JWKS fetched from a URL, refreshed in the background.
//
// jwkset (and keyfunc, built on it) refresh on a fixed interval and ignore
// Cache-Control, so refreshes are driven here: each one is a single
// jwkset.NewStorageFromHTTP request (jwkset decodes and validates the keys)
// through an http.Client whose transport records the answer's Cache-Control
// and bounds its size. A failed refresh keeps the last good set.
type jwksSource struct {
	url        string
	client     *http.Client
	timeout    time.Duration
	defRefresh time.Duration
	minRefresh time.Duration
	maxRefresh time.Duration
	now        func() time.Time
	log        *zap.Logger
	ctx        context.Context

	snap  atomic.Pointer[jwksSnapshot]
	group singleflight.Group

	mu          sync.Mutex
	lastAttempt time.Time // last on-demand refresh
	lastErr     error

	fetches atomic.Int64 // HTTP requests sent, for tests and metrics
}

// jwksSnapshot is one good key set.
type jwksSnapshot struct {
	byKID   map[string][]verifyKey
	all     []verifyKey // tried for tokens without a kid
	fetched time.Time
}

func newJWKSSource(ctx context.Context, url string, client *http.Client, o *Options) *jwksSource {
	return &jwksSource{
		url:        url,
		client:     sameOriginClient(client, "JWKS URL", url),
		timeout:    o.FetchTimeout,
		defRefresh: o.JWKSRefresh,
		minRefresh: o.JWKSMinRefresh,
		maxRefresh: o.JWKSMaxRefresh,
		now:        o.Now,
		log:        o.Logger,
		ctx:        ctx,
	}
}

// run refreshes the set until ctx ends: at once, then after max-age (or the
// default period); after a failure, after minRefresh doubling up to the
// default period.
func (s *jwksSource) run(wg *sync.WaitGroup) {
	defer wg.Done()
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-timer.C:
		}
		next, err := s.refresh()
		if err != nil {
			failures++
			next = s.minRefresh << min(failures-1, 16)
			if next > s.defRefresh || next <= 0 {
				next = s.defRefresh
			}
		} else {
			failures = 0
		}
		timer.Reset(next)
	}
}

// refresh fetches the set once, shared by concurrent callers, and returns
// the delay until the next periodic refresh.
func (s *jwksSource) refresh() (time.Duration, error) {
	v, err, _ := s.group.Do("jwks", func() (any, error) { return s.fetch() })
	if err != nil {
		return 0, err
	}
	return v.(time.Duration), nil
}

// capture is an http.RoundTripper that records the answer's Cache-Control
// and bounds its body.
type capture struct {
	base         http.RoundTripper
	cacheControl atomic.Pointer[string]
}

func (c *capture) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	cc := resp.Header.Get("Cache-Control")
	c.cacheControl.Store(&cc)
	resp.Body = &limitedBody{r: resp.Body, left: maxJWKSBytes}
	return resp, nil
}

// limitedBody fails a read past its limit instead of truncating silently.
type limitedBody struct {
	r    io.ReadCloser
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, fmt.Errorf("JWKS larger than %d bytes", maxJWKSBytes)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.r.Close() }

func (s *jwksSource) fetch() (time.Duration, error) {
	base := s.client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	rt := &capture{base: base}
	client := *s.client
	client.Transport = rt
	s.fetches.Add(1)
	store, err := jwkset.NewStorageFromHTTP(s.url, jwkset.HTTPClientStorageOptions{
		Client:      &client,
		Ctx:         s.ctx,
		HTTPTimeout: s.timeout,
	})
	if err == nil {
		var snap *jwksSnapshot
		snap, err = s.snapshot(store)
		if err == nil {
			s.snap.Store(snap)
		}
	}
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("auth: JWKS refresh failed; keeping the last good key set", zap.String("url", s.url), zap.Error(err))
		return 0, err
	}
	cc := ""
	if p := rt.cacheControl.Load(); p != nil {
		cc = *p
	}
	return refreshDelay(cc, s.defRefresh, s.minRefresh, s.maxRefresh), nil
}

// snapshot converts the fetched keys, skipping encryption keys and refusing
// symmetric ones; an empty result counts as a failure.
func (s *jwksSource) snapshot(store jwkset.Storage) (*jwksSnapshot, error) {
	all, err := store.KeyReadAll(s.ctx)
	if err != nil {
		return nil, err
	}
	snap := &jwksSnapshot{byKID: make(map[string][]verifyKey), fetched: s.now()}
	n := 0
	for _, j := range all {
		m := j.Marshal()
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		key := toPublic(j.Key())
		algs, err := keyAlgs(key)
		if err != nil {
			s.log.Debug("auth: JWKS key skipped", zap.String("kid", m.KID), zap.Error(err))
			continue
		}
		if m.ALG != "" {
			a, ok := lookupAlg(string(m.ALG))
			if !ok || !algs.has(a) {
				s.log.Debug("auth: JWKS key skipped: alg does not fit the key", zap.String("kid", m.KID), zap.String("alg", string(m.ALG)))
				continue
			}
			algs = 1 << a
		}
		k := verifyKey{kid: m.KID, key: key, algs: algs}
		snap.all = append(snap.all, k)
		if m.KID != "" {
			snap.byKID[m.KID] = append(snap.byKID[m.KID], k)
		}
		n++
	}
	if n == 0 {
		return nil, errors.New("JWKS has no usable signature key")
	}
	return snap, nil
}

// refreshDelay reads max-age from a Cache-Control value: no-store, no-cache
// and max-age=0 give min; no max-age gives def; the result is clamped to
// [min, max].
func refreshDelay(cacheControl string, def, minD, maxD time.Duration) time.Duration {
	d := def
	for _, dir := range strings.Split(cacheControl, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "no-store", "no-cache":
			return minD
		case "max-age":
			secs, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
			if err != nil || secs < 0 {
				continue
			}
			if secs > int64(maxD/time.Second) {
				d = maxD
			} else {
				d = time.Duration(secs) * time.Second
			}
		}
	}
	return max(minD, min(d, maxD))
}

// keys returns the keys for kid (without a kid: every key of the set).
// When the kid is unknown it refreshes the set at most once per minRefresh,
// waiting for that refresh at most until ctx ends.
func (s *jwksSource) keys(ctx context.Context, kid string) ([]verifyKey, *Error) {
	if snap := s.snap.Load(); snap != nil {
		if ks := snap.pick(kid); len(ks) > 0 {
			return ks, nil
		}
	}
	if !s.mayRefreshNow() {
		return s.afterMiss(kid)
	}
	ch := s.group.DoChan("jwks", func() (any, error) { return s.fetch() })
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, newError(ReasonKeyUnavailable, "gave up waiting for the JWKS: "+ctx.Err().Error())
	}
	if snap := s.snap.Load(); snap != nil {
		if ks := snap.pick(kid); len(ks) > 0 {
			return ks, nil
		}
	}
	return s.afterMiss(kid)
}

func (s *jwksSource) afterMiss(kid string) ([]verifyKey, *Error) {
	if s.snap.Load() == nil {
		s.mu.Lock()
		err := s.lastErr
		s.mu.Unlock()
		detail := "JWKS " + s.url + " has not been loaded yet"
		if err != nil {
			detail += ": " + err.Error()
		}
		return nil, newError(ReasonKeyUnavailable, detail)
	}
	return nil, nil
}

// mayRefreshNow rate-limits refreshes caused by unknown kids.
func (s *jwksSource) mayRefreshNow() bool {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lastAttempt.IsZero() && now.Sub(s.lastAttempt) < s.minRefresh {
		return false
	}
	s.lastAttempt = now
	return true
}

func (snap *jwksSnapshot) pick(kid string) []verifyKey {
	if kid == "" {
		return snap.all
	}
	return snap.byKID[kid]
}
