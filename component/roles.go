package component

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/policy"
)

var _ commands.RoleSetter = (*Moderation)(nil)

// SetRole sets a role at run time through the room's policy, which
// remembers it (policy.Room.SetRole) and applies it to the present sessions
// it selects and to later knocks; the room's worker performs the changes.
// A role for a user id in a room gavel is not in waits for the room's next
// occupants (settings.go).
func (m *Moderation) SetRole(ctx context.Context, req commands.RoleRequest) (int, error) {
	role, err := policy.ParseAdminRole(req.Role)
	if err != nil {
		return 0, commands.ErrInvalid
	}
	if req.Participant != "" && req.Participant == m.c.opts.Nick {
		return 0, commands.ErrParticipantNotFound
	}
	t := policy.RoleTarget{Nick: req.Participant, UserID: req.UserID}
	present := 0
	err = m.onPolicy(ctx, req.Room, req.UserID != "", func(p *policy.Room, perform func([]policy.Action) error) error {
		n, acts, err := p.SetRole(t, role, req.Until, m.now())
		if errors.Is(err, policy.ErrNoOccupant) {
			return commands.ErrParticipantNotFound
		}
		if err != nil {
			return err
		}
		present = n
		return perform(acts)
	})
	return present, unavailable(err)
}

// SetPolicy switches the room's policy at run time (policy.Room.SetKind).
func (m *Moderation) SetPolicy(ctx context.Context, roomJID, kind string) error {
	k, err := policy.ParseKind(kind)
	if err != nil {
		return commands.ErrInvalid
	}
	return unavailable(m.onPolicy(ctx, roomJID, true, func(p *policy.Room, perform func([]policy.Action) error) error {
		return perform(p.SetKind(k, m.now()))
	}))
}

// onPolicy runs f on the policy state of roomJID: on its worker, which
// performs the actions f passes to perform once gavel is in the room (a
// room still being joined applies them when the join reconciles), and
// saves the state; or, when no worker has the room and parked is set, on
// its parked settings. Without either: ErrRoomNotFound.
func (m *Moderation) onPolicy(ctx context.Context, roomJID string, parked bool, f func(p *policy.Room, perform func([]policy.Action) error) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for range 3 {
		done := make(chan error, 1)
		ev := event{kind: evCommand, done: done, cmd: func(r *room) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			err := f(r.pol, func(acts []policy.Action) error {
				if r.state != joined || r.sess == nil {
					return nil // the join's reconciliation applies them (ApplyRoles)
				}
				if errs := r.perform(acts); len(errs) > 0 {
					return errs[0].err
				}
				return nil
			})
			if err == nil && r.state == joined {
				r.save()
			}
			return err
		}}
		if m.deliver(roomJID, false, ev) {
			select {
			case err := <-done:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !parked {
			return commands.ErrRoomNotFound
		}
		ok, err := m.withParked(roomJID, func(p *policy.Room) error {
			return f(p, func([]policy.Action) error { return nil })
		})
		if ok {
			if err == nil {
				m.log.Debug("room settings kept for its next occupants", zap.String("room", roomJID))
			}
			return err
		}
		// A worker started meanwhile: try it.
	}
	return commands.ErrUnavailable
}
