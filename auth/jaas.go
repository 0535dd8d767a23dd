package auth

import "strings"

// TenantDomainRoom maps a room named in the JaaS domain form,
// "name@<prefix>.<tenant>.<base>", onto the room the server holds,
// "[tenant]name@<prefix>.<base>", as Jitsi's muc_domain_mapper does (JaaS
// names rooms "name@conference.<appId>.8x8.vc" and keeps them as
// "[appId]name@conference.8x8.vc"). isBase reports whether a MUC domain
// takes tenants as its second label; the mapping applies only to rooms
// without a [tenant] whose domain has at least three labels and whose
// domain without its second label is such a base. It returns r unchanged
// and false otherwise.
func TenantDomainRoom(r Room, isBase func(mucDomain string) bool) (Room, bool) {
	if r.hasBracketTenant() {
		return r, false
	}
	prefix, rest, ok := strings.Cut(r.Domain, ".")
	if !ok {
		return r, false
	}
	tenant, base, ok := strings.Cut(rest, ".")
	if !ok || tenant == "" || base == "" || !isBase(prefix+"."+base) {
		return r, false
	}
	m, err := ParseRoom("[" + tenant + "]" + r.Local + "@" + prefix + "." + base)
	if err != nil {
		return r, false
	}
	return m, true
}
