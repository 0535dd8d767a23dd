package policy

import "strings"

// This file holds the all-owners policy: every admitted joiner becomes
// owner, except in rooms listed as moderated, which use the token policy.
// Viewers and guests that are visitors stay visitors.

// allOwnersClaim turns a participant's claim into ownership.
func allOwnersClaim(c claim, reason string) (claim, string) {
	if c == claimParticipant {
		return claimOwner, ReasonAllOwners
	}
	return c, reason
}

// reassert re-grants owner to a present bare JID someone demoted from owner,
// when the options ask for it. Bans (outcast) stand.
func (r *Room) reassert(bare string, old, aff Affiliation, n int64) {
	if !r.opts.ReassertOwners || old != Owner || aff == Outcast || aff >= Owner || !r.presentBare(bare) {
		return
	}
	r.grantAff(bare, Owner, ReasonReassert, n, 0)
}

// moderatedRoom reports whether the local part of room, without a
// "[tenant]" prefix, is one of rooms (case-insensitive).
func moderatedRoom(room string, rooms []string) bool {
	local := room
	if at := strings.IndexByte(local, '@'); at >= 0 {
		local = local[:at]
	}
	if strings.HasPrefix(local, "[") {
		if end := strings.IndexByte(local, ']'); end >= 0 {
			local = local[end+1:]
		}
	}
	for _, name := range rooms {
		if strings.EqualFold(name, local) {
			return true
		}
	}
	return false
}
