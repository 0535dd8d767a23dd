package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// results is everything a run measured.
type results struct {
	Machine  machine           `json:"machine"`
	Settings map[string]any    `json:"settings"`
	Created  []created         `json:"rooms_created,omitempty"`
	Phases   []*phase          `json:"phases"`
	Recovery []*recoveryResult `json:"recovery,omitempty"`
	Flood    *floodResult      `json:"flood,omitempty"`
	Policy   []policyResult    `json:"policy,omitempty"`
	GCSplit  []gcSplit         `json:"prosody_gc_split,omitempty"`
	Gavel    map[string]int64  `json:"gavel_peak_rss_kib_after_phase"`
	Targets  []target          `json:"targets"`
	// Extra holds the results of phases registered from their own files
	// (see markdownHooks), by phase name.
	Extra map[string]any `json:"extra,omitempty"`
}

// markdownHooks print the tables of phases registered from their own
// files, before the targets.
var markdownHooks []func(io.Writer, *results)

// phase is one comparison: per-mode summaries and the rounds behind them.
type phase struct {
	Name   string     `json:"name"`
	Title  string     `json:"title"`
	Modes  []*summary `json:"modes"`
	Rounds []sample   `json:"rounds"`
	// Pairs compare two moderated modes with each other, paired by round
	// (the table compares every mode with the first one only).
	Pairs []*modePair `json:"pairs,omitempty"`
}

// created is the priming of a room set: a resident creates each room
// (bare: join and instant-room form; gavel: knock, gavel creates and
// unlocks the room, join as owner), concurrency in flight.
type created struct {
	Set   string  `json:"set"`
	Mode  string  `json:"mode"`
	Rooms int     `json:"rooms"`
	PerS  float64 `json:"per_second"`
}

// summary folds the rounds of one mode: rates and CPU are medians of the
// rounds; latency percentiles are over every visit of every round.
type summary struct {
	Mode          string  `json:"mode"`
	Rounds        int     `json:"rounds"`
	Joins         int     `json:"joins"`
	Errors        int     `json:"errors"`
	FirstErr      string  `json:"first_error,omitempty"`
	Late          int     `json:"late,omitempty"`
	Rate          float64 `json:"per_second"`
	RateMin       float64 `json:"per_second_min"`
	RateMax       float64 `json:"per_second_max"`
	P50           float64 `json:"p50_ms"`
	P95           float64 `json:"p95_ms"`
	P99           float64 `json:"p99_ms"`
	Max           float64 `json:"max_ms"`
	Fanout        float64 `json:"stanzas_per_join"`
	ProsodyPerOp  float64 `json:"prosody_cpu_ms_per_join"`
	ProsodyBusy   float64 `json:"prosody_busy_while_joining"`
	GavelPerOp    float64 `json:"gavel_cpu_ms_per_join"`
	LoadBusy      float64 `json:"load_cpu_busy_while_joining"`
	GavelCPUTotal float64 `json:"gavel_cpu_ms_total"`
	// Paired: each round of this mode against the first mode's round of
	// the same number (run back to back), medians over the rounds.
	PairedRate   float64 `json:"paired_rate_ratio,omitempty"`
	PairedP99Add float64 `json:"paired_p99_added_ms,omitempty"`
	PairedP50Add float64 `json:"paired_p50_added_ms,omitempty"`
	PairedFanout float64 `json:"paired_fanout_ratio,omitempty"`
	// The spread of the paired ratios over the rounds (lowest and highest
	// round), so a claimed effect can be weighed against it; and Prosody's
	// CPU per join, paired the same way.
	PairedRateLo float64 `json:"paired_rate_ratio_min,omitempty"`
	PairedRateHi float64 `json:"paired_rate_ratio_max,omitempty"`
	PairedCPU    float64 `json:"paired_prosody_cpu_ratio,omitempty"`
	PairedCPULo  float64 `json:"paired_prosody_cpu_ratio_min,omitempty"`
	PairedCPUHi  float64 `json:"paired_prosody_cpu_ratio_max,omitempty"`
	// PairedCPUAdd is Prosody's extra CPU per join against the first mode
	// (ms, median of the paired rounds).
	PairedCPUAdd float64 `json:"paired_prosody_cpu_added_ms,omitempty"`
	// P99Adds are the paired p99 differences of every round (paced: how
	// many rounds meet a latency target).
	P99Adds []float64 `json:"paired_p99_added_ms_rounds,omitempty"`
	// Presences and messages of Fanout.
	PresPerOp float64 `json:"presences_per_join"`
	MsgPerOp  float64 `json:"messages_per_join"`
	// Stanzas Prosody routed to gavel per join (where counted): presences
	// (gavel as an occupant), messages (the bridge's occupant reports),
	// IQs (bridge join requests, answers to gavel's own requests).
	GavelIn *inboundPerOp `json:"to_gavel_per_join,omitempty"`
}

