package commands

import (
	"context"
	"fmt"
	"time"
)

// The roles an admin may give at run time.
const (
	RoleModerator   = "moderator"   // owner affiliation, moderator role
	RoleParticipant = "participant" // voice, no moderation
	RoleViewer      = "viewer"      // visitor role (no voice)
	// RoleDefault forgets a role set before: the room's policy decides
	// again.
	RoleDefault = "default"
)

// The policies a room can be switched to at run time.
const (
	PolicyToken     = "token"
	PolicyAutoOwner = "auto-owner"
	PolicyAllOwners = "all-owners"
)

// RoleRequest asks for a role in one room, for exactly one of a present
// occupant (Participant, its nick: Jitsi's participant id; the role is
// remembered for its bare JID) and a user id (every present and future
// session whose token carries it).
type RoleRequest struct {
	Room        string
	Participant string
	UserID      string
	// Role is one of the Role words.
	Role string
	// Until ends the role; zero: it lasts as long as the room's meeting.
	Until time.Time
}

// RoleSetter is implemented by Rooms that can set roles and switch a
// room's policy at run time (*component.Moderation does). The policy
// remembers both, durably, and applies them to later joiners.
type RoleSetter interface {
	// SetRole applies req (Room is prepared) and returns how many present
	// sessions it selects; ErrParticipantNotFound when req.Participant is
	// not there.
	SetRole(ctx context.Context, req RoleRequest) (present int, err error)
	// SetPolicy switches roomJID to policy, one of the Policy words.
	SetPolicy(ctx context.Context, roomJID, policy string) error
}

// SetRole gives the present occupant with nick (Jitsi's participant id) a
// role: moderator, participant, viewer or default.
func (s *Service) SetRole(ctx context.Context, roomJID, nick, role, by string) error {
	_, err := s.AssignRole(ctx, RoleRequest{Room: roomJID, Participant: nick, Role: role}, by)
	return err
}

// AssignRole sets a role for a present occupant or for a user id, and
// returns how many present sessions it selected. The role is remembered
// for the room (across reloads, reconnects and gavel's restarts) until it
// is changed, req.Until passes, or the room is destroyed.
func (s *Service) AssignRole(ctx context.Context, req RoleRequest, by string) (present int, err error) {
	ar, rerr := s.room(req.Room)
	who := req.Participant
	if req.UserID != "" {
		who = "user:" + req.UserID
	}
	defer func() { s.audit("set-role", by, clip(req.Room)+"/"+clip(who)+":"+clip(req.Role), ar.Tenant, err) }()
	if rerr != nil {
		return 0, rerr
	}
	switch req.Role {
	case RoleModerator, RoleParticipant, RoleViewer, RoleDefault:
	default:
		return 0, fmt.Errorf("%w: role %q: want %s, %s, %s or %s", ErrInvalid, clip(req.Role), RoleModerator, RoleParticipant, RoleViewer, RoleDefault)
	}
	switch {
	case req.Participant == "" && req.UserID == "":
		return 0, fmt.Errorf("%w: the participant or the user id is required", ErrInvalid)
	case req.Participant != "" && req.UserID != "":
		return 0, fmt.Errorf("%w: give the participant or the user id, not both", ErrInvalid)
	case !req.Until.IsZero() && !req.Until.After(s.now()):
		return 0, fmt.Errorf("%w: the end time %s is not in the future", ErrInvalid, req.Until.UTC().Format(time.RFC3339))
	case !req.Until.IsZero() && req.Role == RoleDefault:
		return 0, fmt.Errorf("%w: the default role takes no end time", ErrInvalid)
	}
	if err := checkText("participant", req.Participant); err != nil {
		return 0, err
	}
	if err := checkText("user id", req.UserID); err != nil {
		return 0, err
	}
	rs, ok := s.rooms.(RoleSetter)
	if !ok {
		return 0, fmt.Errorf("%w: roles cannot be set here", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	req.Room = ar.JID
	return rs.SetRole(ctx, req)
}

// SetPolicy switches one room to a policy at run time (token, auto-owner
// or all-owners), without a configuration change: all-owners gives every
// participant the creator's rights. The switch is remembered for the
// room like a role.
func (s *Service) SetPolicy(ctx context.Context, roomJID, policy, by string) (err error) {
	ar, rerr := s.room(roomJID)
	defer func() { s.audit("set-policy", by, clip(roomJID)+":"+clip(policy), ar.Tenant, err) }()
	if rerr != nil {
		return rerr
	}
	switch policy {
	case PolicyToken, PolicyAutoOwner, PolicyAllOwners:
	default:
		return fmt.Errorf("%w: policy %q: want %s, %s or %s", ErrInvalid, clip(policy), PolicyToken, PolicyAutoOwner, PolicyAllOwners)
	}
	rs, ok := s.rooms.(RoleSetter)
	if !ok {
		return fmt.Errorf("%w: policies cannot be set here", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return rs.SetPolicy(ctx, ar.JID, policy)
}
