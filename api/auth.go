package api

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
)

// AdminKeys are the keys that sign admin tokens and the rules those tokens
// must follow. The algorithm of a token is fixed by the type of the key that
// verifies it: HS256/384/512 for Secrets; RS256/384/512 and PS256/384/512
// for RSA keys; ES256, ES384 or ES512 for ECDSA keys on P-256, P-384 or
// P-521; EdDSA for Ed25519 keys. "none" is never accepted.
type AdminKeys struct {
	// Secrets are HMAC keys of at least 16 bytes.
	Secrets [][]byte
	// PublicKeys are RSA (at least 2048 bits), ECDSA or Ed25519 keys; a
	// key's KID and Algorithms, when set, narrow the tokens it verifies.
	PublicKeys []auth.PublicKey
	// Issuers and Audiences list the accepted iss and aud claims; empty
	// accepts any.
	Issuers, Audiences []string
	// Leeway is the clock skew allowed when checking exp and nbf.
	Leeway time.Duration
}

// minSecretBytes is the shortest HMAC secret accepted, as in the config.
const minSecretBytes = 16

// maxTokenBytes bounds the admin token in the Authorization header.
const maxTokenBytes = 8 << 10

// maxNameRunes bounds the name claim copied into the "by" of a command.
const maxNameRunes = 64

var (
	hsAlgs    = []string{"HS256", "HS384", "HS512"}
	rsaAlgs   = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	knownAlgs = append(append(append([]string{}, hsAlgs...), rsaAlgs...), "ES256", "ES384", "ES512", "EdDSA")
)

// adminKey is one verification key with the algorithms it may verify.
type adminKey struct {
	kid  string
	key  any // []byte for HS, a public key otherwise
	algs []string
}

// verifier checks admin tokens.
type verifier struct {
	keys      []adminKey
	issuers   []string
	audiences []string
	methods   []string
	parser    *jwt.Parser
}

// newVerifier checks the keys and builds the token parser.
func newVerifier(k AdminKeys, now func() time.Time) (*verifier, error) {
	if k.Leeway < 0 {
		return nil, fmt.Errorf("api: AdminKeys.Leeway must not be negative, got %v", k.Leeway)
	}
	// methods is never nil, so that the parser refuses every algorithm
	// when there are no keys.
	v := &verifier{issuers: k.Issuers, audiences: k.Audiences, methods: []string{}}
	for i, s := range k.Secrets {
		if len(s) < minSecretBytes {
			return nil, fmt.Errorf("api: admin secret %d is %d bytes: use at least %d random bytes", i, len(s), minSecretBytes)
		}
		v.keys = append(v.keys, adminKey{key: slices.Clone(s), algs: hsAlgs})
	}
	for i, pk := range k.PublicKeys {
		algs, err := publicKeyAlgs(pk)
		if err != nil {
			return nil, fmt.Errorf("api: admin public key %d: %w", i, err)
		}
		v.keys = append(v.keys, adminKey{kid: pk.KID, key: pk.Key, algs: algs})
	}
	for _, a := range knownAlgs {
		for _, key := range v.keys {
			if slices.Contains(key.algs, a) {
				v.methods = append(v.methods, a)
				break
			}
		}
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(k.Leeway),
		jwt.WithTimeFunc(now),
	)
	return v, nil
}

// publicKeyAlgs returns the algorithms a configured public key verifies.
func publicKeyAlgs(pk auth.PublicKey) ([]string, error) {
	var algs []string
	switch k := pk.Key.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return nil, errors.New("empty RSA key")
		}
		if n := k.N.BitLen(); n < auth.MinRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, at least %d are required", n, auth.MinRSABits)
		}
		algs = rsaAlgs
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return nil, errors.New("empty ECDSA key")
		}
		switch k.Curve {
		case elliptic.P256():
			algs = []string{"ES256"}
		case elliptic.P384():
			algs = []string{"ES384"}
		case elliptic.P521():
			algs = []string{"ES512"}
		default:
			return nil, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("Ed25519 key has the wrong size")
		}
		algs = []string{"EdDSA"}
	default:
		return nil, fmt.Errorf("unsupported key type %T (want RSA, ECDSA or Ed25519)", pk.Key)
	}
	if len(pk.Algorithms) == 0 {
		return algs, nil
	}
	for _, a := range pk.Algorithms {
		if !slices.Contains(algs, a) {
			return nil, fmt.Errorf("key of type %T cannot verify %q (it allows %s)", pk.Key, a, strings.Join(algs, ", "))
		}
	}
	return slices.Clone(pk.Algorithms), nil
}