// spread formats a paired ratio with its range over the rounds.
func spread(v, lo, hi float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx (%.2f-%.2f)", v, lo, hi)
}

func minMax(v []float64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	return slices.Min(v), slices.Max(v)
}

// pair fills the paired figures of every mode after the first: ratios and
// differences of rounds run back to back cancel the drift of a long run
// (Prosody's heap grows, other load comes and goes).
func (p *phase) pair() {
	if len(p.Modes) < 2 {
		return
	}
	base := p.Modes[0].Mode
	one := p.perRound()
	for _, m := range p.Modes[1:] {
		var rate, p50, p99, fan, cpu, cpuAdd []float64
		for round, s := range one[m.Mode] {
			b := one[base][round]
			if b == nil || b.Rate == 0 || s.Rate == 0 {
				continue
			}
			rate = append(rate, s.Rate/b.Rate)
			p50 = append(p50, s.P50-b.P50)
			p99 = append(p99, s.P99-b.P99)
			if b.Fanout > 0 {
				fan = append(fan, s.Fanout/b.Fanout)
			}
			if b.ProsodyPerOp > 0 {
				cpu = append(cpu, s.ProsodyPerOp/b.ProsodyPerOp)
				cpuAdd = append(cpuAdd, s.ProsodyPerOp-b.ProsodyPerOp)
			}
		}
		m.PairedRate, m.PairedP99Add, m.PairedFanout = median(rate), median(p99), median(fan)
		m.PairedP50Add = median(p50)
		m.PairedRateLo, m.PairedRateHi = minMax(rate)
		m.PairedCPU, m.PairedCPUAdd = median(cpu), median(cpuAdd)
		m.PairedCPULo, m.PairedCPUHi = minMax(cpu)
		m.P99Adds = p99
	}
}

// inboundPerOp is inbound per join (medians of the rounds).
type inboundPerOp struct {
	Presences float64 `json:"presences"`
	Messages  float64 `json:"messages"`
	IQs       float64 `json:"iqs"`
}

func (i *inboundPerOp) total() float64 { return i.Presences + i.Messages + i.IQs }

// modePair is mode A against mode B, each round of A against B's round of
// the same number (run back to back): medians over the rounds, and the
// range of the Prosody CPU ratio.
type modePair struct {
	A      string `json:"a"`
	B      string `json:"b"`
	Rounds int    `json:"rounds"`
	// Prosody CPU per join A/B, and the ms A adds.
	CPU    float64 `json:"prosody_cpu_ratio"`
	CPULo  float64 `json:"prosody_cpu_ratio_min"`
	CPUHi  float64 `json:"prosody_cpu_ratio_max"`
	CPUAdd float64 `json:"prosody_cpu_added_ms"`
	// Stanzas per join to the clients and to gavel, gavel's CPU per join
	// and joins/s: A/B (0 where B has none, or nothing was counted).
	Fanout   float64 `json:"fanout_ratio"`
	ToGavel  float64 `json:"to_gavel_ratio,omitempty"`
	GavelCPU float64 `json:"gavel_cpu_ratio,omitempty"`
	Rate     float64 `json:"rate_ratio"`
	// Latency A adds over B, ms.
	P50Add float64 `json:"p50_added_ms"`
	P99Add float64 `json:"p99_added_ms"`
}

// perRound summarizes every round of every mode on its own.
func (p *phase) perRound() map[string]map[int]*summary {
	one := map[string]map[int]*summary{}
	for _, r := range p.Rounds {
		if one[r.Mode] == nil {
			one[r.Mode] = map[int]*summary{}
		}
		one[r.Mode][r.Round] = summarize(r.Mode, []sample{r})
	}
	return one
}

