package commands

import (
	"context"
	"time"
)

// RoomView is a read-only picture of one governed room, for the admin
// console. It is taken on the room's worker, so it is consistent in itself,
// but rooms are pictured one after the other.
type RoomView struct {
	// JID is the room's prepared JID; Tenant, Name and MUC its parts.
	JID, Tenant, Name, MUC string
	// Policy is the room's effective policy word (token, auto-owner,
	// all-owners); Override is a policy set at run time, "" for none.
	Policy, Override string
	// Locked is set when the room is locked at run time.
	Locked bool
	// State is gavel's standing in the room: joined, joining or idle.
	State string
	// Occupants are in join order, gavel's own occupant and bots left out.
	Occupants []OccupantView
}

// OccupantView is one occupant of a RoomView.
type OccupantView struct {
	Nick, BareJID, UserID string
	// Affiliation and Role are the XEP-0045 words.
	Affiliation, Role string
	// Reason says why the occupant has its affiliation and role, in the
	// knock's words (token-moderator, first-joiner, ...) or set-by-admin.
	Reason string
	// Joined is when gavel saw the join; Expires when the occupant's
	// rights end with its token (zero: they do not).
	Joined, Expires time.Time
}

// RoomViewer gives the console its picture of the rooms; *component.Moderation
// implements it. It only reads.
type RoomViewer interface {
	// RoomViews returns the governed rooms of tenant, sorted by JID. It
	// returns what it has when ctx ends before every room answered.
	RoomViews(ctx context.Context, tenant string) ([]RoomView, error)
}
