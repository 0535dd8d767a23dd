package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testNow is the fixed clock of most tests.
var testNow = time.Unix(1_750_000_000, 0)

func fixedNow() time.Time { return testNow }

// keys are generated once per test binary.
type testKeys struct {
	rsa, rsaEvil, rsa2 *rsa.PrivateKey
	rsaSmall           *rsa.PrivateKey
	ec256, ec384       *ecdsa.PrivateKey
	ec256Evil          *ecdsa.PrivateKey
	ed, edEvil         ed25519.PrivateKey
	secret, secret2    []byte
	acmeSecret         []byte
}

var fx = sync.OnceValue(func() *testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	k := &testKeys{
		secret:     []byte("0123456789abcdef0123456789abcdef-default"),
		secret2:    []byte("fedcba9876543210fedcba9876543210-rotated"),
		acmeSecret: []byte("acme-acme-acme-acme-acme-acme-acme-acme!"),
	}
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsaEvil, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsaSmall, err = rsa.GenerateKey(rand.Reader, 1024)
	must(err)
	k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec256Evil, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	_, k.edEvil, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

// pubPEM encodes a public key as PKIX PEM.
func pubPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// privPEM encodes a private key as PKCS #8 PEM.
func privPEM(t testing.TB, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// signRaw builds a token from raw header and payload JSON, signed with key
// under alg (the header is not changed to match).
func signRaw(t testing.TB, alg string, key any, header, payload string) string {
	t.Helper()
	a, ok := lookupAlg(alg)
	if !ok {
		t.Fatalf("unknown alg %s", alg)
	}
	signing := enc(header) + "." + enc(payload)
	sig, err := algMethods[a].Sign(signing, key)
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// baseClaims are the claims of a valid token for
// standup@conference.example.test under the default test settings.
func baseClaims() map[string]any {
	now := testNow.Unix()
	return map[string]any{
		"iss":  "gavel-test",
		"aud":  "jitsi",
		"sub":  "example.test",
		"room": "standup",
		"exp":  now + 3600,
		"nbf":  now - 10,
		"iat":  now - 10,
		"context": map[string]any{
			"user": map[string]any{
				"id": "u-1", "name": "Ada", "email": "ada@example.test",
				"avatar": "https://example.test/ada.png", "moderator": "true",
			},
			"group":    "g-1",
			"features": map[string]any{"recording": "true", "livestreaming": false},
		},
	}
}

// payload marshals baseClaims changed by mod (a nil value deletes).
func payload(mod map[string]any) string {
	c := baseClaims()
	maps.Copy(c, mod)
	for k, v := range c {
		if v == nil {
			delete(c, k)
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func hdr(alg string) string { return `{"alg":"` + alg + `","typ":"JWT"}` }

func hdrKID(alg, kid string) string {
	b, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT", "kid": kid})
	return string(b)
}

// tok is a valid HS256 token for the default tenant with claims changed by mod.
func tok(t testing.TB, mod map[string]any) string {
	return signRaw(t, "HS256", fx().secret, hdr("HS256"), payload(mod))
}

// defaultSettings are the test settings of the "" tenant: a secret, an RSA,
// an ECDSA and an Ed25519 key.
func defaultSettings() Settings {
	k := fx()
	s := DefaultSettings("gavel-test")
	s.Secrets = [][]byte{k.secret}
	s.PublicKeys = []PublicKey{
		{Key: &k.rsa.PublicKey},
		{Key: &k.ec256.PublicKey},
		{Key: k.ed.Public()},
	}
	return s
}

// acmeSettings are stricter rules of tenant "acme".
func acmeSettings() Settings {
	s := DefaultSettings("acme-app")
	s.Secrets = [][]byte{fx().acmeSecret}
	s.AllowWildcardRoom = false
	s.AllowWildcardSub = false
	return s
}

func newTestVerifier(t testing.TB, tenants map[string]Settings, opts Options) *Verifier {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	if tenants == nil {
		tenants = map[string]Settings{"": defaultSettings(), "acme": acmeSettings()}
	}
	v, err := New(tenants, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func mustRoom(t testing.TB, jid string) Room {
	t.Helper()
	r, err := ParseRoom(jid)
	if err != nil {
		t.Fatalf("ParseRoom(%q): %v", jid, err)
	}
	return r
}

const defaultRoomJID = "standup@conference.example.test"

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }
