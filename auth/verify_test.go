package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

type verifyCase struct {
	name    string
	tenants map[string]Settings // nil: default and acme
	token   func(t testing.TB) string
	room    string // default: defaultRoomJID
	want    Reason // "": valid
	check   func(t *testing.T, c *Claims)
}

func runVerifyCases(t *testing.T, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, tc.tenants, Options{CacheSize: -1})
			jid := tc.room
			if jid == "" {
				jid = defaultRoomJID
			}
			token := tc.token(t)
			c, err := v.Verify(context.Background(), token, mustRoom(t, jid))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if c.TokenHash != TokenHash(token) {
					t.Errorf("TokenHash mismatch")
				}
				if tc.check != nil {
					tc.check(t, c)
				}
				return
			}
			if err == nil {
				t.Fatalf("want %s, got valid token (claims %+v)", tc.want, c)
			}
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T) is not *Error", err, err)
			}
			if ae.Reason != tc.want {
				t.Fatalf("want reason %s, got %v", tc.want, err)
			}
			if c != nil {
				t.Fatalf("claims returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "auth: "+string(tc.want)+": ") || ae.Detail == "" {
				t.Errorf("error text %q lacks reason or detail", err.Error())
			}
		})
	}
}

func withSettings(mod func(s *Settings)) map[string]Settings {
	s := defaultSettings()
	mod(&s)
	return map[string]Settings{"": s, "acme": acmeSettings()}
}

func signed(alg string, key func() any, mod map[string]any) func(t testing.TB) string {
	return func(t testing.TB) string { return signRaw(t, alg, key(), hdr(alg), payload(mod)) }
}

func hs(mod map[string]any) func(t testing.TB) string {
	return func(t testing.TB) string { return tok(t, mod) }
}

func TestVerifyAlgorithms(t *testing.T) {
	k := fx()
	ec384 := withSettings(func(s *Settings) { s.PublicKeys = append(s.PublicKeys, PublicKey{Key: &k.ec384.PublicKey}) })
	rsaOnly := withSettings(func(s *Settings) { s.Algorithms = []string{"RS256"} })
	runVerifyCases(t, []verifyCase{
		{name: "HS256", token: signed("HS256", func() any { return k.secret }, nil)},
		{name: "HS384", token: signed("HS384", func() any { return k.secret }, nil)},
		{name: "HS512", token: signed("HS512", func() any { return k.secret }, nil)},
		{name: "HS256 rotated secret", tenants: withSettings(func(s *Settings) { s.Secrets = [][]byte{k.secret2, k.secret} }),
			token: signed("HS256", func() any { return k.secret }, nil)},
		{name: "HS256 new secret", tenants: withSettings(func(s *Settings) { s.Secrets = [][]byte{k.secret, k.secret2} }),
			token: signed("HS256", func() any { return k.secret2 }, nil)},
		{name: "RS256", token: signed("RS256", func() any { return k.rsa }, nil), check: func(t *testing.T, c *Claims) {
			if c.Algorithm != "RS256" {
				t.Errorf("Algorithm = %q", c.Algorithm)
			}
		}},
		{name: "RS384", token: signed("RS384", func() any { return k.rsa }, nil)},
		{name: "RS512", token: signed("RS512", func() any { return k.rsa }, nil)},
		{name: "PS256", token: signed("PS256", func() any { return k.rsa }, nil)},
		{name: "ES256", token: signed("ES256", func() any { return k.ec256 }, nil)},
		{name: "ES384", tenants: ec384, token: signed("ES384", func() any { return k.ec384 }, nil)},
		{name: "EdDSA", token: signed("EdDSA", func() any { return k.ed }, nil)},
		{name: "restricted to RS256 refuses HS256", tenants: rsaOnly, token: signed("HS256", func() any { return k.secret }, nil), want: ReasonAlgorithmNotAllowed},
		{name: "restricted to RS256 refuses PS256", tenants: rsaOnly, token: signed("PS256", func() any { return k.rsa }, nil), want: ReasonAlgorithmNotAllowed},
		{name: "restricted to RS256 accepts RS256", tenants: rsaOnly, token: signed("RS256", func() any { return k.rsa }, nil)},
		{name: "ES384 without a P-384 key", token: signed("ES384", func() any { return k.ec384 }, nil), want: ReasonAlgorithmNotAllowed},
		{name: "key restricted by its Algorithms", tenants: withSettings(func(s *Settings) {
			s.PublicKeys = []PublicKey{{Key: &k.rsa.PublicKey, Algorithms: []string{"PS256"}}}
		}), token: signed("RS256", func() any { return k.rsa }, nil), want: ReasonAlgorithmNotAllowed},
		{name: "named key matches its kid", tenants: withSettings(func(s *Settings) {
			s.PublicKeys = []PublicKey{{KID: "k1", Key: &k.rsa.PublicKey}}
		}), token: func(t testing.TB) string { return signRaw(t, "RS256", k.rsa, hdrKID("RS256", "k1"), payload(nil)) },
			check: func(t *testing.T, c *Claims) {
				if c.KeyID != "k1" {
					t.Errorf("KeyID = %q", c.KeyID)
				}
			}},
		{name: "named key refuses another kid", tenants: withSettings(func(s *Settings) {
			s.PublicKeys = []PublicKey{{KID: "k1", Key: &k.rsa.PublicKey}}
		}), token: func(t testing.TB) string { return signRaw(t, "RS256", k.rsa, hdrKID("RS256", "k2"), payload(nil)) }, want: ReasonUnknownKey},
		{name: "named key refuses a token without kid", tenants: withSettings(func(s *Settings) {
			s.PublicKeys = []PublicKey{{KID: "k1", Key: &k.rsa.PublicKey}}
		}), token: signed("RS256", func() any { return k.rsa }, nil), want: ReasonUnknownKey},
		{name: "unnamed key accepts any kid", token: func(t testing.TB) string {
			return signRaw(t, "RS256", k.rsa, hdrKID("RS256", "whatever"), payload(nil))
		}},
		{name: "typ lowercase jwt", token: func(t testing.TB) string {
			return signRaw(t, "HS256", k.secret, `{"alg":"HS256","typ":"jwt"}`, payload(nil))
		}},
	})
}