// pairModes compares mode a with mode b round by round and keeps the
// result in p.Pairs.
func (p *phase) pairModes(a, b string) *modePair {
	one := p.perRound()
	mp := &modePair{A: a, B: b}
	var cpu, cpuAdd, fan, toG, gcpu, rate, p50, p99 []float64
	for round, x := range one[a] {
		y := one[b][round]
		if y == nil || x.Joins == 0 || y.Joins == 0 {
			continue
		}
		mp.Rounds++
		if y.ProsodyPerOp > 0 {
			cpu = append(cpu, x.ProsodyPerOp/y.ProsodyPerOp)
		}
		cpuAdd = append(cpuAdd, x.ProsodyPerOp-y.ProsodyPerOp)
		if y.Fanout > 0 {
			fan = append(fan, x.Fanout/y.Fanout)
		}
		// gavel's stanzas and CPU only where gavel has work in B's joins
		// (not in the Lua stand-in's rooms, where it idles at a few
		// microseconds and at most a straggler of an earlier round
		// reaches it).
		busy := y.GavelIn == nil || y.GavelIn.total() >= 0.5
		if x.GavelIn != nil && y.GavelIn != nil && busy {
			toG = append(toG, x.GavelIn.total()/y.GavelIn.total())
		}
		if y.GavelPerOp > 0 && busy {
			gcpu = append(gcpu, x.GavelPerOp/y.GavelPerOp)
		}
		if y.Rate > 0 {
			rate = append(rate, x.Rate/y.Rate)
		}
		p50 = append(p50, x.P50-y.P50)
		p99 = append(p99, x.P99-y.P99)
	}
	mp.CPU, mp.CPUAdd = median(cpu), median(cpuAdd)
	mp.CPULo, mp.CPUHi = minMax(cpu)
	mp.Fanout, mp.ToGavel, mp.GavelCPU, mp.Rate = median(fan), median(toG), median(gcpu), median(rate)
	mp.P50Add, mp.P99Add = median(p50), median(p99)
	p.Pairs = append(p.Pairs, mp)
	return mp
}

// pairTable is the rows of p.Pairs.
func (p *phase) pairTable() (header []string, rows [][]string) {
	header = []string{"paired by round (median)", "rounds", "Prosody CPU/join ratio (range)", "Prosody CPU ms added/join",
		"stanzas to clients ratio", "stanzas to gavel ratio", "gavel CPU/join ratio", "joins/s ratio", "p50 added ms", "p99 added ms"}
	ratio := func(v float64) string {
		if v == 0 {
			return "-"
		}
		return num("%.2fx", v)
	}
	for _, mp := range p.Pairs {
		rows = append(rows, []string{mp.A + " / " + mp.B, fmt.Sprint(mp.Rounds), spread(mp.CPU, mp.CPULo, mp.CPUHi),
			num("%+.3f", mp.CPUAdd), ratio(mp.Fanout), ratio(mp.ToGavel), ratio(mp.GavelCPU), ratio(mp.Rate),
			num("%+.2f", mp.P50Add), num("%+.2f", mp.P99Add)})
	}
	return header, rows
}

