package policy

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// benchRoom returns a room with ten present occupants, the first of them
// owner, and the JIDs of count other users.
func benchRoom(tb testing.TB, opts Options, count int) (r *Room, bare, full []string) {
	r = NewRoom("meet@conference.example.test", opts)
	for i := range 10 {
		b := fmt.Sprintf("resident%d@example.test", i)
		id := Identity{HasToken: true, UserID: b, Moderator: i == 0}
		g, _ := r.Knock(b, b+"/web", id, t0)
		r.Joined(Presence{Nick: b[:9], FullJID: b + "/web", BareJID: b, Affiliation: g.Affiliation, Role: g.Role}, t0)
	}
	if r.Owners() < 1 || r.Len() != 10 {
		tb.Fatalf("bench room: %d owners, %d occupants", r.Owners(), r.Len())
	}
	for i := range count {
		b := fmt.Sprintf("user%d@example.test", i)
		bare, full = append(bare, b), append(full, b+"/web")
	}
	return r, bare, full
}

var benchConfigs = []struct {
	name string
	opts Options
}{
	{"token open", Options{Kind: Token, Guests: GuestsMember, ClearOnLeave: true}},
	{"token members-only", Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true}},
	{"auto-owner", Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true}},
	{"all-owners", Options{Kind: AllOwners, Guests: GuestsMember, ClearOnLeave: true}},
}

// BenchmarkKnock measures knock decisions in a room of ten, from users whose
// knocks are still waiting (a retry replaces the earlier one).
func BenchmarkKnock(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(c.name, func(b *testing.B) {
			r, bare, full := benchRoom(b, c.opts, 32)
			id := Identity{HasToken: true, UserID: "u", Expires: t0.Add(time.Hour)}
			now := t0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % len(bare)
				r.Knock(bare[k], full[k], id, now)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// BenchmarkJoinLeave measures a visit: knock, join presence, leave. Each is
// a decision.
func BenchmarkJoinLeave(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(c.name, func(b *testing.B) {
			r, bare, full := benchRoom(b, c.opts, 32)
			id := Identity{HasToken: true, UserID: "u", Expires: t0.Add(time.Hour)}
			now := t0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % len(bare)
				g, _ := r.Knock(bare[k], full[k], id, now)
				r.Joined(Presence{Nick: "visitor", FullJID: full[k], BareJID: bare[k], Affiliation: g.Affiliation, Role: g.Role}, now)
				r.Left("visitor", now)
			}
			b.ReportMetric(3*float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// BenchmarkMemory builds 10,000 rooms of 10 knocked occupants each (a
// members-only auto-owner room: every occupant has a known affiliation) and
// reports the heap per occupant: the Room state alone, and with the JID and
// nick strings the caller would hold anyway.
func BenchmarkMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		policy, total := measureMemory(b, 10000, 10)
		b.ReportMetric(policy, "bytes/occupant")
		b.ReportMetric(total, "bytes/occupant-with-strings")
	}
}

func TestMemoryBudget(t *testing.T) {
	if policy, total := measureMemory(t, 1000, 10); policy > 1024 || total > 1024 {
		t.Errorf("%.0f bytes per occupant (%.0f with strings), budget 1024", policy, total)
	}
}

func measureMemory(tb testing.TB, rooms, per int) (policy, total float64) {
	opts := Options{Kind: AutoOwner, Guests: GuestsDeny, ClearOnLeave: true, BotDomains: bots}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	type who struct{ nick, full, bare, uid string }
	start := heap()
	people := make([][]who, rooms)
	for i := range people {
		people[i] = make([]who, per)
		for j := range people[i] {
			bare := fmt.Sprintf("user%d-%d@example.test", j, i)
			people[i][j] = who{fmt.Sprintf("User %d", j), bare + "/web-" + fmt.Sprint(i), bare, fmt.Sprintf("uid-%d-%d", i, j)}
		}
	}
	names := heap()
	rs := make([]*Room, rooms)
	for i := range rs {
		r := NewRoom(fmt.Sprintf("room%d@conference.example.test", i), opts)
		for _, p := range people[i] {
			id := Identity{HasToken: true, UserID: p.uid, Expires: t0.Add(time.Hour)}
			g, _ := r.Knock(p.bare, p.full, id, t0)
			r.Joined(Presence{Nick: p.nick, FullJID: p.full, BareJID: p.bare, Affiliation: g.Affiliation, Role: g.Role}, t0)
		}
		if r.Len() != per {
			tb.Fatalf("room %d has %d occupants", i, r.Len())
		}
		rs[i] = r
	}
	end := heap()
	runtime.KeepAlive(rs)
	runtime.KeepAlive(people)
	n := float64(rooms * per)
	return float64(end-names) / n, float64(end-start) / n
}

func TestKnockAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are measured without -short")
	}
	for _, c := range benchConfigs {
		t.Run(c.name, func(t *testing.T) {
			r, bare, full := benchRoom(t, c.opts, 32)
			id := Identity{HasToken: true, UserID: "u", Expires: t0.Add(time.Hour)}
			i := 0
			visit := func() {
				k := i % len(bare)
				i++
				g, _ := r.Knock(bare[k], full[k], id, t0)
				r.Joined(Presence{Nick: "visitor", FullJID: full[k], BareJID: bare[k], Affiliation: g.Affiliation, Role: g.Role}, t0)
				r.Left("visitor", t0)
			}
			for range 100 {
				visit() // warm the buffers
			}
			if a := testing.AllocsPerRun(1000, visit); a > 0 {
				t.Errorf("%.2f allocations per knock, join and leave", a)
			}
		})
	}
}
