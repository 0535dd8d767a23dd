package component

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

// TestBridgeLuaAllocation measures (it checks nothing) what a bridged
// visit costs Prosody's Lua heap beyond the same visit to a room the
// module skips, with Prosody's collector stopped: allocation, unlike CPU
// time, repeats to the byte between runs, and most of Prosody's CPU
// during joins is collecting it (docs/BENCHMARKS.md). 20 clients holding
// tokens (one a moderator) join a room at once and leave, 6 rounds per
// room, gavel answering with clear_on_leave. Opt-in: GAVEL_BRIDGE_ALLOC=1
// go test ./component/ -run TestBridgeLuaAllocation -v
func TestBridgeLuaAllocation(t *testing.T) {
	if os.Getenv("GAVEL_BRIDGE_ALLOC") == "" {
		t.Skip("a measurement: set GAVEL_BRIDGE_ALLOC=1 to run it")
	}
	onEachProsody(t, func(t *testing.T, srv *server) {
		startModeratedMUC(t, srv, bridgeMUC(), map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
		focus := loginFocus(t, srv)
		const clients, rounds = 20, 6
		bridged := newRoom("")
		// The module's default gavel_bridge_skip_rooms.
		skipped := "__jicofo-health-check-" + strings.TrimSuffix(newRoom(""), "@"+prosodytest.MUC) + "@" + prosodytest.MUC
		joinWith(t, focus, bridged, "focus", "")
		joinWith(t, focus, skipped, "focus", "")
		var cs []*xclient.Client
		for i := 0; i < clients; i++ {
			cs = append(cs, loginToken(t, srv, mint(t, bridged, i == 0, nil)))
		}
		settleBridge(t)
		visit := func(room string) float64 {
			bridgeShell(t, srv, `collectgarbage("collect")`)
			bridgeShell(t, srv, `collectgarbage("stop")`)
			defer bridgeShell(t, srv, `collectgarbage("restart")`)
			before := luaKiB(t, srv)
			var wg sync.WaitGroup
			for i, c := range cs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := c.Join(ctxT(t, 10*time.Second), room, fmt.Sprintf("j%d", i)); err != nil {
						t.Errorf("join %s: %v", room, err)
					}
				}()
			}
			wg.Wait()
			for i, c := range cs {
				_ = c.Leave(ctxT(t, 5*time.Second), room, fmt.Sprintf("j%d", i))
			}
			settleBridge(t) // the leaves and gavel's resets
			return (luaKiB(t, srv) - before) / clients
		}
		var s, b []float64
		for r := 0; r < rounds; r++ {
			s = append(s, visit(skipped))
			b = append(b, visit(bridged))
		}
		slices.Sort(s)
		slices.Sort(b)
		ms, mb := (s[rounds/2-1]+s[rounds/2])/2, (b[rounds/2-1]+b[rounds/2])/2
		t.Logf("Lua KiB allocated per visit, median of %d rounds: skipped room %.1f (%.1f-%.1f), bridged %.1f (%.1f-%.1f), bridge adds %.1f",
			rounds, ms, s[0], s[rounds-1], mb, b[0], b[rounds-1], mb-ms)
	})
}

// settleBridge gives the server time to finish what the last stanzas started.
func settleBridge(t *testing.T) {
	t.Helper()
	time.Sleep(700 * time.Millisecond)
}

// luaKiB is Prosody's Lua heap in KiB (collectgarbage("count")).
func luaKiB(t *testing.T, srv *server) float64 {
	t.Helper()
	out := bridgeShell(t, srv, `collectgarbage("count")`)
	f := strings.Fields(out)
	for i := len(f) - 1; i >= 0; i-- {
		if v, err := strconv.ParseFloat(strings.TrimSuffix(f[i], "."), 64); err == nil {
			return v
		}
	}
	t.Fatalf("collectgarbage count: %q", out)
	return 0
}
