package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.uber.org/zap"
)

// Verifier validates tokens for the tenants it was built with. It is safe for
// concurrent use. Close it to stop its background refreshes.
type Verifier struct {
	tenants map[string]*tenantConfig
	def     *tenantConfig
	cache   *tokenCache
	seed    maphash.Seed
	now     func() time.Time
	log     *zap.Logger
	rooms   *roomPatterns

	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	ownClient  *http.Client
	closed     atomic.Bool
	closeOnce  sync.Once
	keyServers []*keyServer
	jwks       []*jwksSource
}

// New builds a Verifier. tenants maps a tenant name (as ParseRoom gives it,
// lowercase) to its rules; the entry "" is used for tenants without one. A
// tenant's keys only ever verify tokens for rooms of that tenant. New
// validates every Settings and starts one background refresh per JWKS URL;
// it does not contact any server itself.
func New(tenants map[string]Settings, opts Options) (*Verifier, error) {
	if len(tenants) == 0 {
		return nil, errors.New("auth: no tenant settings given")
	}
	opts.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	v := &Verifier{
		tenants: make(map[string]*tenantConfig, len(tenants)),
		seed:    maphash.MakeSeed(),
		now:     opts.Now,
		log:     opts.Logger,
		rooms:   newRoomPatterns(256),
		ctx:     ctx,
		cancel:  cancel,
	}
	client := opts.HTTPClient
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 4
		tr.IdleConnTimeout = 90 * time.Second
		client = &http.Client{Transport: tr}
		v.ownClient = client
	}
	if opts.CacheSize > 0 {
		v.cache = newTokenCache(opts.CacheSize)
	}
	for name, s := range tenants {
		if name != strings.ToLower(name) {
			cancel()
			return nil, fmt.Errorf("auth: tenant %q: tenant names must be lowercase", name)
		}
		c, err := compileSettings(name, s, opts.Logger)
		if err != nil {
			cancel()
			label := name
			if label == "" {
				label = "default"
			}
			return nil, fmt.Errorf("auth: tenant %q: %w", label, err)
		}
		if s.KeyServer != "" {
			c.keyServer = newKeyServer(ctx, s.KeyServer, client, &opts)
			v.keyServers = append(v.keyServers, c.keyServer)
		}
		if s.JWKSURL != "" {
			c.jwks = newJWKSSource(ctx, s.JWKSURL, client, &opts)
			v.jwks = append(v.jwks, c.jwks)
		}
		v.tenants[name] = c
	}
	v.def = v.tenants[""]
	for _, j := range v.jwks {
		v.wg.Add(1)
		go j.run(&v.wg)
	}
	return v, nil
}

// Close stops background refreshes and in-flight fetches. Verify fails with
// ReasonClosed afterwards. Close is idempotent and always returns nil.
func (v *Verifier) Close() error {
	v.closeOnce.Do(func() {
		v.closed.Store(true)
		v.cancel()
		v.wg.Wait()
		if v.ownClient != nil {
			v.ownClient.CloseIdleConnections()
		}
	})
	return nil
}

// Forget removes the token whose SHA-256 is tokenHash (Claims.TokenHash) from
// the verified-token cache, so that its next use is verified from scratch
// (and refused by any ban the caller keeps).
func (v *Verifier) Forget(tokenHash [32]byte) {
	if v.cache != nil {
		v.cache.forget(tokenHash)
	}
}

// SkippedJWKSKeys counts the JWKS keys skipped as unusable (invalid, an
// unknown "use", a weak or unsupported key, an alg that does not fit), over
// every refresh of every tenant since New: one per key per refresh. Each is
// also logged, once per refresh and kid. Register it as a counter, e.g.
// prometheus.NewCounterFunc(opts, func() float64 { return float64(v.SkippedJWKSKeys()) }).
func (v *Verifier) SkippedJWKSKeys() int64 {
	var n int64
	for _, j := range v.jwks {
		n += j.skipped.Load()
	}
	return n
}

