package commands

import (
	"context"
	"fmt"
	"time"
)

// MaxMeetingParticipants bounds a meeting's maxParticipants.
const MaxMeetingParticipants = 10000

// RoomOptions are run-time options of one room beyond roles: what a
// meeting is made with, and its lock. The zero value of each field leaves
// the room's as it is.
type RoomOptions struct {
	// Policy is one of the Policy words.
	Policy string
	// MaxParticipants bounds the room's occupants with voice, over the
	// tenant's max_participants, when SetMax (zero: the tenant's again).
	MaxParticipants int
	SetMax          bool
	// Locked locks (true) or unlocks (false) the room.
	Locked *bool
	// KeepUntil keeps the options while nobody is in the room at least
	// until then (the meeting's end), beyond the settings retention.
	KeepUntil time.Time
}

// RoomOptionSetter is implemented by Rooms that keep run-time room
// options (*component.Moderation does): durably, for the room's present
// and later occupants, also before the room exists.
type RoomOptionSetter interface {
	SetRoomOptions(ctx context.Context, roomJID string, o RoomOptions) error
}

// SetLock locks or unlocks a room. While it is locked, a knock by someone
// who is not a host waits until a host in the room admits or denies it, or
// is refused after a timeout; hosts enter directly. Unlocking admits the
// knocks waiting. The lock is remembered for the room like a role.
func (s *Service) SetLock(ctx context.Context, roomJID string, locked bool, by string) (err error) {
	ar, rerr := s.room(roomJID)
	what := "unlock"
	if locked {
		what = "lock"
	}
	defer func() { s.audit(what, by, clip(roomJID), ar.Tenant, err) }()
	if rerr != nil {
		return rerr
	}
	rs, ok := s.rooms.(RoomOptionSetter)
	if !ok {
		return fmt.Errorf("%w: rooms cannot be locked here", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return rs.SetRoomOptions(ctx, ar.JID, RoomOptions{Locked: &locked})
}
