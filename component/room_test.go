package component

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

// blackholeModule makes the MUC drop, without an answer, every presence
// the component sends to the rooms named in a file (one local part a
// line): a join that the server never answers, as ejabberd does when a
// rejoin races the room's teardown. Emptying the file ends it.
const blackholeModule = `-- written by gavel's tests: swallow the component's presence to some rooms
local jid = require "util.jid";
local file = module:get_option_string("gavel_blackhole_file");

local function swallowed(room)
	local f = io.open(file, "r");
	if not f then return false; end
	for line in f:lines() do
		if line == room then f:close(); return true; end
	end
	f:close();
	return false;
end

module:hook("presence/full", function (event)
	local stanza = event.stanza;
	if jid.host(stanza.attr.from) ~= "mod.example.test" then return; end
	if swallowed(jid.node(stanza.attr.to)) then return true; end
end, 1000);
`

// blackhole is a Prosody of the test's own whose MUC drops gavel's
// presence to the rooms written with set.
type blackhole struct {
	*server
	file string
}

func startBlackhole(t *testing.T) *blackhole {
	t.Helper()
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plugins, "mod_gavel_blackhole.lua"), []byte(blackholeModule), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "blackhole")
	srv := startServer(t, prosodytest.Options{
		RestrictRoomCreation: true,
		PluginPaths:          []string{plugins},
		MUCModules:           []string{"gavel_blackhole"},
		MUCConfig:            "\tgavel_blackhole_file = \"" + file + "\"\n",
	})
	return &blackhole{server: srv, file: file}
}

