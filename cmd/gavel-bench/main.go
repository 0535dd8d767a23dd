// Command gavel-bench is gavel's load generator and benchmark: it starts a
// throwaway Prosody and the gavel binary on loopback, drives real client
// sessions through them, and compares every figure with the same clients
// joining the same kind of rooms in the same Prosody without gavel.
//
// Phases (-phases, all by default):
//
//	joins     N clients knock and join M rooms (C in flight), stay, leave:
//	          joins/s, knock+join latency, CPU, fan-out; in open rooms
//	          (guests: member), in members-only rooms (guests: deny, the
//	          default), into gavel's rooms without knocking (gavel's
//	          presence alone), and with a Lua stand-in for Jitsi's
//	          token_affiliation (a pre-join affiliation set in Prosody)
//	joins100  the same into rooms of -big occupants
//	rejoin    (not in the default set) joiners leave and come back at
//	          once: what holding clear_on_leave resets saves
//	decomp    (not in the default set) where Prosody's extra CPU per
//	          moderated join goes: gavel's presence, the knock, owner and
//	          member grants with their resets, each with Prosody's Lua
//	          collector running and stopped
//	paced     joins at a fixed -rate for -duration: latency added by gavel
//	arrivals  each client logs in, knocks and joins at once (C in flight),
//	          with HS256 and with RS256 tokens
//	burst     -burst joiners into -burst-rooms rooms at once
//	recovery  Prosody restarted under -recovery-rooms governed rooms: time
//	          until every room is rejoined and answers knocks again
//	flood     -flood-good accounts knock within their own limit, alone and
//	          while -flood-guests anonymous guests flood knocks with bad
//	          signatures into the same tenant: the good knocks' latency
//	          and refusals, the flood's outcomes
//	policy    the policy engine alone, in process: memory per tracked
//	          occupant and decisions per second on one core
//
// Bare and moderated rounds alternate (-rounds each, order rotating), with
// a full Lua garbage collection in Prosody before every round; medians are
// reported, and ratios are paired (each moderated round against the bare
// round next to it), so that they hold on a noisy machine. Prosody is
// pinned to one CPU and the load generator and gavel to another
// (taskset). CPU time and peak RSS come from /proc. Every address is on
// 127.0.0.1; every phase is bounded in count and time, and the whole run
// by -timeout. It prints tables and the targets, met or missed,
// and writes JSON (-json) and Markdown (-markdown).
//
// Usage:
//
//	make bench
//	go run ./cmd/gavel-bench -gavel bin/gavel -phases joins -perf bin/bench/perf
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	gavel       string
	dir         string
	keep        bool
	phases      map[string]bool
	n, m        int
	concurrency int
	rounds      int
	stay        time.Duration
	duration    time.Duration
	rate        float64
	arrivals    int
	burst       int
	burstRooms  int
	recRooms    int
	recClients  int
	recStops    []string
	moderators  float64
	policyRooms int
	policyPer   int
	policyTime  time.Duration
	floodGuests int
	floodGood   int
	floodEvery  time.Duration
	floodTime   time.Duration
	pin         bool
	gc          bool
	perfDir     string
	prosodyGC   string
	prosody     string
	mucStorage  string
	big         int
	gavelData   string
	jsonPath    string
	mdPath      string
	timeout     time.Duration
	verbose     bool
}

var allPhases = []string{"joins", "joins100", "paced", "arrivals", "burst", "decomp", "rejoin", "flood", "recovery", "policy"}

// defaultPhases are what make bench runs: all but the decomposition and
// the rejoin phase, which measure single causes (-phases decomp,rejoin).
var defaultPhases = []string{"joins", "joins100", "paced", "arrivals", "burst", "flood", "recovery", "policy"}

func main() { os.Exit(run()) }

