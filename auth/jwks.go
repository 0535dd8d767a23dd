package auth

import (
	"context"
	"encoding/json"
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
// Cache-Control, and refuse a whole set for one invalid key, so refreshes
// are driven here: each one is a single bounded GET whose keys jwkset
// decodes and validates one by one. A failed refresh keeps the last good
// set.
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
	skipped atomic.Int64 // keys skipped as unusable, over all refreshes
	// gen increases whenever a refresh pulls or replaces a key, so that
	// cached verifications made with the old set are not used.
	gen atomic.Uint64
}

// jwksSnapshot is one good key set.
type jwksSnapshot struct {
	byKID   map[string][]verifyKey
	all     []verifyKey // tried for tokens without a kid
	fetched time.Time
	prints  map[string]bool // verifyKey.print of every key
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

func (s *jwksSource) fetch() (time.Duration, error) {
	s.fetches.Add(1)
	keys, cacheControl, err := s.download()
	if err == nil {
		var snap *jwksSnapshot
		snap, err = s.snapshot(keys)
		if err == nil {
			if old := s.snap.Swap(snap); old != nil && old.lost(snap) {
				// A key was pulled or replaced: tokens verified with it
				// must not stay in the verified-token cache.
				s.gen.Add(1)
			}
		}
	}
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("auth: JWKS refresh failed; keeping the last good key set", zap.String("url", s.url), zap.Error(err))
		return 0, err
	}
	return refreshDelay(cacheControl, s.defRefresh, s.minRefresh, s.maxRefresh), nil
}

// download GETs the JWKS and splits it into its keys, each still raw, so
// that one key gavel cannot use does not cost the others.
func (s *jwksSource) download() ([]json.RawMessage, string, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSBytes))
		return nil, "", fmt.Errorf("JWKS URL answered %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading the JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, "", fmt.Errorf("JWKS larger than %d bytes", maxJWKSBytes)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, "", fmt.Errorf("JWKS is not a JSON key set: %w", err)
	}
	if doc.Keys == nil {
		return nil, "", errors.New(`JWKS has no "keys" array`)
	}
	return doc.Keys, resp.Header.Get("Cache-Control"), nil
}

// snapshot converts the fetched keys. Encryption keys are left out; a key
// gavel cannot use (invalid, symmetric, weak, an unknown "use", an alg that
// does not fit) is skipped, counted and logged once per refresh and kid,
// and the other keys are used. No usable key at all counts as a failure.
func (s *jwksSource) snapshot(raws []json.RawMessage) (*jwksSnapshot, error) {
	snap := &jwksSnapshot{byKID: make(map[string][]verifyKey), fetched: s.now(), prints: make(map[string]bool)}
	logged := make(map[string]bool)
	skip := func(kid string, err error) {
		if !logged[kid] {
			logged[kid] = true
			s.log.Warn("auth: JWKS key skipped: gavel cannot use it; the other keys stay in use",
				zap.String("url", s.url), zap.String("kid", clip(kid)), zap.Error(err))
		}
		s.skipped.Add(1)
	}
	n := 0
	for _, raw := range raws {
		var head struct {
			KID string `json:"kid"`
			USE string `json:"use"`
		}
		_ = json.Unmarshal(raw, &head)
		if head.USE == string(jwkset.UseEnc) {
			continue
		}
		j, err := jwkset.NewJWKFromRawJSON(raw, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			skip(head.KID, err)
			continue
		}
		m := j.Marshal()
		key := toPublic(j.Key())
		algs, err := keyAlgs(key)
		if err != nil {
			skip(m.KID, err)
			continue
		}
		if m.ALG != "" {
			a, ok := lookupAlg(string(m.ALG))
			if !ok || !algs.has(a) {
				skip(m.KID, fmt.Errorf("alg %q does not fit the key (it allows %s)", clip(string(m.ALG)), algs.names()))
				continue
			}
			algs = 1 << a
		}
		k := verifyKey{kid: m.KID, key: key, algs: algs}
		snap.all = append(snap.all, k)
		if m.KID != "" {
			snap.byKID[m.KID] = append(snap.byKID[m.KID], k)
		}
		snap.prints[k.print()] = true
		n++
	}
	if n == 0 {
		return nil, errors.New("JWKS has no usable signature key")
	}
	return snap, nil
}

// lost reports whether a key of old is not in next (pulled, or its kid now
// names another key).
func (old *jwksSnapshot) lost(next *jwksSnapshot) bool {
	for p := range old.prints {
		if !next.prints[p] {
			return true
		}
	}
	return false
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
