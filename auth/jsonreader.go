package auth

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonReader is a small strict JSON (RFC 8259) reader for token headers and
// payloads. It decodes the few members gavel uses in one pass, without
// reflection, and is stricter than encoding/json where a token is concerned:
// member names match case-sensitively (RFC 7519), a known member may appear
// once only, strings must be valid UTF-8, and nesting is bounded.
type jsonReader struct {
	b []byte
	i int
}

// maxJSONDepth bounds nesting in headers and payloads.
const maxJSONDepth = 32

// errJSON is a syntax error at an offset.
type errJSON struct {
	off int
	msg string
}

func (e *errJSON) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.off) }

// errType is a member of the wrong JSON type.
type errType struct {
	field string
	got   string
}

func (e *errType) Error() string {
	return fmt.Sprintf("claim %q has the wrong type (JSON %s)", e.field, e.got)
}

func (r *jsonReader) fail(msg string) error { return &errJSON{off: r.i, msg: msg} }

func (r *jsonReader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (r *jsonReader) peek() byte {
	r.ws()
	if r.i >= len(r.b) {
		return 0
	}
	return r.b[r.i]
}

// kind names the JSON type starting with c, for messages.
func kind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// end checks that nothing but white space follows the value.
func (r *jsonReader) end() error {
	r.ws()
	if r.i != len(r.b) {
		return r.fail("data after the JSON value")
	}
	return nil
}

// beginObject consumes the '{' of an object at the cursor. Members are
// then read with member until it reports the end.
func (r *jsonReader) beginObject(depth int) error {
	if depth > maxJSONDepth {
		return r.fail("JSON nested too deeply")
	}
	if r.peek() != '{' {
		return r.fail("want an object")
	}
	r.i++
	return nil
}

// member returns the next member name of the current object, leaving the
// cursor on its value, or ok=false after the closing brace. first must be
// true for the first call of an object.
func (r *jsonReader) member(first *bool) (name []byte, ok bool, err error) {
	if *first {
		*first = false
		if r.peek() == '}' {
			r.i++
			return nil, false, nil
		}
	} else {
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			return nil, false, nil
		default:
			return nil, false, r.fail("want ',' or '}'")
		}
	}
	if r.peek() != '"' {
		return nil, false, r.fail("want a member name")
	}
	if name, err = r.rawString(); err != nil {
		return nil, false, err
	}
	if r.peek() != ':' {
		return nil, false, r.fail("want ':'")
	}
	r.i++
	r.ws()
	return name, true, nil
}

// rawString reads a string and returns its decoded bytes; without escapes
// they alias the input.
func (r *jsonReader) rawString() ([]byte, error) {
	r.i++ // opening quote
	start := r.i
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			s := r.b[start:r.i]
			r.i++
			return s, nil
		case c == '\\':
			return r.escapedString(start)
		case c < 0x20:
			return nil, r.fail("control character in string")
		case c < utf8.RuneSelf:
			r.i++
		default:
			ru, size := utf8.DecodeRune(r.b[r.i:])
			if ru == utf8.RuneError && size <= 1 {
				return nil, r.fail("invalid UTF-8 in string")
			}
			r.i += size
		}
	}
	return nil, r.fail("unterminated string")
}

// escapedString continues rawString from the first backslash, copying.
func (r *jsonReader) escapedString(start int) ([]byte, error) {
	out := make([]byte, r.i-start, r.i-start+16)
	copy(out, r.b[start:r.i])
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			return out, nil
		case c == '\\':
			if r.i+1 >= len(r.b) {
				return nil, r.fail("unterminated escape")
			}
			e := r.b[r.i+1]
			r.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				ru, ok := r.hex4()
				if !ok {
					return nil, r.fail("bad \\u escape")
				}
				if utf16.IsSurrogate(ru) {
					// A surrogate must be a high one followed by a low one.
					if r.i+1 < len(r.b) && r.b[r.i] == '\\' && r.b[r.i+1] == 'u' {
						save := r.i
						r.i += 2
						lo, ok := r.hex4()
						if d := utf16.DecodeRune(ru, lo); ok && d != utf8.RuneError {
							ru = d
						} else {
							r.i = save
							ru = utf8.RuneError
						}
					} else {
						ru = utf8.RuneError
					}
					if ru == utf8.RuneError {
						return nil, r.fail("unpaired surrogate in \\u escape")
					}
				}
				out = utf8.AppendRune(out, ru)
			default:
				return nil, r.fail("bad escape")
			}
		case c < 0x20:
			return nil, r.fail("control character in string")
		case c < utf8.RuneSelf:
			out = append(out, c)
			r.i++
		default:
			ru, size := utf8.DecodeRune(r.b[r.i:])
			if ru == utf8.RuneError && size <= 1 {
				return nil, r.fail("invalid UTF-8 in string")
			}
			out = append(out, r.b[r.i:r.i+size]...)
			r.i += size
		}
	}
	return nil, r.fail("unterminated string")
}