func run() int {
	var o options
	var phases, recStops string
	flag.StringVar(&o.gavel, "gavel", "", "gavel binary to benchmark (default: build ./cmd/gavel into the work directory)")
	flag.StringVar(&o.dir, "dir", "", "work directory for Prosody, gavel and profiles (default: a fresh temporary directory)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (it is always kept when the run fails)")
	flag.StringVar(&phases, "phases", strings.Join(defaultPhases, ","), "phases to run, comma-separated: "+strings.Join(allPhases, ","))
	flag.IntVar(&o.n, "n", 200, "N: client sessions that join (joins, paced, burst pool)")
	flag.IntVar(&o.m, "m", 20, "M: rooms they join")
	flag.IntVar(&o.concurrency, "concurrency", 32, "joins (and arrivals) in flight at once")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds per mode in each comparison (bare and gavel alternate)")
	flag.DurationVar(&o.stay, "stay", time.Second, "how long a joiner stays (joins: after the last join; paced: after its own)")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "length of each paced round")
	flag.Float64Var(&o.rate, "rate", 100, "joins per second in the paced rounds")
	flag.IntVar(&o.arrivals, "arrivals", 200, "arrivals (login, knock, join) per arrivals round")
	flag.IntVar(&o.burst, "burst", 200, "joiners in the burst (at most -n)")
	flag.IntVar(&o.burstRooms, "burst-rooms", 20, "rooms of the burst")
	flag.IntVar(&o.recRooms, "recovery-rooms", 1000, "governed rooms when Prosody restarts")
	flag.IntVar(&o.recClients, "recovery-clients", 50, "clients holding the recovery rooms (rooms are spread over them)")
	flag.StringVar(&recStops, "recovery-stop", "term,kill", "how Prosody is stopped in the recovery phase, one recovery each: term (SIGTERM, clean) and/or kill (SIGKILL, crash)")
	flag.Float64Var(&o.moderators, "moderators", 0.1, "share of gavel joiners whose token makes them moderator (owner), spread so that every room gets its share")
	flag.IntVar(&o.policyRooms, "policy-rooms", 10000, "rooms of the policy engine phase")
	flag.IntVar(&o.policyPer, "policy-occupants", 10, "occupants per room in the policy engine phase")
	flag.DurationVar(&o.policyTime, "policy-time", 2*time.Second, "how long each policy decision rate is measured")
	flag.IntVar(&o.floodGuests, "flood-guests", 400, "anonymous guests flooding bad-signature knocks (flood)")
	flag.IntVar(&o.floodGood, "flood-good", 20, "good accounts knocking within their limit (flood)")
	flag.DurationVar(&o.floodEvery, "flood-every", 2500*time.Millisecond, "each good account knocks this often (flood; the tenant allows one every 2s per JID)")
	flag.DurationVar(&o.floodTime, "flood-time", 20*time.Second, "length of each half of the flood phase")
	flag.BoolVar(&o.pin, "pin", true, "pin Prosody to the first CPU and this command and gavel to the second (needs 2 CPUs and taskset)")
	flag.BoolVar(&o.gc, "gc", true, "run a full Lua garbage collection in Prosody before every round (prosodyctl shell)")
	flag.StringVar(&o.prosodyGC, "prosody-gc", "", `Prosody's Lua collector: "" (Prosody's default, incremental) or "generational"`)
	flag.StringVar(&o.prosody, "prosody", "", "prosody executable (default: $GAVEL_PROSODY, else the system's); e.g. bin/servers/prosody-13/usr/bin/prosody")
	flag.StringVar(&o.mucStorage, "muc-storage", "", `storage of the MUC component's rooms: "" (Prosody's internal files, as configured globally) or "memory" (as Jitsi's default config)`)
	flag.StringVar(&o.gavelData, "gavel-data", "", "gavel's data_dir (its bbolt store; default: in the work directory); a tmpfs such as /dev/shm/gavel-bench takes the disk's fsync out (a diagnostic)")
	flag.IntVar(&o.big, "big", 100, "occupants per room in the joins100 phase: -n joiners into -n/-big rooms")
	flag.StringVar(&o.perfDir, "perf", "", "record CPU profiles into this directory (perf record: gavel over the client phases, Prosody over one joins round per mode) and split Prosody's CPU per join with its Lua collector stopped")
	flag.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.mdPath, "markdown", "", "also write the results as Markdown tables to this file")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "upper bound for the whole run")
	flag.BoolVar(&o.verbose, "v", false, "print progress details")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	o.phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(allPhases, p) {
			fmt.Fprintf(os.Stderr, "gavel-bench: unknown phase %q (want %s)\n", p, strings.Join(allPhases, ","))
			return 2
		}
		o.phases[p] = true
	}
	for _, s := range strings.Split(recStops, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if s != "term" && s != "kill" {
				fmt.Fprintf(os.Stderr, "gavel-bench: -recovery-stop: unknown %q (want term, kill)\n", s)
				return 2
			}
			o.recStops = append(o.recStops, s)
		}
	}
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "gavel-bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := runBench(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "gavel-bench:", err)
		return 1
	}
	return 0
}

