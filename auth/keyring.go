package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// KeyRingSettings are the rules of a KeyRing.
type KeyRingSettings struct {
	// Secrets are HS256/384/512 shared secrets.
	Secrets [][]byte
	// PublicKeys verify RS*, PS*, ES* and EdDSA tokens; a key's KID and
	// Algorithms narrow the tokens it verifies, as for a tenant.
	PublicKeys []PublicKey
	// Issuers and Audiences list the accepted iss and aud values; empty
	// accepts any (and then the claim may be absent).
	Issuers, Audiences []string
	// Leeway is the clock skew allowed on exp, nbf and iat (0 to MaxLeeway),
	// applied exactly as Verifier applies a tenant's leeway.
	Leeway time.Duration
	// MaxTokenBytes is the largest token accepted (0: DefaultMaxTokenBytes).
	MaxTokenBytes int
}

// KeyRing verifies tokens that are signed with fixed keys and are not for a
// room: the admin tokens of gavel's HTTP API. It applies the rules it shares
// with Verifier by the same code: token structure, header (typ optional, the
// key fixes the algorithm, no crit), signature, the strict claim decoder
// (a string exp is wrong-type; Claims.Admin is true only for JSON true or
// "true") and the time rule (exp required; Claims.ValidUntil). It checks no
// sub, room or admin claim: the caller decides what those mean.
type KeyRing struct {
	cfg *tenantConfig
	now func() time.Time
}

// NewKeyRing validates s. now is the clock; nil means time.Now.
func NewKeyRing(s KeyRingSettings, now func() time.Time) (*KeyRing, error) {
	if now == nil {
		now = time.Now
	}
	if s.Leeway < 0 || s.Leeway > MaxLeeway {
		return nil, fmt.Errorf("auth: leeway must be between 0s and %v, got %v", MaxLeeway, s.Leeway)
	}
	c := &tenantConfig{name: "admin", leeway: s.Leeway, maxBytes: s.MaxTokenBytes, requireExp: true}
	switch {
	case c.maxBytes == 0:
		c.maxBytes = DefaultMaxTokenBytes
	case c.maxBytes < 256 || c.maxBytes > MaxMaxTokenBytes:
		return nil, fmt.Errorf("auth: max token bytes must be between 256 and %d, got %d", MaxMaxTokenBytes, c.maxBytes)
	}
	for i, sec := range s.Secrets {
		if len(sec) == 0 {
			return nil, fmt.Errorf("auth: secret #%d is empty", i+1)
		}
		c.secrets = append(c.secrets, verifyKey{key: append([]byte(nil), sec...), algs: hsAlgs})
		c.algs |= hsAlgs
	}
	for i, pk := range s.PublicKeys {
		k, err := newStaticKey(pk)
		if err != nil {
			return nil, fmt.Errorf("auth: public key #%d: %w", i+1, err)
		}
		c.static = append(c.static, k)
		c.algs |= k.algs
	}
	for _, iss := range s.Issuers {
		if iss == "" {
			return nil, errors.New("auth: issuers list an empty string")
		}
	}
	for _, aud := range s.Audiences {
		if aud == "" {
			return nil, errors.New("auth: audiences list an empty string")
		}
	}
	c.issuers = append([]string(nil), s.Issuers...)
	c.audiences = append([]string(nil), s.Audiences...)
	return &KeyRing{cfg: c, now: now}, nil
}

// HasKeys reports whether any token can verify at all.
func (k *KeyRing) HasKeys() bool { return k.cfg.algs != 0 }

// Verify checks token and returns its claims, or an *Error whose Reason says
// why it was refused.
func (k *KeyRing) Verify(token string) (*Claims, error) {
	c, e := k.verify(token)
	if e != nil {
		return nil, e
	}
	return c, nil
}

func (k *KeyRing) verify(token string) (*Claims, *Error) {
	cfg := k.cfg
	switch {
	case token == "":
		return nil, newError(ReasonMissingToken, "no token given")
	case len(token) > cfg.maxBytes:
		return nil, newError(ReasonTooLarge, fmt.Sprintf("token is %d bytes, the limit is %d", len(token), cfg.maxBytes))
	case cfg.algs == 0:
		return nil, newError(ReasonUnknownKey, "no keys are configured")
	}
	// Only static keys: no fetch ever waits on this context.
	c, _, e := parseSigned(context.Background(), cfg, token)
	if e != nil {
		return nil, e
	}
	if c.Expires.IsZero() {
		return nil, newError(ReasonMissingClaim, "token has no exp")
	}
	if len(cfg.issuers) > 0 {
		switch {
		case c.Issuer == "":
			return nil, newError(ReasonMissingClaim, "token has no iss")
		case !contains(cfg.issuers, c.Issuer):
			return nil, newError(ReasonWrongIssuer, fmt.Sprintf("iss %q is not accepted", clip(c.Issuer)))
		}
	}
	if len(cfg.audiences) > 0 {
		ok := false
		for _, a := range c.Audience {
			ok = ok || contains(cfg.audiences, a)
		}
		switch {
		case len(c.Audience) == 0:
			return nil, newError(ReasonMissingClaim, "token has no aud")
		case !ok:
			return nil, newError(ReasonWrongAudience, fmt.Sprintf("aud %q is not accepted", clip(strings.Join(c.Audience, ","))))
		}
	}
	if e := checkTimes(c, cfg.leeway, k.now()); e != nil {
		return nil, e
	}
	return c, nil
}
