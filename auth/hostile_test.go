package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// hostileCase is one attack token and the reason it must be refused for.
type hostileCase struct {
	name  string
	token func(t testing.TB, ks string) string // ks: key server URL of the "asap" tenant
	room  string
	want  Reason
}

// flip changes one signature character so that the token's structure stays
// valid but its signature does not.
func flipSig(token string) string {
	i := strings.LastIndexByte(token, '.') + 3
	b := []byte(token)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func parts(token string) (string, string, string) {
	p := strings.Split(token, ".")
	return p[0], p[1], p[2]
}

// hostileCorpus lists attacks; each must fail with exactly its reason.
func hostileCorpus() []hostileCase {
	k := fx()
	rsaPub := pubPEM(nopTB{}, &k.rsa.PublicKey)
	valid := func(t testing.TB) string { return tok(t, nil) }
	hsWith := func(header string, mod map[string]any) func(t testing.TB, _ string) string {
		return func(t testing.TB, _ string) string { return signRaw(t, "HS256", k.secret, header, payload(mod)) }
	}
	rawPayload := func(p string) func(t testing.TB, _ string) string {
		return func(t testing.TB, _ string) string { return signRaw(t, "HS256", k.secret, hdr("HS256"), p) }
	}
	unsigned := func(header, body, sig string) func(testing.TB, string) string {
		return func(testing.TB, string) string { return header + "." + body + "." + sig }
	}
	body := enc(payload(nil))
	const asapRoom = "[asap]standup@conference.example.test"
	asapClaims := map[string]any{"sub": "asap", "iss": "asap-app"}
	return []hostileCase{
		// Size and structure.
		{name: "empty token", token: unsigned("", "", ""), want: ReasonMissingToken},
		{name: "oversized", token: func(t testing.TB, _ string) string { return tok(t, map[string]any{"pad": strings.Repeat("A", 9000)}) }, want: ReasonTooLarge},
		{name: "oversized garbage", token: func(testing.TB, string) string { return strings.Repeat(".", 100000) }, want: ReasonTooLarge},
		{name: "one segment", token: func(testing.TB, string) string { return "eyJhbGciOiJIUzI1NiJ9" }, want: ReasonMalformed},
		{name: "two segments", token: func(t testing.TB, _ string) string { h, p, _ := parts(valid(t)); return h + "." + p }, want: ReasonMalformed},
		{name: "four segments", token: func(t testing.TB, _ string) string { return valid(t) + ".AAAA" }, want: ReasonMalformed},
		{name: "JWE five segments", token: func(testing.TB, string) string { return "a.b.c.d.e" }, want: ReasonMalformed},
		{name: "duplicated payload segment", token: func(t testing.TB, _ string) string {
			h, p, s := parts(valid(t))
			return h + "." + p + "." + p + "." + s
		}, want: ReasonMalformed},
		{name: "header segment duplicated as payload", token: func(t testing.TB, _ string) string { h, _, s := parts(valid(t)); return h + "." + h + "." + s }, want: ReasonBadSignature},
		{name: "truncated token", token: func(t testing.TB, _ string) string { v := valid(t); return v[:len(v)/2] }, want: ReasonMalformed},
		{name: "truncated signature text", token: func(t testing.TB, _ string) string { v := valid(t); return v[:len(v)-4] }, want: ReasonMalformed},
		{name: "signature one byte short", token: func(t testing.TB, _ string) string {
			h, p, s := parts(valid(t))
			sig, _ := base64.RawURLEncoding.DecodeString(s)
			return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(sig[:len(sig)-1])
		}, want: ReasonBadSignature},
		{name: "signature with a byte appended", token: func(t testing.TB, _ string) string {
			h, p, s := parts(valid(t))
			sig, _ := base64.RawURLEncoding.DecodeString(s)
			return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(append(sig, 0))
		}, want: ReasonBadSignature},
		{name: "empty signature", token: func(t testing.TB, _ string) string { h, p, _ := parts(valid(t)); return h + "." + p + "." }, want: ReasonBadSignature},
		{name: "empty header", token: func(t testing.TB, _ string) string { _, p, s := parts(valid(t)); return "." + p + "." + s }, want: ReasonMalformed},
		{name: "flipped signature", token: func(t testing.TB, _ string) string { return flipSig(valid(t)) }, want: ReasonBadSignature},
		{name: "signature padded", token: func(t testing.TB, _ string) string { return valid(t) + "=" }, want: ReasonMalformed},
		{name: "header padded base64", token: func(t testing.TB, _ string) string {
			_, p, s := parts(valid(t))
			return base64.URLEncoding.EncodeToString([]byte(hdr("HS256")+" ")) + "." + p + "." + s
		}, want: ReasonMalformed},
		{name: "header standard base64 alphabet", token: unsigned("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9+/", body, "AAAA"), want: ReasonMalformed},
		{name: "header not base64", token: unsigned("!!!!", body, "AAAA"), want: ReasonMalformed},
		{name: "header not JSON", token: unsigned(enc("alg=HS256"), body, "AAAA"), want: ReasonMalformed},
		{name: "header JSON array", token: unsigned(enc(`["HS256"]`), body, "AAAA"), want: ReasonMalformed},
		{name: "header trailing garbage", token: unsigned(enc(hdr("HS256")+"x"), body, "AAAA"), want: ReasonMalformed},
		{name: "trailing newline", token: func(t testing.TB, _ string) string { return valid(t) + "\n" }, want: ReasonMalformed},
		{name: "CRLF inside the payload", token: func(t testing.TB, _ string) string {
			h, p, s := parts(valid(t))
			return h + "." + p[:10] + "\r\n" + p[10:] + "." + s
		}, want: ReasonMalformed},
		{name: "leading space", token: func(t testing.TB, _ string) string { return " " + valid(t) }, want: ReasonMalformed},

		// Algorithm confusion.
		{name: "alg none", token: unsigned(enc(`{"alg":"none","typ":"JWT"}`), body, ""), want: ReasonAlgorithmNotAllowed},
		{name: "alg None with signature", token: unsigned(enc(`{"alg":"None","typ":"JWT"}`), body, "AAAA"), want: ReasonAlgorithmNotAllowed},
		{name: "alg NONE", token: unsigned(enc(`{"alg":"NONE","typ":"JWT"}`), body, ""), want: ReasonAlgorithmNotAllowed},
		{name: "alg empty", token: unsigned(enc(`{"alg":"","typ":"JWT"}`), body, "AAAA"), want: ReasonMalformed},
		{name: "alg missing", token: unsigned(enc(`{"typ":"JWT"}`), body, "AAAA"), want: ReasonMalformed},
		{name: "alg number", token: unsigned(enc(`{"alg":256,"typ":"JWT"}`), body, "AAAA"), want: ReasonMalformed},
		{name: "alg lowercase hs256", token: hsWith(`{"alg":"hs256","typ":"JWT"}`, nil), want: ReasonAlgorithmNotAllowed},
		{name: "alg with trailing space", token: hsWith(`{"alg":"HS256 ","typ":"JWT"}`, nil), want: ReasonAlgorithmNotAllowed},
		{name: "alg unknown", token: hsWith(`{"alg":"HS1024","typ":"JWT"}`, nil), want: ReasonAlgorithmNotAllowed},
		{name: "HS256 signed with the RSA public key (CVE-2021-39215)", room: asapRoom, token: func(t testing.TB, _ string) string {
			return signRaw(t, "HS256", rsaPub, hdrKID("HS256", "k"), payload(asapClaims))
		}, want: ReasonAlgorithmNotAllowed},
		{name: "HS256 signed with the RSA public key where secrets exist", token: func(t testing.TB, _ string) string {
			return signRaw(t, "HS256", rsaPub, hdr("HS256"), payload(nil))
		}, want: ReasonBadSignature},
		{name: "HS384 signed with the RSA public key DER", token: func(t testing.TB, _ string) string {
			return signRaw(t, "HS384", k.rsa.PublicKey.N.Bytes(), hdr("HS384"), payload(nil))
		}, want: ReasonBadSignature},
		{name: "RS256 for an HS-only tenant", room: "[acme]standup@conference.example.test", token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsa, hdr("RS256"), payload(map[string]any{"sub": "acme", "iss": "acme-app"}))
		}, want: ReasonAlgorithmNotAllowed},
		{name: "ES256 for the key-server tenant", room: asapRoom, token: func(t testing.TB, _ string) string {
			return signRaw(t, "ES256", k.ec256, hdrKID("ES256", "k"), payload(asapClaims))
		}, want: ReasonAlgorithmNotAllowed},
		{name: "PS256 for the key-server tenant (RS only)", room: asapRoom, token: func(t testing.TB, _ string) string {
			return signRaw(t, "PS256", k.rsa, hdrKID("PS256", "k"), payload(asapClaims))
		}, want: ReasonAlgorithmNotAllowed},
		{name: "RS256 signed by an attacker key", token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsaEvil, hdr("RS256"), payload(nil))
		}, want: ReasonBadSignature},
		{name: "ES256 signed by an attacker key", token: func(t testing.TB, _ string) string {
			return signRaw(t, "ES256", k.ec256Evil, hdr("ES256"), payload(nil))
		}, want: ReasonBadSignature},
		{name: "EdDSA signed by an attacker key", token: func(t testing.TB, _ string) string {
			return signRaw(t, "EdDSA", k.edEvil, hdr("EdDSA"), payload(nil))
		}, want: ReasonBadSignature},
		{name: "ES256 signature in DER form", token: func(t testing.TB, _ string) string {
			signing := enc(hdr("ES256")) + "." + enc(payload(nil))
			sum := sha256.Sum256([]byte(signing))
			r, s, err := ecdsa.Sign(rand.Reader, k.ec256, sum[:])
			if err != nil {
				t.Fatal(err)
			}
			der, _ := asn1.Marshal(struct{ R, S *big.Int }{r, s})
			return signing + "." + base64.RawURLEncoding.EncodeToString(der)
		}, want: ReasonBadSignature},
		{name: "ES256 with zero signature", token: func(t testing.TB, _ string) string {
			return enc(hdr("ES256")) + "." + enc(payload(nil)) + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
		}, want: ReasonBadSignature},
		{name: "signature spliced from another token", token: func(t testing.TB, _ string) string {
			h, p, _ := parts(tok(t, map[string]any{"room": "other"}))
			_, _, s := parts(valid(t))
			return h + "." + p + "." + s
		}, want: ReasonBadSignature},
		{name: "payload re-encoded with a moderator flag", token: func(t testing.TB, _ string) string {
			h, _, s := parts(valid(t))
			return h + "." + enc(payload(map[string]any{"moderator": true})) + "." + s
		}, want: ReasonBadSignature},
		{name: "oversized signature", token: func(t testing.TB, _ string) string {
			h, p, _ := parts(valid(t))
			return h + "." + p + "." + strings.Repeat("A", 2000)
		}, want: ReasonBadSignature},

		// Header tricks.
		{name: "typ JWE", token: hsWith(`{"alg":"HS256","typ":"JWE"}`, nil), want: ReasonMalformed},
		{name: "typ at+jwt", token: hsWith(`{"alg":"HS256","typ":"at+jwt"}`, nil), want: ReasonMalformed},
		{name: "typ number", token: hsWith(`{"alg":"HS256","typ":1}`, nil), want: ReasonMalformed},
		{name: "crit header", token: hsWith(`{"alg":"HS256","typ":"JWT","crit":["exp"],"exp":1}`, nil), want: ReasonMalformed},
		{name: "embedded jwk with attacker key", token: func(t testing.TB, _ string) string {
			pub := k.rsaEvil.PublicKey
			jwk, _ := json.Marshal(map[string]any{"kty": "RSA", "n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()), "e": "AQAB"})
			return signRaw(t, "RS256", k.rsaEvil, `{"alg":"RS256","typ":"JWT","jwk":`+string(jwk)+`}`, payload(nil))
		}, want: ReasonBadSignature},
		{name: "jku pointing at an attacker", token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsaEvil, `{"alg":"RS256","typ":"JWT","jku":"http://127.0.0.1:1/jwks.json"}`, payload(nil))
		}, want: ReasonBadSignature},
		{name: "x5u pointing at an attacker", token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsaEvil, `{"alg":"RS256","typ":"JWT","x5u":"http://127.0.0.1:1/cert.pem"}`, payload(nil))
		}, want: ReasonBadSignature},

		// kid tricks against the key server.
		{name: "kid path traversal", room: asapRoom, token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsaEvil, hdrKID("RS256", "../../../etc/passwd"), payload(asapClaims))
		}, want: ReasonUnknownKey},
		{name: "kid absolute URL", room: asapRoom, token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsaEvil, hdrKID("RS256", "http://evil.example/key.pem"), payload(asapClaims))
		}, want: ReasonUnknownKey},
		{name: "kid with NUL and newline", room: asapRoom, token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsaEvil, hdrKID("RS256", "a\x00b\nc"), payload(asapClaims))
		}, want: ReasonUnknownKey},
		{name: "kid too long", room: asapRoom, token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsaEvil, hdrKID("RS256", strings.Repeat("k", 300)), payload(asapClaims))
		}, want: ReasonMalformed},
		{name: "kid number", room: asapRoom, token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsa, `{"alg":"RS256","typ":"JWT","kid":42}`, payload(asapClaims))
		}, want: ReasonMalformed},
		{name: "kid missing for key server", room: asapRoom, token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsa, hdr("RS256"), payload(asapClaims))
		}, want: ReasonUnknownKey},
		{name: "kid of a real key, signed by an attacker", room: asapRoom, token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsaEvil, hdrKID("RS256", "good-kid"), payload(asapClaims))
		}, want: ReasonBadSignature},
		{name: "kid whose server file is not a key", room: asapRoom, token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsa, hdrKID("RS256", "junk-kid"), payload(asapClaims))
		}, want: ReasonUnknownKey},
		{name: "kid whose server key is EC", room: asapRoom, token: func(t testing.TB, _ string) string {
			return signRaw(t, "RS256", k.rsa, hdrKID("RS256", "ec-kid"), payload(asapClaims))
		}, want: ReasonUnknownKey},

		// Claims with the wrong types (signed with the real secret: a buggy or
		// hostile issuer).
		{name: "payload not JSON", token: rawPayload("exp=1"), want: ReasonMalformed},
		{name: "payload JSON array", token: rawPayload(`[1,2]`), want: ReasonMalformed},
		{name: "payload JSON string", token: rawPayload(`"x"`), want: ReasonMalformed},
		{name: "payload truncated JSON", token: rawPayload(`{"iss":"gavel-test"`), want: ReasonMalformed},
		{name: "payload deep nesting", token: rawPayload(`{"x":` + strings.Repeat("[", 3000) + strings.Repeat("]", 3000) + `}`), want: ReasonMalformed},
		{name: "duplicate exp claim", token: rawPayload(strings.Replace(payload(nil), `"exp":`, `"exp":99999999999,"exp":`, 1)), want: ReasonMalformed},
		{name: "duplicate room claim", token: rawPayload(strings.Replace(payload(nil), `"room":"standup"`, `"room":"standup","room":"boardroom"`, 1)), want: ReasonMalformed},
		{name: "escaped duplicate room claim", token: rawPayload(strings.Replace(payload(nil), `"room":"standup"`, `"room":"standup","\u0072oom":"boardroom"`, 1)), want: ReasonMalformed},
		{name: "upper-case ROOM is not room", token: rawPayload(strings.Replace(payload(nil), `"room":"standup"`, `"ROOM":"standup"`, 1)), want: ReasonMissingClaim},
		{name: "invalid UTF-8 in a claim", token: rawPayload(strings.Replace(payload(nil), `"Ada"`, "\"A\xffda\"", 1)), want: ReasonMalformed},
		{name: "duplicate alg in header", token: hsWith(`{"alg":"HS256","alg":"none","typ":"JWT"}`, nil), want: ReasonMalformed},
		{name: "exp as string", token: hsWith(hdr("HS256"), map[string]any{"exp": "99999999999"}), want: ReasonWrongType},
		{name: "exp as bool", token: hsWith(hdr("HS256"), map[string]any{"exp": true}), want: ReasonWrongType},
		{name: "exp as object", token: hsWith(hdr("HS256"), map[string]any{"exp": map[string]any{}}), want: ReasonWrongType},
		{name: "exp overflowing", token: rawPayload(`{"exp":1e400}`), want: ReasonMalformed},
		{name: "nbf as array", token: hsWith(hdr("HS256"), map[string]any{"nbf": []int{0}}), want: ReasonWrongType},
		{name: "room as array", token: hsWith(hdr("HS256"), map[string]any{"room": []string{"standup"}}), want: ReasonWrongType},
		{name: "sub as object", token: hsWith(hdr("HS256"), map[string]any{"sub": map[string]any{"x": 1}}), want: ReasonWrongType},
		{name: "iss as bool", token: hsWith(hdr("HS256"), map[string]any{"iss": true}), want: ReasonWrongType},
		{name: "moderator as number", token: hsWith(hdr("HS256"), map[string]any{"context": map[string]any{"user": map[string]any{"moderator": 1}}}), want: ReasonWrongType},
		{name: "moderator as object", token: hsWith(hdr("HS256"), map[string]any{"moderator": map[string]any{"x": true}}), want: ReasonWrongType},
		{name: "context as array", token: hsWith(hdr("HS256"), map[string]any{"context": []int{}}), want: ReasonWrongType},

		// Time.
		{name: "expired", token: hsWith(hdr("HS256"), map[string]any{"exp": testNow.Unix() - 3600}), want: ReasonExpired},
		{name: "expired just past leeway", token: hsWith(hdr("HS256"), map[string]any{"exp": testNow.Unix() - 30}), want: ReasonExpired},
		{name: "no exp", token: hsWith(hdr("HS256"), map[string]any{"exp": nil}), want: ReasonMissingClaim},
		{name: "exp null", token: rawPayload(strings.Replace(payload(nil), `"exp":`, `"exp":null,"x":`, 1)), want: ReasonMissingClaim},
		{name: "future nbf", token: hsWith(hdr("HS256"), map[string]any{"nbf": testNow.Unix() + 3600}), want: ReasonNotYetValid},
		{name: "future iat", token: hsWith(hdr("HS256"), map[string]any{"iat": testNow.Unix() + 3600}), want: ReasonIssuedInFuture},

		// Issuer, audience, room and tenant.
		{name: "wrong issuer", token: hsWith(hdr("HS256"), map[string]any{"iss": "attacker"}), want: ReasonWrongIssuer},
		{name: "wrong audience", token: hsWith(hdr("HS256"), map[string]any{"aud": "other-service"}), want: ReasonWrongAudience},
		{name: "wrong room", token: hsWith(hdr("HS256"), map[string]any{"room": "boardroom"}), want: ReasonWrongRoom},
		{name: "lookalike room (Cyrillic a)", token: hsWith(hdr("HS256"), map[string]any{"room": "st\u0430ndup"}), want: ReasonWrongRoom},
		{name: "room with trailing NUL", token: hsWith(hdr("HS256"), map[string]any{"room": "standup\x00"}), want: ReasonWrongRoom},
		{name: "regex room where disabled", token: hsWith(hdr("HS256"), map[string]any{"room": ".*", "context": map[string]any{"room": map[string]any{"regex": true}}}), want: ReasonWrongRoom},
		{name: "wrong tenant (sub)", token: hsWith(hdr("HS256"), map[string]any{"sub": "other.test"}), want: ReasonWrongTenant},
		{name: "wrong tenant for bracket room", room: "[globex]standup@conference.example.test", token: hsWith(hdr("HS256"), map[string]any{"sub": "initech"}), want: ReasonWrongTenant},
		{name: "wildcard sub where disallowed", room: "[acme]standup@conference.example.test", token: func(t testing.TB, _ string) string {
			return signRaw(t, "HS256", k.acmeSecret, hdr("HS256"), payload(map[string]any{"sub": "*", "iss": "acme-app"}))
		}, want: ReasonWrongTenant},
		{name: "other tenant's key", room: "[acme]standup@conference.example.test", token: hsWith(hdr("HS256"), map[string]any{"sub": "acme", "iss": "acme-app"}), want: ReasonBadSignature},
	}
}