func TestVerifyTimes(t *testing.T) {
	now := testNow.Unix()
	noExp := withSettings(func(s *Settings) { s.RequireExp = false })
	noLeeway := withSettings(func(s *Settings) { s.Leeway = 0 })
	runVerifyCases(t, []verifyCase{
		{name: "exp required", token: hs(map[string]any{"exp": nil}), want: ReasonMissingClaim},
		{name: "exp optional when configured", tenants: noExp, token: hs(map[string]any{"exp": nil}), check: func(t *testing.T, c *Claims) {
			if !c.Expires.IsZero() {
				t.Errorf("Expires = %v", c.Expires)
			}
		}},
		{name: "expired beyond leeway", token: hs(map[string]any{"exp": now - 31}), want: ReasonExpired},
		{name: "expired within leeway", token: hs(map[string]any{"exp": now - 29})},
		{name: "exp equal to now without leeway", tenants: noLeeway, token: hs(map[string]any{"exp": now}), want: ReasonExpired},
		{name: "exp one second ahead without leeway", tenants: noLeeway, token: hs(map[string]any{"exp": now + 1})},
		{name: "exp fractional", token: hs(map[string]any{"exp": float64(now) + 100.5}), check: func(t *testing.T, c *Claims) {
			if c.Expires.UnixMilli() != (now+100)*1000+500 {
				t.Errorf("Expires = %v", c.Expires)
			}
		}},
		{name: "exp zero is expired, not absent", tenants: noExp, token: hs(map[string]any{"exp": 0}), want: ReasonExpired},
		{name: "exp string", token: hs(map[string]any{"exp": "9999999999"}), want: ReasonWrongType},
		{name: "exp negative", token: hs(map[string]any{"exp": -1}), want: ReasonMalformed},
		{name: "exp huge", token: hs(map[string]any{"exp": 1e300}), want: ReasonMalformed},
		{name: "nbf future beyond leeway", token: hs(map[string]any{"nbf": now + 31}), want: ReasonNotYetValid},
		{name: "nbf future within leeway", token: hs(map[string]any{"nbf": now + 29})},
		{name: "nbf absent", token: hs(map[string]any{"nbf": nil})},
		{name: "nbf string", token: hs(map[string]any{"nbf": "0"}), want: ReasonWrongType},
		{name: "iat future beyond leeway", token: hs(map[string]any{"iat": now + 120}), want: ReasonIssuedInFuture},
		{name: "iat future within leeway", token: hs(map[string]any{"iat": now + 10})},
		{name: "iat absent", token: hs(map[string]any{"iat": nil})},
		{name: "times reported", token: hs(nil), check: func(t *testing.T, c *Claims) {
			if c.Expires.Unix() != now+3600 || c.NotBefore.Unix() != now-10 || c.IssuedAt.Unix() != now-10 {
				t.Errorf("times %v %v %v", c.Expires, c.NotBefore, c.IssuedAt)
			}
		}},
	})
}

