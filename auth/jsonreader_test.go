package auth

import (
	"strings"
	"testing"
)

func TestDecodeClaimsJSON(t *testing.T) {
	cases := []struct {
		name    string
		payload string
		err     string // substring of the detail; "" valid
		check   func(t *testing.T, c *Claims)
	}{
		{name: "empty object", payload: `{}`},
		{name: "white space everywhere", payload: " {\n\t\"iss\" :\r\"a\" , \"exp\" : 1 }\n"},
		{name: "escapes", payload: `{"iss":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00"}`, check: func(t *testing.T, c *Claims) {
			if c.Issuer != "a\"b\\c/d\b\f\n\r\té😀" {
				t.Errorf("Issuer %q", c.Issuer)
			}
		}},
		{name: "escaped member name", payload: `{"\u0069ss":"x"}`, check: func(t *testing.T, c *Claims) {
			if c.Issuer != "x" {
				t.Errorf("Issuer %q", c.Issuer)
			}
		}},
		{name: "case-sensitive names", payload: `{"ISS":"x","Exp":"soon"}`, check: func(t *testing.T, c *Claims) {
			if c.Issuer != "" || !c.Expires.IsZero() {
				t.Errorf("case-folded: %+v", c)
			}
		}},
		{name: "numbers", payload: `{"exp":1.5e9,"nbf":0,"iat":-0,"x":[-1.25E-3,0.0,1e+2]}`, check: func(t *testing.T, c *Claims) {
			if c.Expires.Unix() != 1_500_000_000 || c.NotBefore.Unix() != 0 {
				t.Errorf("times %v %v", c.Expires, c.NotBefore)
			}
		}},
		{name: "nulls mean absent", payload: `{"iss":null,"exp":null,"aud":null,"context":null,"moderator":null}`, check: func(t *testing.T, c *Claims) {
			if c.Issuer != "" || !c.Expires.IsZero() || c.Audience != nil {
				t.Errorf("%+v", c)
			}
		}},
		{name: "unknown members of every kind", payload: `{"a":{"b":[1,true,false,null,"s",{"c":{}}]},"d":[],"e":{}}`},
		{name: "leading zero", payload: `{"exp":01}`, err: "not valid JSON"},
		{name: "bare minus", payload: `{"exp":-}`, err: "bad number"},
		{name: "trailing dot", payload: `{"exp":1.}`, err: "bad number"},
		{name: "leading dot", payload: `{"exp":.5}`, err: "invalid character"},
		{name: "empty exponent", payload: `{"exp":1e}`, err: "bad number"},
		{name: "plus sign", payload: `{"x":+1}`, err: "invalid character"},
		{name: "NaN", payload: `{"exp":NaN}`, err: "invalid character"},
		{name: "trailing comma", payload: `{"iss":"a",}`, err: "want a member name"},
		{name: "missing colon", payload: `{"iss" "a"}`, err: "want ':'"},
		{name: "single quotes", payload: `{'iss':'a'}`, err: "want a member name"},
		{name: "unterminated string", payload: `{"iss":"a`, err: "unterminated string"},
		{name: "raw control character", payload: "{\"iss\":\"a\x01\"}", err: "control character"},
		{name: "bad escape", payload: `{"iss":"\x"}`, err: "bad escape"},
		{name: "short unicode escape", payload: `{"iss":"\u12"}`, err: "bad \\u escape"},
		{name: "lone high surrogate", payload: `{"iss":"\ud83d"}`, err: "unpaired surrogate"},
		{name: "lone low surrogate", payload: `{"iss":"\ude00x"}`, err: "unpaired surrogate"},
		{name: "invalid UTF-8", payload: "{\"iss\":\"\xc3\x28\"}", err: "invalid UTF-8"},
		{name: "bad literal", payload: `{"moderator":tru}`, err: "invalid literal"},
		{name: "two objects", payload: `{}{}`, err: "data after the JSON value"},
		{name: "unclosed array", payload: `{"x":[1,2}`, err: "want ',' or ']'"},
		{name: "unclosed object", payload: `{"x":1`, err: "want ',' or '}'"},
		{name: "too deep", payload: `{"x":` + strings.Repeat(`{"y":`, 40) + `1` + strings.Repeat(`}`, 41), err: "nested too deeply"},
		{name: "deep but allowed", payload: `{"x":` + strings.Repeat(`[`, 30) + strings.Repeat(`]`, 30) + `}`},
		{name: "aud array of numbers", payload: `{"aud":[1]}`, err: `claim "aud" has the wrong type (JSON array of number)`},
		{name: "feature number", payload: `{"context":{"features":{"rec":1}}}`, err: `claim "context.features.rec" has the wrong type (JSON number)`},
		{name: "duplicate in context", payload: `{"context":{"user":{"id":"a","id":"b"}}}`, err: `claim "context.user.id" appears twice`},
		{name: "duplicate unknown is fine", payload: `{"x":1,"x":2}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, e := decodeClaims([]byte(tc.payload))
			if tc.err != "" {
				want := ReasonMalformed
				if strings.Contains(tc.err, "wrong type") {
					want = ReasonWrongType
				}
				if e == nil || e.Reason != want || !strings.Contains(e.Detail, tc.err) {
					t.Fatalf("want %s %q, got %v", want, tc.err, e)
				}
				return
			}
			if e != nil {
				t.Fatal(e)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}
