package policy

import "time"

// Admit decides what can be decided of a knock before any room state is
// known: it returns the refusal every room with opts would give identity id
// at now (RefusalTokenRequired for a guest where guests are denied,
// RefusalTokenExpired for an expired token), or "" when only the room can
// decide. A caller that gets a refusal answers the knock without touching
// the server; Room.Knock gives the same refusal for the same arguments.
func Admit(opts Options, id Identity, now time.Time) (refusal string) {
	if !id.HasToken {
		if opts.Guests == GuestsDeny {
			return RefusalTokenRequired
		}
		return ""
	}
	if !id.Expires.IsZero() && !id.Expires.After(now) {
		return RefusalTokenExpired
	}
	return ""
}
