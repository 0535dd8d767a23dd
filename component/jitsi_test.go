package component

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

// identityModule is a test-only stand-in for Jitsi's mod_presence_identity,
// loaded on the account host only (as Jitsi loads it on the main
// VirtualHost, not on the guests'). Like Jitsi's module it removes every
// <identity/> element a client put into its presence, and stamps one from
// what the session's login said. Here the account name plays the token:
// "mod-<id>-..." holds a moderator token for user id <id>, "tok-<id>-..." a
// token without moderator rights; other names hold no token and get no
// identity.
const identityModule = `-- written by gavel's tests: a stand-in for Jitsi's mod_presence_identity
local st = require "util.stanza";

if module.host ~= "example.test" then return end

local function token_of(username)
	local kind, id = username:match("^(%a+)%-([^-]+)");
	if kind == "mod" then return id, "true"; end
	if kind == "tok" then return id, "false"; end
end

local function stamp(event)
	local origin, stanza = event.origin, event.stanza;
	stanza:maptags(function (tag)
		if tag.name == "identity" then return nil; end
		return tag;
	end);
	if not origin or not origin.username then return; end
	local id, moderator = token_of(origin.username);
	if not id then return; end
	local identity = st.stanza("identity")
		:tag("user")
			:tag("id"):text(id):up()
			:tag("name"):text(origin.username):up()
			:tag("moderator"):text(moderator):up()
		:up()
		:tag("group"):text("test-group"):up();
	stanza:add_direct_child(identity);
end

module:hook("pre-presence/bare", stamp);
module:hook("pre-presence/full", stamp);
`

// A Prosody set up as a Jitsi deployment is for gavel: clients create rooms
// (no restrict_room_creation, no room locking), rooms are hidden (Prosody's
// default: gavel lists them with the admin command), and the account host
// stamps <identity/>.
var (
	jitsiOnce sync.Once
	jitsiSrv  *server
	jitsiErr  error
	jitsiDir  string
)

func sharedJitsi(t *testing.T) *server {
	t.Helper()
	jitsiOnce.Do(func() {
		jitsiDir, jitsiErr = os.MkdirTemp("", "gavel-jitsi-")
		if jitsiErr != nil {
			return
		}
		plugins := filepath.Join(jitsiDir, "plugins")
		if jitsiErr = os.MkdirAll(plugins, 0o755); jitsiErr != nil {
			return
		}
		if jitsiErr = os.WriteFile(filepath.Join(plugins, "mod_test_presence_identity.lua"), []byte(identityModule), 0o644); jitsiErr != nil {
			return
		}
		var p *prosodytest.Server
		p, jitsiErr = prosodytest.Start(filepath.Join(jitsiDir, "prosody"), prosodytest.Options{
			RestrictRoomCreation: false,
			PluginPaths:          []string{plugins},
			ExtraModules:         []string{"test_presence_identity"},
			NoRoomLocking:        true, // as Jitsi has it; rooms stay hidden (Prosody's default)
			// As Jitsi has it: beyond the cache, Prosody swaps live rooms
			// to disk, and listing them thrashes.
			MUCConfig: "\tmuc_room_cache_size = 1000\n",
		})
		if jitsiErr == nil {
			jitsiSrv = fromProsody(p)
			atExit(func(ok bool) {
				_ = p.Close()
				if ok {
					os.RemoveAll(jitsiDir)
				} else {
					fmt.Fprintf(os.Stderr, "jitsi prosody directory kept: %s\n", jitsiDir)
				}
			})
		}
	})
	if jitsiErr != nil {
		t.Fatal(jitsiErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prosody log:\n%s", jitsiSrv.Log())
		}
	})
	return jitsiSrv
}

// joinWith joins room as nick with extra raw children in the presence (a
// forged identity) and returns the self-presence.
func joinWith(t *testing.T, cl *xclient.Client, room, nick, extra string) xclient.Presence {
	t.Helper()
	p, err := cl.JoinWith(ctxT(t, 10*time.Second), room, nick, extra)
	if err != nil {
		t.Fatalf("join %s/%s: %v", room, nick, err)
	}
	return p
}

// waitGavel waits until cl sees gavel in room as a moderator.
func waitGavel(t *testing.T, cl *xclient.Client, room string, d time.Duration) {
	t.Helper()
	if _, err := cl.WaitPresence(ctxT(t, d), func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/gavel") && p.Type == "" && p.Role == "moderator"
	}); err != nil {
		t.Fatalf("gavel never entered %s: %v", room, err)
	}
}

