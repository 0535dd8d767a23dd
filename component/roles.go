package component

import (
	"context"
	"errors"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/policy"
)

var _ commands.RoleSetter = (*Moderation)(nil)

// SetRole gives the occupant with nick in roomJID a role at run time:
// moderator (owner), participant (member, with voice) or viewer (no
// affiliation, visitor). It changes the occupant's bare JID's affiliation
// and, for participant and viewer, its role, on the room's worker.
func (m *Moderation) SetRole(ctx context.Context, roomJID, nick, role string) error {
	if nick == m.c.opts.Nick {
		return commands.ErrParticipantNotFound
	}
	return unavailable(m.onRoom(ctx, roomJID, func(r *room) error {
		bare := ""
		for o := range r.pol.Occupants() {
			if o.Nick == nick {
				bare = o.BareJID
			}
		}
		if bare == "" {
			return commands.ErrParticipantNotFound
		}
		var acts []policy.Action
		switch role {
		case commands.RoleModerator:
			acts = []policy.Action{{Kind: policy.ActionSetAffiliation, BareJID: bare, Affiliation: policy.Owner, Reason: "set-role"}}
		case commands.RoleParticipant:
			acts = []policy.Action{
				{Kind: policy.ActionSetAffiliation, BareJID: bare, Affiliation: policy.Member, Reason: "set-role"},
				{Kind: policy.ActionSetRole, Nick: nick, Role: policy.Participant, Reason: "set-role"},
			}
		case commands.RoleViewer:
			acts = []policy.Action{
				{Kind: policy.ActionSetAffiliation, BareJID: bare, Affiliation: policy.None, Reason: "set-role"},
				{Kind: policy.ActionSetRole, Nick: nick, Role: policy.Visitor, Reason: "set-role"},
			}
		}
		if errs := r.perform(acts); len(errs) > 0 {
			return errors.Join(errs[0].err)
		}
		return nil
	}))
}
