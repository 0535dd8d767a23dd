package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestKeySourceRedirects: a key server or JWKS URL that redirects off its
// origin (scheme, host and port) gets no say over the keys: the token an
// attacker signed for the redirect target is refused with a message naming
// the redirect; redirects within the origin are followed.
func TestKeySourceRedirects(t *testing.T) {
	k := fx()
	// The attacker's host serves the attacker's key under every name.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".json") {
			_, _ = w.Write(jwksJSON(t, jwkSpec{kid: "k1", pub: &k.rsaEvil.PublicKey}))
			return
		}
		_, _ = w.Write(pubPEM(t, &k.rsaEvil.PublicKey))
	}))
	t.Cleanup(evil.Close)
	// The configured host redirects: /off/... to the attacker, /same/... to
	// its own /real/..., which serves the real key.
	var good *httptest.Server
	good = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/off/"):
			http.Redirect(w, r, evil.URL+r.URL.Path, http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/same/"):
			http.Redirect(w, r, good.URL+"/real/"+strings.TrimPrefix(r.URL.Path, "/same/"), http.StatusMovedPermanently)
		case strings.HasSuffix(r.URL.Path, ".json"):
			_, _ = w.Write(jwksJSON(t, jwkSpec{kid: "k1", pub: &k.rsa.PublicKey}))
		default:
			_, _ = w.Write(pubPEM(t, &k.rsa.PublicKey))
		}
	}))
	t.Cleanup(good.Close)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)

	asap := func(path string) map[string]Settings {
		s := DefaultSettings("asap-app")
		s.KeyServer = good.URL + path
		return map[string]Settings{"asap": s}
	}
	jwks := func(path string) map[string]Settings {
		s := DefaultSettings("jw-app")
		s.JWKSURL = good.URL + path + "jwks.json"
		return map[string]Settings{"jw": s}
	}
	cases := []struct {
		name    string
		tenants map[string]Settings
		room    string
		token   string
		want    Reason
		detail  string
	}{
		{"key server: redirect off the origin, attacker's token", asap("/off/"), asapRoomJID, asapToken(t, k.rsaEvil, "k1"), ReasonKeyUnavailable, "redirected to " + evil.URL},
		{"key server: redirect off the origin, real token", asap("/off/"), asapRoomJID, asapToken(t, k.rsa, "k1"), ReasonKeyUnavailable, "off its origin"},
		{"key server: redirect within the origin", asap("/same/"), asapRoomJID, asapToken(t, k.rsa, "k1"), "", ""},
		{"JWKS: redirect off the origin, attacker's token", jwks("/off/"), jwksRoomJID, jwksToken(t, "RS256", k.rsaEvil, "k1"), ReasonKeyUnavailable, "redirected to " + evil.URL},
		{"JWKS: redirect within the origin", jwks("/same/"), jwksRoomJID, jwksToken(t, "RS256", k.rsa, "k1"), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, tc.tenants, Options{CacheSize: -1})
			_, err := v.Verify(context.Background(), tc.token, mustRoom(t, tc.room))
			if ReasonOf(err) != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("error %q does not say %q", err, tc.detail)
			}
		})
	}
}