// nopTB lets fixtures be built outside a test.
type nopTB struct{ testing.TB }

func (nopTB) Helper()               {}
func (nopTB) Fatal(args ...any)     { panic(args) }
func (nopTB) Fatalf(string, ...any) { panic("fatal") }

// hostileServer is the key server of the "asap" tenant: "good-kid" holds
// the real RSA key, "junk-kid" a non-key and "ec-kid" an EC key.
func hostileServer(t testing.TB) *httptest.Server {
	k := fx()
	files := map[string][]byte{
		"good-kid": pubPEM(t, &k.rsa.PublicKey),
		"junk-kid": []byte("<html>not a key</html>"),
		"ec-kid":   pubPEM(t, &k.ec256.PublicKey),
	}
	byPath := map[string][]byte{}
	for kid, body := range files {
		sum := sha256.Sum256([]byte(kid))
		byPath["/asap/"+hexString(sum[:])+".pem"] = body
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := byPath[r.URL.Path]; ok {
			_, _ = w.Write(b)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestHostileCorpus(t *testing.T) {
	corpus := hostileCorpus()
	if len(corpus) < 40 {
		t.Fatalf("corpus has %d entries, want at least 40", len(corpus))
	}
	srv := hostileServer(t)
	asap := DefaultSettings("asap-app")
	asap.KeyServer = srv.URL + "/asap"
	tenants := map[string]Settings{"": defaultSettings(), "acme": acmeSettings(), "asap": asap}
	client := srv.Client()
	v := newTestVerifier(t, tenants, Options{HTTPClient: client})
	seen := map[string]bool{}
	for _, tc := range corpus {
		if seen[tc.name] {
			t.Fatalf("duplicate case %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			token := ""
			if tc.name != "empty token" {
				token = tc.token(t, srv.URL)
			}
			room := tc.room
			if room == "" {
				room = defaultRoomJID
			}
			c, err := v.Verify(context.Background(), token, mustRoom(t, room))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if got := ReasonOf(err); got != tc.want {
				t.Fatalf("want %s, got %v", tc.want, err)
			}
			t.Logf("%v", err)
		})
	}
	client.CloseIdleConnections()
}
