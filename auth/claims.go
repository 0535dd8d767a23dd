package auth

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// Claims is what a valid token says about its holder, as Verify returns it.
// Treat it as read-only: Features and Audience may be shared with other
// results for the same token.
type Claims struct {
	// UserID is context.user.id, else the top-level user_id.
	UserID string `json:"user_id,omitempty"`
	Name   string `json:"name,omitempty"`
	Email  string `json:"email,omitempty"`
	Avatar string `json:"avatar,omitempty"`
	// Moderator is true when context.user.moderator is true or "true", or
	// context.user.affiliation is owner, moderator or teacher.
	Moderator bool `json:"moderator"`
	// TopLevelModerator is the top-level "moderator" claim (true or "true")
	// that some deployments use; policies should honour it only when
	// configured to.
	TopLevelModerator bool `json:"top_level_moderator,omitempty"`
	// Affiliation is context.user.affiliation, lowercased.
	Affiliation string `json:"affiliation,omitempty"`
	// Role is context.user.role, lowercased (e.g. "viewer").
	Role string `json:"role,omitempty"`
	// Group is context.group.
	Group string `json:"group,omitempty"`
	// Features are context.features; values true or "true" are true.
	Features map[string]bool `json:"features,omitempty"`
	// Tenant is the tenant of the room the token was accepted for.
	Tenant string `json:"tenant,omitempty"`
	// ContextTenant is the context.tenant claim, as given.
	ContextTenant string `json:"context_tenant,omitempty"`
	// Room is the room claim, lowercased ("*" for any room); a pattern when
	// RoomRegex is set (then kept as given).
	Room      string `json:"room,omitempty"`
	RoomRegex bool   `json:"room_regex,omitempty"`
	// Subject is sub, as given.
	Subject string `json:"sub,omitempty"`
	// Issuer is iss.
	Issuer string `json:"iss,omitempty"`
	// Audience holds aud (a string or a list in the token).
	Audience []string `json:"aud,omitempty"`
	// TokenID is jti, when present.
	TokenID string `json:"jti,omitempty"`
	// Algorithm and KeyID are the header's alg and kid.
	Algorithm string `json:"alg"`
	KeyID     string `json:"kid,omitempty"`
	// Admin is the top-level "admin" claim of gavel's HTTP API tokens: JSON
	// true, or the string "true" exactly as for context.user.moderator
	// (Jitsi issuers send "true" strings); "TRUE", "1" and other strings are
	// false, and a number or an object refuses the token as wrong-type.
	Admin bool `json:"admin,omitempty"`
	// TopLevelName is the top-level "name" claim when it is a string (other
	// types are ignored: it is descriptive only), which admin tokens may
	// carry.
	TopLevelName string `json:"top_level_name,omitempty"`
	// Expires, NotBefore and IssuedAt are exp, nbf and iat; zero when absent.
	Expires   time.Time `json:"exp,omitzero"`
	NotBefore time.Time `json:"nbf,omitzero"`
	IssuedAt  time.Time `json:"iat,omitzero"`
	// ValidUntil is the instant from which the token is refused as expired:
	// exp plus the leeway of the rules that accepted it; zero without exp.
	// It is the one expiry rule of gavel: the knock, "gavel token verify"
	// and the revocation of rights that end with the token all use it.
	ValidUntil time.Time `json:"valid_until,omitzero"`
	// TokenHash identifies the token for bans and Verifier.Forget: the
	// SHA-256 of its signed part (see TokenHash). It marshals as the hex
	// "token_sha256".
	TokenHash [32]byte `json:"-"`

	subLower string         // sub, lowercased, for the tenant rule
	roomRE   *regexp.Regexp // compiled room pattern when RoomRegex
}

// claimsJSON adds the hex token hash to Claims' JSON form.
type claimsJSON struct {
	*claimsAlias
	TokenSHA256 string `json:"token_sha256"`
}

type claimsAlias Claims

// MarshalJSON renders Claims readably: RFC 3339 times, the token hash in hex
// as "token_sha256", absent times and empty fields left out.
func (c Claims) MarshalJSON() ([]byte, error) {
	return json.Marshal(claimsJSON{claimsAlias: (*claimsAlias)(&c), TokenSHA256: hex.EncodeToString(c.TokenHash[:])})
}

// maxUnixSeconds is the last second of year 9999.
const maxUnixSeconds = 253402300799

