package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// variant is one side of a comparison: a mode and how to run a round of it.
type variant struct {
	mode string
	run  func(ctx context.Context) (sample, error)
}

// runBench runs the selected phases and reports.
func runBench(ctx context.Context, o options) error {
	e, err := start(ctx, o)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		e.close()
		if ok && !o.keep && o.dir == "" {
			os.RemoveAll(e.dir)
		} else {
			logf("work directory kept: %s", e.dir)
		}
	}()
	res := &results{
		Settings: map[string]any{
			"n": o.n, "m": o.m, "concurrency": o.concurrency, "rounds": o.rounds, "stay": o.stay.String(),
			"duration": o.duration.String(), "rate": o.rate, "arrivals": o.arrivals, "burst": o.burst,
			"burst_rooms": o.burstRooms, "recovery_rooms": o.recRooms, "recovery_clients": o.recClients,
			"moderators": o.moderators, "policy_rooms": o.policyRooms, "policy_occupants": o.policyPer,
			"flood_guests": o.floodGuests, "flood_good": o.floodGood, "flood_every": o.floodEvery.String(), "flood_time": o.floodTime.String(),
		},
		Gavel: map[string]int64{},
	}
	res.Machine = describeMachine(ctx, e.srv.ProsodyCtl, e.gavelBin)
	res.Machine.ProsodyGC = "Prosody's default (incremental)"
	if o.prosodyGC != "" {
		res.Machine.ProsodyGC = o.prosodyGC
	}
	if gc, err := e.srv.ProsodyCtl(ctx, "shell", `>(function() local m = collectgarbage("incremental"); collectgarbage(m); return m end)()`); err == nil {
		res.Machine.ProsodyGC += " (Lua reports " + strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(gc)), "Result:")) + ")"
	}
	res.Machine.MUCStorage = "internal (files)"
	if o.mucStorage != "" {
		res.Machine.MUCStorage = o.mucStorage
	}
	res.Machine.Pinned = "no"
	if e.pinned {
		res.Machine.Pinned = fmt.Sprintf("Prosody on CPU %d; load generator and gavel on CPU %d (taskset)", prosodyCPU, loadCPU)
	}
	res.Machine.GCBetween = e.gcOK
	res.Machine.CommandRun = strings.TrimSpace("gavel-bench " + strings.Join(os.Args[1:], " "))
	b := &bench{e: e, o: o, res: res, rooms: map[string]roomSet{}}
	fmt.Printf("gavel-bench: %s; Lua GC %s; MUC storage %s; %s; %s; %s\n", res.Machine.Prosody, res.Machine.ProsodyGC, res.Machine.MUCStorage, res.Machine.Gavel, res.Machine.Go, res.Machine.Pinned)

	if err := b.phases(ctx); err != nil {
		return err
	}
	res.evaluate()
	writeTargets(os.Stdout, res.Targets, false)
	if o.jsonPath != "" {
		if err := writeJSON(o.jsonPath, res); err != nil {
			return err
		}
		logf("results written to %s", o.jsonPath)
	}
	if o.mdPath != "" {
		var buf bytes.Buffer
		markdown(&buf, res)
		if err := os.WriteFile(o.mdPath, buf.Bytes(), 0o644); err != nil {
			return err
		}
		logf("Markdown tables written to %s", o.mdPath)
	}
	ok = true
	return nil
}