func summarize(mode string, rounds []sample) *summary {
	s := &summary{Mode: mode}
	var lat []time.Duration
	var rates, fan, pres, msgs, gcpu, pcpu, busy, lbusy []float64
	var gp, gm, gi []float64
	for _, r := range rounds {
		if r.Mode != mode {
			continue
		}
		s.Rounds++
		s.Joins += r.Joins
		s.Errors += r.Errors
		s.Late += r.Late
		if s.FirstErr == "" {
			s.FirstErr = r.FirstErr
		}
		lat = append(lat, r.Lat...)
		if r.Joins == 0 {
			continue
		}
		n := float64(r.Joins)
		rates = append(rates, n/r.JoinWall.Seconds())
		fan = append(fan, float64(r.Stanzas)/n)
		pres = append(pres, float64(r.Presence)/n)
		msgs = append(msgs, float64(r.Messages)/n)
		if r.ToGavel != nil {
			gp = append(gp, float64(r.ToGavel.Presences)/n)
			gm = append(gm, float64(r.ToGavel.Messages)/n)
			gi = append(gi, float64(r.ToGavel.IQs)/n)
		}
		pcpu = append(pcpu, ms(r.RoundCPU.Prosody)/n)
		gcpu = append(gcpu, ms(r.RoundCPU.Gavel)/n)
		s.GavelCPUTotal += ms(r.RoundCPU.Gavel)
		if r.JoinCPU.Wall > 0 {
			busy = append(busy, float64(r.JoinCPU.Prosody)/float64(r.JoinCPU.Wall))
			lbusy = append(lbusy, float64(r.JoinCPU.Gavel+r.JoinCPU.Self)/float64(r.JoinCPU.Wall))
		}
	}
	s.Rate, s.Fanout, s.ProsodyPerOp, s.ProsodyBusy = median(rates), median(fan), median(pcpu), median(busy)
	s.GavelPerOp, s.LoadBusy = median(gcpu), median(lbusy)
	s.PresPerOp, s.MsgPerOp = median(pres), median(msgs)
	if len(gp) > 0 {
		s.GavelIn = &inboundPerOp{Presences: median(gp), Messages: median(gm), IQs: median(gi)}
	}
	if len(rates) > 0 {
		s.RateMin, s.RateMax = slices.Min(rates), slices.Max(rates)
	}
	slices.Sort(lat)
	s.P50, s.P95, s.P99 = ms(pct(lat, 50)), ms(pct(lat, 95)), ms(pct(lat, 99))
	if len(lat) > 0 {
		s.Max = ms(lat[len(lat)-1])
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct is the nearest-rank percentile of sorted.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// median returns the median of v, or 0 when v is empty.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// table is a phase's rows: one column per mode, then each moderated
// mode's ratio to the first (bare) column.
func (p *phase) table() (header []string, rows [][]string) {
	header = []string{"metric"}
	for _, m := range p.Modes {
		header = append(header, m.Mode)
	}
	for _, m := range p.Modes[1:] {
		header = append(header, m.Mode+"/"+p.Modes[0].Mode)
	}
	type metric struct {
		name string
		get  func(*summary) float64
		f    string
	}
	rate, per := "joins/s", "join"
	if p.Name == "arrivals" {
		rate, per = "arrivals/s", "arrival"
	}
	metrics := []metric{
		{rate + " (median of rounds)", func(s *summary) float64 { return s.Rate }, "%.0f"},
		{rate + " (slowest round)", func(s *summary) float64 { return s.RateMin }, "%.0f"},
		{"latency p50 ms", func(s *summary) float64 { return s.P50 }, "%.2f"},
		{"latency p95 ms", func(s *summary) float64 { return s.P95 }, "%.2f"},
		{"latency p99 ms", func(s *summary) float64 { return s.P99 }, "%.2f"},
		{"latency max ms", func(s *summary) float64 { return s.Max }, "%.2f"},
	}
	if p.Name != "arrivals" {
		metrics = append(metrics,
			metric{"stanzas to clients per join", func(s *summary) float64 { return s.Fanout }, "%.2f"},
			metric{"of which presences", func(s *summary) float64 { return s.PresPerOp }, "%.2f"},
			metric{"of which messages", func(s *summary) float64 { return s.MsgPerOp }, "%.2f"})
	}
	counted := false
	for _, m := range p.Modes {
		counted = counted || m.GavelIn != nil
	}
	if counted {
		in := func(f func(*inboundPerOp) float64) func(*summary) float64 {
			return func(s *summary) float64 {
				if s.GavelIn == nil {
					return math.NaN()
				}
				return f(s.GavelIn)
			}
		}
		metrics = append(metrics,
			metric{"to gavel per join: presences", in(func(i *inboundPerOp) float64 { return i.Presences }), "%.2f"},
			metric{"to gavel per join: messages", in(func(i *inboundPerOp) float64 { return i.Messages }), "%.2f"},
			metric{"to gavel per join: IQs", in(func(i *inboundPerOp) float64 { return i.IQs }), "%.2f"})
	}
	metrics = append(metrics,
		metric{"Prosody CPU ms per " + per, func(s *summary) float64 { return s.ProsodyPerOp }, "%.3f"},
		metric{"Prosody CPU busy while joining", func(s *summary) float64 { return s.ProsodyBusy * 100 }, "%.0f%%"},
		metric{"gavel CPU ms per " + per, func(s *summary) float64 { return s.GavelPerOp }, "%.3f"},
		metric{"load CPU busy (gavel + generator)", func(s *summary) float64 { return s.LoadBusy * 100 }, "%.0f%%"},
	)
	paired := []metric{
		{rate + " ratio, paired rounds (median)", func(s *summary) float64 { return s.PairedRate }, "%.2fx"},
		{"p50 added ms, paired rounds (median)", func(s *summary) float64 { return s.PairedP50Add }, "%+.2f"},
		{"p99 added ms, paired rounds (median)", func(s *summary) float64 { return s.PairedP99Add }, "%+.2f"},
	}
	if p.Name != "arrivals" {
		paired = append(paired, metric{"fan-out ratio, paired rounds (median)", func(s *summary) float64 { return s.PairedFanout }, "%.2fx"})
	}
	for _, mt := range metrics {
		row := []string{mt.name}
		for _, m := range p.Modes {
			v := mt.get(m)
			if m.Mode == modeBare && strings.HasPrefix(mt.name, "gavel") {
				row = append(row, "-")
				continue
			}
			row = append(row, num(mt.f, v))
		}
		for _, m := range p.Modes[1:] {
			base := mt.get(p.Modes[0])
			if strings.HasPrefix(mt.name, "gavel") || strings.HasPrefix(mt.name, "load") || base == 0 {
				row = append(row, "")
				continue
			}
			row = append(row, num("%.2fx", mt.get(m)/base))
		}
		rows = append(rows, row)
	}
	for _, mt := range paired {
		row := []string{mt.name, "-"}
		for _, m := range p.Modes[1:] {
			row = append(row, num(mt.f, mt.get(m)))
		}
		for range p.Modes[1:] {
			row = append(row, "")
		}
		rows = append(rows, row)
	}
	for _, sp := range []struct {
		name string
		get  func(*summary) string
	}{
		{rate + " ratio, paired: median (lowest-highest round)", func(s *summary) string { return spread(s.PairedRate, s.PairedRateLo, s.PairedRateHi) }},
		{"Prosody CPU per " + per + " ratio, paired: median (lowest-highest round)", func(s *summary) string { return spread(s.PairedCPU, s.PairedCPULo, s.PairedCPUHi) }},
		{"Prosody CPU ms added per " + per + ", paired (median)", func(s *summary) string { return num("%+.3f", s.PairedCPUAdd) }},
	} {
		row := []string{sp.name, "-"}
		for _, m := range p.Modes[1:] {
			row = append(row, sp.get(m))
		}
		for range p.Modes[1:] {
			row = append(row, "")
		}
		rows = append(rows, row)
	}
	row := []string{rate[:len(rate)-2] + " measured (errors)"}
	for _, m := range p.Modes {
		row = append(row, fmt.Sprintf("%d (%d)", m.Joins, m.Errors))
	}
	for range p.Modes[1:] {
		row = append(row, "")
	}
	rows = append(rows, row)
	return header, rows
}

func num(f string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf(f, v)
}

// printPhase writes a phase's table as text.
func printPhase(w io.Writer, p *phase) {
	fmt.Fprintf(w, "\n== %s\n", p.Title)
	header, rows := p.table()
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	tw.Flush()
	if len(p.Pairs) > 0 {
		fmt.Fprintln(w)
		header, rows := p.pairTable()
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
		}
		tw.Flush()
	}
	for _, m := range p.Modes {
		if m.FirstErr != "" {
			fmt.Fprintf(w, "first error (%s): %s\n", m.Mode, m.FirstErr)
		}
		if m.Late > 0 {
			fmt.Fprintf(w, "%s: %d visits started late (no free client)\n", m.Mode, m.Late)
		}
	}
}

// markdown writes the phases and targets as Markdown tables.
func markdown(w io.Writer, r *results) {
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %d GiB, kernel %s, %s (Lua GC: %s; MUC storage: %s), %s, %s. Date: %s. Pinned: %s. Full Lua GC before each round: %v.\n",
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemoryGiB, r.Machine.Kernel, r.Machine.Prosody, r.Machine.ProsodyGC, r.Machine.MUCStorage, r.Machine.Go, r.Machine.Gavel,
		r.Machine.Date, r.Machine.Pinned, r.Machine.GCBetween)
	fmt.Fprintf(w, "\nCommand: `%s`\n", r.Machine.CommandRun)
	for _, p := range r.Phases {
		fmt.Fprintf(w, "\n#### %s\n\n", p.Title)
		mdTable(w, p.table)
		if len(p.Pairs) > 0 {
			fmt.Fprintln(w)
			mdTable(w, p.pairTable)
		}
	}
	if len(r.GCSplit) > 0 {
		fmt.Fprintf(w, "\n#### Prosody's Lua garbage collection\n\n")
		writeGCSplit(w, r.GCSplit, true)
	}
	if len(r.Created) > 0 {
		fmt.Fprintf(w, "\n#### Room creation (priming, not timed in the phases)\n\n")
		writeCreated(w, r.Created, true)
	}
	if r.Flood != nil {
		fmt.Fprintf(w, "\n#### Flood: %d good accounts knock every %v each for %v, alone and while %d anonymous guests flood bad-signature knocks\n\n",
			r.Flood.Good, r.Flood.GoodEvery, r.Flood.Duration, r.Flood.Guests)
		writeFlood(w, r.Flood, true)
	}
	for _, rec := range r.Recovery {
		fmt.Fprintf(w, "\n#### Recovery (%s)\n\n", rec.Stop)
		writeRecovery(w, rec, true)
	}
	if len(r.Policy) > 0 {
		fmt.Fprintf(w, "\n#### Policy engine\n\n")
		writePolicy(w, r.Policy, true)
	}
	for _, f := range markdownHooks {
		f(w, r)
	}
	fmt.Fprintf(w, "\n#### Targets\n\n")
	writeTargets(w, r.Targets, true)
}

