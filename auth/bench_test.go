package auth

import (
	"context"
	"fmt"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// benchTokens are distinct valid tokens for the default test tenant, so that
// a benchmark cycling through them with a small cache always misses.
const benchTokens = 256

func benchSet(b *testing.B, alg string, key any) []string {
	b.Helper()
	out := make([]string, benchTokens)
	for i := range out {
		out[i] = signRaw(b, alg, key, hdr(alg), payload(map[string]any{"jti": fmt.Sprintf("bench-%04d", i)}))
	}
	return out
}

// BenchmarkVerify compares a full verification by gavel (signature, all
// claim checks, typed claims, with the verified-token cache on but always
// missing) with golang-jwt's ParseWithClaims on the same tokens and key:
// "raw" decodes into jwt.MapClaims, "rawreg" into jwt.RegisteredClaims;
// both validate exp/nbf/iat and pin the algorithm.
func BenchmarkVerify(b *testing.B) {
	k := fx()
	algs := []struct {
		alg    string
		sign   any
		verify any
	}{
		{"HS256", k.secret, k.secret},
		{"RS256", k.rsa, &k.rsa.PublicKey},
		{"ES256", k.ec256, &k.ec256.PublicKey},
		{"EdDSA", k.ed, k.ed.Public()},
	}
	for _, a := range algs {
		tokens := benchSet(b, a.alg, a.sign)
		b.Run(a.alg, func(b *testing.B) {
			b.Run("gavel", func(b *testing.B) {
				v := newTestVerifier(b, nil, Options{CacheSize: 32}) // 256 tokens cycle through 32 slots: every call misses
				room := mustRoom(b, defaultRoomJID)
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := v.Verify(ctx, tokens[i%benchTokens], room); err != nil {
						b.Fatal(err)
					}
				}
				reportRate(b)
			})
			keyfunc := func(*jwt.Token) (any, error) { return a.verify, nil }
			p := jwt.NewParser(jwt.WithValidMethods([]string{a.alg}), jwt.WithTimeFunc(fixedNow))
			b.Run("raw", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if _, err := p.ParseWithClaims(tokens[i%benchTokens], jwt.MapClaims{}, keyfunc); err != nil {
						b.Fatal(err)
					}
				}
				reportRate(b)
			})
			b.Run("rawreg", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if _, err := p.ParseWithClaims(tokens[i%benchTokens], &jwt.RegisteredClaims{}, keyfunc); err != nil {
						b.Fatal(err)
					}
				}
				reportRate(b)
			})
		})
	}
}

// BenchmarkVerifyCached measures cache hits: the full Verify call for tokens
// already verified (time, tenant and room re-checked, claims copied). Run it
// with -cpu 1 for the one-core figure.
func BenchmarkVerifyCached(b *testing.B) {
	k := fx()
	tokens := benchSet(b, "RS256", k.rsa)[:64]
	v := newTestVerifier(b, nil, Options{})
	room := mustRoom(b, defaultRoomJID)
	ctx := context.Background()
	for _, t := range tokens {
		if _, err := v.Verify(ctx, t, room); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(ctx, tokens[i%len(tokens)], room); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "verifications/s")
	}
}
