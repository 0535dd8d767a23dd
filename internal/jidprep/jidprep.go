// Package jidprep normalizes JIDs the way XMPP servers do: the stringprep
// profiles of RFC 3920 and RFC 6122 (nodeprep for local parts, nameprep for
// domains, resourceprep for resources). Prosody and ejabberd apply them to
// every address they route, so gavel must too: "[acme]ＶＩＣＴＩＭ",
// "straße" and "ﬀroom" name the ASCII rooms "[acme]victim", "strasse" and
// "ffroom" on the server, and a room, a ban or a tenant spelt otherwise in
// gavel would miss.
//
// Where the mapping might not be one to one, the input is refused instead:
// code points unassigned in Unicode 3.2 (whose normalization a server of
// another Unicode version could treat differently), prohibited characters
// and strings that break the bidi rules. Every function is idempotent on its
// own output.
package jidprep

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/xdg-go/stringprep"
)

// MaxPartBytes is the longest part (local, domain or resource) in bytes,
// after preparation (RFC 7622, section 3.1).
const MaxPartBytes = 1023

// Error says which part of an address was refused and why.
type Error struct {
	Part   string // "local part", "domain" or "resource"
	Input  string // the part as given, shortened
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("jidprep: %s %q: %s", e.Part, e.Input, e.Reason)
}

// Reasons the profiles' own tables refuse characters for, shared by all
// three profiles (RFC 3454 tables C.1.2 to C.9). C.1.1 (ASCII space) and
// C.2.1 (ASCII control) are added where a profile prohibits them.
var commonProhibited = []stringprep.Set{
	stringprep.TableC1_2, stringprep.TableC2_2, stringprep.TableC3,
	stringprep.TableC4, stringprep.TableC5, stringprep.TableC6,
	stringprep.TableC7, stringprep.TableC8, stringprep.TableC9,
	stringprep.TableA1, // unassigned in Unicode 3.2: refused (strict)
}

// nodeProhibited are the ASCII characters nodeprep adds to the tables
// (RFC 3920, appendix A.5).
var nodeProhibited = stringprep.Set{
	{0x22, 0x22}, {0x26, 0x27}, {0x2F, 0x2F}, {0x3A, 0x3A},
	{0x3C, 0x3C}, {0x3E, 0x3E}, {0x40, 0x40},
}

var (
	nodeprep = stringprep.Profile{
		Mappings:  []stringprep.Mapping{stringprep.TableB1, stringprep.TableB2},
		Normalize: true,
		Prohibits: append([]stringprep.Set{stringprep.TableC1_1, stringprep.TableC2_1, nodeProhibited}, commonProhibited...),
		CheckBiDi: true,
	}
	nameprep = stringprep.Profile{
		Mappings:  []stringprep.Mapping{stringprep.TableB1, stringprep.TableB2},
		Normalize: true,
		Prohibits: commonProhibited,
		CheckBiDi: true,
	}
	resourceprep = stringprep.Profile{
		Mappings:  []stringprep.Mapping{stringprep.TableB1},
		Normalize: true,
		Prohibits: append([]stringprep.Set{stringprep.TableC2_1}, commonProhibited...),
		CheckBiDi: true,
	}
)

// Node prepares a local part with nodeprep: case folded, compatibility
// normalized (NFKC), refusing spaces, controls and "&'/:<>@.
func Node(s string) (string, error) {
	if out, ok := asciiNode(s); ok {
		return out, checkLen("local part", s, out)
	}
	return prepare(nodeprep, "local part", s)
}

// Domain prepares a domain with nameprep. A trailing dot is removed, empty
// labels are refused, and so are characters a host name cannot have in
// XMPP (@ / and white space).
func Domain(s string) (string, error) {
	s = strings.TrimSuffix(s, ".")
	var out string
	if o, ok := asciiDomain(s); ok {
		out = o
	} else {
		var err error
		if out, err = prepare(nameprep, "domain", s); err != nil {
			return "", err
		}
		// NFKC may turn full-width dots and other characters into ASCII
		// that a domain cannot hold: check the result as ASCII again.
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < 0x80 && !domainASCII(c) {
				return "", &Error{"domain", clip(s), fmt.Sprintf("character %q is not allowed", c)}
			}
		}
	}
	if out == "" {
		return "", &Error{"domain", clip(s), "empty"}
	}
	if strings.HasPrefix(out, ".") || strings.HasSuffix(out, ".") || strings.Contains(out, "..") {
		return "", &Error{"domain", clip(s), "has an empty label"}
	}
	return out, checkLen("domain", s, out)
}