// phases runs the phases in order: those sharing the main rooms first, the
// restart of Prosody and the in-process policy engine last.
func (b *bench) phases(ctx context.Context) error {
	o, e, res := b.o, b.e, b.res
	ph := o.phases
	if ph["joins"] || ph["joins100"] || ph["decomp"] || ph["rejoin"] || ph["paced"] || ph["burst"] || ph["arrivals"] {
		if err := b.setupClients(ctx); err != nil {
			return err
		}
		if o.perfDir != "" {
			if err := os.MkdirAll(o.perfDir, 0o750); err != nil {
				return err
			}
			f := filepath.Join(o.perfDir, "gavel.perf.data")
			stop := e.perfRecord(e.gavelPID(), f)
			defer func() {
				stop()
				logf("profile: perf report -i %s --no-children --sort symbol", f)
			}()
		}
	}
	record := func(p *phase) {
		res.Phases = append(res.Phases, p)
		printPhase(os.Stdout, p)
		res.Gavel[p.Name], _ = memKiB(e.gavelPID())
	}
	joinsPhase := func(name, title string, sets map[string]roomSet, perf bool) error {
		profiled := map[string]bool{}
		round := func(rs roomSet, mode string) func(ctx context.Context) (sample, error) {
			return func(ctx context.Context) (sample, error) {
				if perf && o.perfDir != "" && !profiled[mode] {
					profiled[mode] = true
					defer b.profileProsody(mode)()
				}
				return b.joinsRound(ctx, rs, b.joiners, o.concurrency, o.stay)
			}
		}
		direct := sets[modeGavel]
		direct.direct = true
		var vs []variant
		for _, mode := range []string{modeBare, modeGavel, modeDeny, modeDirect, modeLua, modeLuaDeny} {
			rs := sets[mode]
			if mode == modeDirect {
				rs = direct
			}
			vs = append(vs, variant{mode, round(rs, mode)})
		}
		p, err := b.compare(ctx, name, title, vs)
		if err != nil {
			return err
		}
		record(p)
		return nil
	}
	if ph["joins"] {
		logf("joins: %d rounds per mode", o.rounds)
		err := joinsPhase("joins",
			fmt.Sprintf("Joins: %d clients knock and join %d rooms (%d in flight), stay %v, leave", o.n, o.m, o.concurrency, o.stay),
			b.rooms, true)
		if err != nil {
			return err
		}
		if o.perfDir != "" && e.gcOK {
			if err := b.gcSplit(ctx); err != nil {
				return err
			}
		}
	}
	if ph["joins100"] {
		big := o.n / o.big
		logf("joins100: %d joiners into %d rooms of %d, %d rounds per mode", o.n, big, o.big, o.rounds)
		sets, err := b.primeAll(ctx, "big", big)
		if err != nil {
			return err
		}
		err = joinsPhase("joins100",
			fmt.Sprintf("Joins into rooms of %d: %d clients knock and join %d rooms (%d in flight), stay %v, leave", o.big, o.n, big, o.concurrency, o.stay),
			sets, false)
		if err != nil {
			return err
		}
	}
	if ph["decomp"] {
		if err := b.decompose(ctx, record); err != nil {
			return err
		}
	}
	if ph["rejoin"] {
		if err := b.rejoinPhase(ctx, record); err != nil {
			return err
		}
	}
	if ph["paced"] {
		logf("paced: %g joins/s for %v, %d rounds per mode", o.rate, o.duration, o.rounds)
		round := func(rs roomSet) func(ctx context.Context) (sample, error) {
			return func(ctx context.Context) (sample, error) {
				return b.pacedRound(ctx, rs, b.joiners, o.rate, o.duration, o.stay)
			}
		}
		p, err := b.compare(ctx, "paced",
			fmt.Sprintf("Paced: %g joins/s for %v into %d rooms, each joiner stays %v", o.rate, o.duration, o.m, o.stay),
			[]variant{{modeBare, round(b.rooms[modeBare])}, {modeGavel, round(b.rooms[modeGavel])}, {modeDeny, round(b.rooms[modeDeny])}})
		if err != nil {
			return err
		}
		record(p)
	}
	if ph["burst"] {
		logf("burst: %d joiners into %d rooms", o.burst, o.burstRooms)
		sets := map[string]roomSet{}
		for _, mode := range []string{modeBare, modeGavel, modeDeny} {
			rs, d, err := b.primeSet(ctx, roomSet{gavel: mode != modeBare, deny: mode == modeDeny}, setPrefix(mode, "burst"), o.burstRooms)
			if err != nil {
				return err
			}
			sets[mode] = rs
			res.Created = append(res.Created, created{Set: "burst", Mode: mode, Rooms: o.burstRooms, PerS: float64(o.burstRooms) / d.Seconds()})
		}
		round := func(rs roomSet) func(ctx context.Context) (sample, error) {
			return func(ctx context.Context) (sample, error) {
				return b.joinsRound(ctx, rs, b.joiners[:o.burst], o.burst, o.stay)
			}
		}
		p, err := b.compare(ctx, "burst",
			fmt.Sprintf("Burst: %d joiners into %d rooms at once, stay %v, leave", o.burst, o.burstRooms, o.stay),
			[]variant{{modeBare, round(sets[modeBare])}, {modeGavel, round(sets[modeGavel])}, {modeDeny, round(sets[modeDeny])}})
		if err != nil {
			return err
		}
		record(p)
	}
	if ph["arrivals"] {
		logf("arrivals: %d per round, %d rounds per variant", o.arrivals, o.rounds)
		users, err := e.register("a", o.arrivals)
		if err != nil {
			return err
		}
		round := func(rs roomSet, alg string) func(ctx context.Context) (sample, error) {
			return func(ctx context.Context) (sample, error) {
				return b.arrivalsRound(ctx, rs, users, o.concurrency, alg)
			}
		}
		p, err := b.compare(ctx, "arrivals",
			fmt.Sprintf("Arrivals: %d clients each log in, knock and join at once (%d in flight) into %d rooms", o.arrivals, o.concurrency, o.m),
			[]variant{
				{modeBare, round(b.rooms[modeBare], "")},
				{algHS256, round(b.rooms[modeGavel], algHS256)},
				{algRS256, round(b.rooms[modeGavel], algRS256)},
				{algHS256 + "-" + modeDeny, round(b.rooms[modeDeny], algHS256)},
				{algRS256 + "-" + modeDeny, round(b.rooms[modeDeny], algRS256)},
			})
		if err != nil {
			return err
		}
		record(p)
	}
	if ph["flood"] {
		fr, err := b.flood(ctx)
		if err != nil {
			return err
		}
		res.Flood = fr
		writeFlood(os.Stdout, fr, false)
		res.Gavel["flood"], _ = memKiB(e.gavelPID())
	}
	if peak, _ := memKiB(e.gavelPID()); peak > 0 {
		fmt.Printf("\ngavel peak RSS (VmHWM) over the phases above: %.1f MiB\n", float64(peak)/1024)
		res.Gavel["all"] = peak
	}
	if len(res.Created) > 0 {
		writeCreated(os.Stdout, res.Created, false)
	}
	if ph["recovery"] {
		// The recoveries run on a Prosody and gavel of their own: stop the
		// shared ones, which have nothing left to do.
		closeAll(b.clients())
		b.residents, b.joiners = nil, nil
		e.close()
		for _, stop := range o.recStops {
			rec, err := b.recovery(ctx, stop)
			if err != nil {
				return err
			}
			res.Recovery = append(res.Recovery, rec)
			writeRecovery(os.Stdout, rec, false)
			res.Gavel["recovery-"+stop] = rec.GavelPeakKiB
		}
	}
	if ph["policy"] {
		logf("policy engine: %d rooms x %d occupants", o.policyRooms, o.policyPer)
		res.Policy = runPolicy(o.policyRooms, o.policyPer, o.policyTime)
		writePolicy(os.Stdout, res.Policy, false)
	}
	if ph["shards"] {
		if err := b.shards(ctx); err != nil { // shards.go
			return err
		}
	}
	if ph["gavel-recovery"] {
		for _, stop := range []string{"kill", "term"} { // gavelrecovery.go
			r, err := b.gavelRecovery(ctx, stop)
			if err != nil {
				return err
			}
			writeGavelRecovery(r)
		}
	}
	if err := b.jitsiPhases(ctx); err != nil { // jitsi.go
		return err
	}
	return nil
}