// TokenHash returns the key that identifies a token for bans and Forget, as
// in Claims.TokenHash: the SHA-256 of its signed part (header.payload, the
// text before the last dot). The signature is left out because ECDSA
// signatures are malleable: anyone can turn one valid signature into
// another, and a ban must not be escaped that way.
func TokenHash(token string) [32]byte {
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		token = token[:i]
	}
	return sha256.Sum256(bytesOf(token))
}

// tenantFor returns the settings for a room's tenant.
func (v *Verifier) tenantFor(tenant string) *tenantConfig {
	if c, ok := v.tenants[tenant]; ok {
		return c
	}
	return v.def
}

// Verify checks token for room and returns its claims, or an *Error. The
// room's tenant selects the settings (falling back to the "" entry). ctx
// bounds any wait for a key fetch.
func (v *Verifier) Verify(ctx context.Context, token string, room Room) (*Claims, error) {
	c, e := v.verify(ctx, token, room)
	if e != nil {
		return nil, e
	}
	return c, nil
}

func (v *Verifier) verify(ctx context.Context, token string, room Room) (*Claims, *Error) {
	if v.closed.Load() {
		return nil, newError(ReasonClosed, "verifier is closed")
	}
	room, e := normalizeRoom(room)
	if e != nil {
		return nil, e
	}
	cfg := v.tenantFor(room.Tenant)
	if cfg == nil {
		return nil, newError(ReasonWrongTenant, fmt.Sprintf("no token settings for tenant %q and no default", clip(room.Tenant)))
	}
	if cfg.algs == 0 {
		return nil, newError(ReasonUnknownKey, fmt.Sprintf("no token keys are configured for tenant %q", clip(room.Tenant)))
	}
	if token == "" {
		return nil, newError(ReasonMissingToken, "no token given")
	}
	if len(token) > cfg.maxBytes {
		return nil, newError(ReasonTooLarge, fmt.Sprintf("token is %d bytes, the limit is %d", len(token), cfg.maxBytes))
	}
	now := v.now()
	var key, gen, keyGen uint64
	if v.cache != nil {
		key = maphash.String(v.seed, token)
		// Read before the verification: a key set change during it makes
		// the entry stale at once.
		keyGen = cfg.keyGen()
		if ent := v.cache.get(key, token); ent != nil && ent.cfg == cfg {
			if !ent.stillKeyed(keyGen) {
				// The key set changed (a key pulled from the JWKS or the
				// key server) or a key-server key is due for a fetch:
				// verify from scratch.
				v.cache.drop(ent)
			} else {
				if e := v.checkContext(ent.claims, cfg, room, now); e != nil {
					if e.Reason == ReasonExpired {
						v.cache.drop(ent)
					}
					return nil, e
				}
				return withRoom(ent.claims, room), nil
			}
		}
		gen = v.cache.gen.Load()
	}
	c, src, e := v.parse(ctx, cfg, token)
	if e != nil {
		return nil, e
	}
	if e := v.checkContext(c, cfg, room, now); e != nil {
		return nil, e
	}
	if v.cache != nil {
		v.cache.add(key, token, c, cfg, gen, src, keyGen)
	}
	return withRoom(c, room), nil
}

// withRoom copies shared claims for one caller and sets the room's tenant.
func withRoom(c *Claims, room Room) *Claims {
	out := *c
	out.Tenant = room.Tenant
	return &out
}

// b64 is strict unpadded base64url: no '=', no '+' or '/', no stray bits, so
// a token has exactly one encoding.
var b64 = base64.RawURLEncoding.Strict()

// maxHeaderB64 bounds the header segment; real headers are under 200 bytes.
const maxHeaderB64 = 2048

// maxSigBytes bounds the signature (RSA-8192 is 1024 bytes).
const maxSigBytes = 1024

// header is the JOSE header as decoded.
type header struct {
	alg, typ, kid          string
	hasAlg, hasTyp, hasKid bool
	crit                   bool
}

