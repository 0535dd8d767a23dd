package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Limits and defaults of Settings.
const (
	DefaultLeeway        = 30 * time.Second
	MaxLeeway            = 5 * time.Minute
	DefaultMaxTokenBytes = 8192
	// MaxMaxTokenBytes bounds MaxTokenBytes itself.
	MaxMaxTokenBytes = 64 << 10
	// DefaultMUCDomainPrefix is the label in front of a tenant's MUC domain
	// ("conference.<sub>"), as Jitsi's muc_mapper_domain_prefix.
	DefaultMUCDomainPrefix = "conference"
	// MaxKIDBytes is the longest kid accepted in a token header.
	MaxKIDBytes = 256
	// MaxRoomPatternBytes is the longest regex room claim accepted.
	MaxRoomPatternBytes = 256
)

// Settings are one tenant's token rules. Start from DefaultSettings: several
// safe defaults are true, and a bool's zero value is false.
//
// Compared with Jitsi's token plugin: AppID is app_id, Secrets app_secret,
// KeyServer asap_key_server, JWKSURL cache_keys_url, Algorithms
// signature_algorithm, Issuers asap_accepted_issuers, Audiences
// asap_accepted_audiences, RequireRoom asap_require_room_claim. The tenant
// rule (enable_domain_verification) is always on.
type Settings struct {
	// AppID is the application id. It is the default issuer and one of the
	// default audiences.
	AppID string
	// Secrets are HS256/384/512 shared secrets; several for rotation, each is
	// tried in turn. Secrets shorter than 32 bytes are accepted with a warning.
	Secrets [][]byte
	// PublicKeys verify RS*, PS*, ES* and EdDSA tokens (see ParsePublicKeyPEM).
	PublicKeys []PublicKey
	// Algorithms optionally restricts the accepted algorithms; empty means
	// every algorithm the configured keys allow. Each listed algorithm must be
	// served by some key source.
	Algorithms []string
	// KeyServer is the base http(s) URL of a Jitsi "ASAP" key server: the key
	// for kid K is fetched from KeyServer/hex(sha256(K)).pem. It serves RSA
	// keys only, for RS256/384/512 tokens that carry a kid. Redirects are
	// followed only within the URL's scheme, host and port.
	KeyServer string
	// JWKSURL is an http(s) URL of a JSON Web Key Set, refreshed in the
	// background as its Cache-Control max-age says (else every
	// Options.JWKSRefresh) and on demand when an unknown kid shows up.
	// Redirects are followed only within the URL's scheme, host and port.
	JWKSURL string
	// Issuers are the accepted iss values; default [AppID]. "*" accepts any
	// issuer. JaaS tokens carry iss "chat". iss is always required.
	Issuers []string
	// Audiences are the accepted aud values; default ["jitsi", AppID]. "*"
	// accepts any audience (Jitsi's default; set it to keep that behaviour).
	// aud is always required, as in Jitsi.
	Audiences []string
	// RequireExp refuses tokens without exp (default true; Jitsi lets such
	// tokens live forever).
	RequireExp bool
	// Leeway is the clock skew allowed on exp, nbf and iat (default 30s,
	// at most 5m).
	Leeway time.Duration
	// RequireRoom refuses tokens without a room claim (default true).
	RequireRoom bool
	// AllowWildcardRoom accepts room "*" (any room; default true, JaaS uses it).
	AllowWildcardRoom bool
	// AllowRegexRoom accepts room claims flagged context.room.regex, as Go
	// RE2 patterns (linear time), anchored, case-insensitive, at most 256
	// bytes (default false).
	AllowRegexRoom bool
	// AllowWildcardSub accepts sub "*" (any tenant; default true, as Jitsi).
	AllowWildcardSub bool
	// MaxTokenBytes is the largest token accepted, checked before any parsing
	// (default 8192, at most 65536; 0 means the default).
	MaxTokenBytes int
	// MUCDomainPrefix is the first label of the MUC domain for rooms without
	// a [tenant]: their domain must be MUCDomainPrefix + "." + sub. Empty
	// means "conference"; docker-jitsi-meet uses "muc".
	MUCDomainPrefix string
}

// DefaultSettings returns the default rules for an application id: exp
// required with 30s leeway, room required, wildcard room and sub allowed,
// regex rooms off, 8 KiB tokens, issuer AppID, audiences "jitsi" and AppID.
// Add at least one key source.
func DefaultSettings(appID string) Settings {
	return Settings{
		AppID:             appID,
		RequireExp:        true,
		Leeway:            DefaultLeeway,
		RequireRoom:       true,
		AllowWildcardRoom: true,
		AllowRegexRoom:    false,
		AllowWildcardSub:  true,
		MaxTokenBytes:     DefaultMaxTokenBytes,
		MUCDomainPrefix:   DefaultMUCDomainPrefix,
	}
}

