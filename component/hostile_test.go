package component

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/policy"
)

// A flood of bad tokens from one JID is cut off by its own rate limit,
// and a good joiner from another JID still gets in at once.
func TestBadTokenFloodDoesNotStarveGoodJoiners(t *testing.T) {
	ten := tenant(policy.Token, policy.GuestsDeny)
	ten.KnocksPerMinutePerJID = 30
	g := startModerated(t, shared, map[string]Tenant{"": ten}, nil)
	room := newRoom("")
	attacker := login(t, shared)
	const flood = 300
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := 0; i < flood; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := attacker.Knock(ctxT(t, 20*time.Second), prosodytest.Component, room, "eyJhbGciOiJIUzI1NiJ9.e30.bad")
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				outcomes["granted"]++
				return
			}
			s := err.Error()
			outcomes[s[strings.LastIndexByte(s, '(')+1:strings.LastIndexByte(s, ')')]]++
		}()
	}
	good := login(t, shared)
	start := time.Now()
	res, p := knockJoin(t, good, room, mint(t, room, true, nil), "host")
	took := time.Since(start)
	wg.Wait()
	if p.Role != "moderator" || res.Affiliation != "owner" {
		t.Errorf("good joiner during the flood: %+v %s", res, p.Role)
	}
	if outcomes["granted"] != 0 || outcomes["rate-limited"] < flood/2 {
		t.Errorf("flood outcomes: %v", outcomes)
	}
	if !g.c.Connected() {
		t.Error("gavel lost its connection during the flood")
	}
	t.Logf("flood of %d bad knocks: %v; good knock+join took %v", flood, outcomes, took)
}

// Stanzas sent straight to the component with odd contents get an answer
// or are ignored; the session stays up.
func TestMalformedStanzasKeepTheSession(t *testing.T) {
	g := startModerated(t, shared, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	cl := login(t, shared)
	ctx := ctxT(t, 10*time.Second)
	to := prosodytest.Component + "/x"
	junk := []string{
		`<presence to='` + to + `'><x xmlns='http://jabber.org/protocol/muc#user'><status code='abc'/><item affiliation='nonsense' jid='@@@'/></x></presence>`,
		`<presence to='` + to + `' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'/></presence>`,
		`<message to='` + to + `'><body>` + strings.Repeat("x", 20000) + `</body></message>`,
		`<iq type='result' id='nobody-waits' to='` + to + `'/>`,
		`<iq type='set' id='k1' to='` + prosodytest.Component + `'><knock xmlns='urn:gavel:knock:0' room='` + strings.Repeat("a", 5000) + `@conference.example.test'><token>` + strings.Repeat("A", 20000) + `</token></knock></iq>`,
		`<iq type='set' id='k2' to='` + prosodytest.Component + `'><knock xmlns='urn:gavel:knock:0'/></iq>`,
		`<iq type='set' id='c1' to='` + prosodytest.Component + `'><command xmlns='http://jabber.org/protocol/commands' node='no-such'/></iq>`,
	}
	for _, j := range junk {
		if err := cl.Send(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	// Still serving: a ping and a normal knock work.
	if err := cl.IQ(ctx, prosodytest.Component, "get", `<ping xmlns='urn:xmpp:ping'/>`, nil); err != nil {
		t.Fatalf("ping after junk: %v", err)
	}
	room := newRoom("")
	knockJoin(t, cl, room, mint(t, room, true, nil), "after")
	if g.c.Reconnects() != 0 {
		t.Errorf("session was dropped %d times", g.c.Reconnects())
	}
	_, err := cl.Knock(ctx, prosodytest.Component, strings.Repeat("a", 3000)+"@conference.example.test", "")
	wantRefusal(t, err, "modify", "bad-request", "bad-room")
}