// hasKeys reports whether any token can be verified at all.
func (v *verifier) hasKeys() bool { return len(v.keys) > 0 }

// keyfunc offers the keys whose type and kid fit the token's header, so that
// a key is never used with an algorithm of another family.
func (v *verifier) keyfunc(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	for _, k := range v.keys {
		if !slices.Contains(k.algs, alg) || (k.kid != "" && k.kid != kid) {
			continue
		}
		set.Keys = append(set.Keys, k.key)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("no admin key for this alg and kid")
	}
	return set, nil
}

// adminClaims are the claims of an admin token that the API reads.
type adminClaims struct {
	jwt.RegisteredClaims
	Admin   any             `json:"admin"`
	Name    any             `json:"name"`
	Context json.RawMessage `json:"context"`
}

// principal is the verified subject of an admin token.
type principal struct {
	sub  string
	name string
}

// by is the issuer recorded by the command layer: "api:<sub>", followed by
// the token's name in parentheses when it has one.
func (p principal) by() string {
	if p.name == "" {
		return "api:" + p.sub
	}
	return "api:" + p.sub + " (" + p.name + ")"
}

// authenticate verifies the bearer token of r and checks the admin claim. It
// does not check the tenant: see authorize.
func (v *verifier) authenticate(r *http.Request) (principal, *apiError) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return principal{}, errUnauthorized("missing Authorization header: want Bearer <admin JWT>")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return principal{}, errUnauthorized("the Authorization header must be Bearer <admin JWT>")
	}
	if len(tok) > maxTokenBytes {
		return principal{}, errUnauthorized(fmt.Sprintf("the admin token is longer than %d bytes", maxTokenBytes))
	}
	if !v.hasKeys() {
		return principal{}, errUnauthorized("the admin API has no keys configured")
	}
	var c adminClaims
	if _, err := v.parser.ParseWithClaims(tok, &c, v.keyfunc); err != nil {
		return principal{}, tokenError(err)
	}
	if len(v.issuers) > 0 && !slices.Contains(v.issuers, c.Issuer) {
		return principal{}, errUnauthorized("the admin token's issuer is not accepted")
	}
	if len(v.audiences) > 0 && !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(v.audiences, a) }) {
		return principal{}, errUnauthorized("the admin token's audience is not accepted")
	}
	if !isTrue(c.Admin) {
		return principal{}, &apiError{http.StatusForbidden, "not-admin", `the token is valid but lacks the claim "admin": true`}
	}
	if c.Subject == "" {
		return principal{}, &apiError{http.StatusForbidden, "wrong-tenant", "the admin token has no sub: it must name the tenant"}
	}
	return principal{sub: c.Subject, name: nameOf(c)}, nil
}

// authorize checks that the token's subject may act on tenant.
//
// tenant is prepared (commands.NormalizeTenant); so is the sub before the
// comparison, so that "ACME" may act on [acme] rooms.
func authorize(p principal, tenant string) *apiError {
	sub, err := commands.NormalizeTenant(p.sub)
	if err != nil || sub != tenant {
		return &apiError{http.StatusForbidden, "wrong-tenant", "the admin token's sub does not match the tenant of this command"}
	}
	return nil
}

// tokenError maps a parse error to its response. The messages never include
// the token.
func tokenError(err error) *apiError {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errUnauthorized("the admin token is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return &apiError{http.StatusUnauthorized, "bad-signature", "the admin token's signature does not verify with any admin key (or its algorithm is not allowed)"}
	case errors.Is(err, jwt.ErrTokenExpired):
		return &apiError{http.StatusUnauthorized, "token-expired", "the admin token has expired"}
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errUnauthorized("the admin token has no exp claim")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errUnauthorized("the admin token is not valid yet (nbf)")
	}
	return errUnauthorized("the admin token's claims are invalid")
}

// isTrue accepts the admin claim as a JSON true or the string "true".
func isTrue(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}

// nameOf returns the top-level name claim, else context.user.name, cleaned
// for the audit log.
func nameOf(c adminClaims) string {
	name, _ := c.Name.(string)
	if name == "" && len(c.Context) > 0 {
		var ctx struct {
			User struct {
				Name any `json:"name"`
			} `json:"user"`
		}
		if json.Unmarshal(c.Context, &ctx) == nil {
			name, _ = ctx.User.Name.(string)
		}
	}
	return cleanText(name, maxNameRunes)
}

// cleanText drops control and invalid characters and keeps at most n runes.
func cleanText(s string, n int) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		if n == 0 {
			break
		}
		if r == unicode.ReplacementChar || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		b.WriteRune(r)
		n--
	}
	return strings.TrimSpace(b.String())
}