func writeCreated(w io.Writer, cs []created, md bool) {
	if md {
		mdRow(w, []string{"room set", "mode", "rooms", "created/s"})
		mdRow(w, []string{"---", "---", "---:", "---:"})
	} else {
		fmt.Fprintln(w, "\n== Room creation (priming, before the timed rounds)")
	}
	for _, c := range cs {
		if md {
			mdRow(w, []string{c.Set, c.Mode, fmt.Sprint(c.Rooms), fmt.Sprintf("%.0f", c.PerS)})
		} else {
			fmt.Fprintf(w, "%-8s %-6s %5d rooms  %6.0f/s\n", c.Set, c.Mode, c.Rooms, c.PerS)
		}
	}
}

// gcSplit is Prosody's CPU per join with and without its Lua collector.
type gcSplit struct {
	Mode      string  `json:"mode"`
	WithGC    float64 `json:"cpu_ms_per_join"`
	WithoutGC float64 `json:"cpu_ms_per_join_gc_stopped"`
	GCShare   float64 `json:"gc_share"`
}

func writeGCSplit(w io.Writer, gs []gcSplit, md bool) {
	if md {
		mdRow(w, []string{"mode", "Prosody CPU ms/join", "with Lua GC stopped", "GC share"})
		mdRow(w, []string{"---", "---:", "---:", "---:"})
	} else {
		fmt.Fprintln(w, "\n== Prosody CPU per join with its Lua garbage collector running and stopped (joins rounds back to back, medians)")
	}
	for _, g := range gs {
		if md {
			mdRow(w, []string{g.Mode, fmt.Sprintf("%.3f", g.WithGC), fmt.Sprintf("%.3f", g.WithoutGC), fmt.Sprintf("%.0f%%", g.GCShare*100)})
		} else {
			fmt.Fprintf(w, "%-6s %.3f ms/join, %.3f with GC stopped: GC %.0f%%\n", g.Mode, g.WithGC, g.WithoutGC, g.GCShare*100)
		}
	}
}