// setupClients logs in the residents and joiners and primes the main rooms
// of both modes.
func (b *bench) setupClients(ctx context.Context) error {
	o, e := b.o, b.e
	nRes := o.m
	if o.phases["burst"] {
		nRes = max(nRes, o.burstRooms)
	}
	resUsers, err := e.register("r", nRes)
	if err != nil {
		return err
	}
	joinUsers, err := e.register("j", o.n)
	if err != nil {
		return err
	}
	logf("logging in %d residents and %d joiners", nRes, o.n)
	if b.residents, err = e.loginAll(ctx, resUsers, o.concurrency); err != nil {
		return err
	}
	cs, err := e.loginAll(ctx, joinUsers, o.concurrency)
	if err != nil {
		return err
	}
	for i, c := range cs {
		b.joiners = append(b.joiners, &joiner{id: i, c: c})
	}
	sets, err := b.primeAll(ctx, "main", o.m)
	b.rooms = sets
	return err
}

// setPrefix names the rooms of a mode's set: gavel's members-only rooms
// are in tenant [deny], the Lua stand-in acts in rooms named lua-*.
func setPrefix(mode, set string) string {
	switch mode {
	case modeDeny:
		return "[deny]" + set + "-"
	case modeLua:
		return "lua-o-" + set + "-"
	case modeLuaDeny:
		return "lua-d-" + set + "-"
	}
	return mode + "-" + set + "-"
}