// parseHeader decodes a JOSE header: alg, typ and kid must be strings, each
// at most once; any crit is noted; other members are ignored (jwk, jku, x5u
// and the like are never used).
func parseHeader(b []byte) (header, error) {
	var h header
	r := &jsonReader{b: b}
	if err := r.beginObject(0); err != nil {
		return h, err
	}
	var s seen
	for first := true; ; {
		name, ok, err := r.member(&first)
		if err != nil {
			return h, err
		}
		if !ok {
			break
		}
		switch string(name) {
		case "alg":
			if err = s.mark(0, `header member "alg"`); err == nil {
				h.alg, err = r.headerString("alg")
				h.hasAlg = true
			}
		case "typ":
			if err = s.mark(1, `header member "typ"`); err == nil {
				h.typ, err = r.headerString("typ")
				h.hasTyp = true
			}
		case "kid":
			if err = s.mark(2, `header member "kid"`); err == nil {
				h.kid, err = r.headerString("kid")
				h.hasKid = true
			}
		case "crit":
			if err = s.mark(3, `header member "crit"`); err == nil {
				h.crit = r.peek() != 'n'
				err = r.skip(1)
			}
		default:
			err = r.skip(1)
		}
		if err != nil {
			return h, err
		}
	}
	return h, r.end()
}

// headerString reads a header member that must be a string.
func (r *jsonReader) headerString(field string) (string, error) {
	if c := r.peek(); c != '"' {
		if err := r.skip(1); err != nil {
			return "", err
		}
		return "", fmt.Errorf("header %s must be a string, got a JSON %s", field, kind(c))
	}
	b, err := r.rawString()
	return string(b), err
}

// bytesOf views a string's bytes without copying; the result must not be
// written to.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// segmentCount counts a token's dot-separated segments.
func segmentCount(token string) int { return strings.Count(token, ".") + 1 }

// parse checks everything that does not depend on the room or the clock:
// structure, header, key, signature, claim types, issuer and audience.
func (v *Verifier) parse(ctx context.Context, cfg *tenantConfig, token string) (*Claims, keySource, *Error) {
	c, src, e := parseSigned(ctx, cfg, token)
	if e != nil {
		return nil, 0, e
	}
	if e := cfg.checkStatic(c, v.rooms); e != nil {
		return nil, 0, e
	}
	return c, src, nil
}

// keySource says which kind of key verified a token, for the cache.
type keySource uint8

const (
	fromStatic    keySource = iota + 1 // a secret or a configured public key
	fromJWKS                           // a key of the JWKS
	fromKeyServer                      // a key fetched from the key server
)

