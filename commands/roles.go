package commands

import (
	"context"
	"fmt"
)

// The roles an admin may give an occupant at run time.
const (
	RoleModerator   = "moderator"   // owner affiliation, moderator role
	RoleParticipant = "participant" // member affiliation, participant role
	RoleViewer      = "viewer"      // no affiliation, visitor role (no voice)
)

// RoleSetter is implemented by Rooms that can change an occupant's role
// (*component.Moderation does).
type RoleSetter interface {
	// SetRole gives the occupant with nick in roomJID one of the roles
	// above; ErrParticipantNotFound when nick is not there.
	SetRole(ctx context.Context, roomJID, nick, role string) error
}

// SetRole gives the present occupant with nick (Jitsi's participant id) a
// role: moderator, participant or viewer.
func (s *Service) SetRole(ctx context.Context, roomJID, nick, role, by string) (err error) {
	ar, rerr := s.room(roomJID)
	defer func() { s.audit("set-role", by, clip(roomJID)+"/"+clip(nick)+":"+clip(role), ar.Tenant, err) }()
	if rerr != nil {
		return rerr
	}
	switch role {
	case RoleModerator, RoleParticipant, RoleViewer:
	default:
		return fmt.Errorf("%w: role %q: want %s, %s or %s", ErrInvalid, clip(role), RoleModerator, RoleParticipant, RoleViewer)
	}
	if nick == "" {
		return fmt.Errorf("%w: the participant is required", ErrInvalid)
	}
	if err := checkText("participant", nick); err != nil {
		return err
	}
	rs, ok := s.rooms.(RoleSetter)
	if !ok {
		return fmt.Errorf("%w: roles cannot be set here", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return rs.SetRole(ctx, ar.JID, nick, role)
}
