package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gavelxmpp/gavel/auth"
)

// endpoint is one command endpoint with a valid request for testTenant.
type endpoint struct {
	name, method, path, body string
	calls                    int // commands a valid request runs
}

func commandEndpoints(t *testing.T) []endpoint {
	victim := mint(t, testEpoch, func(r *auth.MintRequest) { r.Extra = nil; r.Subject = "someone" })
	base := "/jaccess/v1/access-management/" + testTenant
	return []endpoint{
		{"ban_user", http.MethodPost, base + "/ban/user/alice", "", 1},
		{"unban_user", http.MethodDelete, base + "/ban/user/alice", "", 1},
		{"ban_jwt", http.MethodPost, base + "/ban/jwt", `{"jwt":"` + victim + `"}`, 1},
		{"unban_jwt", http.MethodDelete, base + "/ban/jwt", `{"hash":"` + strings.Repeat("ab", 32) + `"}`, 1},
		{"list_bans", http.MethodGet, base + "/bans", "", 1},
		{"meeting", http.MethodPost, "/conference-commands/v1/meeting", `{"action":"DESTROY","payload":{"conferenceFullName":"` + testRoom + `"}}`, 1},
	}
}

// TestAuthorizationMatrix runs every authorization case against every
// command endpoint.
func TestAuthorizationMatrix(t *testing.T) {
	now := testEpoch
	confusion := rsaPublicPEM(t)
	cases := []struct {
		name   string
		token  func(t *testing.T) string
		status int
		code   string
	}{
		{"no header", func(*testing.T) string { return "" }, 401, "unauthorized"},
		{"basic scheme", func(*testing.T) string { return "raw:Basic YWRtaW46YWRtaW4=" }, 401, "unauthorized"},
		{"bearer without token", func(*testing.T) string { return "raw:Bearer" }, 401, "unauthorized"},
		{"garbled token", func(*testing.T) string { return "not-a-jwt" }, 401, "unauthorized"},
		{"two segments", func(*testing.T) string { return "eyJhbGciOiJIUzI1NiJ9.e30" }, 401, "unauthorized"},
		{"oversized token", func(*testing.T) string { return strings.Repeat("a", maxTokenBytes+1) }, 401, "unauthorized"},
		{"expired", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.IssuedAt = now.Add(-2 * time.Hour) })
		}, 401, "token-expired"},
		{"no exp", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.NoExpiry = true })
		}, 401, "unauthorized"},
		{"not yet valid", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.NotBefore = now.Add(time.Hour); r.TTL = 2 * time.Hour })
		}, 401, "unauthorized"},
		{"bad signature", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Secret = otherSecret })
		}, 401, "bad-signature"},
		{"tampered payload", func(t *testing.T) string {
			tok := mint(t, now, nil)
			other := mint(t, now, func(r *auth.MintRequest) { r.Subject = "other" })
			p := strings.Split(tok, ".")
			return strings.Split(other, ".")[0] + "." + strings.Split(other, ".")[1] + "." + p[2]
		}, 401, "bad-signature"},
		{"alg none", func(t *testing.T) string {
			return signRaw(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType,
				jwt.MapClaims{"sub": testTenant, "admin": true, "exp": now.Add(time.Hour).Unix()})
		}, 401, "bad-signature"},
		{"HS256 signed with the RSA public key", func(t *testing.T) string {
			return signRaw(t, jwt.SigningMethodHS256, confusion,
				jwt.MapClaims{"sub": testTenant, "admin": true, "exp": now.Add(time.Hour).Unix()})
		}, 401, "bad-signature"},
		{"HS512 with an unknown secret", func(t *testing.T) string {
			return signRaw(t, jwt.SigningMethodHS512, otherSecret,
				jwt.MapClaims{"sub": testTenant, "admin": true, "exp": now.Add(time.Hour).Unix()})
		}, 401, "bad-signature"},
		{"not admin", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Extra = nil })
		}, 403, "not-admin"},
		{"admin false", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Extra = map[string]any{"admin": false} })
		}, 403, "not-admin"},
		{"admin yes", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Extra = map[string]any{"admin": "yes"} })
		}, 403, "not-admin"},
		{"other tenant", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Subject = "other" })
		}, 403, "wrong-tenant"},
		{"no sub", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Subject = "" })
		}, 403, "wrong-tenant"},
		{"valid HS256", func(t *testing.T) string { return mint(t, now, nil) }, 200, ""},
		{"valid HS512", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Algorithm = "HS512" })
		}, 200, ""},
		{"admin string true", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Extra = map[string]any{"admin": "true"} })
		}, 200, ""},
		{"sub in other case", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Subject = "ACME" })
		}, 200, ""},
		{"expired within leeway", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.IssuedAt = now.Add(-time.Hour - 10*time.Second) })
		}, 200, ""},
		{"valid RS256", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Secret = nil; r.PrivateKey = rsaKey() })
		}, 200, ""},
		{"valid PS384", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Secret = nil; r.PrivateKey = rsaKey(); r.Algorithm = "PS384" })
		}, 200, ""},
		{"valid ES256", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Secret = nil; r.PrivateKey = ecKey() })
		}, 200, ""},
		{"valid EdDSA", func(t *testing.T) string {
			return mint(t, now, func(r *auth.MintRequest) { r.Secret = nil; r.PrivateKey = edKey() })
		}, 200, ""},
	}
	for _, ep := range commandEndpoints(t) {
		for _, tc := range cases {
			t.Run(ep.name+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t, nil)
				resp := f.do(t, ep.method, ep.path, tc.token(t), ep.body)
				if resp.status != tc.status {
					t.Fatalf("status = %d, want %d; body %s", resp.status, tc.status, resp.body)
				}
				calls := f.cmds.Calls()
				if tc.code == "" {
					if len(calls) == 0 {
						t.Errorf("no command ran")
					}
					return
				}
				if got := resp.errorCode(t); got != tc.code {
					t.Errorf("error = %q, want %q", got, tc.code)
				}
				if len(calls) > 0 {
					t.Errorf("command %s ran for a refused request", calls[0].Method)
				}
				if tc.status == 401 && resp.header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
			})
		}
	}
}

