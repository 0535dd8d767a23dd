// Package auth validates the JSON Web Tokens that joiners of a Jitsi room
// present, the way Prosody's token plugins do, only stricter and faster.
//
// A [Verifier] holds one set of token rules ([Settings]) per tenant, each with
// its own key sources: HS shared secrets, PEM public keys, a Jitsi "ASAP" key
// server addressed by kid, and a JWKS URL refreshed in the background. The key,
// never the token, fixes the algorithm, so "none", HS-signed tokens checked
// against a public key and any algorithm a key does not allow are refused.
//
// [Verifier.Verify] checks a token for one room: size, structure and strict
// base64url first, then the header, the signature, and only then the claims
// (exp, nbf, iat, iss, aud, sub against the tenant, room against the room
// name). Header and payload are read by a small strict JSON reader: claim
// names are case-sensitive, a claim may appear once, security-relevant claims
// must have their JSON type (a string exp is refused), while descriptive ones
// accept what Jitsi issuers send ("true" strings, numeric ids). Verify returns
// typed [Claims], or an [*Error] whose [Reason] is a stable machine-readable
// word. Verified tokens are kept in a
// bounded cache, keyed by a hash of the token, so that a rejoin costs well
// under a microsecond; the time, tenant and room rules are re-checked on every
// hit, [Verifier.Forget] evicts a banned token, and a verification does not
// outlive its key: entries are not used once the JWKS or the key server
// loses or replaces a key, and one verified with a key-server key is
// verified afresh once that key is older than Options.KeyTTL (a secret or a
// configured public key only changes with a new Verifier, whose cache
// starts empty).
//
// [Mint] signs tokens for development and demos, and [ParseRoom] splits a MUC
// room JID such as "[acme]standup@conference.example.test" into its tenant,
// room name and domain.
package auth