func TestVerifyIssuerAudience(t *testing.T) {
	anyIss := withSettings(func(s *Settings) { s.Issuers = []string{"*"} })
	twoIss := withSettings(func(s *Settings) { s.Issuers = []string{"chat", "other"} })
	anyAud := withSettings(func(s *Settings) { s.Audiences = []string{"*"} })
	runVerifyCases(t, []verifyCase{
		{name: "issuer defaults to app id", token: hs(nil)},
		{name: "wrong issuer", token: hs(map[string]any{"iss": "evil"}), want: ReasonWrongIssuer},
		{name: "issuer case matters", token: hs(map[string]any{"iss": "GAVEL-TEST"}), want: ReasonWrongIssuer},
		{name: "missing issuer", token: hs(map[string]any{"iss": nil}), want: ReasonMissingClaim},
		{name: "empty issuer", token: hs(map[string]any{"iss": ""}), want: ReasonMissingClaim},
		{name: "any issuer when configured", tenants: anyIss, token: hs(map[string]any{"iss": "whoever"})},
		{name: "missing issuer even with *", tenants: anyIss, token: hs(map[string]any{"iss": nil}), want: ReasonMissingClaim},
		{name: "issuer list", tenants: twoIss, token: hs(map[string]any{"iss": "chat"})},
		{name: "issuer list refuses app id", tenants: twoIss, token: hs(nil), want: ReasonWrongIssuer},
		{name: "issuer number", token: hs(map[string]any{"iss": 7}), want: ReasonWrongType},
		{name: "audience jitsi", token: hs(map[string]any{"aud": "jitsi"})},
		{name: "audience app id", token: hs(map[string]any{"aud": "gavel-test"})},
		{name: "audience list with one accepted", token: hs(map[string]any{"aud": []string{"other", "jitsi"}}), check: func(t *testing.T, c *Claims) {
			if len(c.Audience) != 2 || c.Audience[1] != "jitsi" {
				t.Errorf("Audience = %v", c.Audience)
			}
		}},
		{name: "wrong audience", token: hs(map[string]any{"aud": "meet.example.test"}), want: ReasonWrongAudience},
		{name: "audience list none accepted", token: hs(map[string]any{"aud": []string{"a", "b"}}), want: ReasonWrongAudience},
		{name: "missing audience", token: hs(map[string]any{"aud": nil}), want: ReasonMissingClaim},
		{name: "empty audience list", token: hs(map[string]any{"aud": []string{}}), want: ReasonMissingClaim},
		{name: "any audience when configured", tenants: anyAud, token: hs(map[string]any{"aud": "meet.example.test"})},
		{name: "audience number", token: hs(map[string]any{"aud": 1}), want: ReasonWrongType},
		{name: "audience list of numbers", token: hs(map[string]any{"aud": []int{1}}), want: ReasonWrongType},
	})
}

func TestVerifyRoom(t *testing.T) {
	regex := withSettings(func(s *Settings) { s.AllowRegexRoom = true })
	optional := withSettings(func(s *Settings) { s.RequireRoom = false })
	regexCtx := func(room string) map[string]any {
		c := baseClaims()["context"].(map[string]any)
		c["room"] = map[string]any{"regex": true}
		return map[string]any{"room": room, "context": c}
	}
	runVerifyCases(t, []verifyCase{
		{name: "exact", token: hs(nil), check: func(t *testing.T, c *Claims) {
			if c.Room != "standup" {
				t.Errorf("Room = %q", c.Room)
			}
		}},
		{name: "claim lowercased", token: hs(map[string]any{"room": "StandUp"})},
		{name: "room JID case ignored", token: hs(nil), room: "StandUp@Conference.Example.Test"},
		{name: "wrong room", token: hs(map[string]any{"room": "other"}), want: ReasonWrongRoom},
		{name: "prefix of room", token: hs(map[string]any{"room": "stand"}), want: ReasonWrongRoom},
		{name: "missing room", token: hs(map[string]any{"room": nil}), want: ReasonMissingClaim},
		{name: "empty room", token: hs(map[string]any{"room": ""}), want: ReasonMissingClaim},
		{name: "missing room allowed", tenants: optional, token: hs(map[string]any{"room": nil})},
		{name: "wildcard", token: hs(map[string]any{"room": "*"})},
		{name: "wildcard refused for acme", token: func(t testing.TB) string {
			return signRaw(t, "HS256", fx().acmeSecret, hdr("HS256"), payload(map[string]any{"iss": "acme-app", "sub": "acme", "room": "*"}))
		}, room: "[acme]standup@conference.example.test", want: ReasonWrongRoom},
		{name: "room number", token: hs(map[string]any{"room": 12}), want: ReasonWrongType},
		{name: "room with tenant prefix refused", token: hs(map[string]any{"room": "[example.test]standup"}), want: ReasonWrongRoom},
		{name: "regex off by default", token: hs(regexCtx("stand.*")), want: ReasonWrongRoom},
		{name: "regex match", tenants: regex, token: hs(regexCtx("stand.*")), check: func(t *testing.T, c *Claims) {
			if !c.RoomRegex || c.Room != "stand.*" {
				t.Errorf("Room %q regex %v", c.Room, c.RoomRegex)
			}
		}},
		{name: "regex is case-insensitive", tenants: regex, token: hs(regexCtx("STAND[a-z]+"))},
		{name: "regex string flag", tenants: regex, token: hs(map[string]any{"room": "st.*", "context": map[string]any{"room": map[string]any{"regex": "true"}}})},
		{name: "regex no match", tenants: regex, token: hs(regexCtx("foo.*")), want: ReasonWrongRoom},
		{name: "regex anchored at start", tenants: regex, token: hs(regexCtx("tandup")), want: ReasonWrongRoom},
		{name: "regex anchored at end", tenants: regex, token: hs(regexCtx("standu")), want: ReasonWrongRoom},
		{name: "regex cannot escape anchoring", tenants: regex, token: hs(regexCtx("x)|(.*")), want: ReasonWrongRoom},
		{name: "regex alternation stays anchored", tenants: regex, token: hs(regexCtx("x|standu")), want: ReasonWrongRoom},
		{name: "regex too long", tenants: regex, token: hs(regexCtx(strings.Repeat("a", 257))), want: ReasonWrongRoom},
		{name: "regex too complex", tenants: regex, token: hs(regexCtx("x{1000}y{1000}z")), want: ReasonWrongRoom},
		{name: "regex invalid", tenants: regex, token: hs(regexCtx("(")), want: ReasonWrongRoom},
		{name: "regex flag with wildcard room", token: hs(regexCtx("*"))},
	})
}

