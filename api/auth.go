package api

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

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

// verifier checks admin tokens with auth's KeyRing: the same header,
// signature, claim decoder and time rule as the tokens of joiners.
type verifier struct {
	// ring is swapped whole by Server.SetKeys (a config reload).
	ring atomic.Pointer[auth.KeyRing]
}

// newVerifier checks the keys and builds the key ring.
func newVerifier(k AdminKeys, now func() time.Time) (*verifier, error) {
	if k.Leeway < 0 {
		return nil, fmt.Errorf("api: AdminKeys.Leeway must not be negative, got %v", k.Leeway)
	}
	for i, s := range k.Secrets {
		if len(s) < minSecretBytes {
			return nil, fmt.Errorf("api: admin secret %d is %d bytes: use at least %d random bytes", i, len(s), minSecretBytes)
		}
	}
	ring, err := auth.NewKeyRing(auth.KeyRingSettings{
		Secrets:       k.Secrets,
		PublicKeys:    k.PublicKeys,
		Issuers:       k.Issuers,
		Audiences:     k.Audiences,
		Leeway:        k.Leeway,
		MaxTokenBytes: maxTokenBytes,
	}, now)
	if err != nil {
		return nil, fmt.Errorf("api: admin keys: %s", strings.TrimPrefix(err.Error(), "auth: "))
	}
	v := &verifier{}
	v.ring.Store(ring)
	return v, nil
}

// hasKeys reports whether any token can be verified at all.
func (v *verifier) hasKeys() bool { return v.ring.Load().HasKeys() }

// principal is the verified subject of an admin token.
type principal struct {
	sub  string
	name string
	exp  time.Time // the token's exp; zero when it has none
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
	return v.verify(tok)
}

// verify checks an admin token, from the Authorization header or the
// console's sign-in form.
func (v *verifier) verify(tok string) (principal, *apiError) {
	if len(tok) > maxTokenBytes {
		return principal{}, errUnauthorized(fmt.Sprintf("the admin token is longer than %d bytes", maxTokenBytes))
	}
	ring := v.ring.Load() // one key ring for the whole request
	if !ring.HasKeys() {
		return principal{}, errUnauthorized("the admin API has no keys configured")
	}
	c, err := ring.Verify(tok)
	if err != nil {
		return principal{}, tokenError(err)
	}
	if !c.Admin {
		return principal{}, &apiError{http.StatusForbidden, "not-admin", `the token is valid but lacks the claim "admin": true`}
	}
	if c.Subject == "" {
		return principal{}, &apiError{http.StatusForbidden, "wrong-tenant", "the admin token has no sub: it must name the tenant"}
	}
	return principal{sub: c.Subject, name: nameOf(c), exp: c.Expires}, nil
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

// tokenError maps a refusal to its response. The messages never include
// the token.
func tokenError(err error) *apiError {
	detail := strings.TrimPrefix(err.Error(), "auth: ")
	switch auth.ReasonOf(err) {
	case auth.ReasonBadSignature, auth.ReasonAlgorithmNotAllowed, auth.ReasonUnknownKey:
		return &apiError{http.StatusUnauthorized, "bad-signature", "the admin token's signature does not verify with any admin key (or its algorithm is not allowed): " + detail}
	case auth.ReasonExpired:
		return &apiError{http.StatusUnauthorized, "token-expired", "the admin token has expired: " + detail}
	}
	return errUnauthorized("the admin token is refused: " + detail)
}

// nameOf returns the top-level name claim, else context.user.name, cleaned
// for the audit log.
func nameOf(c *auth.Claims) string {
	name := c.TopLevelName
	if name == "" {
		name = c.Name
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