// primeAll primes n rooms for each mode of the joins phases.
func (b *bench) primeAll(ctx context.Context, set string, n int) (map[string]roomSet, error) {
	sets := map[string]roomSet{}
	for _, mode := range []string{modeBare, modeGavel, modeDeny, modeLua, modeLuaDeny} {
		kind := roomSet{
			gavel: mode == modeGavel || mode == modeDeny,
			deny:  mode == modeDeny || mode == modeLuaDeny,
			lua:   mode == modeLua || mode == modeLuaDeny,
		}
		rs, d, err := b.primeSet(ctx, kind, setPrefix(mode, set), n)
		if err != nil {
			return nil, err
		}
		sets[mode] = rs
		b.res.Created = append(b.res.Created, created{Set: set, Mode: mode, Rooms: n, PerS: float64(n) / d.Seconds()})
	}
	return sets, nil
}

// compare runs o.rounds rounds of every variant, rotating their order each
// round so that drift hits every side alike, and summarizes each mode.
func (b *bench) compare(ctx context.Context, name, title string, vs []variant) (*phase, error) {
	p := &phase{Name: name, Title: fmt.Sprintf("%s; %d rounds per mode, medians", title, b.o.rounds)}
	for r := 0; r < b.o.rounds; r++ {
		for k := range vs {
			v := vs[(k+r)%len(vs)]
			s, err := v.run(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s, %s round %d: %w", name, v.mode, r+1, err)
			}
			s.Round = r + 1
			if b.o.verbose {
				one := summarize(v.mode, []sample{s})
				logf("%s %s round %d: %d joins in %v (%.0f/s), p50 %.1f p99 %.1f max %.1f ms, Prosody %.3f ms/join, Lua heap %.0f KiB, %d errors", name, v.mode, r+1, s.Joins, s.JoinWall.Round(time.Millisecond),
					one.Rate, one.P50, one.P99, one.Max, one.ProsodyPerOp, s.LuaKiB, s.Errors)
			}
			p.Rounds = append(p.Rounds, s)
		}
	}
	for _, v := range vs {
		p.Modes = append(p.Modes, summarize(v.mode, p.Rounds))
	}
	p.pair()
	return p, nil
}

// profileProsody records Prosody with perf during one round of mode; the
// returned function stops the recording.
func (b *bench) profileProsody(mode string) func() {
	f := filepath.Join(b.o.perfDir, "prosody-joins-"+mode+".perf.data")
	stop := b.e.perfRecord(b.e.srv.PID(), f)
	return func() {
		stop()
		logf("profile: perf report -i %s --no-children --sort dso,symbol", f)
	}
}

// gcSplit runs joins rounds with Prosody's Lua garbage collector running
// and stopped, back to back for each mode, to split Prosody's CPU per join
// into collection and the rest (Prosody's interpreter has no symbols for
// perf to tell them apart).
func (b *bench) gcSplit(ctx context.Context) error {
	on := map[string][]float64{}
	off := map[string][]float64{}
	modes := []string{modeBare, modeGavel}
	for r := 0; r < b.o.rounds; r++ {
		for k := range modes {
			mode := modes[(k+r)%len(modes)]
			for _, stopped := range []bool{false, true} {
				if stopped {
					if err := b.e.luaGC(ctx, "stop"); err != nil {
						return err
					}
				}
				s, err := b.joinsRound(ctx, b.rooms[mode], b.joiners, b.o.concurrency, b.o.stay)
				if stopped {
					if err2 := b.e.luaGC(ctx, "restart"); err == nil {
						err = err2
					}
				}
				if err != nil {
					return err
				}
				v := summarize(mode, []sample{s}).ProsodyPerOp
				if stopped {
					off[mode] = append(off[mode], v)
				} else {
					on[mode] = append(on[mode], v)
				}
			}
		}
	}
	for _, mode := range modes {
		g := gcSplit{Mode: mode, WithGC: median(on[mode]), WithoutGC: median(off[mode])}
		if g.WithGC > 0 {
			g.GCShare = 1 - g.WithoutGC/g.WithGC
		}
		b.res.GCSplit = append(b.res.GCSplit, g)
	}
	writeGCSplit(os.Stdout, b.res.GCSplit, false)
	return nil
}