// check bounds the flags, so that a run stays small enough for one machine.
func (o *options) check() error {
	switch {
	case o.n < 1 || o.n > 2000:
		return errors.New("-n must be between 1 and 2000")
	case o.m < 1 || o.m > o.n:
		return errors.New("-m must be between 1 and -n")
	case o.concurrency < 1 || o.concurrency > 1000:
		return errors.New("-concurrency must be between 1 and 1000")
	case o.rounds < 1 || o.rounds > 50:
		return errors.New("-rounds must be between 1 and 50")
	case o.rate <= 0 || o.rate > 5000:
		return errors.New("-rate must be above 0 and at most 5000")
	case o.duration <= 0 || o.duration > 5*time.Minute:
		return errors.New("-duration must be above 0 and at most 5m")
	case o.stay < 0 || o.stay > time.Minute:
		return errors.New("-stay must be between 0 and 1m")
	case o.arrivals < 1 || o.arrivals > 2000:
		return errors.New("-arrivals must be between 1 and 2000")
	case o.phases["burst"] && (o.burst < 1 || o.burst > o.n):
		return errors.New("-burst must be between 1 and -n")
	case o.phases["burst"] && (o.burstRooms < 1 || o.burstRooms > o.burst):
		return errors.New("-burst-rooms must be between 1 and -burst")
	case o.recRooms < 1 || o.recRooms > 10000:
		return errors.New("-recovery-rooms must be between 1 and 10000")
	case o.recClients < 1 || o.recClients > o.recRooms || o.recClients > 1000:
		return errors.New("-recovery-clients must be between 1 and min(-recovery-rooms, 1000)")
	case o.moderators < 0 || o.moderators > 1:
		return errors.New("-moderators must be between 0 and 1")
	case o.policyRooms < 1 || o.policyRooms > 100000 || o.policyPer < 1 || o.policyPer > 100:
		return errors.New("-policy-rooms must be between 1 and 100000, -policy-occupants between 1 and 100")
	case o.policyTime <= 0 || o.policyTime > time.Minute:
		return errors.New("-policy-time must be above 0 and at most 1m")
	case o.prosodyGC != "" && o.prosodyGC != "generational" && o.prosodyGC != "incremental":
		return errors.New(`-prosody-gc must be "", "incremental" or "generational"`)
	case o.phases["flood"] && (o.floodGuests < 1 || o.floodGuests > 2000 || o.floodGood < 1 || o.floodGood > 200):
		return errors.New("-flood-guests must be between 1 and 2000, -flood-good between 1 and 200")
	case o.phases["flood"] && (o.floodEvery < 2*time.Second || o.floodTime <= 0 || o.floodTime > 2*time.Minute):
		return errors.New("-flood-every must be at least 2s (the per-JID limit), -flood-time above 0 and at most 2m")
	case o.mucStorage != "" && o.mucStorage != "memory":
		return errors.New(`-muc-storage must be "" or "memory"`)
	case o.phases["joins100"] && (o.big < 2 || o.big > o.n):
		return errors.New("-big must be between 2 and -n")
	case o.timeout <= 0:
		return errors.New("-timeout must be positive")
	}
	return nil
}
