package component

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/internal/jidprep"
	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

// TokenVerifier validates joiners' tokens (package auth's Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, token string, room auth.Room) (*auth.Claims, error)
	Forget(tokenHash [32]byte)
}

// Tenant is one tenant's effective moderation settings.
type Tenant struct {
	// Name is the configured tenant these settings belong to; the default
	// tenant's settings, which every unconfigured name gets, carry the
	// default's name. Knock rate limits are kept per Name, so made-up
	// tenant names share the default's buckets.
	Name   string
	Policy policy.Options
	// TopLevelModerator honours a top-level "moderator" claim.
	TopLevelModerator bool
	// KnocksPerMinute limits the tenant's knocks with a verified token (a
	// quarter of it, its tokenless and failed knocks); KnocksPerMinutePerJID
	// each joiner's knocks. See admission.go and docs/protocol.md.
	KnocksPerMinute, KnocksPerMinutePerJID int
	// ClearGrace holds a clear_on_leave reset this long after the leave,
	// and drops it when the same JID knocks again for the same rights
	// (linger.go); 0 resets at once.
	ClearGrace time.Duration
}

// MUC is one governed conference service.
type MUC struct {
	Domain string
	// TrustIdentity trusts the <identity/> element Jitsi's
	// mod_presence_identity stamps into presence (after removing any copy
	// the client sent), for joiners that never knock: the user id and the
	// moderator claim then come from it. It needs IdentityDomains.
	TrustIdentity bool
	// IdentityDomains are the client domains whose server stamps and
	// strips <identity/>: the Prosody VirtualHosts that load
	// mod_presence_identity. gavel honours an identity only from a joiner
	// of one of them, and only after checking, on each connection, that
	// the domain answers as a Prosody server (docs/jitsi.md).
	IdentityDomains []string
	// SecureDomains are JID domains whose users are moderators.
	SecureDomains []string
	// Discover makes gavel find rooms that Jicofo or clients created
	// without a knock and take its place in them: it polls the service's
	// list of rooms every DiscoverInterval (default 250 ms; longer when
	// listing is slow). Rooms it governs are open to clients that never
	// knock (never members-only). See discover.go.
	Discover         bool
	DiscoverInterval time.Duration
	// TenantSubdomains takes rooms named in the JaaS domain form,
	// "name@<prefix>.<tenant>.<rest>" where Domain is "<prefix>.<rest>", as
	// the tenant's rooms "[tenant]name@Domain" (Jitsi's muc_domain_mapper;
	// JaaS's "room@conference.<appId>.8x8.vc"). See domains.go.
	TenantSubdomains bool
	// Bridge accepts join requests and room events from the MUC's bridge
	// module (prosody-modules/mod_gavel_bridge.lua, bridge.go): joiners
	// that never knock are decided before they join, with their
	// session's token.
	Bridge bool
}

// DefaultDiscoverInterval is the room discovery poll interval when a MUC
// enables discovery without one.
const DefaultDiscoverInterval = 250 * time.Millisecond

// ModerationOptions configure a Moderation.
type ModerationOptions struct {
	MUCs     []MUC
	Verifier TokenVerifier
	Store    store.Store
	// Tenant returns a tenant's settings (the default ones for unknown names).
	Tenant func(name string) Tenant
	// Admins are bare JIDs allowed to run ad-hoc commands.
	Admins  []string
	Metrics *Metrics
	// UnauthenticatedKnocksPerMinute bounds tokenless knocks and knocks
	// whose token failed, over all tenants (default
	// DefaultUnauthenticatedKnocksPerMinute).
	UnauthenticatedKnocksPerMinute int
	// Clock tells the time and runs the rooms' timers (SystemClock when
	// nil).
	Clock Clock
	// JoinTimeout is how long gavel waits for a room to answer its join
	// before trying again (DefaultJoinTimeout when zero); JoinRetries how
	// many times it tries again, with a growing pause, before refusing the
	// knocks that wait for the room (DefaultJoinRetries when zero; -1 for
	// none).
	JoinTimeout time.Duration
	JoinRetries int
	// IQTimeout bounds each request gavel makes to a room (affiliation,
	// role, configuration), so one silent request cannot hold up a room's
	// other events for long (DefaultIQTimeout when zero).
	IQTimeout time.Duration
	// MaxQueuedKnocks bounds the knocks waiting in one room's queue
	// (DefaultMaxQueuedKnocks when zero); more are refused at once with
	// wait/resource-constraint.
	MaxQueuedKnocks int
	// SettingsRetention is how long what admins set for a room (roles,
	// policy) is kept while nobody is in it (DefaultSettingsRetention
	// when zero). See settings.go.
	SettingsRetention time.Duration
}