// waitRemoved waits until cl sees itself leave room with status code.
func waitRemoved(t *testing.T, cl *xclient.Client, room, nick string, code int) {
	t.Helper()
	p, err := cl.WaitPresence(ctxT(t, 5*time.Second), func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/"+nick) && p.Type == "unavailable" && p.Self()
	})
	if err != nil {
		t.Fatalf("%s was not removed from %s: %v", nick, room, err)
	}
	if !slices.Contains(p.Status, code) {
		t.Errorf("%s removed with status %v, want %d", nick, p.Status, code)
	}
}

// everOwnerless reports whether cl ever saw nick in room with another
// affiliation than owner.
func everOwnerless(cl *xclient.Client, room, nick string) bool {
	for _, p := range cl.Presences() {
		if strings.EqualFold(p.From, room+"/"+nick) && p.Type == "" && p.Affiliation != "owner" {
			return true
		}
	}
	return false
}

func jitsiMUC(discover time.Duration) MUC {
	return MUC{Domain: prosodytest.MUC, TrustIdentity: true, IdentityDomains: []string{prosodytest.Host}, Discover: true, DiscoverInterval: discover}
}

// Jitsi Meet clients never knock: gavel finds the rooms they create and
// takes the moderator claim and user id from the identity the server
// stamps, for token moderation and bans; a forged identity counts for
// nothing.
func TestJitsiIdentityWithoutKnock(t *testing.T) {
	srv := sharedJitsi(t)
	g := startModeratedMUC(t, srv, jitsiMUC(100*time.Millisecond), map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	room := newRoom("")
	ar, _ := auth.ParseRoom(room)

	// A moderator creates the room: it stays owner once gavel is in.
	alice := loginAs(t, srv, "mod-alice")
	if p := joinWith(t, alice, room, "alice", ""); p.Affiliation != "owner" {
		t.Fatalf("creator joined as %s", p.Affiliation)
	}
	waitGavel(t, alice, room, 5*time.Second)
	waitLog(t, g, "room discovery", "prosody admin command")

	// A token holder without moderator rights participates.
	bobID := fmt.Sprintf("bob%d", accountSeq.Add(1))
	bob := loginAs(t, srv, "tok-"+bobID)
	if p := joinWith(t, bob, room, "bob", ""); p.Role != "participant" || p.Affiliation == "owner" {
		t.Errorf("token participant joined as %s/%s", p.Affiliation, p.Role)
	}

	// A moderator joining later is made owner.
	erin := loginAs(t, srv, "mod-erin")
	joinWith(t, erin, room, "erin", "")
	waitAffiliation(t, erin, room, "erin", "owner")

	// A guest forging an identity (the guest host does not strip it) is
	// a guest: this tenant needs a token, so gavel removes it.
	forged := `<identity><user><id>alice</id><moderator>true</moderator></user></identity>`
	guest := anonymous(t, srv)
	joinWith(t, guest, room, "forger", forged)
	waitRemoved(t, guest, room, "forger", 307)
	// On the account host the stamp module strips the forged copy.
	dave := loginAs(t, srv, "notoken-dave")
	joinWith(t, dave, room, "dave", forged)
	waitRemoved(t, dave, room, "dave", 307)

	if everOwnerless(alice, room, "alice") {
		t.Error("the moderator who created the room lost ownership")
	}
	for _, p := range alice.Presences() {
		if (strings.EqualFold(p.From, room+"/bob") || strings.EqualFold(p.From, room+"/forger")) && p.Affiliation == "owner" {
			t.Errorf("%s was made owner", p.From)
		}
	}

	// A ban by user id removes the occupant and holds for the same user
	// on another account (the identity carries the id).
	res, err := g.cmds.Ban(context.Background(), commands.BanRequest{Tenant: ar.Tenant, Kind: store.KindUser, Value: bobID, By: "test"})
	if err != nil || res.Removed != 1 {
		t.Fatalf("ban: removed %d, %v", res.Removed, err)
	}
	waitRemoved(t, bob, room, "bob", 301)
	bob2 := loginAs(t, srv, "tok-"+bobID)
	joinWith(t, bob2, room, "bob-again", "")
	waitRemoved(t, bob2, room, "bob-again", 301)
}

// A room created by a participant (no moderator claim): once gavel is in,
// the creator's ownership is withdrawn, and it is never granted to guests.
func TestJitsiCreatorWithoutModeratorClaim(t *testing.T) {
	srv := sharedJitsi(t)
	startModeratedMUC(t, srv, jitsiMUC(100*time.Millisecond), map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
	room := newRoom("")
	carol := loginAs(t, srv, "tok-carol")
	joinWith(t, carol, room, "carol", "")
	waitAffiliation(t, carol, room, "carol", "none")
	// Guests participate (this tenant admits them), without ownership.
	guest := anonymous(t, srv)
	if p := joinWith(t, guest, room, "guest", ""); p.Role != "participant" || p.Affiliation == "owner" {
		t.Errorf("guest joined as %s/%s", p.Affiliation, p.Role)
	}
	// A guest who creates a room is no owner either.
	other := newRoom("")
	guest2 := anonymous(t, srv)
	joinWith(t, guest2, other, "g", "")
	waitAffiliation(t, guest2, other, "g", "none")
}

// Auto-owner and all-owners work for clients that never knock.
func TestJitsiOtherPolicies(t *testing.T) {
	srv := sharedJitsi(t)
	t.Run("auto-owner", func(t *testing.T) {
		startModeratedMUC(t, srv, jitsiMUC(100*time.Millisecond), map[string]Tenant{"": tenant(policy.AutoOwner, policy.GuestsMember)}, nil)
		room := newRoom("")
		a, b := loginAs(t, srv, "tok-a"), loginAs(t, srv, "tok-b")
		joinWith(t, a, room, "a", "")
		waitGavel(t, a, room, 5*time.Second)
		if p := joinWith(t, b, room, "b", ""); p.Affiliation == "owner" {
			t.Error("the second joiner was made owner")
		}
		if everOwnerless(a, room, "a") {
			t.Error("the first joiner lost ownership")
		}
		_ = a.Leave(ctxT(t, time.Second), room, "a")
		waitAffiliation(t, b, room, "b", "owner")
	})
	t.Run("all-owners", func(t *testing.T) {
		startModeratedMUC(t, srv, jitsiMUC(100*time.Millisecond), map[string]Tenant{"": tenant(policy.AllOwners, policy.GuestsMember)}, nil)
		room := newRoom("")
		c := loginAs(t, srv, "tok-c")
		joinWith(t, c, room, "c", "")
		waitGavel(t, c, room, 5*time.Second)
		guest := anonymous(t, srv)
		joinWith(t, guest, room, "guest", "")
		waitAffiliation(t, guest, room, "guest", "owner")
		if everOwnerless(c, room, "c") {
			t.Error("the creator lost ownership under all-owners")
		}
	})
}

// Secure-domain mode (Jicofo's XMPP authentication): users of the
// authenticated domain are moderators, guests of the anonymous domain are
// not; with or without a knock.
func TestJitsiSecureDomain(t *testing.T) {
	srv := sharedJitsi(t)
	muc := MUC{Domain: prosodytest.MUC, SecureDomains: []string{prosodytest.Host}, Discover: true, DiscoverInterval: 100 * time.Millisecond}
	startModeratedMUC(t, srv, muc, map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
	room := newRoom("")
	u1 := loginAs(t, srv, "user")
	joinWith(t, u1, room, "u1", "")
	waitGavel(t, u1, room, 5*time.Second)
	guest := anonymous(t, srv)
	if p := joinWith(t, guest, room, "guest", ""); p.Affiliation == "owner" || p.Role != "participant" {
		t.Errorf("guest joined as %s/%s", p.Affiliation, p.Role)
	}
	u2 := loginAs(t, srv, "user")
	joinWith(t, u2, room, "u2", "")
	waitAffiliation(t, u2, room, "u2", "owner")
	if everOwnerless(u1, room, "u1") {
		t.Error("the authenticated creator lost ownership")
	}
	for _, p := range u1.Presences() {
		if strings.EqualFold(p.From, room+"/guest") && p.Affiliation == "owner" {
			t.Error("the guest was made owner")
		}
	}
	// The knock: an authenticated user without a token is a moderator.
	knocked := newRoom("")
	u3 := loginAs(t, srv, "user")
	res, p := knockJoin(t, u3, knocked, "", "u3")
	if res.Role != "moderator" || p.Affiliation != "owner" {
		t.Errorf("secure-domain knock: %+v, presence %s/%s", res, p.Affiliation, p.Role)
	}
	g := anonymous(t, srv)
	if res, _ := knockJoin(t, g, knocked, "", "g"); res.Role != "participant" {
		t.Errorf("guest knock: %+v", res)
	}
}

// trust_identity is refused where the stamp cannot be relied on: without
// identity domains gavel does not start; a domain that is not a Prosody
// VirtualHost (ejabberd has no mod_presence_identity; an unknown domain)
// is refused at connect and its identities are ignored.
func TestTrustIdentityRefused(t *testing.T) {
	_, err := NewModeration(ModerationOptions{
		MUCs:     []MUC{{Domain: prosodytest.MUC, TrustIdentity: true}},
		Verifier: nopVerifier{}, Store: store.NewMemory(), Tenant: func(string) Tenant { return Tenant{} },
	})
	if err == nil || !strings.Contains(err.Error(), "identity domains") {
		t.Errorf("trust_identity without identity domains: %v", err)
	}

	t.Run("prosody", func(t *testing.T) {
		srv := sharedJitsi(t)
		muc := jitsiMUC(100 * time.Millisecond)
		muc.IdentityDomains = []string{prosodytest.Host, "nowhere.example.test"}
		g := startModeratedMUC(t, srv, muc, map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
		waitLog(t, g, "trust_identity refused: identities from this domain are ignored", "nowhere.example.test")
		waitLog(t, g, "trusting <identity/> in presence", prosodytest.Host)
	})
	t.Run("ejabberd", func(t *testing.T) {
		srv := sharedEjabberd(t)
		muc := MUC{Domain: prosodytest.MUC, TrustIdentity: true, IdentityDomains: []string{prosodytest.Host}, Discover: true}
		g := startModeratedMUC(t, srv, muc, map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
		waitLog(t, g, "trust_identity refused: identities from this domain are ignored", "ejabberd has no mod_presence_identity")
		waitLog(t, g, "room discovery", "disco#items") // ejabberd has no such command
		room := newRoom("")
		host := login(t, srv)
		knockJoin(t, host, room, mint(t, room, true, nil), "host")
		// ejabberd relays a forged identity; gavel ignores it.
		forger := login(t, srv)
		joinWith(t, forger, room, "forger", `<identity><user><id>x</id><moderator>true</moderator></user></identity>`)
		waitLog(t, g, "ignoring <identity/> from a domain not trusted to stamp it", "")
		for _, p := range host.Presences() {
			if strings.EqualFold(p.From, room+"/forger") && p.Affiliation == "owner" {
				t.Error("a forged identity made its sender owner")
			}
		}
	})
}

type nopVerifier struct{}

func (nopVerifier) Verify(context.Context, string, auth.Room) (*auth.Claims, error) {
	return nil, errors.New("no tokens here")
}
func (nopVerifier) Forget([32]byte) {}

// waitLog waits for a log entry with message msg and, if want is set, a
// field value containing want.
func waitLog(t *testing.T, g *moderated, msg, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range g.logs.FilterMessage(msg).All() {
			if want == "" {
				return
			}
			for _, v := range e.ContextMap() {
				if s, ok := v.(string); ok && strings.Contains(s, want) {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no log %q with %q", msg, want)
}

// How long after a client creates a room is gavel moderator there with the
// policy applied? Rooms are created at a steady rate, so that they fall on
// every phase of the poll interval. GAVEL_DISCOVERY_SAMPLES sets the
// number of rooms per case (default 12), GAVEL_DISCOVERY_INTERVAL the poll
// interval (default DefaultDiscoverInterval).
func TestRoomDiscoveryDelay(t *testing.T) {
	srv := sharedJitsi(t)
	samples := 12
	if v, err := strconv.Atoi(os.Getenv("GAVEL_DISCOVERY_SAMPLES")); err == nil && v > 0 {
		samples = v
	}
	interval := DefaultDiscoverInterval
	if v, err := time.ParseDuration(os.Getenv("GAVEL_DISCOVERY_INTERVAL")); err == nil && v > 0 {
		interval = v
	}
	cases := []struct {
		name   string
		policy policy.Kind
		prefix string
		// applied says whether a presence of the creator's shows the
		// policy applied.
		applied func(p xclient.Presence) bool
	}{
		// Auto-owner: the creator is the first joiner and stays owner;
		// gavel's arrival is the event.
		{"auto-owner", policy.AutoOwner, "tok-auto", func(p xclient.Presence) bool { return p.Affiliation == "owner" }},
		// Token: a creator without a moderator claim loses ownership.
		{"token", policy.Token, "tok-tok", func(p xclient.Presence) bool { return p.Affiliation == "none" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := startModeratedMUC(t, srv, jitsiMUC(interval), map[string]Tenant{"": tenant(c.policy, policy.GuestsMember)}, nil)
			clients := make([]*xclient.Client, samples)
			for i := range clients {
				clients[i] = loginAs(t, srv, c.prefix)
			}
			delays := make([]time.Duration, samples)
			errs := make([]error, samples)
			var wg sync.WaitGroup
			// One new room every 37 ms (27 a second, a busy deployment),
			// which falls on every phase of the poll interval.
			const stagger = 37 * time.Millisecond
			for i, cl := range clients {
				wg.Add(1)
				go func(i int, cl *xclient.Client) {
					defer wg.Done()
					time.Sleep(time.Duration(i) * stagger)
					room := newRoom("")
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					start := time.Now()
					if _, err := cl.Join(ctx, room, "creator"); err != nil {
						errs[i] = err
						return
					}
					if _, err := cl.WaitPresence(ctx, func(p xclient.Presence) bool {
						return strings.EqualFold(p.From, room+"/gavel") && p.Role == "moderator"
					}); err != nil {
						errs[i] = fmt.Errorf("gavel never came: %w", err)
						return
					}
					if _, err := cl.WaitPresence(ctx, func(p xclient.Presence) bool {
						return strings.EqualFold(p.From, room+"/creator") && p.Type == "" && c.applied(p)
					}); err != nil {
						errs[i] = fmt.Errorf("policy not applied: %w", err)
						return
					}
					delays[i] = time.Since(start)
				}(i, cl)
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					for _, e := range g.logs.All() {
						t.Logf("%s %s %v", e.Time.Format("15:04:05.000"), e.Message, e.ContextMap())
					}
					t.Fatalf("room %d: %v", i, err)
				}
			}
			slices.Sort(delays)
			pct := func(q float64) time.Duration { return delays[min(len(delays)-1, int(q*float64(len(delays))))] }
			t.Logf("%s, poll every %v, %d rooms: from the creator's join to gavel moderator and the policy applied: p50 %v, p95 %v, max %v",
				c.name, interval, samples, pct(0.50).Round(time.Millisecond), pct(0.95).Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
			if delays[len(delays)-1] > interval+5*time.Second {
				t.Errorf("max delay %v: discovery is not keeping to its interval", delays[len(delays)-1])
			}
		})
	}
}

// What does one poll cost with many rooms? Run with GAVEL_ROOMLIST_COST=N
// (rooms); it reports the round trip of each list method and the CPU time
// Prosody spends per poll.
func TestRoomListCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("GAVEL_ROOMLIST_COST"))
	if n <= 0 {
		t.Skip("set GAVEL_ROOMLIST_COST=<rooms> to measure")
	}
	p, err := prosodytest.Start(t.TempDir(), prosodytest.Options{NoRoomLocking: true, MUCConfig: "\tmuc_room_cache_size = 10000\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	srv := fromProsody(p)
	g := startModeratedMUC(t, srv, MUC{Domain: prosodytest.MUC}, map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
	cl := login(t, srv)
	ctx := ctxT(t, 10*time.Minute)
	for i := 0; i < n; i++ {
		if err := cl.Send(ctx, fmt.Sprintf(`<presence to='cost%d@%s/u'><x xmlns='http://jabber.org/protocol/muc'/></presence>`, i, prosodytest.MUC)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, fmt.Sprintf("cost%d@%s/u", n-1, prosodytest.MUC))
	}); err != nil {
		t.Fatal(err)
	}
	sess := g.mod.session()
	cpu := func() time.Duration {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID()))
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		return time.Duration(u+s) * 10 * time.Millisecond // USER_HZ 100
	}
	for _, m := range []listMethod{listCommand, listItems} {
		const polls = 50
		var rtts []time.Duration
		c0 := cpu()
		got := 0
		for i := 0; i < polls; i++ {
			method := m
			start := time.Now()
			listed, err := g.mod.listRooms(sess, prosodytest.MUC, &method)
			if err != nil {
				t.Fatal(err)
			}
			rtts = append(rtts, time.Since(start))
			got = len(listed)
		}
		c1 := cpu()
		slices.Sort(rtts)
		t.Logf("%s, %d rooms live (%d listed; rooms are hidden unless public): round trip p50 %v, p95 %v; Prosody CPU %v per poll",
			m, n, got, rtts[polls/2].Round(10*time.Microsecond), rtts[polls*95/100].Round(10*time.Microsecond), ((c1 - c0) / polls).Round(10*time.Microsecond))
	}
}