// mdTable writes the header and rows table returns as a Markdown table.
func mdTable(w io.Writer, table func() ([]string, [][]string)) {
	header, rows := table()
	mdRow(w, header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---:"
	}
	sep[0] = "---"
	mdRow(w, sep)
	for _, row := range rows {
		mdRow(w, row)
	}
}

func mdRow(w io.Writer, cells []string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
}

// target is one of the goals and what the run measured.
type target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
	Gap      string `json:"gap,omitempty"`
}

func writeTargets(w io.Writer, ts []target, md bool) {
	if md {
		mdRow(w, []string{"target", "goal", "measured", "met", "gap"})
		mdRow(w, []string{"---", "---", "---", "---", "---"})
	} else {
		fmt.Fprintln(w, "\n== Targets")
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, t := range ts {
		met := "met"
		if !t.Met {
			met = "MISSED"
		}
		if md {
			mdRow(w, []string{t.Name, t.Goal, t.Measured, met, t.Gap})
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Goal, t.Measured, met, t.Gap)
		}
	}
	tw.Flush()
}

// evaluate checks the targets against the results.
func (r *results) evaluate() {
	find := func(name string) *phase {
		for _, p := range r.Phases {
			if p.Name == name {
				return p
			}
		}
		return nil
	}
	mode := func(p *phase, m string) *summary {
		for _, s := range p.Modes {
			if s.Mode == m {
				return s
			}
		}
		return nil
	}
	show := func(v float64, unit string) string {
		if unit == "x" {
			return fmt.Sprintf("%.3fx", v)
		}
		return fmt.Sprintf("%.2f%s", v, unit)
	}
	atLeast := func(name, goal string, v, want float64, unit string) {
		t := target{Name: name, Goal: goal, Measured: show(v, unit), Met: v >= want}
		if !t.Met && !math.IsNaN(v) {
			t.Gap = fmt.Sprintf("%.1f%% short", (want-v)/want*100)
		}
		r.Targets = append(r.Targets, t)
	}
	atMost := func(name, goal string, v, want float64, unit string) {
		t := target{Name: name, Goal: goal, Measured: show(v, unit), Met: v <= want}
		if !t.Met && !math.IsNaN(v) {
			t.Gap = show(v-want, unit) + " over"
		}
		r.Targets = append(r.Targets, t)
	}
	for _, name := range []string{"joins", "joins100"} {
		p := find(name)
		if p == nil {
			continue
		}
		for _, side := range []struct{ mode, lua, label string }{{modeGavel, modeLua, "open rooms"}, {modeDeny, modeLuaDeny, "guests: deny"}} {
			g := mode(p, side.mode)
			if g == nil {
				continue
			}
			want := 0.9
			if name == "joins100" {
				want = 0.95
			}
			atLeast(fmt.Sprintf("%s, %s", name, side.label), fmt.Sprintf(">= %.2fx bare", want), g.PairedRate, want, "x")
			if l := mode(p, side.lua); l != nil {
				atLeast(fmt.Sprintf("%s, %s, ahead of the Lua pre-join stand-in", name, side.label),
					fmt.Sprintf(">= stand-in (%.3fx)", l.PairedRate), g.PairedRate, l.PairedRate, "x")
			}
			if side.mode == modeGavel {
				atMost(fmt.Sprintf("fan-out (%s)", name), "<= 1.1x bare", g.PairedFanout, 1.1, "x")
			}
		}
	}
	if p := find("paced"); p != nil {
		for _, m := range []string{modeGavel, modeDeny} {
			g := mode(p, m)
			if g == nil {
				continue
			}
			ok := 0
			for _, v := range g.P99Adds {
				if v <= 5 {
					ok++
				}
			}
			t := target{Name: fmt.Sprintf("p99 added latency at %.0f joins/s (%s)", r.Settings["rate"], m), Goal: "<= 5 ms in 4 of 5 rounds",
				Measured: fmt.Sprintf("median %+.2f ms; %d of %d rounds <= 5 ms", g.PairedP99Add, ok, len(g.P99Adds)),
				Met:      len(g.P99Adds) > 0 && ok*5 >= 4*len(g.P99Adds)}
			r.Targets = append(r.Targets, t)
		}
		if g := mode(p, modeGavel); g != nil {
			atMost("fan-out (paced)", "<= 1.1x bare", g.PairedFanout, 1.1, "x")
		}
	}
	if p := find("burst"); p != nil {
		for _, m := range []string{modeGavel, modeDeny} {
			if g := mode(p, m); g != nil {
				atLeast("burst throughput ("+m+")", ">= 0.9x bare", g.PairedRate, 0.9, "x")
			}
		}
	}
	if p := find("arrivals"); p != nil {
		for _, alg := range []string{algHS256, algRS256, algHS256 + "-" + modeDeny, algRS256 + "-" + modeDeny} {
			if g := mode(p, alg); g != nil {
				atLeast("arrivals "+alg, ">= 0.9x bare", g.PairedRate, 0.9, "x")
			}
		}
	}
	for _, rec := range r.Recovery {
		v := rec.AllAnswered.Seconds()
		if rec.AllAnswered < 0 {
			v = math.Inf(1)
		}
		atMost(fmt.Sprintf("recovery of %d rooms (%s)", rec.Rooms, rec.Stop), "<= 2 s after Prosody listens", v, 2, " s")
	}
	for _, pr := range r.Policy {
		atMost("memory per occupant ("+pr.Config+")", "<= 1024 B", pr.BytesPerOccupant, 1024, " B")
		atLeast("decisions/s on one core ("+pr.Config+")", ">= 1,000,000", pr.DecisionsPerS/1e6, 1, " M")
	}
}

func writeJSON(path string, r *results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
