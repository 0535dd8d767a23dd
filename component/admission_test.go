package component

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

// outcome returns the application condition of a knock's answer.
func outcome(err error) string {
	if err == nil {
		return "granted"
	}
	var xe *xclient.Error
	if errors.As(err, &xe) {
		return xe.App
	}
	return err.Error()
}

// Tenants that are not configured share the default tenant's bucket:
// knocking into [t1]r, [t2]r, ... gets no fresh burst per made-up name.
func TestUnknownTenantsShareTheDefaultBucket(t *testing.T) {
	def := tenant(policy.Token, policy.GuestsMember)
	def.KnocksPerMinute, def.KnocksPerMinutePerJID = 60, 6000 // tenant burst 10
	startModerated(t, shared, map[string]Tenant{"": def}, nil)
	cl := login(t, shared)
	ctx := ctxT(t, 30*time.Second)
	counts := map[string]int{}
	const names = 30
	for i := 0; i < names; i++ {
		room := newRoom(fmt.Sprintf("made-up-%d-%d", roomSeq.Load(), i))
		_, err := cl.Knock(ctx, prosodytest.Component, room, mint(t, room, false, nil))
		counts[outcome(err)]++
	}
	if counts["granted"] > 12 || counts["rate-limited"] < names-12 {
		t.Errorf("%d knocks into %d made-up tenants: %v; want at most the default's burst granted", names, names, counts)
	}
}

// A joiner that keeps knocking faster than its limit gets its burst once:
// no mass reset hands everyone a fresh burst every few minutes.
func TestKnockLimitHasNoMassReset(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	ten := tenant(policy.Token, policy.GuestsDeny)
	ten.KnocksPerMinutePerJID = 6 // one knock every 10 s, burst 5
	startModeratedWith(t, shared, MUC{Domain: prosodytest.MUC}, map[string]Tenant{"": ten}, nil, func(o *ModerationOptions) { o.Clock = clock })
	cl := login(t, shared)
	ctx := ctxT(t, 60*time.Second)
	room := newRoom("")
	knock := func() string {
		_, err := cl.Knock(ctx, prosodytest.Component, room, "")
		return outcome(err)
	}
	for i := 0; i < 5; i++ {
		if o := knock(); o != "token-required" {
			t.Fatalf("knock %d of the burst: %s", i+1, o)
		}
	}
	if o := knock(); o != "rate-limited" {
		t.Fatalf("knock after the burst: %s", o)
	}
	// Twelve minutes, a token every 10 s, two knocks each time: the first
	// spends the new token, the second must always be limited.
	extra := 0
	for step := 0; step < 72; step++ {
		clock.Advance(10 * time.Second)
		knock()
		if knock() != "rate-limited" {
			extra++
		}
	}
	if extra != 0 {
		t.Errorf("a joiner over its limit got %d knocks beyond its rate in 12 minutes", extra)
	}
}

// Anonymous guests flooding knocks with bad signatures do not make any knock
// of good joiners, each within its own limit, come back refused.
func TestGuestFloodDoesNotRefuseGoodKnocks(t *testing.T) {
	ten := tenant(policy.Token, policy.GuestsDeny)
	ten.KnocksPerMinute, ten.KnocksPerMinutePerJID = 600, 30 // tenant burst 100, JID burst 10
	startModerated(t, shared, map[string]Tenant{"": ten}, nil)
	room := newRoom("")
	const guests, perGuest = 400, 5
	attackers := make([]*xclient.Client, guests)
	var wg sync.WaitGroup
	for i := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := xclient.Login(ctxT(t, 30*time.Second), shared.C2SAddr, "", prosodytest.GuestHost, "")
			if err != nil {
				t.Error(err)
				return
			}
			closeAtEnd(t, c)
			attackers[i] = c
		}()
	}
	good := make([]*xclient.Client, 5)
	for i := range good {
		good[i] = login(t, shared)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	bad := mint(t, room, true, func(r *auth.MintRequest) { r.Secret = []byte("not-the-tenant-secret-at-all") })
	var mu sync.Mutex
	floodOut, goodOut := map[string]int{}, map[string]int{}
	ctx := ctxT(t, 60*time.Second)
	start := make(chan struct{})
	var fl sync.WaitGroup
	for _, a := range attackers {
		fl.Add(1)
		go func() {
			defer fl.Done()
			<-start
			var inner sync.WaitGroup
			for k := 0; k < perGuest; k++ {
				inner.Add(1)
				go func() {
					defer inner.Done()
					_, err := a.Knock(ctx, prosodytest.Component, room, bad)
					mu.Lock()
					floodOut[outcome(err)]++
					mu.Unlock()
				}()
			}
			inner.Wait()
		}()
	}
	close(start)
	// Each good joiner knocks 8 times, under its burst of 10, while the
	// flood runs.
	var gw sync.WaitGroup
	for _, g := range good {
		gw.Add(1)
		go func() {
			defer gw.Done()
			for k := 0; k < 8; k++ {
				_, err := g.Knock(ctx, prosodytest.Component, room, mint(t, room, k%2 == 0, nil))
				mu.Lock()
				goodOut[outcome(err)]++
				mu.Unlock()
			}
		}()
	}
	gw.Wait()
	fl.Wait()
	if goodOut["granted"] != 40 {
		t.Errorf("good knocks during the flood: %v, want all 40 granted", goodOut)
	}
	if floodOut["granted"] != 0 {
		t.Errorf("flood knocks granted: %v", floodOut)
	}
	t.Logf("flood of %d bad knocks from %d guests: %v; good knocks: %v", guests*perGuest, guests, floodOut, goodOut)
}

