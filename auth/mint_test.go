package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

func TestMintRoundTrip(t *testing.T) {
	k := fx()
	ecDER, _ := x509.MarshalECPrivateKey(k.ec256)
	rsaPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.rsa)})
	ecSEC1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})
	base := MintRequest{
		Issuer: "gavel-test", Subject: "example.test", Audience: []string{"jitsi"}, Room: "StandUp",
		UserID: "u-7", Name: "Grace", Email: "grace@example.test", Avatar: "https://example.test/g.png",
		Moderator: true, Affiliation: "owner", Role: "host", Group: "ops", Tenant: "t1",
		Features: map[string]bool{"recording": true, "transcription": false},
		IssuedAt: testNow.Add(-time.Minute), NotBefore: testNow.Add(-time.Minute), TTL: 2 * time.Hour,
	}
	cases := []struct {
		name    string
		mod     func(r *MintRequest)
		wantAlg string
	}{
		{"secret default HS256", func(r *MintRequest) { r.Secret = k.secret }, "HS256"},
		{"secret HS512", func(r *MintRequest) { r.Secret = k.secret; r.Algorithm = "HS512" }, "HS512"},
		{"RSA PKCS#8 default RS256", func(r *MintRequest) { r.PrivateKeyPEM = privPEM(t, k.rsa) }, "RS256"},
		{"RSA PKCS#1 PS256", func(r *MintRequest) { r.PrivateKeyPEM = rsaPKCS1; r.Algorithm = "PS256" }, "PS256"},
		{"EC SEC1", func(r *MintRequest) { r.PrivateKeyPEM = ecSEC1 }, "ES256"},
		{"Ed25519", func(r *MintRequest) { r.PrivateKeyPEM = privPEM(t, k.ed) }, "EdDSA"},
		{"parsed key with kid", func(r *MintRequest) { r.PrivateKey = k.rsa; r.KeyID = "any" }, "RS256"},
	}
	v := newTestVerifier(t, nil, Options{})
	room := mustRoom(t, defaultRoomJID)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := base
			tc.mod(&req)
			token, err := Mint(req)
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), token, room)
			if err != nil {
				t.Fatal(err)
			}
			if c.Algorithm != tc.wantAlg || c.KeyID != req.KeyID {
				t.Errorf("alg %s kid %q", c.Algorithm, c.KeyID)
			}
			if c.UserID != "u-7" || c.Name != "Grace" || c.Email != "grace@example.test" || !c.Moderator ||
				c.Affiliation != "owner" || c.Role != "host" || c.Group != "ops" || c.ContextTenant != "t1" ||
				c.Room != "standup" || !c.Features["recording"] || c.Features["transcription"] || c.TokenID == "" {
				t.Errorf("claims %+v", c)
			}
			if !c.Expires.Equal(testNow.Add(-time.Minute + 2*time.Hour)) {
				t.Errorf("Expires %v", c.Expires)
			}
		})
	}
}

func TestMintOptions(t *testing.T) {
	k := fx()
	v := newTestVerifier(t, withSettings(func(s *Settings) { s.RequireExp = false; s.AllowRegexRoom = true }), Options{})
	room := mustRoom(t, defaultRoomJID)
	token, err := Mint(MintRequest{
		Secret: k.secret, Issuer: "gavel-test", Subject: "*", Audience: []string{"a", "jitsi"},
		Room: "stand.*", RoomRegex: true, NoExpiry: true, IssuedAt: testNow,
		Extra: map[string]any{"moderator": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), token, room)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Expires.IsZero() || !c.RoomRegex || !c.TopLevelModerator || len(c.Audience) != 2 {
		t.Errorf("claims %+v", c)
	}
	a, _ := Mint(MintRequest{Secret: k.secret, IssuedAt: testNow})
	b, _ := Mint(MintRequest{Secret: k.secret, IssuedAt: testNow})
	if a == b {
		t.Error("two mints gave the same token (no jti)")
	}
}

func TestMintErrors(t *testing.T) {
	k := fx()
	for _, tc := range []struct {
		name string
		req  MintRequest
		want string
	}{
		{"no key", MintRequest{}, "no key"},
		{"both keys", MintRequest{Secret: k.secret, PrivateKey: k.rsa}, "not both"},
		{"bad PEM", MintRequest{PrivateKeyPEM: []byte("nope")}, "no PEM block"},
		{"public key as private", MintRequest{PrivateKeyPEM: pubPEM(t, &k.rsa.PublicKey)}, "unsupported PEM block type"},
		{"HS with RSA", MintRequest{PrivateKey: k.rsa, Algorithm: "HS256"}, "does not fit"},
		{"ES384 with P-256", MintRequest{PrivateKey: k.ec256, Algorithm: "ES384"}, "does not fit"},
		{"unknown alg", MintRequest{Secret: k.secret, Algorithm: "XX1"}, "unknown algorithm"},
		{"none", MintRequest{Secret: k.secret, Algorithm: "none"}, "unknown algorithm"},
		{"small RSA", MintRequest{PrivateKey: k.rsaSmall}, "at least 2048"},
		{"odd curve", MintRequest{PrivateKey: &ecdsa.PrivateKey{PublicKey: ecdsa.PublicKey{Curve: oddCurve()}}}, "unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Mint(tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "auth: mint: ") {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
		})
	}
}

func oddCurve() elliptic.Curve { return elliptic.P224() }