func TestVerifyTenant(t *testing.T) {
	k := fx()
	acme := func(mod map[string]any) func(t testing.TB) string {
		return func(t testing.TB) string {
			m := map[string]any{"iss": "acme-app", "sub": "acme"}
			for key, val := range mod {
				m[key] = val
			}
			return signRaw(t, "HS256", k.acmeSecret, hdr("HS256"), payload(m))
		}
	}
	const acmeRoom = "[acme]standup@conference.example.test"
	docker := withSettings(func(s *Settings) { s.MUCDomainPrefix = "muc" })
	noDefault := map[string]Settings{"acme": acmeSettings()}
	runVerifyCases(t, []verifyCase{
		{name: "domain tenant", token: hs(nil), check: func(t *testing.T, c *Claims) {
			if c.Tenant != "example.test" || c.Subject != "example.test" {
				t.Errorf("Tenant %q Subject %q", c.Tenant, c.Subject)
			}
		}},
		{name: "domain tenant wrong sub", token: hs(map[string]any{"sub": "other.test"}), want: ReasonWrongTenant},
		{name: "domain tenant sub case-insensitive", token: hs(map[string]any{"sub": "Example.TEST"})},
		{name: "domain tenant wildcard sub", token: hs(map[string]any{"sub": "*"})},
		{name: "domain not conference.sub", token: hs(nil), room: "standup@muc.example.test", want: ReasonWrongTenant},
		{name: "domain suffix trick", token: hs(map[string]any{"sub": "test"}), room: "standup@conference.example.test", want: ReasonWrongTenant},
		{name: "MUC prefix muc", tenants: docker, token: hs(map[string]any{"sub": "meet.jitsi"}), room: "standup@muc.meet.jitsi"},
		{name: "missing sub", token: hs(map[string]any{"sub": nil}), want: ReasonMissingClaim},
		{name: "sub number", token: hs(map[string]any{"sub": 5}), want: ReasonWrongType},
		{name: "bracket tenant", token: acme(nil), room: acmeRoom, check: func(t *testing.T, c *Claims) {
			if c.Tenant != "acme" || c.Room != "standup" {
				t.Errorf("Tenant %q Room %q", c.Tenant, c.Room)
			}
		}},
		{name: "bracket tenant sub uppercase", token: acme(map[string]any{"sub": "ACME"}), room: acmeRoom},
		{name: "bracket tenant wrong sub", token: acme(map[string]any{"sub": "globex"}), room: acmeRoom, want: ReasonWrongTenant},
		{name: "bracket tenant wildcard sub refused", token: acme(map[string]any{"sub": "*"}), room: acmeRoom, want: ReasonWrongTenant},
		{name: "default tenant wildcard sub for bracket room", token: hs(map[string]any{"sub": "*"}), room: "[globex]standup@conference.example.test"},
		{name: "default tenant bracket sub", token: hs(map[string]any{"sub": "globex"}), room: "[globex]standup@conference.example.test"},
		{name: "default key never validates acme", token: hs(map[string]any{"sub": "acme", "iss": "acme-app"}), room: acmeRoom, want: ReasonBadSignature},
		{name: "acme key never validates default", token: acme(map[string]any{"sub": "globex"}), room: "[globex]standup@conference.example.test", want: ReasonBadSignature},
		{name: "no settings for tenant", tenants: noDefault, token: hs(nil), want: ReasonWrongTenant},
	})
}