// parseSigned checks a token's structure, header, key and signature, and
// decodes its claims: what every token gavel reads goes through, user
// tokens and admin tokens alike.
func parseSigned(ctx context.Context, cfg *tenantConfig, token string) (*Claims, keySource, *Error) {
	d1 := strings.IndexByte(token, '.')
	if d1 < 0 {
		return nil, 0, newError(ReasonMalformed, "not a JWT: want three dot-separated segments, got 1")
	}
	d2 := d1 + 1 + strings.IndexByte(token[d1+1:], '.')
	if d2 == d1 || strings.IndexByte(token[d2+1:], '.') >= 0 {
		n := segmentCount(token)
		if n == 5 {
			return nil, 0, newError(ReasonMalformed, "encrypted tokens (JWE, five segments) are not supported")
		}
		return nil, 0, newError(ReasonMalformed, fmt.Sprintf("not a JWT: want three dot-separated segments, got %d", n))
	}
	// The base64 decoder skips \r and \n; refuse them so that a token has
	// one spelling only (bans and the cache key on its text).
	if strings.IndexByte(token, '\n') >= 0 || strings.IndexByte(token, '\r') >= 0 {
		return nil, 0, newError(ReasonMalformed, "token contains a line break")
	}
	h64, p64, s64 := token[:d1], token[d1+1:d2], token[d2+1:]
	if h64 == "" || p64 == "" {
		return nil, 0, newError(ReasonMalformed, "empty header or payload segment")
	}
	if len(h64) > maxHeaderB64 {
		return nil, 0, newError(ReasonMalformed, fmt.Sprintf("header segment is %d bytes, at most %d are allowed", len(h64), maxHeaderB64))
	}

	// Header.
	hb := make([]byte, b64.DecodedLen(len(h64)))
	n, err := b64.Decode(hb, bytesOf(h64))
	if err != nil {
		return nil, 0, newError(ReasonMalformed, "header is not unpadded base64url: "+err.Error())
	}
	hb = hb[:n]
	if len(hb) == 0 || hb[0] != '{' {
		return nil, 0, newError(ReasonMalformed, "header is not a JSON object")
	}
	h, err := parseHeader(hb)
	if err != nil {
		return nil, 0, newError(ReasonMalformed, jsonDetail("header", err))
	}
	// typ is optional (RFC 7519 section 5.1); when present it must say JWT,
	// in any case, so that other kinds of JOSE object are not taken for one.
	if h.hasTyp && !strings.EqualFold(h.typ, "JWT") {
		return nil, 0, newError(ReasonMalformed, fmt.Sprintf(`not a JWT: header typ is %q; want "JWT" or no typ`, clip(h.typ)))
	}
	if h.alg == "" {
		return nil, 0, newError(ReasonMalformed, "header has no alg")
	}
	if strings.EqualFold(h.alg, "none") {
		return nil, 0, newError(ReasonAlgorithmNotAllowed, `alg "none" (unsigned token) is never accepted`)
	}
	alg, ok := lookupAlg(h.alg)
	if !ok || !cfg.algs.has(alg) {
		return nil, 0, newError(ReasonAlgorithmNotAllowed, fmt.Sprintf("alg %q is not allowed for tenant %q (allowed: %s)", clip(h.alg), cfg.label(), cfg.algs.names()))
	}
	if h.crit {
		return nil, 0, newError(ReasonMalformed, "header has crit extensions, none of which are supported")
	}
	kid := h.kid
	if len(kid) > MaxKIDBytes {
		return nil, 0, newError(ReasonMalformed, fmt.Sprintf("kid is %d bytes, at most %d are allowed", len(kid), MaxKIDBytes))
	}

	// Payload and signature must be well-formed base64url before any key work.
	if len(s64) == 0 {
		return nil, 0, newError(ReasonBadSignature, "token has an empty signature")
	}
	if b64.DecodedLen(len(s64)) > maxSigBytes {
		return nil, 0, newError(ReasonBadSignature, fmt.Sprintf("signature is longer than %d bytes", maxSigBytes))
	}
	sig := make([]byte, b64.DecodedLen(len(s64)))
	n, err = b64.Decode(sig, bytesOf(s64))
	if err != nil {
		return nil, 0, newError(ReasonMalformed, "signature is not unpadded base64url: "+err.Error())
	}
	sig = sig[:n]
	payload := make([]byte, b64.DecodedLen(len(p64)))
	n, err = b64.Decode(payload, bytesOf(p64))
	if err != nil {
		return nil, 0, newError(ReasonMalformed, "payload is not unpadded base64url: "+err.Error())
	}
	payload = payload[:n]

	// Signature: the key, never the token, decides.
	src, e := checkSignature(ctx, cfg, alg, kid, token[:d2], sig)
	if e != nil {
		return nil, 0, e
	}

	// Claims.
	c, e := decodeClaims(payload)
	if e != nil {
		return nil, 0, e
	}
	c.Algorithm, c.KeyID = algNames[alg], kid
	c.TokenHash = sha256.Sum256(bytesOf(token[:d2]))
	if !c.Expires.IsZero() {
		c.ValidUntil = c.Expires.Add(cfg.leeway)
	}
	return c, src, nil
}

