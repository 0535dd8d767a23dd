package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestPct(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {95, 95 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}} {
		if got := pct(v, c.p); got != c.want {
			t.Errorf("pct(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if pct(nil, 99) != 0 {
		t.Error("pct of nothing is not 0")
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	if m := median(nil); m != 0 {
		t.Errorf("median of nothing = %v", m)
	}
}

// round makes a sample of n joins over wall, each taking lat.
func round(mode string, r, n int, wall, lat time.Duration, stanzas int) sample {
	s := sample{Mode: mode, Round: r, Joins: n, JoinWall: wall, Stanzas: stanzas}
	for range n {
		s.Lat = append(s.Lat, lat)
	}
	return s
}

func TestPairedRatios(t *testing.T) {
	// The machine slows down over the run; each gavel round is 0.8x the
	// bare round next to it, while the medians of the modes drift apart.
	p := &phase{Name: "joins"}
	for r, slow := range []time.Duration{1, 2, 4} {
		p.Rounds = append(p.Rounds,
			round(modeBare, r+1, 100, slow*100*time.Millisecond, 10*time.Millisecond, 2000),
			round(modeGavel, r+1, 100, slow*125*time.Millisecond, 13*time.Millisecond, 2100))
	}
	p.Modes = []*summary{summarize(modeBare, p.Rounds), summarize(modeGavel, p.Rounds)}
	p.pair()
	g := p.Modes[1]
	if math.Abs(g.PairedRate-0.8) > 1e-9 {
		t.Errorf("paired rate ratio = %v, want 0.8", g.PairedRate)
	}
	if math.Abs(g.PairedP99Add-3) > 1e-9 {
		t.Errorf("paired p99 added = %v ms, want 3", g.PairedP99Add)
	}
	if math.Abs(g.PairedFanout-1.05) > 1e-9 {
		t.Errorf("paired fan-out = %v, want 1.05", g.PairedFanout)
	}
	var buf bytes.Buffer
	printPhase(&buf, p)
	if !strings.Contains(buf.String(), "0.80x") {
		t.Errorf("table lacks the paired ratio:\n%s", buf.String())
	}
}

func TestTargets(t *testing.T) {
	r := &results{Settings: map[string]any{"rate": 100.0}}
	p := &phase{Name: "joins", Modes: []*summary{{Mode: modeBare}, {Mode: modeGavel, PairedRate: 0.72, PairedFanout: 1.05},
		{Mode: modeDeny, PairedRate: 0.95}, {Mode: modeLuaDeny, PairedRate: 0.97}}}
	pc := &phase{Name: "paced", Modes: []*summary{{Mode: modeBare}, {Mode: modeGavel, PairedP99Add: 2, P99Adds: []float64{1, 2, 3, 9, 4}}}}
	r.Phases = append(r.Phases, pc)
	r.Phases = append(r.Phases, p)
	r.Policy = []policyResult{{Config: "x", BytesPerOccupant: 300, DecisionsPerS: 5e6}}
	r.evaluate()
	got := map[string]target{}
	for _, tg := range r.Targets {
		got[tg.Name] = tg
	}
	if tg := got["joins, open rooms"]; tg.Met || tg.Gap != "20.0% short" {
		t.Errorf("join throughput target = %+v", tg)
	}
	if tg := got["joins, guests: deny"]; !tg.Met {
		t.Errorf("deny target = %+v", tg)
	}
	if tg := got["joins, guests: deny, ahead of the Lua pre-join stand-in"]; tg.Met {
		t.Errorf("behind the stand-in, yet met: %+v", tg)
	}
	if tg := got["p99 added latency at 100 joins/s (gavel)"]; !tg.Met {
		t.Errorf("4 of 5 rounds within 5 ms, yet missed: %+v", tg)
	}
	if tg := got["fan-out (joins)"]; !tg.Met {
		t.Errorf("fan-out target = %+v", tg)
	}
	if tg := got["memory per occupant (x)"]; !tg.Met {
		t.Errorf("memory target = %+v", tg)
	}
}

func TestOptionsCheck(t *testing.T) {
	o := options{n: 200, m: 20, concurrency: 32, rounds: 5, rate: 100, duration: time.Second, stay: time.Second,
		arrivals: 200, burst: 200, burstRooms: 20, recRooms: 1000, recClients: 50, moderators: 0.1,
		policyRooms: 10000, policyPer: 10, policyTime: time.Second, timeout: time.Minute,
		phases: map[string]bool{"burst": true}}
	if err := o.check(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	o.burst = 201
	if err := o.check(); err == nil {
		t.Error("a burst larger than -n was accepted")
	}
}

func TestMeasurePolicy(t *testing.T) {
	for _, c := range policyConfigs {
		r := measurePolicy(c.name, c.opts, 100, 10, 20*time.Millisecond)
		if r.Occupants != 1000 || r.BytesPerOccupant <= 0 || r.DecisionsPerS <= 0 {
			t.Errorf("%s: %+v", c.name, r)
		}
	}
}

func TestModeratorShare(t *testing.T) {
	perRoom := map[int]int{}
	n := 0
	for i := range 200 {
		if moderator(i, 20, 0.1) {
			perRoom[i%20]++
			n++
		}
	}
	if n != 20 || len(perRoom) != 20 {
		t.Errorf("%d moderators over %d rooms, want 20 over 20", n, len(perRoom))
	}
	for i := range 200 {
		if moderator(i, 20, 0) {
			t.Fatal("a moderator with -moderators 0")
		}
	}
}

func TestPairModes(t *testing.T) {
	// Two moderated modes, neither the first: each round of "b" costs
	// Prosody 0.8x the "a" round next to it, while rounds drift.
	p := &phase{Name: "bridge-joins"}
	for r, slow := range []time.Duration{1, 2, 4} {
		a := round("a", r+1, 100, slow*100*time.Millisecond, 10*time.Millisecond, 2000)
		a.RoundCPU.Prosody = slow * 100 * time.Millisecond
		a.ToGavel = &inbound{Presences: 300}
		b := round("b", r+1, 100, slow*100*time.Millisecond, 12*time.Millisecond, 1000)
		b.RoundCPU.Prosody = slow * 80 * time.Millisecond
		b.ToGavel = &inbound{Messages: 150}
		p.Rounds = append(p.Rounds, round(modeBare, r+1, 100, slow*50*time.Millisecond, 5*time.Millisecond, 900), a, b)
	}
	p.Modes = []*summary{summarize(modeBare, p.Rounds), summarize("a", p.Rounds), summarize("b", p.Rounds)}
	p.pair()
	mp := p.pairModes("b", "a")
	if mp.Rounds != 3 || math.Abs(mp.CPU-0.8) > 1e-9 || math.Abs(mp.Fanout-0.5) > 1e-9 || math.Abs(mp.ToGavel-0.5) > 1e-9 || math.Abs(mp.P50Add-2) > 1e-9 {
		t.Errorf("pair = %+v", mp)
	}
	if g := p.Modes[1].GavelIn; g == nil || g.Presences != 3 {
		t.Errorf("stanzas to gavel per join = %+v", g)
	}
	var buf bytes.Buffer
	markdown(&buf, &results{Phases: []*phase{p}})
	for _, want := range []string{"| b / a | 3 | 0.80x (0.80-0.80) |", "to gavel per join: presences"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, buf.String())
		}
	}
}