// TestIssuerAudience checks the iss and aud claims only when configured.
func TestIssuerAudience(t *testing.T) {
	cases := []struct {
		name      string
		issuers   []string
		audiences []string
		edit      func(*auth.MintRequest)
		status    int
	}{
		{"unconfigured accepts any", nil, nil, func(r *auth.MintRequest) { r.Issuer = "x"; r.Audience = []string{"y"} }, 200},
		{"issuer accepted", []string{"a", "gavel-admin"}, nil, nil, 200},
		{"issuer refused", []string{"a"}, nil, nil, 401},
		{"issuer missing", []string{"gavel-admin"}, nil, func(r *auth.MintRequest) { r.Issuer = "" }, 401},
		{"audience accepted", nil, []string{"gavel"}, func(r *auth.MintRequest) { r.Audience = []string{"jitsi", "gavel"} }, 200},
		{"audience refused", nil, []string{"gavel"}, func(r *auth.MintRequest) { r.Audience = []string{"jitsi"} }, 401},
		{"audience missing", nil, []string{"gavel"}, func(r *auth.MintRequest) { r.Audience = nil }, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.Keys.Issuers, o.Keys.Audiences = tc.issuers, tc.audiences })
			resp := f.do(t, "GET", "/jaccess/v1/access-management/acme/bans", mint(t, testEpoch, tc.edit), "")
			if resp.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tc.status, resp.body)
			}
			if tc.status == 401 && resp.errorCode(t) != "unauthorized" {
				t.Errorf("error = %q, want unauthorized", resp.errorCode(t))
			}
		})
	}
}

// TestKeyRestrictions checks kid and Algorithms of public keys, and the
// absence of keys.
func TestKeyRestrictions(t *testing.T) {
	rs := func(alg, kid string) func(*auth.MintRequest) {
		return func(r *auth.MintRequest) { r.Secret = nil; r.PrivateKey = rsaKey(); r.Algorithm = alg; r.KeyID = kid }
	}
	cases := []struct {
		name   string
		keys   AdminKeys
		edit   func(*auth.MintRequest)
		status int
		code   string
	}{
		{"kid matches", AdminKeys{PublicKeys: []auth.PublicKey{{KID: "k1", Key: &rsaKey().PublicKey}}}, rs("RS256", "k1"), 200, ""},
		{"kid differs", AdminKeys{PublicKeys: []auth.PublicKey{{KID: "k1", Key: &rsaKey().PublicKey}}}, rs("RS256", "k2"), 401, "bad-signature"},
		{"kid missing", AdminKeys{PublicKeys: []auth.PublicKey{{KID: "k1", Key: &rsaKey().PublicKey}}}, rs("RS256", ""), 401, "bad-signature"},
		{"algorithm allowed", AdminKeys{PublicKeys: []auth.PublicKey{{Key: &rsaKey().PublicKey, Algorithms: []string{"PS256"}}}}, rs("PS256", ""), 200, ""},
		{"algorithm narrowed away", AdminKeys{PublicKeys: []auth.PublicKey{{Key: &rsaKey().PublicKey, Algorithms: []string{"PS256"}}}}, rs("RS256", ""), 401, "bad-signature"},
		{"secret token without secrets", AdminKeys{PublicKeys: []auth.PublicKey{{Key: &rsaKey().PublicKey}}}, nil, 401, "bad-signature"},
		{"no keys at all", AdminKeys{}, nil, 401, "unauthorized"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.Keys = tc.keys })
			resp := f.do(t, "GET", "/jaccess/v1/access-management/acme/bans", mint(t, testEpoch, tc.edit), "")
			if resp.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tc.status, resp.body)
			}
			if tc.code != "" && resp.errorCode(t) != tc.code {
				t.Errorf("error = %q, want %q", resp.errorCode(t), tc.code)
			}
		})
	}
}