func (c *tenantConfig) label() string {
	if c.name == "" {
		return "default"
	}
	return c.name
}

// checkSignature verifies the signature with the tenant's keys that allow
// alg: secrets for HS*; for the others, static keys (exact kid first), then
// the JWKS, then the key server.
func checkSignature(ctx context.Context, cfg *tenantConfig, alg algID, kid, signed string, sig []byte) (keySource, *Error) {
	method := algMethods[alg]
	if hsAlgs.has(alg) {
		for i := range cfg.secrets {
			if method.Verify(signed, sig, cfg.secrets[i].key) == nil {
				return fromStatic, nil
			}
		}
		return 0, newError(ReasonBadSignature, fmt.Sprintf("%s signature does not match any secret of tenant %q", algNames[alg], cfg.label()))
	}
	tried := 0
	for i := range cfg.static {
		k := &cfg.static[i]
		if !k.algs.has(alg) || (k.kid != "" && k.kid != kid) {
			continue
		}
		tried++
		if method.Verify(signed, sig, k.key) == nil {
			return fromStatic, nil
		}
	}
	var unavailable *Error
	if cfg.jwks != nil {
		keys, e := cfg.jwks.keys(ctx, kid)
		if e != nil {
			unavailable = e
		}
		for i := range keys {
			k := &keys[i]
			if !k.algs.has(alg) {
				continue
			}
			tried++
			if method.Verify(signed, sig, k.key) == nil {
				return fromJWKS, nil
			}
		}
	}
	if cfg.keyServer != nil && rsAlgs.has(alg) && kid != "" {
		key, e := cfg.keyServer.get(ctx, kid)
		switch {
		case e == nil:
			tried++
			if method.Verify(signed, sig, key) == nil {
				return fromKeyServer, nil
			}
		case e.Reason == ReasonKeyUnavailable:
			unavailable = e
		case tried == 0 && unavailable == nil:
			return 0, e
		}
	}
	switch {
	case tried > 0 && kid == "":
		return 0, newError(ReasonBadSignature, fmt.Sprintf("%s signature does not verify with any key of tenant %q (token has no kid)", algNames[alg], cfg.label()))
	case tried > 0:
		return 0, newError(ReasonBadSignature, fmt.Sprintf("%s signature does not verify with any key of tenant %q for kid %q", algNames[alg], cfg.label(), clip(kid)))
	case unavailable != nil:
		return 0, unavailable
	case kid == "":
		return 0, newError(ReasonUnknownKey, fmt.Sprintf("token has no kid and no %s key of tenant %q fits", algNames[alg], cfg.label()))
	}
	return 0, newError(ReasonUnknownKey, fmt.Sprintf("no %s key of tenant %q has kid %q", algNames[alg], cfg.label(), clip(kid)))
}