// Options tune a Verifier as a whole. The zero value is usable.
type Options struct {
	// HTTPClient fetches key-server keys and JWKS. Nil: a client of the
	// Verifier's own, whose idle connections Close shuts.
	HTTPClient *http.Client
	// Logger receives refresh failures and configuration warnings. Nil: none.
	Logger *zap.Logger
	// Now is the clock (tests). Nil: time.Now.
	Now func() time.Time
	// CacheSize bounds the verified-token cache (entries). 0: 10000;
	// negative: no cache.
	CacheSize int
	// FetchTimeout bounds one key-server or JWKS request (default 3s).
	FetchTimeout time.Duration
	// KeyCacheSize bounds each key server's cache of keys (default 1024).
	KeyCacheSize int
	// KeyTTL is how long a key-server key is used before it is fetched again;
	// on an outage the old key is kept (default 1h).
	KeyTTL time.Duration
	// NegativeTTL is how long a kid the key server does not know is refused
	// without asking again (default 1m; 5s after a transport error).
	NegativeTTL time.Duration
	// KeyFetchRate and KeyFetchBurst limit each key server's fetches of kids
	// not in its cache (default 10 per second, burst 20).
	KeyFetchRate  float64
	KeyFetchBurst int
	// RequesterFetchRate and RequesterFetchBurst are each requester's own
	// budget of such fetches (see WithRequester), spent before the global
	// one (default 1 every 10 seconds, burst 3).
	RequesterFetchRate  float64
	RequesterFetchBurst int
	// JWKSRefresh is the JWKS refresh period when the server sends no
	// Cache-Control max-age (default 6h, as Jitsi).
	JWKSRefresh time.Duration
	// JWKSMinRefresh is the shortest JWKS refresh period, the least time
	// between two refreshes caused by unknown kids, and the first retry delay
	// after a failure (default 1m).
	JWKSMinRefresh time.Duration
	// JWKSMaxRefresh caps a large max-age (default 24h).
	JWKSMaxRefresh time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CacheSize == 0 {
		o.CacheSize = 10000
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 3 * time.Second
	}
	if o.KeyCacheSize <= 0 {
		o.KeyCacheSize = 1024
	}
	if o.KeyTTL <= 0 {
		o.KeyTTL = time.Hour
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = time.Minute
	}
	if o.KeyFetchRate <= 0 {
		o.KeyFetchRate = 10
	}
	if o.KeyFetchBurst <= 0 {
		o.KeyFetchBurst = 20
	}
	if o.RequesterFetchRate <= 0 {
		o.RequesterFetchRate = 0.1
	}
	if o.RequesterFetchBurst <= 0 {
		o.RequesterFetchBurst = 3
	}
	if o.JWKSRefresh <= 0 {
		o.JWKSRefresh = 6 * time.Hour
	}
	if o.JWKSMinRefresh <= 0 {
		o.JWKSMinRefresh = time.Minute
	}
	if o.JWKSMaxRefresh <= 0 {
		o.JWKSMaxRefresh = 24 * time.Hour
	}
	if o.JWKSMaxRefresh < o.JWKSMinRefresh {
		o.JWKSMaxRefresh = o.JWKSMinRefresh
	}
	if o.JWKSRefresh < o.JWKSMinRefresh {
		o.JWKSRefresh = o.JWKSMinRefresh
	}
}

// tenantConfig is a validated, precomputed Settings.
type tenantConfig struct {
	name        string
	algs        algSet // every algorithm some key source serves, narrowed by Settings.Algorithms
	secrets     []verifyKey
	static      []verifyKey // sorted: keys with a KID first
	keyServer   *keyServer
	jwks        *jwksSource
	issuers     []string
	anyIssuer   bool
	audiences   []string
	anyAudience bool

	requireExp   bool
	requireRoom  bool
	wildcardRoom bool
	regexRoom    bool
	wildcardSub  bool
	leeway       time.Duration
	maxBytes     int
	mucPrefix    string
}

// keyGen is the generation of the tenant's fetched key sets: it changes
// whenever the JWKS or the key server loses or replaces a key. Secrets and
// configured public keys never change within a Verifier.
func (c *tenantConfig) keyGen() uint64 {
	var g uint64
	if c.jwks != nil {
		g += c.jwks.gen.Load()
	}
	if c.keyServer != nil {
		g += c.keyServer.gen.Load()
	}
	return g
}

// validHTTPURL checks a key-server or JWKS URL.
func validHTTPURL(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s %q is not a URL: %w", field, raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s %q must be an http or https URL", field, raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s %q has no host", field, raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s must not carry credentials in the URL", field)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("%s %q must not have a #fragment", field, raw)
	}
	return u, nil
}

