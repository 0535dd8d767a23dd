package auth

import "errors"

// Reason is a stable, machine-readable word saying why a token was refused.
// The words never change meaning; new ones may be added.
type Reason string

// The reasons Verify gives for refusing a token.
const (
	// ReasonMissingToken: the token is empty.
	ReasonMissingToken Reason = "missing-token"
	// ReasonTooLarge: the token is longer than the tenant's MaxTokenBytes.
	ReasonTooLarge Reason = "too-large"
	// ReasonMalformed: not a JWT: not three base64url segments, bad base64,
	// bad JSON (including a claim given twice), a header typ other than
	// "JWT", a header member of the wrong type, or a date out of range.
	ReasonMalformed Reason = "malformed"
	// ReasonWrongType: a claim has the wrong JSON type (a string exp, a
	// number for room, an object for moderator).
	ReasonWrongType Reason = "wrong-type"
	// ReasonAlgorithmNotAllowed: "none", or an algorithm that no key of the
	// tenant allows.
	ReasonAlgorithmNotAllowed Reason = "algorithm-not-allowed"
	// ReasonUnknownKey: no key of the tenant matches the token's kid.
	ReasonUnknownKey Reason = "unknown-key"
	// ReasonKeyUnavailable: the key could not be fetched (key server or JWKS
	// down, timeout, fetch rate limit reached). Retrying later may succeed.
	ReasonKeyUnavailable Reason = "key-unavailable"
	// ReasonBadSignature: the signature does not verify with any candidate key.
	ReasonBadSignature Reason = "bad-signature"
	// ReasonExpired: exp (plus leeway) is past.
	ReasonExpired Reason = "expired"
	// ReasonNotYetValid: nbf (minus leeway) is still in the future.
	ReasonNotYetValid Reason = "not-yet-valid"
	// ReasonIssuedInFuture: iat (minus leeway) is in the future.
	ReasonIssuedInFuture Reason = "issued-in-future"
	// ReasonMissingClaim: a required claim (exp, iss, aud, sub, room) is absent.
	ReasonMissingClaim Reason = "missing-claim"
	// ReasonWrongIssuer: iss is not an accepted issuer.
	ReasonWrongIssuer Reason = "wrong-issuer"
	// ReasonWrongAudience: no aud value is an accepted audience.
	ReasonWrongAudience Reason = "wrong-audience"
	// ReasonWrongRoom: the room claim does not allow this room.
	ReasonWrongRoom Reason = "wrong-room"
	// ReasonWrongTenant: sub does not match the room's tenant or MUC domain,
	// or no settings exist for the room's tenant.
	ReasonWrongTenant Reason = "wrong-tenant"
	// ReasonClosed: the Verifier was closed.
	ReasonClosed Reason = "closed"
)

// Reasons lists every Reason, in the order above.
var Reasons = []Reason{
	ReasonMissingToken, ReasonTooLarge, ReasonMalformed, ReasonWrongType,
	ReasonAlgorithmNotAllowed, ReasonUnknownKey, ReasonKeyUnavailable,
	ReasonBadSignature, ReasonExpired, ReasonNotYetValid, ReasonIssuedInFuture,
	ReasonMissingClaim, ReasonWrongIssuer, ReasonWrongAudience, ReasonWrongRoom,
	ReasonWrongTenant, ReasonClosed,
}

// Error is the error Verify returns for every refused token.
type Error struct {
	// Reason is the stable word to act on (log it, count it, map it to an
	// XMPP error condition).
	Reason Reason
	// Detail explains the refusal to an operator. It never contains a secret
	// and may change between versions.
	Detail string
}

// Error returns "auth: <reason>: <detail>".
func (e *Error) Error() string {
	if e.Detail == "" {
		return "auth: " + string(e.Reason)
	}
	return "auth: " + string(e.Reason) + ": " + e.Detail
}

// Is reports whether target is an *Error with the same Reason and either the
// same Detail or an empty one, so that
// errors.Is(err, &auth.Error{Reason: auth.ReasonExpired}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Reason == e.Reason && (t.Detail == "" || t.Detail == e.Detail)
}

// ReasonOf returns the Reason of an *Error found in err's chain, or "" when
// there is none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func newError(r Reason, detail string) *Error { return &Error{Reason: r, Detail: detail} }
