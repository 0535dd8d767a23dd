package main

import (
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/gavelxmpp/gavel/policy"
)

// policyResult is the policy engine alone under one configuration.
type policyResult struct {
	Config    string `json:"config"`
	Rooms     int    `json:"rooms"`
	Occupants int    `json:"occupants"`
	// BytesPerOccupant is the heap of the policy state per tracked
	// occupant; BytesWithStrings adds the JID, nick and user id strings the
	// caller holds anyway.
	BytesPerOccupant float64 `json:"bytes_per_occupant"`
	BytesWithStrings float64 `json:"bytes_per_occupant_with_strings"`
	// DecisionsPerS counts knock, join and leave decisions (a visit is
	// three) for visitors spread over every room, on one core.
	DecisionsPerS float64 `json:"decisions_per_second"`
	NsPerDecision float64 `json:"ns_per_decision"`
}

var policyConfigs = []struct {
	name string
	opts policy.Options
}{
	{"token, open", policy.Options{Kind: policy.Token, Guests: policy.GuestsMember, ClearOnLeave: true}},
	{"token, members-only", policy.Options{Kind: policy.Token, Guests: policy.GuestsDeny, ClearOnLeave: true}},
	{"auto-owner, members-only", policy.Options{Kind: policy.AutoOwner, Guests: policy.GuestsDeny, ClearOnLeave: true}},
	{"all-owners", policy.Options{Kind: policy.AllOwners, Guests: policy.GuestsMember, ClearOnLeave: true}},
}

// runPolicy measures every configuration with rooms×per occupants, on one
// core (GOMAXPROCS 1; the process is pinned when -pin holds).
func runPolicy(rooms, per int, d time.Duration) []policyResult {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	out := make([]policyResult, 0, len(policyConfigs))
	for _, c := range policyConfigs {
		out = append(out, measurePolicy(c.name, c.opts, rooms, per, d))
	}
	return out
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// measurePolicy fills rooms×per occupants who each knocked with a token
// (the first of each room a moderator) and joined, reads the heap, then
// runs visits (knock, join, leave of a visitor) round the rooms for d.
func measurePolicy(name string, opts policy.Options, rooms, per int, d time.Duration) policyResult {
	type who struct{ nick, full, bare, uid string }
	now := time.Now()
	exp := now.Add(24 * time.Hour)
	start := heapAlloc()
	people := make([][]who, rooms)
	for i := range people {
		people[i] = make([]who, per)
		for j := range people[i] {
			bare := fmt.Sprintf("user%d-%d@example.test", j, i)
			people[i][j] = who{fmt.Sprintf("User %d", j), bare + "/web-" + fmt.Sprint(i), bare, fmt.Sprintf("uid-%d-%d", i, j)}
		}
	}
	names := heapAlloc()
	rs := make([]*policy.Room, rooms)
	for i := range rs {
		r := policy.NewRoom(fmt.Sprintf("room%d@conference.example.test", i), opts)
		for j, p := range people[i] {
			id := policy.Identity{HasToken: true, UserID: p.uid, Moderator: j == 0, Expires: exp}
			g, _ := r.Knock(p.bare, p.full, id, now)
			r.Joined(policy.Presence{Nick: p.nick, FullJID: p.full, BareJID: p.bare, Affiliation: g.Affiliation, Role: g.Role}, now)
		}
		rs[i] = r
	}
	end := heapAlloc()
	n := float64(rooms * per)
	res := policyResult{
		Config: name, Rooms: rooms, Occupants: rooms * per,
		BytesPerOccupant: float64(end-names) / n, BytesWithStrings: float64(end-start) / n,
	}

	// Visitors: a small set of JIDs reused round the rooms.
	const visitors = 64
	vb, vf := make([]string, visitors), make([]string, visitors)
	for i := range vb {
		vb[i] = fmt.Sprintf("visitor%d@example.test", i)
		vf[i] = vb[i] + "/web"
	}
	vid := policy.Identity{HasToken: true, UserID: "visitor", Expires: exp}
	var visits int
	idx := 0
	began := time.Now()
	deadline := began.Add(d)
	for {
		// Check the clock every 1024 visits; the policy sees that clock.
		if visits%1024 == 0 {
			now = time.Now()
			if now.After(deadline) {
				break
			}
		}
		// A large prime stride walks the rooms out of memory order.
		idx = (idx + 7919) % rooms
		r := rs[idx]
		k := visits % visitors
		g, _ := r.Knock(vb[k], vf[k], vid, now)
		r.Joined(policy.Presence{Nick: "visitor", FullJID: vf[k], BareJID: vb[k], Affiliation: g.Affiliation, Role: g.Role}, now)
		r.Left("visitor", now)
		visits++
	}
	el := time.Since(began)
	res.DecisionsPerS = 3 * float64(visits) / el.Seconds()
	res.NsPerDecision = float64(el.Nanoseconds()) / (3 * float64(visits))
	runtime.KeepAlive(rs)
	runtime.KeepAlive(people)
	return res
}

func writePolicy(w io.Writer, ps []policyResult, md bool) {
	if md {
		mdRow(w, []string{"config", "rooms", "occupants", "bytes/occupant", "with strings", "decisions/s", "ns/decision"})
		mdRow(w, []string{"---", "---:", "---:", "---:", "---:", "---:", "---:"})
	} else {
		fmt.Fprintln(w, "\n== Policy engine alone (one core)")
		fmt.Fprintf(w, "%-26s %8s %10s %15s %13s %12s %12s\n", "config", "rooms", "occupants", "bytes/occupant", "with strings", "decisions/s", "ns/decision")
	}
	for _, p := range ps {
		if md {
			mdRow(w, []string{p.Config, fmt.Sprint(p.Rooms), fmt.Sprint(p.Occupants), fmt.Sprintf("%.0f", p.BytesPerOccupant),
				fmt.Sprintf("%.0f", p.BytesWithStrings), fmt.Sprintf("%.0f", p.DecisionsPerS), fmt.Sprintf("%.0f", p.NsPerDecision)})
		} else {
			fmt.Fprintf(w, "%-26s %8d %10d %15.0f %13.0f %12.0f %12.0f\n", p.Config, p.Rooms, p.Occupants, p.BytesPerOccupant, p.BytesWithStrings, p.DecisionsPerS, p.NsPerDecision)
		}
	}
}