// compileSettings validates s and precomputes what Verify needs. Key servers
// and JWKS sources are not started here.
func compileSettings(name string, s Settings, log *zap.Logger) (*tenantConfig, error) {
	c := &tenantConfig{
		name:         name,
		requireExp:   s.RequireExp,
		requireRoom:  s.RequireRoom,
		wildcardRoom: s.AllowWildcardRoom,
		regexRoom:    s.AllowRegexRoom,
		wildcardSub:  s.AllowWildcardSub,
		leeway:       s.Leeway,
		maxBytes:     s.MaxTokenBytes,
		mucPrefix:    strings.ToLower(s.MUCDomainPrefix),
	}
	if s.Leeway < 0 || s.Leeway > MaxLeeway {
		return nil, fmt.Errorf("leeway must be between 0s and %v, got %v", MaxLeeway, s.Leeway)
	}
	switch {
	case s.MaxTokenBytes == 0:
		c.maxBytes = DefaultMaxTokenBytes
	case s.MaxTokenBytes < 256 || s.MaxTokenBytes > MaxMaxTokenBytes:
		return nil, fmt.Errorf("max token bytes must be between 256 and %d, got %d", MaxMaxTokenBytes, s.MaxTokenBytes)
	}
	if c.mucPrefix == "" {
		c.mucPrefix = DefaultMUCDomainPrefix
	}
	if strings.ContainsAny(c.mucPrefix, ".@/ ") {
		return nil, fmt.Errorf("MUC domain prefix %q must be a single DNS label", s.MUCDomainPrefix)
	}

	var served algSet
	for i, sec := range s.Secrets {
		if len(sec) == 0 {
			return nil, fmt.Errorf("secret #%d is empty", i+1)
		}
		if len(sec) < 32 {
			log.Warn("auth: short HS secret; use at least 32 random bytes", zap.String("tenant", name), zap.Int("secret", i+1), zap.Int("bytes", len(sec)))
		}
		c.secrets = append(c.secrets, verifyKey{key: append([]byte(nil), sec...), algs: hsAlgs})
		served |= hsAlgs
	}
	for i, pk := range s.PublicKeys {
		k, err := newStaticKey(pk)
		if err != nil {
			return nil, fmt.Errorf("public key #%d: %w", i+1, err)
		}
		c.static = append(c.static, k)
		served |= k.algs
	}
	// Keys with a KID first, so that an exact kid match is tried before the
	// keys that match any kid.
	var named, unnamed []verifyKey
	for _, k := range c.static {
		if k.kid != "" {
			named = append(named, k)
		} else {
			unnamed = append(unnamed, k)
		}
	}
	c.static = append(named, unnamed...)
	if s.KeyServer != "" {
		if _, err := validHTTPURL("key server", s.KeyServer); err != nil {
			return nil, err
		}
		served |= rsAlgs
	}
	if s.JWKSURL != "" {
		if _, err := validHTTPURL("JWKS URL", s.JWKSURL); err != nil {
			return nil, err
		}
		served |= rsaAlgs | 1<<algES256 | 1<<algES384 | 1<<algES512 | 1<<algEdDSA
	}
	// A tenant without keys is allowed (guests-only deployments): its
	// tokens are refused as unknown-key.
	if served == 0 && len(s.Algorithms) > 0 {
		return nil, errors.New("algorithms are listed but there is no key source: set Secrets, PublicKeys, KeyServer or JWKSURL")
	}
	c.algs = served
	if len(s.Algorithms) > 0 {
		want, err := parseAlgs(s.Algorithms)
		if err != nil {
			return nil, err
		}
		if missing := want &^ served; missing != 0 {
			return nil, fmt.Errorf("algorithms %s are listed but no key source serves them (sources serve %s)", missing.names(), served.names())
		}
		c.algs = want
	}

	issuers := s.Issuers
	if len(issuers) == 0 {
		if s.AppID == "" && served != 0 {
			return nil, errors.New("app id is empty and no issuers are listed: set AppID (app_id) or Issuers (issuers)")
		}
		if s.AppID != "" {
			issuers = []string{s.AppID}
		}
	}
	for _, iss := range issuers {
		switch iss {
		case "":
			return nil, errors.New("issuers list an empty string")
		case "*":
			c.anyIssuer = true
		default:
			c.issuers = append(c.issuers, iss)
		}
	}
	audiences := s.Audiences
	if len(audiences) == 0 {
		audiences = []string{"jitsi"}
		if s.AppID != "" && s.AppID != "jitsi" {
			audiences = append(audiences, s.AppID)
		}
	}
	for _, aud := range audiences {
		switch aud {
		case "":
			return nil, errors.New("audiences list an empty string")
		case "*":
			c.anyAudience = true
		default:
			c.audiences = append(c.audiences, aud)
		}
	}
	return c, nil
}