// set makes the MUC swallow gavel's presence to the room JID room, or to
// none ("").
func (b *blackhole) set(t *testing.T, room string) {
	t.Helper()
	local, _, _ := strings.Cut(room, "@")
	if err := os.WriteFile(b.file, []byte(local+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A join the server never answers no longer wedges the room: it is tried
// again, then the waiting knock is refused with room-unavailable within
// the bound, and the next knock, once the server answers again, succeeds.
func TestJoinTimeout(t *testing.T) {
	srv := startBlackhole(t)
	const timeout, retries = 300 * time.Millisecond, 2
	g := startModeratedWith(t, srv.server, MUC{Domain: prosodytest.MUC}, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil, func(o *ModerationOptions) {
		o.JoinTimeout, o.JoinRetries = timeout, retries
	})
	room := newRoom("")
	srv.set(t, room)
	host := login(t, srv.server)
	tok := mint(t, room, true, nil)
	start := time.Now()
	_, err := host.Knock(ctxT(t, 10*time.Second), prosodytest.Component, room, tok)
	wantRefusal(t, err, "wait", "service-unavailable", "room-unavailable")
	// Three joins of 300 ms and two pauses (200, 300 ms), with slack.
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the refusal took %v", took)
	}
	if n := counter(g.mod.metrics.Joins.WithLabelValues("retried")); n != retries {
		t.Errorf("joins retried: %v, want %d", n, retries)
	}
	if n := counter(g.mod.metrics.Joins.WithLabelValues("timeout")); n != 1 {
		t.Errorf("joins timed out: %v, want 1", n)
	}

	srv.set(t, "")
	if _, p := knockJoin(t, host, room, tok, "host"); p.Affiliation != "owner" {
		t.Errorf("after the server answers again: %s/%s", p.Affiliation, p.Role)
	}
}

// Knocks waiting for one room are bounded: over the bound a knock is
// refused at once with wait/resource-constraint, and counted.
func TestKnockQueueBound(t *testing.T) {
	srv := startBlackhole(t)
	g := startModeratedWith(t, srv.server, MUC{Domain: prosodytest.MUC}, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil, func(o *ModerationOptions) {
		o.JoinTimeout, o.JoinRetries, o.MaxQueuedKnocks = 5*time.Second, -1, 2
	})
	room := newRoom("")
	srv.set(t, room)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		cl := login(t, srv.server)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cl.Knock(ctxT(t, 10*time.Second), prosodytest.Component, room, mint(t, room, false, nil))
			errs <- err
		}()
	}
	// Both wait for the join (seen in the log), the third is over the bound.
	waitFor(t, "two knocks waiting", func() bool {
		return counter(g.mod.metrics.Joins.WithLabelValues("timeout")) == 0 && g.mod.waiting(room) == 2
	})
	start := time.Now()
	_, err := login(t, srv.server).Knock(ctxT(t, 10*time.Second), prosodytest.Component, room, mint(t, room, false, nil))
	wantRefusal(t, err, "wait", "resource-constraint", "room-busy")
	if took := time.Since(start); took > time.Second {
		t.Errorf("the refusal took %v: it must not wait for the join", took)
	}
	if n := counter(g.mod.metrics.Knocks.WithLabelValues("room-busy")); n != 1 {
		t.Errorf("room-busy refusals counted: %v", n)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		wantRefusal(t, err, "wait", "service-unavailable", "room-unavailable")
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A client that took the nick gavel in a room discovery finds does not
// lock gavel out: gavel enters under another nick and governs the room.
func TestNickTaken(t *testing.T) {
	srv := sharedJitsi(t)
	g := startModeratedMUC(t, srv, jitsiMUC(100*time.Millisecond), map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	room := newRoom("")
	// A client with a participant's token creates the room as "gavel".
	squatter := loginAs(t, srv, "tok-squatter")
	joinWith(t, squatter, room, "gavel", "")
	// gavel enters anyway, and withdraws the ownership the client got
	// from creating the room: its token does not make it a moderator.
	waitAffiliation(t, squatter, room, "gavel", "none")
	// A moderator who joins is made owner.
	erin := loginAs(t, srv, "mod-erin")
	joinWith(t, erin, room, "erin", "")
	waitAffiliation(t, erin, room, "erin", "owner")
	var nick string
	for _, p := range erin.Presences() {
		if _, n, _ := strings.Cut(p.From, "/"); strings.HasPrefix(n, "gavel-") && p.Role == "moderator" {
			nick = n
		}
	}
	if nick == "" {
		t.Fatalf("gavel is not in the room under another nick: %+v", erin.Presences())
	}
	waitLog(t, g, "gavel's nick is taken in the room: joining under another", nick)
	// gavel tells its own presence under that nick from the client's:
	// when both clients leave, it leaves too.
	_ = squatter.Leave(ctxT(t, time.Second), room, "gavel")
	_ = erin.Leave(ctxT(t, time.Second), room, "erin")
	waitRooms(t, g.mod, 0)
}

// fakeClock is a Clock the test moves by hand.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Time
	f    func()
	done bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// Advance moves the clock by d and runs the timers that are due, in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		go t.f()
	}
}

// Owner rights from a token end when it expires, by the injected clock: no
// sleeping for the token's lifetime.
func TestTokenExpiryOnFakeClock(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		clock := &fakeClock{now: time.Now()}
		startModeratedWith(t, srv, MUC{Domain: prosodytest.MUC}, map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil, func(o *ModerationOptions) {
			o.Clock = clock
		})
		room := newRoom("")
		host, watcher := login(t, srv), login(t, srv)
		tok := mint(t, room, true, func(r *auth.MintRequest) { r.TTL = time.Hour })
		if _, p := knockJoin(t, host, room, tok, "host"); p.Affiliation != "owner" {
			t.Fatalf("host joined as %s", p.Affiliation)
		}
		knockJoin(t, watcher, room, mint(t, room, false, nil), "watcher")
		clock.Advance(time.Hour + auth.DefaultLeeway + time.Second) // rights end at exp plus the leeway
		p, err := watcher.WaitPresence(ctxT(t, 5*time.Second), func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/host") && p.Type == "" && p.Affiliation != "owner"
		})
		if err != nil {
			t.Fatalf("owner rights did not end with the token: %v", err)
		}
		if p.Role == "moderator" {
			t.Errorf("after expiry host is still moderator")
		}
	})
}

// counter returns the value of a counter.
func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// gauge returns the value of a gauge.
func gauge(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}