// Defaults of ModerationOptions.
const (
	DefaultJoinTimeout     = 2 * time.Second
	DefaultJoinRetries     = 2
	DefaultIQTimeout       = 5 * time.Second
	DefaultMaxQueuedKnocks = 256
)

// Moderation governs the rooms of the configured MUC services: it answers
// knocks, tracks occupants, and applies each tenant's policy.
type Moderation struct {
	opts    ModerationOptions
	c       *Component
	log     *zap.Logger
	now     func() time.Time
	mucs    map[string]MUC
	admins  map[string]bool
	metrics *Metrics
	cmds    *commands.Service // the ad-hoc commands' command layer (UseCommands)

	mu        sync.Mutex
	rooms     map[string]*room
	trust     map[string]*identityTrust // by MUC domain, for the current session
	dormant   map[string]time.Time      // rooms gavel left empty, when (discovery)
	noWatch   sync.Map                  // MUC domains whose bridge does not report occupants (watch.go)
	formSlots chan struct{}             // hosts' answers by message in flight (lock.go)
	loops     sync.WaitGroup            // per-session identity checks and discovery
	sess      *session
	resource  string // gavel's resource in rooms for the current session
	instance  string // random, per run of gavel: part of the resource
	restored  bool   // the stored rooms were loaded (restoreRooms)
	// roomsRestored is restored for other goroutines (RoomsRestored).
	roomsRestored atomic.Bool
	previous      string // the previous session's resource (ghost occupants)
	closing       bool
	workers       sync.WaitGroup

	parked      parkedRooms // admin settings of rooms without a worker (settings.go)
	adm         *admission
	knockCounts [numKnockOutcomes]prometheus.Counter

	// ownership is what the server check found, by MUC domain, and
	// checkRooms the check's rooms in use, to gavel's occupant there;
	// under mu (servercheck.go).
	ownership  map[string]*OwnershipError
	checkRooms map[string]*checkRoom
}