// A guest's knock that the tenant's policy refuses never makes gavel create
// the room: the server never hears of it.
func TestRefusedGuestKnockTouchesNoRoom(t *testing.T) {
	srv := startServer(t, prosodytest.Options{RestrictRoomCreation: true, MUCConfig: "muc_room_default_persistent = true"})
	startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	cl := login(t, srv)
	ctx := ctxT(t, 10*time.Second)
	room := newRoom("")
	_, err := cl.Knock(ctx, prosodytest.Component, room, "")
	wantRefusal(t, err, "auth", "not-authorized", "token-required")
	// Rooms are persistent here: a room gavel had created would outlive
	// its leaving.
	err = cl.IQ(ctx, room, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`, nil)
	var xe *xclient.Error
	if !errors.As(err, &xe) || xe.Condition != "item-not-found" {
		t.Errorf("disco#info on the room after a refused guest knock: %v, want item-not-found (the room was created)", err)
	}
	// The same room with a token is created as usual.
	host := login(t, srv)
	knockJoin(t, host, room, mint(t, room, true, nil), "host")
}

// tenantsFunc resolves tenant names as cmd/gavel does: a configured name
// gets its settings under its name, every other name the default's ("").
func tenantsFunc(tenants map[string]Tenant) func(string) Tenant {
	return func(name string) Tenant {
		if t, ok := tenants[name]; ok {
			t.Name = name
			return t
		}
		t := tenants[""]
		t.Name = ""
		return t
	}
}

// 100,000 distinct joiners and tenant names from outside keep the limiter at
// its cap, and made-up tenant names add no bucket.
func TestAdmissionStaysBounded(t *testing.T) {
	a := newAdmission(0)
	now := time.Now()
	def := Tenant{KnocksPerMinute: 6000, KnocksPerMinutePerJID: 30}
	resolve := tenantsFunc(map[string]Tenant{"": def, "acme": def})
	for i := 0; i < 100000; i++ {
		ten := resolve(fmt.Sprintf("made-up-%d", i))
		a.joiner(ten, fmt.Sprintf("guest-%d@guest.example.test", i), now)
		a.verified(ten, now)
		a.unauthenticated(ten, now)
	}
	if n := a.joiners.Len(); n != maxJoinerBuckets {
		t.Errorf("joiner buckets: %d, want the cap %d", n, maxJoinerBuckets)
	}
	if n := a.tenants.Len(); n != 1 {
		t.Errorf("tenant buckets: %d, want 1 (the default's)", n)
	}
	if n := a.unauth.Len(); n != 2 {
		t.Errorf("unauthenticated buckets: %d, want 2 (the default's and the global one)", n)
	}
}

// Every outcome says what it is on the wire, and every reason auth gives
// maps to one.
func TestKnockOutcomes(t *testing.T) {
	seen := map[string]bool{}
	for o := knockOutcome(0); o < numKnockOutcomes; o++ {
		info := knockOutcomes[o]
		if info.app == "" || seen[info.app] {
			t.Errorf("outcome %d: application condition %q empty or repeated", o, info.app)
		}
		seen[info.app] = true
		if o != knockGranted && (info.typ == "" || info.cond == "" || info.text == "") {
			t.Errorf("outcome %s: incomplete %+v", o, info)
		}
	}
	for _, r := range auth.Reasons {
		if _, ok := tokenOutcomes[r]; !ok {
			t.Errorf("auth reason %s has no outcome", r)
		}
	}
	if o := tokenOutcome(errors.New("not an auth error")); o != knockTokenInvalid {
		t.Errorf("plain error: %s", o)
	}
	for _, r := range []string{policy.RefusalBanned, policy.RefusalTokenExpired, policy.RefusalTokenRequired} {
		if got := policyOutcome(r).String(); got != r {
			t.Errorf("policy refusal %s answered as %s", r, got)
		}
	}
}
