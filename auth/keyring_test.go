package auth

import (
	"context"
	"testing"
	"time"
)

// TestOneTimeRule: the Verifier (knock, "gavel token verify") and the
// KeyRing (admin tokens) apply the same expiry rule, exp plus the leeway,
// and report it as Claims.ValidUntil.
func TestOneTimeRule(t *testing.T) {
	now := testNow.Unix()
	v := newTestVerifier(t, nil, Options{CacheSize: -1})
	ring, err := NewKeyRing(KeyRingSettings{Secrets: [][]byte{fx().secret}, Leeway: DefaultLeeway}, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		exp  int64
		want Reason
	}{
		{"10s past exp", now - 10, ""},
		{"29s past exp", now - 29, ""},
		{"exactly exp plus leeway", now - 30, ReasonExpired},
		{"40s past exp", now - 40, ReasonExpired},
		{"exp string", 0, ReasonWrongType},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var exp any = tc.exp
			if tc.exp == 0 {
				exp = "9999999999"
			}
			token := tok(t, map[string]any{"exp": exp})
			c1, err1 := v.Verify(context.Background(), token, mustRoom(t, defaultRoomJID))
			c2, err2 := ring.Verify(token)
			if ReasonOf(err1) != tc.want || ReasonOf(err2) != tc.want {
				t.Fatalf("verifier: %v; key ring: %v; want %q from both", err1, err2, tc.want)
			}
			if tc.want != "" {
				return
			}
			want := time.Unix(tc.exp, 0).Add(DefaultLeeway)
			if !c1.ValidUntil.Equal(want) || !c2.ValidUntil.Equal(want) {
				t.Errorf("ValidUntil = %v / %v, want %v", c1.ValidUntil, c2.ValidUntil, want)
			}
		})
	}
}

// TestKeyRingRules: what the key ring checks besides the shared rules.
func TestKeyRingRules(t *testing.T) {
	if _, err := NewKeyRing(KeyRingSettings{Leeway: time.Hour}, nil); err == nil {
		t.Error("leeway of 1h accepted")
	}
	ring, err := NewKeyRing(KeyRingSettings{Secrets: [][]byte{fx().secret}, Issuers: []string{"gavel-test"}, Audiences: []string{"jitsi"}}, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		token string
		want  Reason
	}{
		{"valid", tok(t, nil), ""},
		{"no exp", tok(t, map[string]any{"exp": nil}), ReasonMissingClaim},
		{"wrong issuer", tok(t, map[string]any{"iss": "x"}), ReasonWrongIssuer},
		{"wrong audience", tok(t, map[string]any{"aud": "x"}), ReasonWrongAudience},
		{"no typ", signRaw(t, "HS256", fx().secret, `{"alg":"HS256"}`, payload(nil)), ""},
		{"RS256 without a public key", signRaw(t, "RS256", fx().rsa, hdr("RS256"), payload(nil)), ReasonAlgorithmNotAllowed},
		{"admin TRUE is not admin", tok(t, map[string]any{"admin": "TRUE"}), ""},
		{"admin number", tok(t, map[string]any{"admin": 1}), ReasonWrongType},
		{"empty", "", ReasonMissingToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ring.Verify(tc.token)
			if ReasonOf(err) != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if c != nil && c.Admin {
				t.Errorf("Admin = true")
			}
		})
	}
}
