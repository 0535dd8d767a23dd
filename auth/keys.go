package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// MinRSABits is the smallest RSA modulus accepted from any key source.
const MinRSABits = 2048

// algID identifies one JWS algorithm; algSet is a bit set of them.
type algID uint8

const (
	algHS256 algID = iota
	algHS384
	algHS512
	algRS256
	algRS384
	algRS512
	algPS256
	algPS384
	algPS512
	algES256
	algES384
	algES512
	algEdDSA
	numAlgs
)

type algSet uint16

const (
	hsAlgs  = algSet(1<<algHS256 | 1<<algHS384 | 1<<algHS512)
	rsAlgs  = algSet(1<<algRS256 | 1<<algRS384 | 1<<algRS512)
	psAlgs  = algSet(1<<algPS256 | 1<<algPS384 | 1<<algPS512)
	rsaAlgs = rsAlgs | psAlgs
)

func (s algSet) has(a algID) bool { return s&(1<<a) != 0 }

// names lists the algorithms of s in a stable order, for messages.
func (s algSet) names() string {
	var b strings.Builder
	for a := algID(0); a < numAlgs; a++ {
		if s.has(a) {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(algNames[a])
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

var algNames = [numAlgs]string{
	"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA",
}

var algMethods = [numAlgs]jwt.SigningMethod{
	jwt.SigningMethodHS256, jwt.SigningMethodHS384, jwt.SigningMethodHS512,
	jwt.SigningMethodRS256, jwt.SigningMethodRS384, jwt.SigningMethodRS512,
	jwt.SigningMethodPS256, jwt.SigningMethodPS384, jwt.SigningMethodPS512,
	jwt.SigningMethodES256, jwt.SigningMethodES384, jwt.SigningMethodES512,
	jwt.SigningMethodEdDSA,
}

// lookupAlg maps a header alg (case-sensitive, as RFC 7515 says) to its id.
func lookupAlg(name string) (algID, bool) {
	switch name {
	case "HS256":
		return algHS256, true
	case "HS384":
		return algHS384, true
	case "HS512":
		return algHS512, true
	case "RS256":
		return algRS256, true
	case "RS384":
		return algRS384, true
	case "RS512":
		return algRS512, true
	case "PS256":
		return algPS256, true
	case "PS384":
		return algPS384, true
	case "PS512":
		return algPS512, true
	case "ES256":
		return algES256, true
	case "ES384":
		return algES384, true
	case "ES512":
		return algES512, true
	case "EdDSA":
		return algEdDSA, true
	}
	return 0, false
}

// parseAlgs turns configured algorithm names into a set.
func parseAlgs(names []string) (algSet, error) {
	var s algSet
	for _, n := range names {
		if strings.EqualFold(n, "none") {
			return 0, errors.New(`algorithm "none" can never be allowed`)
		}
		a, ok := lookupAlg(n)
		if !ok {
			return 0, fmt.Errorf("unknown algorithm %q (known: %s)", n, algSet(1<<numAlgs-1).names())
		}
		s |= 1 << a
	}
	return s, nil
}

// PublicKey is a public key that verifies tokens, with an optional key id and
// an optional restriction of its algorithms.
type PublicKey struct {
	// KID, when set, restricts the key to tokens whose header kid equals it.
	// A key without KID is tried for every token of a matching algorithm.
	KID string
	// Key is an *rsa.PublicKey (RS256/384/512, PS256/384/512; at least 2048
	// bits), an *ecdsa.PublicKey (P-256: ES256, P-384: ES384, P-521: ES512)
	// or an ed25519.PublicKey (EdDSA).
	Key crypto.PublicKey
	// Algorithms optionally narrows the algorithms the key type allows.
	Algorithms []string
}

// keyAlgs returns the algorithms a public key can verify, or an error for
// unsupported or weak keys.
func keyAlgs(k crypto.PublicKey) (algSet, error) {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return 0, errors.New("empty RSA key")
		}
		if n := k.N.BitLen(); n < MinRSABits {
			return 0, fmt.Errorf("RSA key has %d bits, at least %d are required", n, MinRSABits)
		}
		return rsaAlgs, nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return 0, errors.New("empty ECDSA key")
		}
		switch k.Curve {
		case elliptic.P256():
			return 1 << algES256, nil
		case elliptic.P384():
			return 1 << algES384, nil
		case elliptic.P521():
			return 1 << algES512, nil
		}
		return 0, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return 0, errors.New("Ed25519 key has the wrong size")
		}
		return 1 << algEdDSA, nil
	case nil:
		return 0, errors.New("no key")
	}
	return 0, fmt.Errorf("unsupported public key type %T (want RSA, ECDSA or Ed25519)", k)
}

