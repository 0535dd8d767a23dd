package auth

import (
	"strings"
	"testing"
)

func TestParseRoom(t *testing.T) {
	cases := []struct {
		jid  string
		want Room
		err  string
	}{
		{jid: "[acme]standup@conference.example.test", want: Room{JID: "[acme]standup@conference.example.test", Local: "[acme]standup", Name: "standup", Tenant: "acme", Domain: "conference.example.test"}},
		{jid: "standup@conference.example.test", want: Room{JID: "standup@conference.example.test", Local: "standup", Name: "standup", Tenant: "example.test", Domain: "conference.example.test"}},
		{jid: "standup@muc.example.test", want: Room{JID: "standup@muc.example.test", Local: "standup", Name: "standup", Tenant: "muc.example.test", Domain: "muc.example.test"}},
		{jid: "[ACME]StandUp@Conference.Example.TEST", want: Room{JID: "[acme]standup@conference.example.test", Local: "[acme]standup", Name: "standup", Tenant: "acme", Domain: "conference.example.test"}},
		{jid: "room@conference.example.test/nick", want: Room{JID: "room@conference.example.test", Local: "room", Name: "room", Tenant: "example.test", Domain: "conference.example.test"}},
		{jid: "[a.b-c]r.x@conference.meet", want: Room{JID: "[a.b-c]r.x@conference.meet", Local: "[a.b-c]r.x", Name: "r.x", Tenant: "a.b-c", Domain: "conference.meet"}},
		{jid: "café@conference.example.test", want: Room{JID: "café@conference.example.test", Local: "café", Name: "café", Tenant: "example.test", Domain: "conference.example.test"}},
		{jid: "x@conference", want: Room{JID: "x@conference", Local: "x", Name: "x", Tenant: "conference", Domain: "conference"}},
		{jid: "", err: "empty room JID"},
		{jid: "standup", err: "has no @"},
		{jid: "@conference.example.test", err: "empty room name"},
		{jid: "standup@", err: "has no domain"},
		{jid: "a@b@c", err: "not allowed"},
		{jid: "[acme@conference.example.test", err: "never closes"},
		{jid: "[]standup@conference.example.test", err: "empty [tenant]"},
		{jid: "[acme]@conference.example.test", err: "nothing after"},
		{jid: "[acme]]x@conference.example.test", err: "brackets are allowed only"},
		{jid: "[a[b]x@conference.example.test", err: "brackets are allowed only"},
		{jid: "x[acme]y@conference.example.test", err: "brackets are allowed only"},
		{jid: "x]@conference.example.test", err: "brackets are allowed only"},
		{jid: "stand up@conference.example.test", err: "not allowed"},
		{jid: "stand\x00up@conference.example.test", err: "not allowed"},
		{jid: "x@conf\terence", err: "not allowed"},
		{jid: "\xff@conference.example.test", err: "not valid UTF-8"},
		{jid: "x@.example.test", err: "empty label"},
		{jid: "x@example..test", err: "empty label"},
		{jid: "x@example.test.", want: Room{JID: "x@example.test", Local: "x", Name: "x", Tenant: "example.test", Domain: "example.test"}}, // Prosody strips the root label
		// The server's nodeprep, not lowercasing (each one room in Prosody).
		{jid: "[acme]ｖｉｃｔｉｍ@conference.example.test", want: Room{JID: "[acme]victim@conference.example.test", Local: "[acme]victim", Name: "victim", Tenant: "acme", Domain: "conference.example.test"}},
		{jid: "[ＡＣＭＥ]straße@conference.example.test", want: Room{JID: "[acme]strasse@conference.example.test", Local: "[acme]strasse", Name: "strasse", Tenant: "acme", Domain: "conference.example.test"}},
		{jid: "ﬀroom@conference.example.test", want: Room{JID: "ffroom@conference.example.test", Local: "ffroom", Name: "ffroom", Tenant: "example.test", Domain: "conference.example.test"}},
		{jid: "x😀@conference.example.test", err: "not allowed"}, // unassigned in Unicode 3.2: refused, not guessed
		{jid: "x@[::1]", err: "not allowed in a domain"},
		{jid: strings.Repeat("a", 1024) + "@conference.example.test", err: "longer than 1023"},
	}
	for _, tc := range cases {
		t.Run(tc.jid, func(t *testing.T) {
			got, err := ParseRoom(tc.jid)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want error containing %q, got %v (%+v)", tc.err, err, got)
				}
				if !strings.HasPrefix(err.Error(), "auth: ") {
					t.Errorf("error %q lacks the auth: prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCompileRoomPattern(t *testing.T) {
	cases := []struct {
		pattern string
		match   []string
		nomatch []string
		err     string
	}{
		{pattern: "stand.*", match: []string{"standup", "stand"}, nomatch: []string{"xstandup"}},
		{pattern: "team-[0-9]+", match: []string{"team-1", "TEAM-22"}, nomatch: []string{"team-", "team-1x"}},
		{pattern: "a|b", match: []string{"a", "b"}, nomatch: []string{"ab", "xa"}},
		{pattern: "(?m)^a$", match: []string{"a"}, nomatch: []string{"b\na"}},
		{pattern: "(a+)+$", match: []string{strings.Repeat("a", 1000)}, nomatch: []string{strings.Repeat("a", 1000) + "!"}},
		{pattern: "x)|(.*", err: "unexpected )"},
		{pattern: "(", err: "missing closing )"},
		{pattern: strings.Repeat("a", 257), err: "at most 256"},
		{pattern: "a{1000}b{1000}c{10}", err: "too complex"},
		{pattern: "a{1001}", err: "invalid repeat count"},
	}
	for _, tc := range cases {
		t.Run(tc.pattern, func(t *testing.T) {
			re, err := compileRoomPattern(tc.pattern)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want error containing %q, got %v", tc.err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.match {
				if !re.MatchString(strings.ToLower(m)) {
					t.Errorf("%q should match %q", tc.pattern, m)
				}
			}
			for _, m := range tc.nomatch {
				if re.MatchString(m) {
					t.Errorf("%q should not match %q", tc.pattern, m)
				}
			}
		})
	}
	p := newRoomPatterns(2)
	if _, err := p.get("a+"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.get("("); err == nil {
		t.Fatal("cached bad pattern compiled")
	}
	if _, err := p.get("("); err == nil {
		t.Fatal("cached bad pattern compiled on second use")
	}
}
