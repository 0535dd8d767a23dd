package component

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/policy"
)

// The console's read-only view of the rooms (commands.RoomViewer), and the
// book of why each occupant has its rights, which the policy does not keep
// once a grant is applied.

var _ commands.RoomViewer = (*Moderation)(nil)

// ReasonSetByAdmin is the reason shown for rights an admin set at run time
// (the set-role command).
const ReasonSetByAdmin = "set-by-admin"

// RoomViews returns a picture of every governed room of tenant, taken on
// each room's worker, sorted by JID. Rooms that have not answered when ctx
// ends are left out; the error is then ctx's.
func (m *Moderation) RoomViews(ctx context.Context, tenant string) ([]commands.RoomView, error) {
	m.mu.Lock()
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		if r.ar.Tenant == tenant {
			rooms = append(rooms, r)
		}
	}
	m.mu.Unlock()
	views := make(chan commands.RoomView, len(rooms))
	asked := 0
	for _, r := range rooms {
		if r.push(event{kind: evCommand, cmd: func(r *room) error {
			views <- r.view()
			return nil
		}}) {
			asked++
		}
	}
	out := make([]commands.RoomView, 0, asked)
	var err error
collect:
	for range asked {
		select {
		case v := <-views:
			out = append(out, v)
		case <-ctx.Done():
			err = ctx.Err()
			break collect
		}
	}
	slices.SortFunc(out, func(a, b commands.RoomView) int { return strings.Compare(a.JID, b.JID) })
	return out, err
}

// view pictures the room; it runs on the room's worker.
func (r *room) view() commands.RoomView {
	v := commands.RoomView{
		JID: r.jid, Tenant: r.ar.Tenant, Name: r.ar.Name, MUC: r.ar.Domain,
		Policy: r.pol.Kind().String(), State: joinStateWords[r.state],
	}
	self := r.m.c.opts.Domain
	now := r.m.now()
	for o := range r.pol.Occupants() {
		if strings.EqualFold(o.BareJID, self) {
			continue
		}
		v.Occupants = append(v.Occupants, commands.OccupantView{
			Nick: o.Nick, BareJID: o.BareJID, UserID: o.UserID,
			Affiliation: o.Affiliation.String(), Role: o.Role.String(),
			Reason: r.why.reason(o, r.pol.Kind()), Joined: o.Joined, Expires: o.Expires,
		})
	}
	r.why.prune(r, now)
	return v
}

var joinStateWords = [...]string{idle: "idle", joining: "joining", joined: "joined"}

// whyBook keeps, per room, the reason of the last change gavel made to
// each bare JID's affiliation and each nick's role, and of each granted
// knock. It is the room worker's: nothing else touches it.
type whyBook struct {
	seq    uint64
	byBare map[string]whyEntry
	byNick map[string]whyEntry
}

type whyEntry struct {
	reason string
	seq    uint64
	at     time.Time
}

// maxWhy bounds each map of a book beyond the occupants it has to keep:
// past it, entries of absent occupants older than policy.KnockTTL go.
const maxWhy = 256

// note records the reasons of actions gavel is about to perform.
func (b *whyBook) note(r *room, actions []policy.Action) {
	for _, a := range actions {
		switch a.Kind {
		case policy.ActionSetAffiliation:
			b.put(&b.byBare, a.BareJID, a.Reason, r)
		case policy.ActionSetRole:
			b.put(&b.byNick, a.Nick, a.Reason, r)
		}
	}
}

// granted records the reason of a granted knock.
func (b *whyBook) granted(r *room, bare, reason string) { b.put(&b.byBare, bare, reason, r) }

func (b *whyBook) put(mp *map[string]whyEntry, key, reason string, r *room) {
	if key == "" || reason == "" {
		return
	}
	switch reason {
	case "set-role":
		reason = ReasonSetByAdmin
	case policy.ReasonBan:
		reason = "banned"
	}
	if *mp == nil {
		*mp = map[string]whyEntry{}
	}
	now := r.m.now()
	b.seq++
	(*mp)[key] = whyEntry{reason: reason, seq: b.seq, at: now}
	if len(*mp) > r.pol.Len()+maxWhy {
		b.prune(r, now)
	}
}

// prune forgets the entries of occupants no longer present, once they are
// older than a knock waits for its join.
func (b *whyBook) prune(r *room, now time.Time) {
	bares, nicks := map[string]bool{}, map[string]bool{}
	for o := range r.pol.Occupants() {
		bares[o.BareJID], nicks[o.Nick] = true, true
	}
	for k, e := range b.byBare {
		if !bares[k] && now.Sub(e.at) > policy.KnockTTL {
			delete(b.byBare, k)
		}
	}
	for k, e := range b.byNick {
		if !nicks[k] && now.Sub(e.at) > policy.KnockTTL {
			delete(b.byNick, k)
		}
	}
}

// reason says why occupant o has its rights: the latest reason recorded
// for its bare JID or nick, else what its knock and the policy imply.
func (b *whyBook) reason(o policy.Occupant, kind policy.Kind) string {
	e, ok := b.byBare[o.BareJID]
	if n, nok := b.byNick[o.Nick]; nok && (!ok || n.seq > e.seq) {
		e, ok = n, true
	}
	if ok {
		return e.reason
	}
	switch {
	case o.Bot:
		return "bot"
	case o.Viewer:
		return policy.ReasonViewer
	case o.Token && o.Moderator && o.Affiliation == policy.Owner:
		return policy.ReasonTokenModerator
	case o.Token:
		return policy.ReasonTokenParticipant
	case o.Affiliation == policy.Owner && kind == policy.AllOwners:
		return policy.ReasonAllOwners
	case o.Affiliation == policy.Owner && kind == policy.AutoOwner:
		return policy.ReasonFirstJoiner
	case o.Knocked && o.Role == policy.Visitor:
		return policy.ReasonGuestVisitor
	case o.Knocked:
		return policy.ReasonGuestMember
	case o.Affiliation > policy.None:
		return policy.ReasonExisting
	}
	return ""
}