// NewModeration checks options and returns a Moderation to pass in
// Options.Moderation.
func NewModeration(opts ModerationOptions) (*Moderation, error) {
	if len(opts.MUCs) == 0 {
		return nil, errors.New("component: at least one MUC domain is required")
	}
	if opts.Verifier == nil || opts.Store == nil || opts.Tenant == nil {
		return nil, errors.New("component: moderation needs a verifier, a store and tenant settings")
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.JoinTimeout <= 0 {
		opts.JoinTimeout = DefaultJoinTimeout
	}
	switch {
	case opts.JoinRetries == 0:
		opts.JoinRetries = DefaultJoinRetries
	case opts.JoinRetries < 0:
		opts.JoinRetries = 0
	}
	if opts.IQTimeout <= 0 {
		opts.IQTimeout = DefaultIQTimeout
	}
	if opts.MaxQueuedKnocks <= 0 {
		opts.MaxQueuedKnocks = DefaultMaxQueuedKnocks
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	m := &Moderation{
		opts:     opts,
		now:      opts.Clock.Now,
		mucs:     map[string]MUC{},
		admins:   map[string]bool{},
		metrics:  opts.Metrics,
		rooms:    map[string]*room{},
		adm:      newAdmission(opts.UnauthenticatedKnocksPerMinute),
		instance: randomSuffix(),
	}
	m.knockCounts = opts.Metrics.knockCounters()
	m.trust, m.dormant = map[string]*identityTrust{}, map[string]time.Time{}
	m.formSlots = make(chan struct{}, maxFormAnswers)
	for _, mu := range opts.MUCs {
		d, err := jidprep.Domain(mu.Domain)
		if err != nil {
			return nil, fmt.Errorf("component: MUC domain: %w", err)
		}
		mu.Domain = d
		if mu.TrustIdentity && len(mu.IdentityDomains) == 0 {
			return nil, fmt.Errorf("component: MUC %s trusts <identity/> but names no identity domains: list the VirtualHosts that load mod_presence_identity (guests' hosts usually do not)", mu.Domain)
		}
		if mu.Discover && mu.DiscoverInterval <= 0 {
			mu.DiscoverInterval = DefaultDiscoverInterval
		}
		if mu.Discover && mu.DiscoverInterval < 20*time.Millisecond {
			return nil, fmt.Errorf("component: MUC %s: a discovery interval under 20ms would flood the server", mu.Domain)
		}
		m.mucs[mu.Domain] = mu
	}
	for _, a := range opts.Admins {
		b, err := jidprep.Bare(a)
		if err != nil {
			return nil, fmt.Errorf("component: admin %q: %w", a, err)
		}
		m.admins[b] = true
	}
	return m, nil
}

// routes registers what Moderation serves: knocks, ad-hoc commands and
// the presence of governed rooms.
func (m *Moderation) routes() []muxOption {
	return append([]muxOption{
		handleIQ("set", nameKnock, HandlerFunc(m.knock)),
		handleIQ("set", nameCommand, HandlerFunc(m.command)),
		handleMessage("", nameDataForm, HandlerFunc(m.formAnswer)),
		handlePresence(HandlerFunc(func(_ *session, st *stanza) { m.presence(st) })),
	}, m.bridgeRoutes()...)
}

func (m *Moderation) attach(c *Component) {
	m.c = c
	m.log = c.log
}

// occupantJID is gavel's full JID in rooms for the current session.
func (m *Moderation) occupantJID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.c.opts.Domain + "/" + m.resource
}

// RoomsRestored reports whether the rooms of the previous run are governed
// again (loaded from the store at the first connection): from then on a
// command for one of them reaches it. The command bus waits for it before
// applying the events this gavel missed while it was down.
func (m *Moderation) RoomsRestored() bool { return m.roomsRestored.Load() }

// connected starts a session: every governed room is rejoined at once
// under a fresh resource, and ghosts of the previous session are removed.
func (m *Moderation) connected(sess *session) {
	if !m.restored {
		m.restored = true
		m.restoreRooms()
		m.roomsRestored.Store(true)
	}
	m.mu.Lock()
	m.sess = sess
	m.previous = m.resource
	// The resource is new in every run of gavel (instance) and every
	// session: a restarted gavel must not take its ghost's JID, or its
	// join would be read as that ghost's presence update.
	m.resource = m.c.opts.Nick + "-" + m.instance + "-" + sess.epoch
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	for _, mu := range m.mucs {
		if mu.TrustIdentity {
			m.trust[mu.Domain] = &identityTrust{}
		}
	}
	m.mu.Unlock()
	for _, r := range rooms {
		r.push(event{kind: evConnected, sess: sess})
	}
	for _, mu := range m.mucs {
		m.loops.Add(1)
		go m.checkOwnership(sess, mu)
		if mu.TrustIdentity {
			m.loops.Add(1)
			go m.checkIdentity(sess, mu)
		}
		if mu.Discover {
			m.loops.Add(1)
			go m.discover(sess, mu)
		}
		if m.watches(mu) {
			m.loops.Add(1)
			go m.watchRooms(sess, mu)
		}
	}
}

func (m *Moderation) disconnected() {
	m.loops.Wait() // they end with the session
	m.mu.Lock()
	m.sess = nil
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	for _, r := range rooms {
		r.push(event{kind: evDisconnected})
	}
}

// shutdown leaves every room and stops the room workers.
func (m *Moderation) shutdown(sess *session, deadline time.Time) {
	m.mu.Lock()
	m.closing = true
	from := m.c.opts.Domain + "/" + m.resource
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	var b xb
	m.mu.Lock()
	m.leaveCheckRooms(&b)
	m.mu.Unlock()
	for _, r := range rooms {
		if !r.watching() {
			b.empty("presence", "from", from, "to", r.jid+"/"+r.ownNick(), "type", "unavailable")
		}
		r.push(event{kind: evShutdown})
	}
	if b.Len() > 0 && sess != nil { // nil: leave no room (a duplicate instance)
		_ = sess.write(b.Bytes())
	}
	done := make(chan struct{})
	go func() { m.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
		m.log.Warn("room workers did not stop before the shutdown deadline")
	}
}

// session returns the live session or nil.
func (m *Moderation) session() *session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sess
}

