package commands

import (
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/jidprep"
	"github.com/gavelxmpp/gavel/store"
)

// This file is the one normalization of command input, whatever interface
// it came from. Tenants and JIDs are prepared exactly as the XMPP server
// prepares the rooms and users they must match, so that "ACME", " acme "
// and "ａｃｍｅ" are the tenant of [acme] rooms.

// Key identifies a ban as the store keeps it.
type Key struct {
	Tenant string
	Kind   store.Kind
	Value  string
}

// NormalizeTenant prepares a tenant: trimmed, then nodeprep (a tenant is
// part of a room's local part, which the server nodepreps, and which
// auth.ParseRoom prepares the same way). Errors wrap ErrInvalid.
func NormalizeTenant(tenant string) (string, error) {
	t := strings.TrimSpace(tenant)
	if t == "" {
		return "", fmt.Errorf("%w: the tenant is required", ErrInvalid)
	}
	p, err := jidprep.Node(t)
	if err != nil {
		return "", fmt.Errorf("%w: tenant: %v", ErrInvalid, unprefixed(err))
	}
	if strings.ContainsAny(p, "[]") {
		return "", fmt.Errorf("%w: tenant %q: brackets cannot be part of a tenant", ErrInvalid, clip(p))
	}
	return p, nil
}

// NormalizeKey validates a ban's tenant, kind and value and returns them as
// stored: the tenant as NormalizeTenant gives it; a user id trimmed (no
// control characters, at most store.MaxLen bytes); a JID prepared and bare;
// a token as the hex of auth.TokenHash of the trimmed token, or, where
// hashOK (unban), the 64 hex digits of such a hash in lowercase. Errors wrap
// ErrInvalid and never quote a token.
func NormalizeKey(tenant string, kind store.Kind, value string, hashOK bool) (Key, error) {
	t, err := NormalizeTenant(tenant)
	if err != nil {
		return Key{Kind: kind}, err
	}
	k := Key{Tenant: t, Kind: kind}
	v := strings.TrimSpace(value)
	switch kind {
	case store.KindUser:
		if err := checkUserID(v); err != nil {
			return k, err
		}
		k.Value = v
	case store.KindJID:
		if v == "" {
			return k, fmt.Errorf("%w: the JID is required", ErrInvalid)
		}
		b, err := jidprep.Bare(v)
		if err != nil {
			return k, fmt.Errorf("%w: JID: %v", ErrInvalid, unprefixed(err))
		}
		k.Value = b
	case store.KindToken:
		switch {
		case v == "":
			return k, fmt.Errorf("%w: the token is required", ErrInvalid)
		case hashOK && len(v) == hex.EncodedLen(32) && isHex(v):
			k.Value = strings.ToLower(v)
		default:
			h := auth.TokenHash(v)
			k.Value = hex.EncodeToString(h[:])
		}
	default:
		return k, fmt.Errorf("%w: ban kind %q is unknown: want %s, %s or %s", ErrInvalid, clip(string(kind)), store.KindUser, store.KindJID, store.KindToken)
	}
	return k, nil
}

// KindOf is the kind of ban for a "user id or JID" field: a JID when it
// has an @, else a user id.
func KindOf(userOrJID string) store.Kind {
	if strings.Contains(userOrJID, "@") {
		return store.KindJID
	}
	return store.KindUser
}

// ParseRoom parses a room JID as the server prepares it (auth.ParseRoom,
// after trimming); errors wrap ErrInvalid.
func ParseRoom(roomJID string) (auth.Room, error) {
	ar, err := auth.ParseRoom(strings.TrimSpace(roomJID))
	if err != nil {
		return ar, fmt.Errorf("%w: %v", ErrInvalid, strings.TrimPrefix(err.Error(), "auth: "))
	}
	return ar, nil
}

// checkUserID checks a trimmed user id.
func checkUserID(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: the user id is required", ErrInvalid)
	case len(v) > store.MaxLen:
		return fmt.Errorf("%w: the user id is %d bytes, the limit is %d", ErrInvalid, len(v), store.MaxLen)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w: the user id is not valid UTF-8", ErrInvalid)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: the user id has a control character", ErrInvalid)
	}
	return nil
}

// checkText checks free text (a reason, a nick): valid UTF-8 without NUL,
// at most store.MaxLen bytes.
func checkText(field, s string) error {
	switch {
	case len(s) > store.MaxLen:
		return fmt.Errorf("%w: the %s is %d bytes, the limit is %d", ErrInvalid, field, len(s), store.MaxLen)
	case !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: the %s must be valid UTF-8 without NUL", ErrInvalid, field)
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// unprefixed drops jidprep's package prefix, which this package's own
// prefix replaces.
func unprefixed(err error) string {
	return strings.TrimPrefix(err.Error(), "jidprep: ")
}

// clip shortens outside text quoted in messages and logs.
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