// toPublic returns the public half when k is a private key, and k otherwise.
func toPublic(k any) any {
	switch p := k.(type) {
	case *rsa.PrivateKey:
		return &p.PublicKey
	case *ecdsa.PrivateKey:
		return &p.PublicKey
	case ed25519.PrivateKey:
		return p.Public()
	}
	return k
}

// ParsePublicKeyPEM parses the first PEM block of data: a "PUBLIC KEY" (PKIX),
// an "RSA PUBLIC KEY" (PKCS #1) or a "CERTIFICATE" whose public key is used.
// Private keys are refused so that they do not end up in a verifier's
// configuration by mistake.
func ParsePublicKeyPEM(data []byte) (PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return PublicKey{}, errors.New("auth: no PEM block found (want -----BEGIN PUBLIC KEY-----)")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			key = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return PublicKey{}, fmt.Errorf("auth: PEM block is a %s: give the public key, never the private one", block.Type)
		}
		return PublicKey{}, fmt.Errorf("auth: unsupported PEM block type %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", block.Type)
	}
	if err != nil {
		return PublicKey{}, fmt.Errorf("auth: parsing %s: %w", block.Type, err)
	}
	if _, err := keyAlgs(key); err != nil {
		return PublicKey{}, fmt.Errorf("auth: %w", err)
	}
	return PublicKey{Key: key}, nil
}

// LoadPublicKeyFile reads a PEM file and parses it with ParsePublicKeyPEM.
func LoadPublicKeyFile(path string) (PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return PublicKey{}, fmt.Errorf("auth: reading public key: %w", err)
	}
	k, err := ParsePublicKeyPEM(data)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w (file %s)", err, path)
	}
	return k, nil
}

// ParsePrivateKeyPEM parses a PEM private key (PKCS #8, PKCS #1 RSA or SEC 1
// EC) for Mint.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("auth: no PEM block found (want -----BEGIN PRIVATE KEY-----)")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("auth: unsupported PEM block type %q (want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: parsing %s: %w", block.Type, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("auth: unsupported private key type %T", key)
	}
	if _, err := keyAlgs(s.Public()); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return s, nil
}

// verifyKey is one candidate key for a signature: key material and the
// algorithms it may verify.
type verifyKey struct {
	kid  string
	key  any // []byte for HS, a public key otherwise
	algs algSet
}

// newStaticKey checks a configured public key and computes its algorithms.
func newStaticKey(pk PublicKey) (verifyKey, error) {
	algs, err := keyAlgs(pk.Key)
	if err != nil {
		return verifyKey{}, err
	}
	if len(pk.Algorithms) > 0 {
		want, err := parseAlgs(pk.Algorithms)
		if err != nil {
			return verifyKey{}, err
		}
		if want&^algs != 0 {
			return verifyKey{}, fmt.Errorf("key of type %T cannot verify %s (it allows %s)", pk.Key, (want &^ algs).names(), algs.names())
		}
		algs = want
	}
	return verifyKey{kid: pk.KID, key: pk.Key, algs: algs}, nil
}

// print identifies a key with its kid and algorithms, to tell whether a
// key set lost a key between two refreshes.
func (k verifyKey) print() string {
	der, err := x509.MarshalPKIXPublicKey(k.key)
	if err != nil {
		der = fmt.Appendf(nil, "%v", k.key)
	}
	return k.kid + "\x00" + fmt.Sprint(uint16(k.algs)) + "\x00" + string(der)
}
