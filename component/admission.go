package component

import (
	"time"

	"github.com/gavelxmpp/gavel/internal/ratelimit"
)

// Admission decides how much work gavel spends on knocks, before any room
// is touched (docs/protocol.md, section 6). Four token buckets:
//
//   - joiner: key tenant + bare JID; knocks_per_minute_per_jid, burst a
//     third of it (at least 5). Charged by every knock, on the read loop.
//   - tenant: key tenant; knocks_per_minute, burst a sixth of it (at least
//     10). Charged only by knocks whose token verified, and by tokenless
//     knocks from a secure domain.
//   - unauthenticated: key tenant; a quarter of knocks_per_minute, burst a
//     sixth of that (at least 10). Charged by tokenless knocks and by knocks
//     whose token failed.
//   - unauthenticated, global: UnauthenticatedKnocksPerMinute, burst a
//     sixth of it; charged after the tenant's unauthenticated bucket.
//
// The tenant is the configured tenant the room names, or the default one
// for every name that is not configured, so made-up names share the
// default's buckets. Knocks with a token are verified off the read loop, at
// most MaxKnocksInFlight at a time; beyond that they are refused at once.

// Admission defaults.
const (
	// DefaultUnauthenticatedKnocksPerMinute bounds tokenless and failed
	// knocks over all tenants.
	DefaultUnauthenticatedKnocksPerMinute = 6000
	// MaxKnocksInFlight bounds the knocks being verified or looked up at
	// once (one goroutine each).
	MaxKnocksInFlight = 512
	// maxJoinerBuckets bounds the joiner buckets; the least recently used
	// is forgotten first.
	maxJoinerBuckets = 1 << 16
	// maxTenantBuckets bounds the tenant buckets. Only configured tenant
	// names are keys, so this is never reached in practice.
	maxTenantBuckets = 4096
)

// globalKey is the key of the global unauthenticated bucket: no tenant
// name contains a NUL.
const globalKey = "\x00global"

type admission struct {
	joiners *ratelimit.Keyed // tenant + "\x00" + bare JID
	tenants *ratelimit.Keyed // tenant name: verified knocks
	unauth  *ratelimit.Keyed // tenant name, and globalKey: unauthenticated knocks
	global  ratelimit.Limit
	slots   chan struct{} // knocks in flight
}

func newAdmission(globalPerMinute int) *admission {
	if globalPerMinute <= 0 {
		globalPerMinute = DefaultUnauthenticatedKnocksPerMinute
	}
	return &admission{
		joiners: ratelimit.NewKeyed(maxJoinerBuckets),
		tenants: ratelimit.NewKeyed(maxTenantBuckets),
		unauth:  ratelimit.NewKeyed(maxTenantBuckets + 1),
		global:  ratelimit.PerMinute(globalPerMinute, max(globalPerMinute/6, 10)),
		slots:   make(chan struct{}, MaxKnocksInFlight),
	}
}

// joinerLimit, tenantLimit and unauthLimit are the bucket shapes of t.
func joinerLimit(t Tenant) ratelimit.Limit {
	per := max(t.KnocksPerMinutePerJID, 1)
	return ratelimit.PerMinute(per, max(per/3, 5))
}

func tenantLimit(t Tenant) ratelimit.Limit {
	per := max(t.KnocksPerMinute, 1)
	return ratelimit.PerMinute(per, max(per/6, 10))
}

func unauthLimit(t Tenant) ratelimit.Limit {
	per := max(t.KnocksPerMinute/4, 1)
	return ratelimit.PerMinute(per, max(per/6, 10))
}

// joiner charges the joiner bucket of bare in tenant t.
func (a *admission) joiner(t Tenant, bare string, now time.Time) bool {
	return a.joiners.Allow(t.Name+"\x00"+bare, joinerLimit(t), now)
}

// verified charges the bucket of t's authenticated knocks.
func (a *admission) verified(t Tenant, now time.Time) bool {
	return a.tenants.Allow(t.Name, tenantLimit(t), now)
}

// unauthenticated charges t's unauthenticated bucket, then the global one.
func (a *admission) unauthenticated(t Tenant, now time.Time) bool {
	return a.unauth.Allow(t.Name, unauthLimit(t), now) && a.unauth.Allow(globalKey, a.global, now)
}

// acquire takes a slot for a knock in flight; release gives it back.
func (a *admission) acquire() bool {
	select {
	case a.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (a *admission) release() { <-a.slots }
