package auth

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// maxKeyBytes bounds a key server's answer.
const maxKeyBytes = 64 << 10

// transientNegativeTTL is how long a kid is refused after a transport error
// or an unexpected status, so that an outage does not turn every joiner into
// a request.
const transientNegativeTTL = 5 * time.Second

// keyServer fetches RSA public keys by kid from a Jitsi ASAP key server, at
// base/hex(sha256(kid)).pem; the kid never enters the path as given.
type keyServer struct {
	base    string // ends with "/"
	client  *http.Client
	timeout time.Duration
	ttl     time.Duration
	negTTL  time.Duration
	now     func() time.Time
	log     *zap.Logger
	ctx     context.Context // canceled by Verifier.Close

	keys    *lru.Cache[string, ksKey]
	neg     *lru.Cache[string, ksNegative]
	limiter *fairLimiter
	group   singleflight.Group

	fetches atomic.Int64 // HTTP requests sent, for tests and metrics
	// gen increases whenever a key is revoked (the server no longer has
	// it) or replaced, so that cached verifications made with it are not
	// used.
	gen atomic.Uint64
}

type ksKey struct {
	key     *rsa.PublicKey
	fetched time.Time
}

type ksNegative struct {
	until time.Time
	err   *Error
}

func newKeyServer(ctx context.Context, base string, client *http.Client, o *Options) *keyServer {
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	keys, _ := lru.New[string, ksKey](o.KeyCacheSize)
	neg, _ := lru.New[string, ksNegative](o.KeyCacheSize)
	return &keyServer{
		base:    base,
		client:  sameOriginClient(client, "key server", base),
		timeout: o.FetchTimeout,
		ttl:     o.KeyTTL,
		negTTL:  o.NegativeTTL,
		now:     o.Now,
		log:     o.Logger,
		ctx:     ctx,
		keys:    keys,
		neg:     neg,
		limiter: newFairLimiter(o),
	}
}

// fresh reports whether the key for kid is cached and younger than KeyTTL.
func (ks *keyServer) fresh(kid string) bool {
	k, ok := ks.keys.Peek(kid)
	return ok && ks.now().Sub(k.fetched) < ks.ttl
}

// keyURL is where the key for kid lives.
func (ks *keyServer) keyURL(kid string) string {
	sum := sha256.Sum256([]byte(kid))
	return ks.base + hex.EncodeToString(sum[:]) + ".pem"
}

// get returns the key for kid: from the cache while fresh; else fetched once
// however many callers ask at the same time; a stale key is kept when the
// server cannot be reached; unknown kids are remembered for NegativeTTL and
// fetches of uncached kids are rate-limited.
func (ks *keyServer) get(ctx context.Context, kid string) (*rsa.PublicKey, *Error) {
	now := ks.now()
	cached, have := ks.keys.Get(kid)
	if have && now.Sub(cached.fetched) < ks.ttl {
		return cached.key, nil
	}
	if n, ok := ks.neg.Get(kid); ok && now.Before(n.until) {
		if have {
			return cached.key, nil
		}
		return nil, n.err
	}
	who := requesterOf(ctx)
	ch := ks.group.DoChan(kid, func() (any, error) {
		return ks.fetch(ctx, who, kid, have)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			var e *Error
			if errors.As(res.Err, &e) {
				if have && e.Reason == ReasonKeyUnavailable {
					return cached.key, nil // outage: keep the last good key
				}
				return nil, e
			}
			return nil, newError(ReasonKeyUnavailable, res.Err.Error())
		}
		return res.Val.(*rsa.PublicKey), nil
	case <-ctx.Done():
		if have {
			return cached.key, nil
		}
		return nil, newError(ReasonKeyUnavailable, "gave up waiting for the key server: "+ctx.Err().Error())
	}
}

// fetch runs once per kid at a time (singleflight). A kid not cached yet
// is charged to the budget of who (the first caller) and then to the
// global one, waiting for it at most until ctx (the first caller's) ends.
// Its errors are *Error.
func (ks *keyServer) fetch(ctx context.Context, who, kid string, refresh bool) (any, error) {
	if !refresh {
		if e := ks.limiter.wait(ctx, who); e != nil {
			return nil, e
		}
	}
	ctx, cancel := context.WithTimeout(ks.ctx, ks.timeout)
	defer cancel()
	key, e := ks.request(ctx, kid)
	now := ks.now()
	old, had := ks.keys.Peek(kid)
	switch {
	case e == nil:
		if had && !old.key.Equal(key) {
			ks.gen.Add(1) // replaced
		}
		ks.keys.Add(kid, ksKey{key: key, fetched: now})
		ks.neg.Remove(kid)
		return key, nil
	case e.Reason == ReasonUnknownKey:
		if had {
			ks.gen.Add(1) // revoked
		}
		ks.keys.Remove(kid) // revoked or never existed
		ks.neg.Add(kid, ksNegative{until: now.Add(ks.negTTL), err: e})
	default:
		ks.neg.Add(kid, ksNegative{until: now.Add(transientNegativeTTL), err: e})
		ks.log.Warn("auth: key server fetch failed", zap.String("url", ks.keyURL(kid)), zap.String("error", e.Detail))
	}
	return nil, e
}

// request performs one HTTP GET and parses the PEM answer.
func (ks *keyServer) request(ctx context.Context, kid string) (*rsa.PublicKey, *Error) {
	u := ks.keyURL(kid)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, newError(ReasonKeyUnavailable, "key server request: "+err.Error())
	}
	req.Header.Set("Accept", "application/x-pem-file, text/plain, */*")
	ks.fetches.Add(1)
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, newError(ReasonKeyUnavailable, "key server: "+err.Error())
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone || resp.StatusCode == http.StatusForbidden:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxKeyBytes))
		return nil, newError(ReasonUnknownKey, fmt.Sprintf("key server has no key for kid %q (%s answered %d)", clip(kid), u, resp.StatusCode))
	case resp.StatusCode != http.StatusOK:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxKeyBytes))
		return nil, newError(ReasonKeyUnavailable, fmt.Sprintf("key server answered %d for %s", resp.StatusCode, u))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyBytes+1))
	if err != nil {
		return nil, newError(ReasonKeyUnavailable, "key server: reading answer: "+err.Error())
	}
	if len(body) > maxKeyBytes {
		return nil, newError(ReasonUnknownKey, fmt.Sprintf("key server answer for kid %q is larger than %d bytes", clip(kid), maxKeyBytes))
	}
	pk, err := ParsePublicKeyPEM(body)
	if err != nil {
		return nil, newError(ReasonUnknownKey, fmt.Sprintf("key server key for kid %q is unusable: %v", clip(kid), err))
	}
	rk, ok := pk.Key.(*rsa.PublicKey)
	if !ok {
		return nil, newError(ReasonUnknownKey, fmt.Sprintf("key server key for kid %q is %T; only RSA keys are accepted from a key server", clip(kid), pk.Key))
	}
	return rk, nil
}
