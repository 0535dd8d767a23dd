package auth

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

var fuzzVerifier = sync.OnceValue(func() *Verifier {
	s := defaultSettings()
	s.AllowRegexRoom = true
	v, err := New(map[string]Settings{"": s, "acme": acmeSettings()}, Options{Now: fixedNow, CacheSize: 64})
	if err != nil {
		panic(err)
	}
	return v // lives as long as the fuzz process; it has no goroutines
})

// FuzzVerify feeds arbitrary tokens to Verify: it must never panic, must
// refuse with a known reason and a detail, and must never accept a token
// whose signature golang-jwt does not accept.
func FuzzVerify(f *testing.F) {
	k := fx()
	f.Add(tok(f, nil), defaultRoomJID)
	f.Add(signRaw(f, "ES256", k.ec256, hdr("ES256"), payload(nil)), defaultRoomJID)
	f.Add(signRaw(f, "EdDSA", k.ed, hdr("EdDSA"), payload(nil)), defaultRoomJID)
	f.Add(signRaw(f, "RS256", k.rsa, hdrKID("RS256", "k"), payload(nil)), defaultRoomJID)
	f.Add(tok(f, map[string]any{"room": "st.*", "context": map[string]any{"room": map[string]any{"regex": true}}}), defaultRoomJID)
	f.Add(signRaw(f, "HS256", k.acmeSecret, hdr("HS256"), payload(map[string]any{"sub": "acme", "iss": "acme-app"})), "[acme]standup@conference.example.test")
	for _, tc := range hostileCorpus() {
		if tc.name == "empty token" || strings.Contains(tc.name, "oversized") {
			continue
		}
		f.Add(tc.token(f, "http://127.0.0.1:1"), defaultRoomJID)
	}
	f.Fuzz(func(t *testing.T, token, jid string) {
		v := fuzzVerifier()
		room, err := ParseRoom(jid)
		if err != nil {
			room = mustRoom(t, defaultRoomJID)
		}
		c, err := v.Verify(context.Background(), token, room)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !slices.Contains(Reasons, e.Reason) || e.Detail == "" || c != nil {
				t.Fatalf("bad refusal %#v (claims %v)", err, c)
			}
			return
		}
		if c == nil {
			t.Fatal("nil claims without error")
		}
		// Anything accepted must also pass golang-jwt's signature check.
		_, jerr := jwt.NewParser(jwt.WithoutClaimsValidation()).Parse(token, func(tk *jwt.Token) (any, error) {
			switch tk.Method.Alg() {
			case "HS256", "HS384", "HS512":
				if room.Tenant == "acme" {
					return k.acmeSecret, nil
				}
				return k.secret, nil
			case "ES256":
				return &k.ec256.PublicKey, nil
			case "EdDSA":
				return k.ed.Public(), nil
			default:
				return &k.rsa.PublicKey, nil
			}
		})
		if jerr != nil {
			t.Fatalf("accepted a token golang-jwt refuses: %v", jerr)
		}
		if c.Room != "*" && !c.RoomRegex && c.Room != room.Name {
			t.Fatalf("accepted room claim %q for room %q", c.Room, room.Name)
		}
	})
}

