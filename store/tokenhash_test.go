package store

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
)

// tokenHashHex is the stored form of a token ban: the hex of auth.TokenHash,
// gavel's one token hash.
func tokenHashHex(token string) string {
	h := auth.TokenHash(token)
	return hex.EncodeToString(h[:])
}

// TestTokenBanMatchesVerifierHash: a ban made from a raw token matches the
// hash the verifier computes for that token (Claims.TokenHash), whatever the
// token's signature spelling. store.HashToken hashed the whole token, so
// bans made through it never matched.
func TestTokenBanMatchesVerifierHash(t *testing.T) {
	secret := []byte("store-test-secret-0123456789abcdef")
	s := auth.DefaultSettings("gavel-test")
	s.Secrets = [][]byte{secret}
	v, err := auth.New(map[string]auth.Settings{"": s}, auth.Options{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	raw, err := auth.Mint(auth.MintRequest{Secret: secret, Issuer: "gavel-test", Audience: []string{"jitsi"},
		Subject: "example.test", Room: "standup", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	room, err := auth.ParseRoom("standup@conference.example.test")
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(context.Background(), raw, room)
	if err != nil {
		t.Fatal(err)
	}
	verifier := hex.EncodeToString(claims.TokenHash[:])
	backends := map[string]Store{"memory": NewMemory()}
	b, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	backends["bolt"] = b
	for name, st := range backends {
		t.Run(name, func(t *testing.T) {
			if err := st.AddBan(context.Background(), Ban{Tenant: "acme", Kind: KindToken, Value: tokenHashHex(raw)}); err != nil {
				t.Fatal(err)
			}
			if _, ok := st.Banned("acme", KindToken, verifier, time.Now()); !ok {
				t.Errorf("ban from the raw token does not match the verifier's hash %s", verifier)
			}
		})
	}
}
