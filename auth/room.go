package auth

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/gavelxmpp/gavel/internal/jidprep"
)

// Room is a MUC room a token is checked against. ParseRoom builds it; all its
// fields are lowercase.
type Room struct {
	// JID is the bare room JID, local@domain.
	JID string
	// Local is the whole local part, "[tenant]name" or "name".
	Local string
	// Name is the room name without the [tenant] prefix; the room claim is
	// compared with it.
	Name string
	// Tenant is the bracketed tenant when there is one; otherwise the MUC
	// domain without a leading "conference." ("conference.example.test" gives
	// "example.test"), else the whole domain. It selects the Settings.
	Tenant string
	// Domain is the MUC domain.
	Domain string
}

// hasBracketTenant reports whether the room's tenant came from a [tenant]
// prefix rather than from its domain.
func (r Room) hasBracketTenant() bool { return strings.HasPrefix(r.Local, "[") }

// ParseRoom splits a room JID: "[acme]standup@conference.example.test" gives
// Tenant "acme", Name "standup", Domain "conference.example.test"; without
// brackets the tenant is the domain minus a leading "conference.". A resource
// ("/nick") is dropped. The result is lowercase. Brackets are allowed only as
// one leading, non-empty [tenant] followed by a non-empty name; control
// characters, spaces and invalid UTF-8 are refused.
func ParseRoom(jid string) (Room, error) {
	if jid == "" {
		return Room{}, errors.New("auth: empty room JID")
	}
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		jid = jid[:i]
	}
	at := strings.IndexByte(jid, '@')
	if at < 0 {
		return Room{}, fmt.Errorf("auth: room JID %q has no @: want room@muc-domain", clip(jid))
	}
	local, domain := jid[:at], jid[at+1:]
	if local == "" {
		return Room{}, fmt.Errorf("auth: room JID %q has an empty room name", clip(jid))
	}
	if domain == "" {
		return Room{}, fmt.Errorf("auth: room JID %q has no domain", clip(jid))
	}
	// Prepare both parts exactly as the server does (nodeprep, nameprep),
	// so gavel's room is the server's room: "[acme]ＶＩＣＴＩＭ" and
	// "[acme]victim" are one room there, and must be one here.
	var err error
	if local, err = jidprep.Node(local); err != nil {
		return Room{}, fmt.Errorf("auth: room name: %w", unprefixed(err))
	}
	if domain, err = jidprep.Domain(domain); err != nil {
		return Room{}, fmt.Errorf("auth: room domain: %w", unprefixed(err))
	}
	if strings.ContainsAny(domain, "[]") {
		return Room{}, fmt.Errorf("auth: room domain %q has a character not allowed in a domain", clip(domain))
	}
	r := Room{JID: local + "@" + domain, Local: local, Name: local, Domain: domain}
	if strings.HasPrefix(local, "[") {
		end := strings.IndexByte(local, ']')
		if end < 0 {
			return Room{}, fmt.Errorf("auth: room name %q opens [ but never closes it", clip(local))
		}
		r.Tenant, r.Name = local[1:end], local[end+1:]
		if r.Tenant == "" {
			return Room{}, fmt.Errorf("auth: room name %q has an empty [tenant]", clip(local))
		}
		if r.Name == "" {
			return Room{}, fmt.Errorf("auth: room name %q has nothing after [%s]", clip(local), r.Tenant)
		}
		if strings.ContainsAny(r.Tenant, "[") || strings.ContainsAny(r.Name, "[]") {
			return Room{}, fmt.Errorf("auth: room name %q: brackets are allowed only around a leading tenant", clip(local))
		}
	} else {
		if strings.ContainsAny(local, "[]") {
			return Room{}, fmt.Errorf("auth: room name %q: brackets are allowed only around a leading tenant", clip(local))
		}
		r.Tenant = strings.TrimPrefix(domain, DefaultMUCDomainPrefix+".")
	}
	return r, nil
}

// clip shortens attacker-controlled text quoted in messages.
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

// normalizeRoom prepares a hand-built Room as ParseRoom would and fills it
// from its JID when only that is given.
func normalizeRoom(r Room) (Room, *Error) {
	if r.Name == "" {
		if r.JID == "" {
			return r, newError(ReasonWrongRoom, "no room given")
		}
		p, err := ParseRoom(r.JID)
		if err != nil {
			return r, newError(ReasonWrongRoom, err.Error())
		}
		return p, nil
	}
	if r.JID != "" {
		p, err := ParseRoom(r.JID)
		if err != nil {
			return r, newError(ReasonWrongRoom, err.Error())
		}
		return p, nil
	}
	if needsLower(r.Name) || needsLower(r.Tenant) || needsLower(r.Domain) || needsLower(r.Local) {
		r.Name, r.Tenant = prepOrLower(r.Name), prepOrLower(r.Tenant)
		r.Domain, r.Local = strings.ToLower(r.Domain), prepOrLower(r.Local)
	}
	if r.Local == "" {
		r.Local = r.Name
	}
	return r, nil
}

// prepOrLower prepares s as a local part, or lowercases it where it cannot
// be prepared (the room then matches nothing the server would name).
func prepOrLower(s string) string {
	if s == "" {
		return s
	}
	if p, err := jidprep.Node(s); err == nil {
		return p
	}
	return strings.ToLower(s)
}

// unprefixed drops jidprep's package prefix from its errors, which auth
// wraps in its own.
func unprefixed(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "jidprep: "))
}

// needsLower reports whether s has an upper-case ASCII letter or non-ASCII
// byte (which strings.ToLower may change).
func needsLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || ('A' <= c && c <= 'Z') {
			return true
		}
	}
	return false
}

// maxRoomPatternInsts bounds a compiled room pattern's program size, which
// bounds RE2's per-byte matching cost.
const maxRoomPatternInsts = 2000

// compileRoomPattern compiles a regex room claim: Go RE2 syntax, matched
// against the whole room name, case-insensitively, with bounded length and
// program size. The pattern is parsed on its own first, so it cannot close
// the anchoring group ("a)|(b").
func compileRoomPattern(p string) (*regexp.Regexp, error) {
	if len(p) > MaxRoomPatternBytes {
		return nil, fmt.Errorf("room pattern is %d bytes, at most %d are allowed", len(p), MaxRoomPatternBytes)
	}
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("room pattern %q: %w", clip(p), err)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, fmt.Errorf("room pattern %q: %w", clip(p), err)
	}
	if len(prog.Inst) > maxRoomPatternInsts {
		return nil, fmt.Errorf("room pattern %q is too complex (%d instructions, at most %d)", clip(p), len(prog.Inst), maxRoomPatternInsts)
	}
	full, err := regexp.Compile(`(?i)\A(?:` + p + `)\z`)
	if err != nil {
		return nil, fmt.Errorf("room pattern %q: %w", clip(p), err)
	}
	return full, nil
}

// roomPatternEntry caches a compiled pattern or its error.
type roomPatternEntry struct {
	re  *regexp.Regexp
	err error
}

// roomPatterns caches compiled room patterns, bounded.
type roomPatterns struct {
	c *lru.Cache[string, roomPatternEntry]
}

func newRoomPatterns(size int) *roomPatterns {
	c, _ := lru.New[string, roomPatternEntry](size)
	return &roomPatterns{c: c}
}

func (p *roomPatterns) get(pattern string) (*regexp.Regexp, error) {
	if e, ok := p.c.Get(pattern); ok {
		return e.re, e.err
	}
	re, err := compileRoomPattern(pattern)
	p.c.Add(pattern, roomPatternEntry{re: re, err: err})
	return re, err
}