// FuzzParseRoom checks ParseRoom's invariants on arbitrary input.
func FuzzParseRoom(f *testing.F) {
	for _, s := range []string{
		"[acme]standup@conference.example.test", "standup@conference.example.test", "room@muc.x/nick",
		"[a]b@c", "[", "[]x@y", "x@", "@y", "a@b@c", "ÄÖ@CONFERENCE.X", "[T]]@x", "a\x00@b", "İ@conference.x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, jid string) {
		r, err := ParseRoom(jid)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "auth: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		for _, s := range []string{r.JID, r.Local, r.Name, r.Tenant, r.Domain} {
			if strings.ToLower(s) != s {
				t.Fatalf("not lowercase: %q in %+v", s, r)
			}
		}
		if r.Name == "" || r.Tenant == "" || r.Domain == "" || strings.ContainsAny(r.Name, "[]@/") {
			t.Fatalf("bad room %+v", r)
		}
		if r.JID != r.Local+"@"+r.Domain {
			t.Fatalf("JID %q is not Local@Domain in %+v", r.JID, r)
		}
		if r.hasBracketTenant() {
			if r.Local != "["+r.Tenant+"]"+r.Name {
				t.Fatalf("Local %q does not rebuild in %+v", r.Local, r)
			}
		} else if r.Local != r.Name || r.Tenant != strings.TrimPrefix(r.Domain, "conference.") {
			t.Fatalf("plain room %+v", r)
		}
		again, err := ParseRoom(r.JID)
		if err != nil || again != r {
			t.Fatalf("ParseRoom(%q) = %+v, %v; want %+v", r.JID, again, err, r)
		}
	})
}

// FuzzRoomMatch checks the room claim matcher: compiling any pattern is
// safe and bounded, and a quoted name always matches itself.
func FuzzRoomMatch(f *testing.F) {
	for _, s := range [][2]string{{"stand.*", "standup"}, {"a|b", "ab"}, {"x)|(.*", "y"}, {"(a+)+$", "aaaa!"}, {`\`, "x"}, {"[[:alpha:]]{3,9}", "Room"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		re, err := compileRoomPattern(pattern)
		if err == nil {
			_ = re.MatchString(name)
			if len(pattern) > MaxRoomPatternBytes {
				t.Fatal("long pattern accepted")
			}
		}
		name = strings.ToLower(name)
		if len(regexp.QuoteMeta(name)) <= MaxRoomPatternBytes {
			re, err := compileRoomPattern(regexp.QuoteMeta(name))
			if err == nil && !re.MatchString(name) {
				t.Fatalf("quoted %q does not match itself", name)
			}
		}
	})
}

// FuzzDecodeClaims checks the payload reader against encoding/json: it
// accepts only valid JSON, agrees on the values it extracts, and refuses
// valid JSON only for the stricter rules it documents.
func FuzzDecodeClaims(f *testing.F) {
	f.Add([]byte(payload(nil)))
	f.Add([]byte(`{"aud":["a","b"],"exp":1.5e9,"context":{"user":{"id":7,"moderator":"true"},"features":{"x":true}}}`))
	f.Add([]byte(`{"\u0072oom":"a\u00e9\ud83d\ude00","sub":null,"x":[1,{"y":[]}]}`))
	f.Add([]byte(`{"exp":-0.0e+1, "iss" : "a\"b\\c\/d\b\f\n\r\t"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, e := decodeClaims(b)
		valid := json.Valid(b)
		if e == nil {
			if !valid {
				t.Fatalf("accepted invalid JSON %q", b)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("accepted %q, encoding/json: %v", b, err)
			}
			for k, got := range map[string]string{"iss": c.Issuer, "sub": c.Subject} {
				if v, ok := m[k].(string); ok && v != got {
					t.Fatalf("%s: got %q, encoding/json %q", k, got, v)
				}
			}
			if v, ok := m["room"].(string); ok && !c.RoomRegex && strings.ToLower(v) != c.Room {
				t.Fatalf("room: got %q, encoding/json %q", c.Room, v)
			}
			if v, ok := m["exp"].(float64); ok && c.Expires.Unix() != int64(v) {
				t.Fatalf("exp: got %v, encoding/json %v", c.Expires.Unix(), v)
			}
			return
		}
		if e.Reason != ReasonMalformed {
			t.Fatalf("reason %s", e.Reason)
		}
		if valid && strings.Contains(e.Detail, "not valid JSON") {
			for _, ok := range []string{"invalid UTF-8", "nested too deeply", "unpaired surrogate", "not a JSON object"} {
				if strings.Contains(e.Detail, ok) {
					return
				}
			}
			t.Fatalf("refused valid JSON %q: %v", b, e)
		}
	})
}