func TestVerifyClaimsExtraction(t *testing.T) {
	ctxWith := func(user map[string]any, extra map[string]any) map[string]any {
		c := map[string]any{"user": user}
		for k, v := range extra {
			c[k] = v
		}
		return map[string]any{"context": c}
	}
	runVerifyCases(t, []verifyCase{
		{name: "full", token: hs(map[string]any{"jti": "j-1"}), check: func(t *testing.T, c *Claims) {
			want := Claims{UserID: "u-1", Name: "Ada", Email: "ada@example.test", Avatar: "https://example.test/ada.png",
				Moderator: true, Group: "g-1", Subject: "example.test", Issuer: "gavel-test", TokenID: "j-1"}
			if c.UserID != want.UserID || c.Name != want.Name || c.Email != want.Email || c.Avatar != want.Avatar ||
				c.Moderator != want.Moderator || c.Group != want.Group || c.Subject != want.Subject || c.Issuer != want.Issuer || c.TokenID != want.TokenID {
				t.Errorf("got %+v", c)
			}
			if !c.Features["recording"] || c.Features["livestreaming"] || len(c.Features) != 2 {
				t.Errorf("Features = %v", c.Features)
			}
		}},
		{name: "moderator bool", token: hs(ctxWith(map[string]any{"moderator": true}, nil)), check: func(t *testing.T, c *Claims) {
			if !c.Moderator {
				t.Error("not moderator")
			}
		}},
		{name: "moderator false string", token: hs(ctxWith(map[string]any{"moderator": "false"}, nil)), check: func(t *testing.T, c *Claims) {
			if c.Moderator {
				t.Error("moderator")
			}
		}},
		{name: "moderator other string is false", token: hs(ctxWith(map[string]any{"moderator": "yes"}, nil)), check: func(t *testing.T, c *Claims) {
			if c.Moderator {
				t.Error("moderator")
			}
		}},
		{name: "moderator number refused", token: hs(ctxWith(map[string]any{"moderator": 1}, nil)), want: ReasonWrongType},
		{name: "affiliation owner", token: hs(ctxWith(map[string]any{"affiliation": "Owner"}, nil)), check: func(t *testing.T, c *Claims) {
			if !c.Moderator || c.Affiliation != "owner" {
				t.Errorf("Moderator %v Affiliation %q", c.Moderator, c.Affiliation)
			}
		}},
		{name: "affiliation teacher", token: hs(ctxWith(map[string]any{"affiliation": "teacher"}, nil)), check: func(t *testing.T, c *Claims) {
			if !c.Moderator {
				t.Error("not moderator")
			}
		}},
		{name: "affiliation member", token: hs(ctxWith(map[string]any{"affiliation": "member"}, nil)), check: func(t *testing.T, c *Claims) {
			if c.Moderator {
				t.Error("moderator")
			}
		}},
		{name: "role viewer", token: hs(ctxWith(map[string]any{"role": "Viewer"}, nil)), check: func(t *testing.T, c *Claims) {
			if c.Role != "viewer" {
				t.Errorf("Role %q", c.Role)
			}
		}},
		{name: "top-level moderator and user_id", token: hs(map[string]any{"moderator": true, "user_id": "top", "context": nil}), check: func(t *testing.T, c *Claims) {
			if !c.TopLevelModerator || c.Moderator || c.UserID != "top" {
				t.Errorf("TopLevelModerator %v Moderator %v UserID %q", c.TopLevelModerator, c.Moderator, c.UserID)
			}
		}},
		{name: "top-level moderator string", token: hs(map[string]any{"moderator": "true"}), check: func(t *testing.T, c *Claims) {
			if !c.TopLevelModerator {
				t.Error("not top-level moderator")
			}
		}},
		{name: "context user id wins over user_id", token: hs(map[string]any{"user_id": "top"}), check: func(t *testing.T, c *Claims) {
			if c.UserID != "u-1" {
				t.Errorf("UserID %q", c.UserID)
			}
		}},
		{name: "numeric user id", token: hs(ctxWith(map[string]any{"id": 12345}, nil)), check: func(t *testing.T, c *Claims) {
			if c.UserID != "12345" {
				t.Errorf("UserID %q", c.UserID)
			}
		}},
		{name: "escaped strings", token: hs(ctxWith(map[string]any{"name": "A \"quoted\" \u00e9"}, nil)), check: func(t *testing.T, c *Claims) {
			if c.Name != "A \"quoted\" \u00e9" {
				t.Errorf("Name %q", c.Name)
			}
		}},
		{name: "context tenant", token: hs(ctxWith(nil, map[string]any{"tenant": "t-9"})), check: func(t *testing.T, c *Claims) {
			if c.ContextTenant != "t-9" {
				t.Errorf("ContextTenant %q", c.ContextTenant)
			}
		}},
		{name: "features bools and strings", token: hs(ctxWith(nil, map[string]any{"features": map[string]any{"a": true, "b": "true", "c": "false", "d": false, "e": nil}})), check: func(t *testing.T, c *Claims) {
			if !c.Features["a"] || !c.Features["b"] || c.Features["c"] || c.Features["d"] || c.Features["e"] {
				t.Errorf("Features %v", c.Features)
			}
		}},
		{name: "features number refused", token: hs(ctxWith(nil, map[string]any{"features": map[string]any{"a": 1}})), want: ReasonWrongType},
		{name: "features array refused", token: hs(ctxWith(nil, map[string]any{"features": []string{"a"}})), want: ReasonWrongType},
		{name: "user name object refused", token: hs(ctxWith(map[string]any{"name": map[string]any{}}, nil)), want: ReasonWrongType},
		{name: "context string refused", token: hs(map[string]any{"context": "x"}), want: ReasonWrongType},
		{name: "user null", token: hs(map[string]any{"context": map[string]any{"user": nil}})},
		{name: "unknown claims ignored", token: hs(map[string]any{"x-custom": map[string]any{"deep": []any{1, "two"}}})},
	})
}