// TestBy checks the issuer passed to the command layer.
func TestBy(t *testing.T) {
	cases := []struct {
		name string
		edit func(*auth.MintRequest)
		want string
	}{
		{"sub only", nil, "api:acme"},
		{"context.user.name", func(r *auth.MintRequest) { r.Name = "Alice Admin" }, "api:acme (Alice Admin)"},
		{"top-level name wins", func(r *auth.MintRequest) {
			r.Name = "ctx"
			r.Extra = map[string]any{"admin": true, "name": "Top"}
		}, "api:acme (Top)"},
		{"control characters dropped", func(r *auth.MintRequest) {
			r.Extra = map[string]any{"admin": true, "name": "Eve\n\x1b[31mlog\u202e"}
		}, "api:acme (Eve[31mlog)"},
		{"name not a string", func(r *auth.MintRequest) {
			r.Extra = map[string]any{"admin": true, "name": 42}
		}, "api:acme"},
		{"long name clipped", func(r *auth.MintRequest) {
			r.Extra = map[string]any{"admin": true, "name": strings.Repeat("n", 100)}
		}, "api:acme (" + strings.Repeat("n", maxNameRunes) + ")"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			resp := f.do(t, "POST", "/jaccess/v1/access-management/acme/ban/user/bob", mint(t, testEpoch, tc.edit), "")
			if resp.status != 200 {
				t.Fatalf("status = %d; body %s", resp.status, resp.body)
			}
			if got := f.cmds.Calls()[0].Ban.By; got != tc.want {
				t.Errorf("by = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAdminClaimsStrict: admin tokens go through auth's claim decoder, so
// numeric dates must be JSON numbers and admin must be JSON true or the
// exact string "true" (as context.user.moderator), never "TRUE" or "1".
func TestAdminClaimsStrict(t *testing.T) {
	now := testEpoch
	exp := now.Add(time.Hour).Unix()
	cases := []struct {
		name   string
		claims jwt.MapClaims
		status int
		code   string
		detail string // a substring of the message
	}{
		{"exp string", jwt.MapClaims{"sub": testTenant, "admin": true, "exp": "9999999999"}, 401, "unauthorized", `wrong-type: claim \"exp\"`},
		{"nbf string", jwt.MapClaims{"sub": testTenant, "admin": true, "exp": exp, "nbf": "0"}, 401, "unauthorized", `wrong-type: claim \"nbf\"`},
		{"admin TRUE", jwt.MapClaims{"sub": testTenant, "admin": "TRUE", "exp": exp}, 403, "not-admin", ""},
		{"admin string 1", jwt.MapClaims{"sub": testTenant, "admin": "1", "exp": exp}, 403, "not-admin", ""},
		{"admin number 1", jwt.MapClaims{"sub": testTenant, "admin": 1, "exp": exp}, 401, "unauthorized", `wrong-type: claim \"admin\"`},
		{"admin object", jwt.MapClaims{"sub": testTenant, "admin": map[string]any{}, "exp": exp}, 401, "unauthorized", `wrong-type`},
		{"admin twice is broken JSON", nil, 401, "unauthorized", "appears twice"},
		{"admin string true", jwt.MapClaims{"sub": testTenant, "admin": "true", "exp": exp}, 200, "", ""},
		{"admin true", jwt.MapClaims{"sub": testTenant, "admin": true, "exp": exp}, 200, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			var tok string
			if tc.claims == nil {
				tok = signRawJSON(t, `{"sub":"`+testTenant+`","admin":false,"admin":true,"exp":`+fmt.Sprint(exp)+`}`)
			} else {
				tok = signRaw(t, jwt.SigningMethodHS256, testSecret, tc.claims)
			}
			resp := f.do(t, "GET", "/jaccess/v1/access-management/acme/bans", tok, "")
			if resp.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tc.status, resp.body)
			}
			if tc.code != "" && resp.errorCode(t) != tc.code {
				t.Errorf("error = %q, want %q", resp.errorCode(t), tc.code)
			}
			if !strings.Contains(resp.body, tc.detail) {
				t.Errorf("body %s lacks %q", resp.body, tc.detail)
			}
		})
	}
}

// signRawJSON signs a raw HS256 payload with the test secret, for JSON that
// a claims map cannot express.
func signRawJSON(t *testing.T, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc(sig)
}
