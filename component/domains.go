package component

import (
	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
)

var _ commands.RoomMapper = (*Moderation)(nil)

// canonicalRoom returns the room the server holds for ar: ar itself on a
// governed domain, else, for a room named in the JaaS domain form
// ("name@conference.<tenant>.<base>") whose base is a governed MUC with
// TenantSubdomains, the tenant's room "[tenant]name@conference.<base>".
func (m *Moderation) canonicalRoom(ar auth.Room) (auth.Room, bool) {
	if _, ok := m.mucs[ar.Domain]; ok {
		return ar, false
	}
	return auth.TenantDomainRoom(ar, func(d string) bool {
		mu, ok := m.mucs[d]
		return ok && mu.TenantSubdomains
	})
}

// MapRoom implements commands.RoomMapper: the command layer names rooms
// as canonicalRoom does.
func (m *Moderation) MapRoom(ar auth.Room) auth.Room {
	ar, _ = m.canonicalRoom(ar)
	return ar
}