func (r *jsonReader) hex4() (rune, bool) {
	if r.i+4 > len(r.b) {
		return 0, false
	}
	var v rune
	for _, c := range r.b[r.i : r.i+4] {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	r.i += 4
	return v, true
}

// number reads a JSON number and returns its text.
func (r *jsonReader) number() ([]byte, error) {
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	switch {
	case r.i < len(r.b) && r.b[r.i] == '0':
		r.i++
	case r.i < len(r.b) && '1' <= r.b[r.i] && r.b[r.i] <= '9':
		r.digits()
	default:
		return nil, r.fail("bad number")
	}
	if r.i < len(r.b) && r.b[r.i] == '.' {
		r.i++
		if r.digits() == 0 {
			return nil, r.fail("bad number")
		}
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		r.i++
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if r.digits() == 0 {
			return nil, r.fail("bad number")
		}
	}
	return r.b[start:r.i], nil
}

func (r *jsonReader) digits() int {
	n := 0
	for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
		r.i++
		n++
	}
	return n
}

// literal consumes true, false or null.
func (r *jsonReader) literal(word string) error {
	if len(r.b)-r.i < len(word) || string(r.b[r.i:r.i+len(word)]) != word {
		return r.fail("invalid literal")
	}
	r.i += len(word)
	return nil
}

// skip consumes any value.
func (r *jsonReader) skip(depth int) error {
	switch c := r.peek(); c {
	case '{':
		if err := r.beginObject(depth + 1); err != nil {
			return err
		}
		for first := true; ; {
			_, ok, err := r.member(&first)
			if err != nil || !ok {
				return err
			}
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
	case '[':
		if depth+1 > maxJSONDepth {
			return r.fail("JSON nested too deeply")
		}
		r.i++
		for first := true; ; {
			ok, err := r.element(&first)
			if err != nil || !ok {
				return err
			}
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
	case '"':
		_, err := r.rawString()
		return err
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	case 0:
		return r.fail("unexpected end of JSON")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			_, err := r.number()
			return err
		}
		return r.fail("invalid character")
	}
}

// element advances to the next element of the current array (after its
// '[' was consumed), or reports ok=false after the closing bracket.
func (r *jsonReader) element(first *bool) (ok bool, err error) {
	if *first {
		*first = false
		if r.peek() == ']' {
			r.i++
			return false, nil
		}
		r.ws()
		return true, nil
	}
	switch r.peek() {
	case ',':
		r.i++
		r.ws()
		return true, nil
	case ']':
		r.i++
		return false, nil
	}
	return false, r.fail("want ',' or ']'")
}

// str reads a string member (null: ""); other types are errType.
func (r *jsonReader) str(field string) (string, error) {
	switch c := r.peek(); c {
	case '"':
		b, err := r.rawString()
		return string(b), err
	case 'n':
		return "", r.literal("null")
	default:
		if err := r.skip(0); err != nil {
			return "", err
		}
		return "", &errType{field: field, got: kind(c)}
	}
}

// flexStr reads a string, a number (kept as written) or null.
func (r *jsonReader) flexStr(field string) (string, error) {
	c := r.peek()
	if c == '-' || ('0' <= c && c <= '9') {
		b, err := r.number()
		return string(b), err
	}
	return r.str(field)
}

// flexBool reads true, false, a string ("true" is true, other strings
// false, as Jitsi) or null.
func (r *jsonReader) flexBool(field string) (bool, error) {
	switch c := r.peek(); c {
	case 't':
		return true, r.literal("true")
	case 'f':
		return false, r.literal("false")
	case 'n':
		return false, r.literal("null")
	case '"':
		b, err := r.rawString()
		return string(b) == "true", err
	default:
		if err := r.skip(0); err != nil {
			return false, err
		}
		return false, &errType{field: field, got: kind(c)}
	}
}

// numericDate reads a NumericDate: a number, or null (then ok is false, as
// for an absent claim). Strings and other types are errType.
func (r *jsonReader) numericDate(field string) (v float64, ok bool, err error) {
	c := r.peek()
	switch {
	case c == 'n':
		return 0, false, r.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		b, err := r.number()
		if err != nil {
			return 0, false, err
		}
		f, perr := strconv.ParseFloat(string(b), 64)
		if perr != nil && !errors.Is(perr, strconv.ErrRange) {
			return 0, false, r.fail("bad number")
		}
		return f, true, nil
	default:
		if err := r.skip(0); err != nil {
			return 0, false, err
		}
		return 0, false, &errType{field: field, got: kind(c)}
	}
}

// seen tracks known members to refuse duplicates.
type seen uint32

func (s *seen) mark(bit uint, field string) error {
	if *s&(1<<bit) != 0 {
		return &errDuplicate{field: field}
	}
	*s |= 1 << bit
	return nil
}

type errDuplicate struct{ field string }

func (e *errDuplicate) Error() string {
	if strings.HasPrefix(e.field, "header ") {
		return e.field + " appears twice"
	}
	return fmt.Sprintf("claim %q appears twice", e.field)
}