func TestVerifyLimitsAndRoomInput(t *testing.T) {
	small := withSettings(func(s *Settings) { s.MaxTokenBytes = 512 })
	runVerifyCases(t, []verifyCase{
		{name: "token over tenant limit", tenants: small, token: hs(map[string]any{"pad": strings.Repeat("x", 600)}), want: ReasonTooLarge},
		{name: "token under tenant limit", tenants: small, token: hs(map[string]any{"context": nil})},
	})
	v := newTestVerifier(t, nil, Options{})
	token := tok(t, nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, token, Room{JID: "StandUp@conference.example.test"}); err != nil {
		t.Errorf("room from JID only: %v", err)
	}
	if _, err := v.Verify(ctx, token, Room{Name: "StandUp", Local: "standup", Domain: "Conference.Example.Test", Tenant: "example.test"}); err != nil {
		t.Errorf("hand-built room: %v", err)
	}
	if _, err := v.Verify(ctx, token, Room{}); ReasonOf(err) != ReasonWrongRoom {
		t.Errorf("empty room: %v", err)
	}
	if _, err := v.Verify(ctx, token, Room{JID: "no-domain"}); ReasonOf(err) != ReasonWrongRoom {
		t.Errorf("bad room JID: %v", err)
	}
}

func TestNewValidation(t *testing.T) {
	k := fx()
	base := func(mod func(s *Settings)) map[string]Settings {
		s := DefaultSettings("app")
		s.Secrets = [][]byte{k.secret}
		mod(&s)
		return map[string]Settings{"": s}
	}
	cases := []struct {
		name    string
		tenants map[string]Settings
		want    string // substring of the error; "" valid
	}{
		{"valid", base(func(*Settings) {}), ""},
		{"no tenants", map[string]Settings{}, "no tenant settings"},
		{"no key source is allowed", base(func(s *Settings) { s.Secrets = nil }), ""},
		{"algorithms without a key source", base(func(s *Settings) { s.Secrets = nil; s.Algorithms = []string{"RS256"} }), "no key source"},
		{"empty secret", base(func(s *Settings) { s.Secrets = [][]byte{{}} }), "secret #1 is empty"},
		{"leeway too large", base(func(s *Settings) { s.Leeway = 6 * time.Minute }), "leeway must be between 0s and 5m0s"},
		{"leeway negative", base(func(s *Settings) { s.Leeway = -time.Second }), "leeway"},
		{"leeway max", base(func(s *Settings) { s.Leeway = 5 * time.Minute }), ""},
		{"key server not http", base(func(s *Settings) { s.KeyServer = "ftp://keys.example.test/" }), "must be an http or https URL"},
		{"key server relative", base(func(s *Settings) { s.KeyServer = "/keys" }), "must be an http or https URL"},
		{"key server no host", base(func(s *Settings) { s.KeyServer = "https:///keys" }), "has no host"},
		{"key server credentials", base(func(s *Settings) { s.KeyServer = "https://u:p@keys.example.test/" }), "credentials"},
		{"key server ok", base(func(s *Settings) { s.KeyServer = "https://keys.example.test/asap" }), ""},
		{"jwks file", base(func(s *Settings) { s.JWKSURL = "file:///etc/jwks.json" }), "must be an http or https URL"},
		{"unknown algorithm", base(func(s *Settings) { s.Algorithms = []string{"HS1024"} }), `unknown algorithm "HS1024"`},
		{"algorithm none", base(func(s *Settings) { s.Algorithms = []string{"none"} }), `"none" can never be allowed`},
		{"algorithm without key", base(func(s *Settings) { s.Algorithms = []string{"RS256"} }), "no key source serves them"},
		{"small RSA key", base(func(s *Settings) { s.PublicKeys = []PublicKey{{Key: &k.rsaSmall.PublicKey}} }), "at least 2048"},
		{"private key given as public", base(func(s *Settings) { s.PublicKeys = []PublicKey{{Key: k.rsa}} }), "unsupported public key type"},
		{"key algorithm misfit", base(func(s *Settings) {
			s.PublicKeys = []PublicKey{{Key: &k.ec256.PublicKey, Algorithms: []string{"RS256"}}}
		}), "cannot verify RS256"},
		{"no app id no issuers", base(func(s *Settings) { s.AppID = "" }), "set AppID (app_id) or Issuers (issuers)"},
		{"issuers without app id", base(func(s *Settings) { s.AppID = ""; s.Issuers = []string{"chat"} }), ""},
		{"empty issuer", base(func(s *Settings) { s.Issuers = []string{""} }), "empty string"},
		{"max token bytes too small", base(func(s *Settings) { s.MaxTokenBytes = 100 }), "max token bytes"},
		{"max token bytes too large", base(func(s *Settings) { s.MaxTokenBytes = 1 << 20 }), "max token bytes"},
		{"bad MUC prefix", base(func(s *Settings) { s.MUCDomainPrefix = "a.b" }), "single DNS label"},
		{"uppercase tenant", map[string]Settings{"Acme": acmeSettings()}, "must be lowercase"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := New(tc.tenants, Options{})
			if v != nil {
				defer v.Close()
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
			if !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q lacks the auth: prefix", err)
			}
		})
	}
}

