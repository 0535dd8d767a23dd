// Package policy decides who moderates a MUC room.
//
// A Room holds what gavel knows of one room: its occupants, the affiliations
// gavel set or saw, and the knocks granted but not yet joined. Each event goes
// to one method (Knock, Joined, Left, AffiliationChanged, SetIdentity, Tick,
// Reconcile), which updates the state and returns the Actions the caller must
// perform on the server, in order. The package does no I/O, starts no
// goroutines and reads no clock: times are passed in, and must not go
// backwards for one room.
//
// Three policies exist (Kind). Token: a token that says moderator gives
// owner, other tokens participate. AutoOwner: the room keeps one present
// owner, the first joiner and then, whenever none is left, the
// longest-present eligible occupant. AllOwners: every admitted joiner becomes
// owner, except in rooms listed as moderated, which use Token. Guests says
// what joiners without a token get under each of them, and with Viewers it
// decides the room's configuration (Options.RoomConfig), which the caller
// applies.
//
// Affiliations are set only where they change the outcome (owner; member
// where the room is members-only or moderated), because each set for a JID
// that has not joined makes the server message every occupant. Knock sets
// them before the joiner's first presence, so nobody is seen with the wrong
// role first; for someone already present only owner is set, and voice is
// given or taken with a role change. Options.TokenHolders member asks for
// more: token holders without ownership are members everywhere, present or
// not, as Jitsi's token_affiliation makes them.
//
// What the caller must know:
//
//   - The slice a method returns belongs to the Room and is reused by the next
//     call: perform or copy the actions first.
//   - Perform Knock's actions before answering the knock.
//   - Feed every presence of the room to Joined, including those caused by
//     gavel's own actions: gavel recognises echoes of its sets, and ignores a
//     presence showing an older affiliation for a few seconds after a set.
//   - A nick change (status 303) is a Joined with the new nick and the same
//     full JID; do not call Left for it.
//   - When an unavailable presence shows a new affiliation (a ban, status 301;
//     a removal, 321), call AffiliationChanged before Left, so that
//     ClearOnLeave does not undo a ban.
//   - Arm one timer per room at NextDeadline and call Tick when it fires.
package policy
