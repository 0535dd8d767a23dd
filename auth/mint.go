package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MintRequest describes a token to sign, for development, tests and demos.
// Exactly one of Secret and PrivateKeyPEM (or PrivateKey) gives the key.
type MintRequest struct {
	// Secret signs HS256/384/512 tokens.
	Secret []byte
	// PrivateKeyPEM is a PEM private key (see ParsePrivateKeyPEM).
	PrivateKeyPEM []byte
	// PrivateKey is a parsed private key; used when PrivateKeyPEM is empty.
	PrivateKey crypto.Signer
	// Algorithm defaults to HS256 for a secret, RS256 for RSA, ES256/384/512
	// by curve and EdDSA for Ed25519.
	Algorithm string
	// KeyID is the header kid.
	KeyID string

	Issuer   string
	Subject  string
	Audience []string
	// Room is the room claim; RoomRegex marks it a pattern.
	Room      string
	RoomRegex bool

	// The context.user claims.
	UserID, Name, Email, Avatar string
	Moderator                   bool
	Affiliation, Role           string
	// Group, Tenant and Features are context.group, context.tenant and
	// context.features (written as "true"/"false" strings, as Jitsi does).
	Group    string
	Tenant   string
	Features map[string]bool

	// IssuedAt defaults to now. NotBefore is omitted when zero. Expires
	// defaults to IssuedAt + TTL, and TTL to one hour; NoExpiry omits exp.
	IssuedAt  time.Time
	NotBefore time.Time
	Expires   time.Time
	TTL       time.Duration
	NoExpiry  bool
	// Extra are further top-level claims; they override the ones above.
	Extra map[string]any
}

// Mint signs a token as described by req. The token carries a random jti.
func Mint(req MintRequest) (string, error) {
	var key any
	switch {
	case len(req.Secret) > 0 && (len(req.PrivateKeyPEM) > 0 || req.PrivateKey != nil):
		return "", errors.New("auth: mint: give either a secret or a private key, not both")
	case len(req.Secret) > 0:
		key = req.Secret
	case len(req.PrivateKeyPEM) > 0:
		s, err := ParsePrivateKeyPEM(req.PrivateKeyPEM)
		if err != nil {
			return "", fmt.Errorf("auth: mint: %w", err)
		}
		key = s
	case req.PrivateKey != nil:
		key = req.PrivateKey
	default:
		return "", errors.New("auth: mint: no key: give a secret or a private key")
	}
	alg, err := mintAlgorithm(req.Algorithm, key)
	if err != nil {
		return "", fmt.Errorf("auth: mint: %w", err)
	}

	iat := req.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	claims := jwt.MapClaims{"iat": iat.Unix()}
	if !req.NoExpiry {
		exp := req.Expires
		if exp.IsZero() {
			ttl := req.TTL
			if ttl <= 0 {
				ttl = time.Hour
			}
			exp = iat.Add(ttl)
		}
		claims["exp"] = exp.Unix()
	}
	if !req.NotBefore.IsZero() {
		claims["nbf"] = req.NotBefore.Unix()
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	claims["jti"] = hex.EncodeToString(jti[:])
	set := func(k, v string) {
		if v != "" {
			claims[k] = v
		}
	}
	set("iss", req.Issuer)
	set("sub", req.Subject)
	set("room", req.Room)
	switch len(req.Audience) {
	case 0:
	case 1:
		claims["aud"] = req.Audience[0]
	default:
		claims["aud"] = req.Audience
	}
	ctx := map[string]any{}
	user := map[string]any{}
	setIn := func(m map[string]any, k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	setIn(user, "id", req.UserID)
	setIn(user, "name", req.Name)
	setIn(user, "email", req.Email)
	setIn(user, "avatar", req.Avatar)
	setIn(user, "affiliation", req.Affiliation)
	setIn(user, "role", req.Role)
	if req.Moderator {
		user["moderator"] = true
	}
	if len(user) > 0 {
		ctx["user"] = user
	}
	setIn(ctx, "group", req.Group)
	setIn(ctx, "tenant", req.Tenant)
	if len(req.Features) > 0 {
		f := make(map[string]string, len(req.Features))
		for k, v := range req.Features {
			f[k] = fmt.Sprint(v)
		}
		ctx["features"] = f
	}
	if req.RoomRegex {
		ctx["room"] = map[string]any{"regex": true}
	}
	if len(ctx) > 0 {
		claims["context"] = ctx
	}
	for k, v := range req.Extra {
		claims[k] = v
	}

	t := jwt.NewWithClaims(algMethods[alg], claims)
	if req.KeyID != "" {
		t.Header["kid"] = req.KeyID
	}
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("auth: mint: signing: %w", err)
	}
	return s, nil
}

// mintAlgorithm picks or checks the algorithm for a signing key.
func mintAlgorithm(name string, key any) (algID, error) {
	var allowed, def algSet
	switch k := key.(type) {
	case []byte:
		allowed, def = hsAlgs, 1<<algHS256
	case *rsa.PrivateKey:
		if k.N.BitLen() < MinRSABits {
			return 0, fmt.Errorf("RSA key has %d bits, at least %d are required", k.N.BitLen(), MinRSABits)
		}
		allowed, def = rsaAlgs, 1<<algRS256
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			allowed = 1 << algES256
		case elliptic.P384():
			allowed = 1 << algES384
		case elliptic.P521():
			allowed = 1 << algES512
		default:
			return 0, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
		}
		def = allowed
	case ed25519.PrivateKey:
		allowed, def = 1<<algEdDSA, 1<<algEdDSA
	default:
		return 0, fmt.Errorf("unsupported key type %T", key)
	}
	if name == "" {
		for a := algID(0); a < numAlgs; a++ {
			if def.has(a) {
				return a, nil
			}
		}
	}
	a, ok := lookupAlg(name)
	if !ok {
		return 0, fmt.Errorf("unknown algorithm %q", name)
	}
	if !allowed.has(a) {
		return 0, fmt.Errorf("algorithm %s does not fit a %T (use %s)", name, key, allowed.names())
	}
	return a, nil
}