func TestClosedVerifier(t *testing.T) {
	v := newTestVerifier(t, nil, Options{})
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(context.Background(), tok(t, nil), mustRoom(t, defaultRoomJID))
	if ReasonOf(err) != ReasonClosed {
		t.Fatalf("want closed, got %v", err)
	}
}

func TestErrorAPI(t *testing.T) {
	err := error(&Error{Reason: ReasonExpired, Detail: "token expired at X"})
	if err.Error() != "auth: expired: token expired at X" {
		t.Errorf("Error() = %q", err.Error())
	}
	if !errors.Is(err, &Error{Reason: ReasonExpired}) {
		t.Error("errors.Is by reason failed")
	}
	if errors.Is(err, &Error{Reason: ReasonWrongRoom}) {
		t.Error("errors.Is matched another reason")
	}
	wrapped := errors.Join(errors.New("join"), err)
	if ReasonOf(wrapped) != ReasonExpired {
		t.Error("ReasonOf through a wrap failed")
	}
	if ReasonOf(errors.New("x")) != "" {
		t.Error("ReasonOf of a plain error")
	}
	if (&Error{Reason: ReasonClosed}).Error() != "auth: closed" {
		t.Error("Error() without detail")
	}
	seen := map[Reason]bool{}
	for _, r := range Reasons {
		if seen[r] || r == "" || strings.ToLower(string(r)) != string(r) {
			t.Errorf("bad or duplicate reason %q", r)
		}
		seen[r] = true
	}
}