// Resource prepares a resource with resourceprep (no case folding).
func Resource(s string) (string, error) {
	if isPrintableASCII(s, true) {
		return s, checkLen("resource", s, s)
	}
	return prepare(resourceprep, "resource", s)
}

// Split splits a JID into its prepared parts. local and resource may be
// empty; the domain may not.
func Split(j string) (local, domain, resource string, err error) {
	rest := j
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest, resource = rest[:i], rest[i+1:]
		if resource == "" {
			return "", "", "", &Error{"resource", "", "empty after /"}
		}
		if resource, err = Resource(resource); err != nil {
			return "", "", "", err
		}
	}
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		local, rest = rest[:i], rest[i+1:]
		if local == "" {
			return "", "", "", &Error{"local part", "", "empty before @"}
		}
		if local, err = Node(local); err != nil {
			return "", "", "", err
		}
	}
	if domain, err = Domain(rest); err != nil {
		return "", "", "", err
	}
	return local, domain, resource, nil
}

// Bare returns the prepared bare JID (local@domain, or domain) of j,
// dropping any resource.
func Bare(j string) (string, error) {
	local, domain, _, err := Split(j)
	if err != nil {
		return "", err
	}
	if local == "" {
		return domain, nil
	}
	return local + "@" + domain, nil
}

// Full returns the prepared form of j, resource included.
func Full(j string) (string, error) {
	local, domain, resource, err := Split(j)
	if err != nil {
		return "", err
	}
	out := domain
	if local != "" {
		out = local + "@" + out
	}
	if resource != "" {
		out += "/" + resource
	}
	return out, nil
}

func prepare(p stringprep.Profile, part, s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", &Error{part, clip(s), "not valid UTF-8"}
	}
	if s == "" {
		return "", &Error{part, "", "empty"}
	}
	if len(s) > MaxPartBytes {
		// Prosody refuses input of 1024 bytes or more before preparing
		// it, whatever it would shrink to; so does gavel (and so never
		// runs NFKC on attacker-sized input).
		return "", &Error{part, clip(s), fmt.Sprintf("longer than %d bytes", MaxPartBytes)}
	}
	out, err := p.Prepare(s)
	if err != nil {
		reason := err.Error()
		if se, ok := err.(stringprep.Error); ok && se.Msg == "prohibited character" {
			reason = fmt.Sprintf("character %U is not allowed", se.Rune)
		} else if ok {
			reason = se.Msg
		}
		return "", &Error{part, clip(s), reason}
	}
	if out == "" {
		return "", &Error{part, clip(s), "empty after preparation"}
	}
	return out, checkLen(part, s, out)
}

func checkLen(part, in, out string) error {
	if out == "" {
		return &Error{part, "", "empty"}
	}
	if len(out) > MaxPartBytes {
		return &Error{part, clip(in), fmt.Sprintf("longer than %d bytes", MaxPartBytes)}
	}
	return nil
}

// asciiNode is nodeprep's fast path for printable ASCII: lower case, and
// the prohibited characters refused by the slow path.
func asciiNode(s string) (string, bool) {
	if s == "" || !isPrintableASCII(s, false) {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"', '&', '\'', '/', ':', '<', '>', '@':
			return "", false
		}
	}
	return lowerASCII(s), true
}

func asciiDomain(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if !domainASCII(s[i]) {
			return "", false
		}
	}
	return lowerASCII(s), true
}

// domainASCII reports whether c may stand in a domain (letters, digits,
// '-', '.', '_' and ':' for address literals are left to the server's own
// checks; gavel needs only that nothing splits the JID).
func domainASCII(c byte) bool {
	return c > 0x20 && c < 0x7f && c != '@' && c != '/' && c != '"' && c != '\'' && c != '<' && c != '>' && c != '&'
}

// isPrintableASCII reports whether s is all printable ASCII; space is
// allowed only where spaceOK.
func isPrintableASCII(s string, spaceOK bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x7f || c < 0x20 || (c == ' ' && !spaceOK) {
			return false
		}
	}
	return true
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// clip shortens outside text quoted in errors.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