// numericDate converts a decoded NumericDate claim.
func numericDate(name string, v float64, ok bool) (time.Time, *Error) {
	if !ok {
		return time.Time{}, nil
	}
	if v < 0 || v > maxUnixSeconds || math.IsInf(v, 0) || math.IsNaN(v) {
		return time.Time{}, newError(ReasonMalformed, fmt.Sprintf("claim %q is out of range: %v", name, v))
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// jsonDetail turns a payload decoding error into an operator-readable detail.
func jsonDetail(what string, err error) string {
	if _, ok := err.(*errJSON); ok {
		return what + " is not valid JSON: " + err.Error()
	}
	return err.Error()
}

// Bits of seen for the payload's known members.
const (
	seenIss = iota
	seenSub
	seenAud
	seenExp
	seenNbf
	seenIat
	seenJti
	seenRoom
	seenUserID
	seenModerator
	seenContext
	seenUser
	seenGroup
	seenTenant
	seenFeatures
	seenCtxRoom
	seenID
	seenName
	seenEmail
	seenAvatar
	seenUserModerator
	seenAffiliation
	seenRole
	seenRegex
	seenAdmin
	seenTopName
)

// decodeClaims parses a verified payload. Security-relevant claims have
// strict types (a string exp is an error); descriptive ones are tolerant as
// Jitsi is (numbers for ids, "true" strings for flags). Room- and
// time-dependent checks are left to checkContext.
func decodeClaims(payload []byte) (*Claims, *Error) {
	c := &Claims{}
	if err := c.decode(payload); err != nil {
		switch err := err.(type) {
		case *Error:
			return nil, err
		case *errType:
			return nil, newError(ReasonWrongType, err.Error())
		}
		return nil, newError(ReasonMalformed, jsonDetail("payload", err))
	}
	c.subLower = strings.ToLower(c.Subject)
	switch c.Affiliation {
	case "owner", "moderator", "teacher":
		c.Moderator = true
	}
	if !c.RoomRegex {
		c.Room = strings.ToLower(c.Room)
	}
	return c, nil
}

func (c *Claims) decode(payload []byte) error {
	r := &jsonReader{b: payload}
	if r.peek() != '{' {
		return newError(ReasonMalformed, "payload is not a JSON object")
	}
	if err := r.beginObject(0); err != nil {
		return err
	}
	var (
		s              seen
		exp, nbf, iat  float64
		hasExp, hasNbf bool
		hasIat         bool
		topUserID      string
		err            error
	)
	for first := true; ; {
		name, ok, err2 := r.member(&first)
		if err2 != nil {
			return err2
		}
		if !ok {
			break
		}
		switch string(name) {
		case "iss":
			if err = s.mark(seenIss, "iss"); err == nil {
				c.Issuer, err = r.str("iss")
			}
		case "sub":
			if err = s.mark(seenSub, "sub"); err == nil {
				c.Subject, err = r.str("sub")
			}
		case "aud":
			if err = s.mark(seenAud, "aud"); err == nil {
				c.Audience, err = r.audience()
			}
		case "exp":
			if err = s.mark(seenExp, "exp"); err == nil {
				exp, hasExp, err = r.numericDate("exp")
			}
		case "nbf":
			if err = s.mark(seenNbf, "nbf"); err == nil {
				nbf, hasNbf, err = r.numericDate("nbf")
			}
		case "iat":
			if err = s.mark(seenIat, "iat"); err == nil {
				iat, hasIat, err = r.numericDate("iat")
			}
		case "jti":
			if err = s.mark(seenJti, "jti"); err == nil {
				c.TokenID, err = r.flexStr("jti")
			}
		case "room":
			if err = s.mark(seenRoom, "room"); err == nil {
				c.Room, err = r.str("room")
			}
		case "user_id":
			if err = s.mark(seenUserID, "user_id"); err == nil {
				topUserID, err = r.flexStr("user_id")
			}
		case "moderator":
			if err = s.mark(seenModerator, "moderator"); err == nil {
				c.TopLevelModerator, err = r.flexBool("moderator")
			}
		case "admin":
			if err = s.mark(seenAdmin, "admin"); err == nil {
				c.Admin, err = r.flexBool("admin")
			}
		case "name":
			if err = s.mark(seenTopName, "name"); err == nil {
				// Descriptive only: other types are ignored rather than
				// refusing a user token over a claim gavel does not use.
				if r.peek() == '"' {
					c.TopLevelName, err = r.str("name")
				} else {
					err = r.skip(1)
				}
			}
		case "context":
			if err = s.mark(seenContext, "context"); err == nil {
				err = c.decodeContext(r, &s)
			}
		default:
			err = r.skip(1)
		}
		if err != nil {
			return err
		}
	}
	if err := r.end(); err != nil {
		return err
	}
	var e *Error
	if c.Expires, e = numericDate("exp", exp, hasExp); e != nil {
		return e
	}
	if c.NotBefore, e = numericDate("nbf", nbf, hasNbf); e != nil {
		return e
	}
	if c.IssuedAt, e = numericDate("iat", iat, hasIat); e != nil {
		return e
	}
	if c.UserID == "" {
		c.UserID = topUserID
	}
	return nil
}

// audience reads aud: a string, an array of strings, or null.
func (r *jsonReader) audience() ([]string, error) {
	switch c := r.peek(); c {
	case '"':
		b, err := r.rawString()
		return []string{string(b)}, err
	case 'n':
		return nil, r.literal("null")
	case '[':
		r.i++
		var out []string
		for first := true; ; {
			ok, err := r.element(&first)
			if err != nil {
				return nil, err
			}
			if !ok {
				return out, nil
			}
			if r.peek() != '"' {
				k := kind(r.peek())
				if err := r.skip(1); err != nil {
					return nil, err
				}
				return nil, &errType{field: "aud", got: "array of " + k}
			}
			b, err := r.rawString()
			if err != nil {
				return nil, err
			}
			out = append(out, string(b))
		}
	default:
		if err := r.skip(0); err != nil {
			return nil, err
		}
		return nil, &errType{field: "aud", got: kind(c)}
	}
}

// objectOrNull starts an object member; ok=false for null. Other types are
// errType.
func (r *jsonReader) objectOrNull(field string, depth int) (ok bool, err error) {
	switch c := r.peek(); c {
	case '{':
		return true, r.beginObject(depth)
	case 'n':
		return false, r.literal("null")
	default:
		if err := r.skip(depth); err != nil {
			return false, err
		}
		return false, &errType{field: field, got: kind(c)}
	}
}

func (c *Claims) decodeContext(r *jsonReader, s *seen) error {
	if ok, err := r.objectOrNull("context", 1); !ok || err != nil {
		return err
	}
	for first := true; ; {
		name, ok, err := r.member(&first)
		if err != nil || !ok {
			return err
		}
		switch string(name) {
		case "user":
			if err = s.mark(seenUser, "context.user"); err == nil {
				err = c.decodeUser(r, s)
			}
		case "group":
			if err = s.mark(seenGroup, "context.group"); err == nil {
				c.Group, err = r.flexStr("context.group")
			}
		case "tenant":
			if err = s.mark(seenTenant, "context.tenant"); err == nil {
				c.ContextTenant, err = r.flexStr("context.tenant")
			}
		case "features":
			if err = s.mark(seenFeatures, "context.features"); err == nil {
				c.Features, err = r.features()
			}
		case "room":
			if err = s.mark(seenCtxRoom, "context.room"); err == nil {
				err = c.decodeContextRoom(r, s)
			}
		default:
			err = r.skip(2)
		}
		if err != nil {
			return err
		}
	}
}

func (c *Claims) decodeUser(r *jsonReader, s *seen) error {
	if ok, err := r.objectOrNull("context.user", 2); !ok || err != nil {
		return err
	}
	for first := true; ; {
		name, ok, err := r.member(&first)
		if err != nil || !ok {
			return err
		}
		switch string(name) {
		case "id":
			if err = s.mark(seenID, "context.user.id"); err == nil {
				c.UserID, err = r.flexStr("context.user.id")
			}
		case "name":
			if err = s.mark(seenName, "context.user.name"); err == nil {
				c.Name, err = r.flexStr("context.user.name")
			}
		case "email":
			if err = s.mark(seenEmail, "context.user.email"); err == nil {
				c.Email, err = r.flexStr("context.user.email")
			}
		case "avatar":
			if err = s.mark(seenAvatar, "context.user.avatar"); err == nil {
				c.Avatar, err = r.flexStr("context.user.avatar")
			}
		case "moderator":
			if err = s.mark(seenUserModerator, "context.user.moderator"); err == nil {
				c.Moderator, err = r.flexBool("context.user.moderator")
			}
		case "affiliation":
			if err = s.mark(seenAffiliation, "context.user.affiliation"); err == nil {
				var a string
				a, err = r.str("context.user.affiliation")
				c.Affiliation = strings.ToLower(a)
			}
		case "role":
			if err = s.mark(seenRole, "context.user.role"); err == nil {
				var role string
				role, err = r.str("context.user.role")
				c.Role = strings.ToLower(role)
			}
		default:
			err = r.skip(3)
		}
		if err != nil {
			return err
		}
	}
}

func (c *Claims) decodeContextRoom(r *jsonReader, s *seen) error {
	if ok, err := r.objectOrNull("context.room", 2); !ok || err != nil {
		return err
	}
	for first := true; ; {
		name, ok, err := r.member(&first)
		if err != nil || !ok {
			return err
		}
		if string(name) == "regex" {
			if err = s.mark(seenRegex, "context.room.regex"); err == nil {
				c.RoomRegex, err = r.flexBool("context.room.regex")
			}
		} else {
			err = r.skip(3)
		}
		if err != nil {
			return err
		}
	}
}

// features reads context.features: values true or "true" are true; false,
// other strings and null are false; numbers, arrays and objects are errors.
func (r *jsonReader) features() (map[string]bool, error) {
	if ok, err := r.objectOrNull("context.features", 2); !ok || err != nil {
		return nil, err
	}
	out := make(map[string]bool, 8)
	for first := true; ; {
		name, ok, err := r.member(&first)
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		key := string(name)
		v, err := r.flexBool("")
		if te, ok := err.(*errType); ok {
			te.field = "context.features." + key
		}
		if err != nil {
			return nil, err
		}
		out[key] = v
	}
}
