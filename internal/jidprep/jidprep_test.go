package jidprep

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNode(t *testing.T) {
	tests := []struct {
		name, in, want, err string
	}{
		{"ascii", "standup", "standup", ""},
		{"upper", "StandUp", "standup", ""},
		{"tenant", "[ACME]Room", "[acme]room", ""},
		{"full width", "[acme]ｖｉｃｔｉｍ", "[acme]victim", ""},
		{"full width upper", "ＶＩＣＴＩＭ", "victim", ""},
		{"sharp s folds", "straße", "strasse", ""},
		{"ligature", "ﬀroom", "ffroom", ""},
		{"final sigma", "ΣΟΦΙΑ", "σοφια", ""},
		{"zero width dropped", "ro\u200bom", "room", ""},
		{"soft hyphen dropped", "ro\u00adom", "room", ""},
		{"kelvin sign", "\u212aelvin", "kelvin", ""},
		{"space", "a b", "", "U+0020"},
		{"at", "a@b", "", ""},
		{"slash", "a/b", "", ""},
		{"quote", "a'b", "", ""},
		{"control", "a\x01b", "", "U+0001"},
		{"nbsp becomes a space", "a\u00a0b", "", "U+0020"},
		{"private use", "a\ue000b", "", "U+E000"},
		{"unassigned in 3.2", "a\U0001F600b", "", "U+1F600"},
		{"bidi mixed", "a\u05d0", "", "BiDi"},
		{"empty", "", "", "empty"},
		{"only ignorable", "\u200b", "", "empty"},
		{"invalid utf8", "a\xffb", "", "UTF-8"},
		{"too long", strings.Repeat("a", 1024), "", "longer than"},
		{"long but folds short", strings.Repeat("\u200b", 1100) + "a", "", "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Node(tt.in)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("Node(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Node(%q) = %q, want an error", tt.in, got)
			}
			var e *Error
			if !errors.As(err, &e) || e.Part != "local part" {
				t.Fatalf("error %v is not a local-part *Error", err)
			}
			if tt.err != "" && !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %q does not mention %q", err, tt.err)
			}
		})
	}
}

func TestSplitAndBare(t *testing.T) {
	tests := []struct {
		in, bare, full string
		bad            bool
	}{
		{in: "Room@Conference.Example.Test/Nick", bare: "room@conference.example.test", full: "room@conference.example.test/Nick"},
		{in: "conference.example.test", bare: "conference.example.test", full: "conference.example.test"},
		{in: "conference.example.test.", bare: "conference.example.test", full: "conference.example.test"},
		{in: "ＲＯＯＭ@ｃｏｎｆｅｒｅｎｃｅ.example.test", bare: "room@conference.example.test", full: "room@conference.example.test"},
		{in: "a@b/ｒｅｓ", bare: "a@b", full: "a@b/res"},
		{in: "a@b/with space", bare: "a@b", full: "a@b/with space"},
		{in: "@b", bad: true},
		{in: "a@", bad: true},
		{in: "a@b/", bad: true},
		{in: "a@b..c", bad: true},
		{in: "a@b c", bad: true},
		{in: "a@b/\x00", bad: true},
		{in: "a@ｂ＠c", bad: true}, // a full-width @ in the domain becomes '@' under NFKC
	}
	for _, tt := range tests {
		bare, err := Bare(tt.in)
		full, err2 := Full(tt.in)
		if tt.bad {
			if err == nil || err2 == nil {
				t.Errorf("%q: Bare = %q, %v; Full = %q, %v; want errors", tt.in, bare, err, full, err2)
			}
			continue
		}
		if err != nil || bare != tt.bare || err2 != nil || full != tt.full {
			t.Errorf("%q: Bare = %q, %v; Full = %q, %v; want %q, %q", tt.in, bare, err, full, err2, tt.bare, tt.full)
		}
	}
}

// FuzzNode checks that preparation never panics, is idempotent, and yields
// only what it would accept again within the length limit.
func FuzzNode(f *testing.F) {
	for _, s := range []string{"room", "[acme]ｖｉｃｔｉｍ", "straße", "ﬀroom", "ΣΟΦΙΑ", "a\u200bb", "\u0130", "\u1e9e", "\u00df\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, prep := range map[string]func(string) (string, error){"node": Node, "domain": Domain, "resource": Resource} {
			out, err := prep(s)
			if err != nil {
				continue
			}
			if !utf8.ValidString(out) || out == "" || len(out) > MaxPartBytes {
				t.Fatalf("%s(%q) = %q: invalid output", name, s, out)
			}
			again, err := prep(out)
			if err != nil || again != out {
				t.Fatalf("%s is not idempotent: %q -> %q -> %q, %v", name, s, out, again, err)
			}
		}
	})
}

func BenchmarkNodeASCII(b *testing.B) {
	for b.Loop() {
		_, _ = Node("[acme]standup-meeting")
	}
}

func BenchmarkNodeUnicode(b *testing.B) {
	for b.Loop() {
		_, _ = Node("[acme]straße-ｖｉｃｔｉｍ")
	}
}