// deliver hands ev to the worker of roomJID, starting one if create is set.
// It reports whether a worker took it. A knock over the room's bound is
// refused here, at once (wait/resource-constraint), and counts as taken.
func (m *Moderation) deliver(roomJID string, create bool, ev event) bool {
	taken, full := m.route(roomJID, create, ev)
	if full {
		k := ev.knock
		m.refuse(k.sess, k.st, knockRoomBusy, "", k.started)
		return true
	}
	return taken
}

// route pushes ev to the worker of roomJID. Events are pushed while m.mu is
// held, so a worker never exits with work queued; nothing is written to
// the server meanwhile. full is set when a knock was over the bound.
func (m *Moderation) route(roomJID string, create bool, ev event) (taken, full bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rooms[roomJID]
	if r == nil {
		if !create || m.closing {
			return false, false
		}
		var err error
		r, err = m.newRoom(roomJID)
		if err != nil {
			return false, false
		}
		m.rooms[roomJID] = r
		delete(m.dormant, roomJID)
		m.metrics.Rooms.Set(float64(len(m.rooms)))
		m.workers.Add(1)
		go r.run()
		if m.sess != nil {
			r.push(event{kind: evConnected, sess: m.sess})
		}
	}
	if !r.pushBounded(ev, m.opts.MaxQueuedKnocks) {
		return false, true
	}
	return true, false
}

// retire removes r if nothing is queued for it; it reports whether it did.
func (m *Moderation) retire(r *room) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.queued() > 0 && !m.closing {
		return false
	}
	if m.rooms[r.jid] == r {
		delete(m.rooms, r.jid)
		m.metrics.Rooms.Set(float64(len(m.rooms)))
	}
	return true
}

// waiting returns how many knocks wait for room roomJID: queued, or held
// while gavel joins it. For tests and diagnostics.
func (m *Moderation) waiting(roomJID string) int {
	m.mu.Lock()
	r := m.rooms[roomJID]
	m.mu.Unlock()
	if r == nil {
		return 0
	}
	done := make(chan int, 1)
	if !r.push(event{kind: evCommand, cmd: func(r *room) error {
		r.qmu.Lock()
		n := r.nknocks
		r.qmu.Unlock()
		done <- n + len(r.deferred)
		return nil
	}}) {
		return 0
	}
	return <-done
}

// Rooms returns the JIDs of the rooms gavel currently governs.
func (m *Moderation) Rooms() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.rooms))
	for j := range m.rooms {
		out = append(out, j)
	}
	return out
}

// presence routes a presence from a room to its worker.
func (m *Moderation) presence(st *stanza) {
	roomJID, nick, ok := strings.Cut(st.From, "/")
	if !ok {
		return
	}
	// The server sends prepared JIDs; preparing again is cheap and makes
	// the worker table's keys the same as ParseRoom's, whatever arrives.
	roomJID = bareOf(roomJID)
	if m.checkPresence(roomJID, nick, st) {
		return
	}
	_, domain, _ := strings.Cut(roomJID, "@")
	if _, governed := m.mucs[domain]; !governed {
		return
	}
	// Presence addressed to a previous session's resource is for a ghost.
	if _, res, _ := strings.Cut(st.To, "/"); res != "" {
		m.mu.Lock()
		cur := m.resource
		m.mu.Unlock()
		if res != cur {
			return
		}
	}
	m.deliver(roomJID, false, event{kind: evPresence, st: st, nick: nick})
}

// bareOf returns the bare JID of a full or bare JID, prepared as the server
// prepares it; "" when it cannot be (the server would not have routed it).
func bareOf(full string) string {
	b, err := jidprep.Bare(full)
	if err != nil {
		return ""
	}
	return b
}

func domainOf(j string) string {
	b := bareOf(j)
	if i := strings.IndexByte(b, '@'); i >= 0 {
		return b[i+1:]
	}
	return b
}