// checkStatic applies the rules that depend neither on the room nor on the
// clock: required claims, issuer, audience, room pattern syntax.
func (cfg *tenantConfig) checkStatic(c *Claims, rooms *roomPatterns) *Error {
	if c.Expires.IsZero() && cfg.requireExp {
		return newError(ReasonMissingClaim, "token has no exp; this tenant requires one")
	}
	if c.Issuer == "" {
		return newError(ReasonMissingClaim, "token has no iss")
	}
	if !cfg.anyIssuer && !contains(cfg.issuers, c.Issuer) {
		return newError(ReasonWrongIssuer, fmt.Sprintf("iss %q is not accepted by tenant %q", clip(c.Issuer), cfg.label()))
	}
	if len(c.Audience) == 0 {
		return newError(ReasonMissingClaim, "token has no aud")
	}
	if !cfg.anyAudience {
		ok := false
		for _, a := range c.Audience {
			if contains(cfg.audiences, a) {
				ok = true
				break
			}
		}
		if !ok {
			return newError(ReasonWrongAudience, fmt.Sprintf("aud %q is not accepted by tenant %q", clip(strings.Join(c.Audience, ",")), cfg.label()))
		}
	}
	if c.Subject == "" {
		return newError(ReasonMissingClaim, "token has no sub")
	}
	switch {
	case c.Room == "":
		if cfg.requireRoom {
			return newError(ReasonMissingClaim, "token has no room claim")
		}
	case c.RoomRegex && c.Room != "*":
		if !cfg.regexRoom {
			return newError(ReasonWrongRoom, "regex room claims are disabled for tenant "+fmt.Sprintf("%q", cfg.label()))
		}
		re, err := rooms.get(c.Room)
		if err != nil {
			return newError(ReasonWrongRoom, err.Error())
		}
		c.roomRE = re
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkContext applies the rules that depend on the clock and the room. It
// runs on every verification, cached or not.
func (v *Verifier) checkContext(c *Claims, cfg *tenantConfig, room Room, now time.Time) *Error {
	if e := checkTimes(c, cfg.leeway, now); e != nil {
		return e
	}

	// Tenant: sub names the tenant ([tenant]room) or the MUC domain
	// (prefix.sub), as Jitsi's domain verification.
	sub := c.subLower
	if sub == "*" {
		if !cfg.wildcardSub {
			return newError(ReasonWrongTenant, fmt.Sprintf("sub \"*\" is not allowed for tenant %q", cfg.label()))
		}
	} else if room.hasBracketTenant() {
		if sub != room.Tenant {
			return newError(ReasonWrongTenant, fmt.Sprintf("token is for tenant %q, the room is in tenant %q", clip(sub), clip(room.Tenant)))
		}
	} else {
		d, p := room.Domain, cfg.mucPrefix
		if !(len(d) == len(p)+1+len(sub) && strings.HasPrefix(d, p) && d[len(p)] == '.' && d[len(p)+1:] == sub) {
			return newError(ReasonWrongTenant, fmt.Sprintf("token is for %q, the room's MUC domain %q is not %s.%s", clip(sub), clip(d), p, clip(sub)))
		}
	}

	// Room.
	switch {
	case c.Room == "":
		// Allowed only when not required (checkStatic).
	case c.Room == "*":
		if !cfg.wildcardRoom {
			return newError(ReasonWrongRoom, fmt.Sprintf("room \"*\" is not allowed for tenant %q", cfg.label()))
		}
	case c.roomRE != nil:
		if !c.roomRE.MatchString(room.Name) {
			return newError(ReasonWrongRoom, fmt.Sprintf("room %q does not match the token's room pattern %q", clip(room.Name), clip(c.Room)))
		}
	case c.Room != room.Name:
		return newError(ReasonWrongRoom, fmt.Sprintf("token is for room %q, not %q", clip(c.Room), clip(room.Name)))
	}
	return nil
}

// checkTimes is gavel's one rule for exp, nbf and iat, with the same leeway
// on each: a token is valid from nbf (and iat) minus the leeway, up to but
// not including exp plus the leeway (Claims.ValidUntil). User tokens and
// admin tokens use it.
func checkTimes(c *Claims, leeway time.Duration, now time.Time) *Error {
	if !c.ValidUntil.IsZero() && !now.Before(c.ValidUntil) {
		return newError(ReasonExpired, fmt.Sprintf("token expired at %s (now %s, leeway %v)", stamp(c.Expires), stamp(now), leeway))
	}
	if !c.NotBefore.IsZero() && now.Add(leeway).Before(c.NotBefore) {
		return newError(ReasonNotYetValid, fmt.Sprintf("token is not valid before %s (now %s, leeway %v)", stamp(c.NotBefore), stamp(now), leeway))
	}
	if !c.IssuedAt.IsZero() && now.Add(leeway).Before(c.IssuedAt) {
		return newError(ReasonIssuedInFuture, fmt.Sprintf("token is issued at %s, in the future (now %s, leeway %v)", stamp(c.IssuedAt), stamp(now), leeway))
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
