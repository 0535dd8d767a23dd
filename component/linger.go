package component

import (
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/policy"
)

// This file defers clear_on_leave resets by the tenant's ClearGrace: when
// the holder of an affiliation gavel granted leaves, the reset to none
// waits; if the same bare JID knocks again meanwhile and the policy grants
// it the same affiliation, neither the reset nor the new grant is sent (the
// server still holds it). Every affiliation change costs Prosody an
// announcement to the room's moderators and a save of the room, so a
// participant who reconnects (a page reload, a network switch) costs no
// change at all.
//
// The rights outlast the leave by at most the grace: a knock that asks for
// less sends the reset first, a joiner that comes back without knocking
// has it sent at its join, and a room with resets waiting stays governed
// until they are sent (also at shutdown).

// lingering is a reset held back: the affiliation the server still holds
// and when the reset is due.
type lingering struct {
	aff policy.Affiliation
	due time.Time
}

// holdResets takes the clear_on_leave resets of bare out of acts (the
// actions of its leave) and holds them for the tenant's grace; aff is the
// affiliation its leave showed.
func (r *room) holdResets(acts []policy.Action, bare string, aff policy.Affiliation) []policy.Action {
	grace := r.tenant.ClearGrace
	if grace <= 0 || aff < policy.Member {
		return acts
	}
	out := acts[:0:0]
	for _, a := range acts {
		if a.Kind == policy.ActionSetAffiliation && a.BareJID == bare && a.Affiliation == policy.None && a.Reason == policy.ReasonClearOnLeave {
			if r.lingering == nil {
				r.lingering = map[string]lingering{}
			}
			r.lingering[bare] = lingering{aff: aff, due: r.m.now().Add(grace)}
			r.m.opts.Clock.AfterFunc(grace, func() {
				r.push(event{kind: evCommand, cmd: func(r *room) error { r.sendDueResets(false); return nil }})
			})
			continue
		}
		out = append(out, a)
	}
	return out
}

// resumeGrant settles a held reset of bare against the actions of its new
// knock: a grant of the affiliation the server still holds is dropped
// (nothing to send), another grant replaces the reset, and a knock that
// asks for nothing gets the reset first.
func (r *room) resumeGrant(acts []policy.Action, bare string) []policy.Action {
	l, ok := r.lingering[bare]
	if !ok {
		return acts
	}
	delete(r.lingering, bare)
	out := acts[:0:0]
	granted := false
	for _, a := range acts {
		if a.Kind == policy.ActionSetAffiliation && a.BareJID == bare {
			granted = true
			if a.Affiliation == l.aff {
				r.m.metrics.Changes.WithLabelValues("affiliation", "kept").Inc()
				continue
			}
		}
		out = append(out, a)
	}
	if !granted {
		out = append([]policy.Action{{Kind: policy.ActionSetAffiliation, BareJID: bare, Affiliation: policy.None, Reason: policy.ReasonClearOnLeave}}, out...)
	}
	return out
}

// resetOnReturn sends the held reset of bare at once: it joined again
// without knocking, so its old rights must not carry it.
func (r *room) resetOnReturn(bare string) []policy.Action {
	if _, ok := r.lingering[bare]; !ok {
		return nil
	}
	delete(r.lingering, bare)
	return []policy.Action{{Kind: policy.ActionSetAffiliation, BareJID: bare, Affiliation: policy.None, Reason: policy.ReasonClearOnLeave}}
}

// sendDueResets sends the held resets that are due (all of them with
// all). Resets that cannot be sent now (gavel is not in the room) wait for
// the next try.
func (r *room) sendDueResets(all bool) {
	if len(r.lingering) == 0 {
		return
	}
	if r.state != joined || r.sess == nil {
		r.m.opts.Clock.AfterFunc(time.Second, func() {
			r.push(event{kind: evCommand, cmd: func(r *room) error { r.sendDueResets(false); return nil }})
		})
		return
	}
	now := r.m.now()
	var acts []policy.Action
	for bare, l := range r.lingering {
		if all || !l.due.After(now) {
			acts = append(acts, policy.Action{Kind: policy.ActionSetAffiliation, BareJID: bare, Affiliation: policy.None, Reason: policy.ReasonClearOnLeave})
			delete(r.lingering, bare)
		}
	}
	for _, e := range r.perform(acts) {
		r.m.log.Warn("a held clear_on_leave reset failed", zap.String("room", r.jid), zap.String("jid", e.bare), zap.Error(e.err))
	}
}