func TestClaimsJSON(t *testing.T) {
	v := newTestVerifier(t, nil, Options{})
	token := tok(t, nil)
	c, err := v.Verify(context.Background(), token, mustRoom(t, defaultRoomJID))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	h := TokenHash(token)
	if m["token_sha256"] != strings.ToLower(hexString(h[:])) {
		t.Errorf("token_sha256 = %v", m["token_sha256"])
	}
	if m["exp"] != testNow.Add(time.Hour).UTC().Format(time.RFC3339) && m["exp"] != testNow.Add(time.Hour).Format(time.RFC3339) {
		t.Errorf("exp = %v", m["exp"])
	}
	for _, k := range []string{"user_id", "name", "moderator", "tenant", "room", "sub", "iss", "aud", "alg", "features"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	if _, ok := m["TokenHash"]; ok {
		t.Errorf("raw TokenHash in JSON: %s", b)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestParsePublicKeyPEM(t *testing.T) {
	k := fx()
	for _, tc := range []struct {
		name string
		pem  []byte
		want string
	}{
		{"rsa pkix", pubPEM(t, &k.rsa.PublicKey), ""},
		{"ec", pubPEM(t, &k.ec256.PublicKey), ""},
		{"ed25519", pubPEM(t, k.ed.Public().(ed25519.PublicKey)), ""},
		{"private key refused", privPEM(t, k.rsa), "never the private one"},
		{"garbage", []byte("not pem"), "no PEM block"},
		{"small rsa", pubPEM(t, &k.rsaSmall.PublicKey), "at least 2048"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePublicKeyPEM(tc.pem)
			if tc.want == "" && err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
		})
	}
	dir := t.TempDir()
	path := dir + "/k.pem"
	if err := writeFile(path, pubPEM(t, &k.rsa.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPublicKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPublicKeyFile(dir + "/missing.pem"); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestTenantWithoutKeysRefusesTokens(t *testing.T) {
	v, err := New(map[string]Settings{"": DefaultSettings("app")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tok, err := Mint(MintRequest{Secret: []byte("0123456789abcdef0123"), Issuer: "app", Audience: []string{"jitsi"}, Subject: "example.test", Room: "r", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	room, _ := ParseRoom("r@conference.example.test")
	_, err = v.Verify(context.Background(), tok, room)
	if ReasonOf(err) != ReasonUnknownKey || !strings.Contains(err.Error(), "no token keys are configured") {
		t.Errorf("err = %v", err)
	}
}

// TestVerifyHeaderTyp: typ is optional (RFC 7519); when present it must be
// "JWT" in any case, and another typ is "not a JWT" (malformed), not a claim
// of the wrong JSON type.
func TestVerifyHeaderTyp(t *testing.T) {
	with := func(header string) func(t testing.TB) string {
		return func(t testing.TB) string { return signRaw(t, "HS256", fx().secret, header, payload(nil)) }
	}
	runVerifyCases(t, []verifyCase{
		{name: "typ JWT", token: with(`{"alg":"HS256","typ":"JWT"}`)},
		{name: "typ missing", token: with(`{"alg":"HS256"}`)},
		{name: "typ lowercase jwt", token: with(`{"alg":"HS256","typ":"jwt"}`)},
		{name: "typ null is a header member of the wrong type", token: with(`{"alg":"HS256","typ":null}`), want: ReasonMalformed},
		{name: "typ JOSE", token: with(`{"alg":"HS256","typ":"JOSE"}`), want: ReasonMalformed},
		{name: "typ empty", token: with(`{"alg":"HS256","typ":""}`), want: ReasonMalformed},
		{name: "RS256 without typ", token: func(t testing.TB) string {
			return signRaw(t, "RS256", fx().rsa, `{"alg":"RS256"}`, payload(nil))
		}},
	})
}

// TestClaimTypeReasons: a claim of the wrong JSON type is wrong-type, as
// docs/protocol.md documents token-wrong-type; broken JSON is malformed.
func TestClaimTypeReasons(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{name: "exp string", token: hs(map[string]any{"exp": "9999999999"}), want: ReasonWrongType},
		{name: "iat string", token: hs(map[string]any{"iat": "0"}), want: ReasonWrongType},
		{name: "aud number", token: hs(map[string]any{"aud": 7}), want: ReasonWrongType},
		{name: "room number", token: hs(map[string]any{"room": 7}), want: ReasonWrongType},
		{name: "feature number", token: hs(map[string]any{"context": map[string]any{"features": map[string]any{"recording": 1}}}), want: ReasonWrongType},
		{name: "exp out of range", token: hs(map[string]any{"exp": -5}), want: ReasonMalformed},
		{name: "duplicate claim", token: func(t testing.TB) string {
			return signRaw(t, "HS256", fx().secret, hdr("HS256"), strings.Replace(payload(nil), `"room":"standup"`, `"room":"standup","room":"x"`, 1))
		}, want: ReasonMalformed},
	})
}

// TestReasonsDocumented: every reason the knock can give ("token-" plus the
// Reason) is in docs/protocol.md's error table. ReasonMissingToken never
// reaches the knock (no token is a guest) and ReasonClosed is answered as
// shutting-down.
func TestReasonsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Reasons {
		if r == ReasonMissingToken || r == ReasonClosed {
			continue
		}
		if !strings.Contains(string(doc), "| `token-"+string(r)+"` |") {
			t.Errorf("reason %q is not in the error table of docs/protocol.md", "token-"+r)
		}
	}
}
