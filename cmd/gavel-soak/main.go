// Command gavel-soak is gavel's fault suite: it runs gavel as a real
// process against a real Prosody on loopback, restarts and kills both
// under load, and checks that no knock goes unanswered, no acknowledged
// ban is lost, nobody gets a wrong role and gavel returns to its rooms.
// The bridge scenario does the same for a Jitsi-shaped deployment, where
// mod_gavel_bridge asks gavel about every join and gavel governs the rooms
// from outside (bridge.go).
//
// Each scenario prints a table of numbers and checks; the program exits 1
// when any check fails. -markdown writes the report (docs/RELIABILITY.md
// with `make soak`).
//
//	go run ./cmd/gavel-soak -gavel bin/gavel [-short] [-scenarios a,b] [-markdown FILE]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	gavel     string
	dir       string
	markdown  string
	scenarios string
	short     bool
	control   bool // gavel-restart: run the checks without restarting gavel

	restarts      int // prosody-restarts: Prosody restarts
	restartRooms  int // prosody-restarts: governed rooms held by clients
	killRounds    int // kill-bans: rounds of bans then kill -9
	killBans      int // kill-bans: bans per round
	churnClients  int
	churnRestarts int
	churnEvery    time.Duration
	outage        time.Duration
	bridgeRounds  int           // bridge: rounds of a gavel kill and a Prosody restart
	bridgeClients int           // bridge: churning clients
	bridgeDown    time.Duration // bridge: how long gavel stays killed
	bridgeSettle  time.Duration // bridge: pause between faults
}

// scenario is one fault the suite injects.
type scenario struct {
	name, title string
	run         func(ctx context.Context, o options, r *result) error
}

var scenarios = []scenario{
	{"prosody-restarts", "Prosody restarted again and again under governed rooms", prosodyRestarts},
	{"kill-bans", "gavel killed (SIGKILL) right after, and while, bans are acknowledged", killBans},
	{"gavel-restart", "gavel restarted under occupied rooms of each policy", gavelRestart},
	{"churn", "clients knocking and joining while Prosody restarts", churn},
	{"outage", "Prosody away for a while", outage},
	{"bridge", "Jitsi-style joins through mod_gavel_bridge while gavel is killed and Prosody restarted", bridge},
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	flag.StringVar(&o.gavel, "gavel", "", "gavel binary (default: go build ./cmd/gavel into the work directory)")
	flag.StringVar(&o.dir, "dir", "", "work directory for configs, logs and data (default: a new temporary directory, kept)")
	flag.StringVar(&o.markdown, "markdown", "", "write the report as Markdown to this file")
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	flag.StringVar(&o.scenarios, "scenarios", strings.Join(names, ","), "scenarios to run, comma separated")
	flag.BoolVar(&o.control, "control", false, "gavel-restart: run only the control (its checks without restarting gavel)")
	flag.BoolVar(&o.short, "short", false, "scale every scenario down (CI: a few minutes in all); flags given explicitly still apply")
	flag.IntVar(&o.restarts, "restarts", 100, "prosody-restarts: Prosody restarts, alternating SIGTERM and SIGKILL")
	flag.IntVar(&o.restartRooms, "rooms", 50, "prosody-restarts: governed rooms, each held by a client")
	flag.IntVar(&o.killRounds, "kill-rounds", 10, "kill-bans: rounds of acknowledged bans followed by kill -9")
	flag.IntVar(&o.killBans, "kill-bans", 200, "kill-bans: concurrent bans per round (user, JID and token)")
	flag.IntVar(&o.churnClients, "churn-clients", 20, "churn: clients knocking and joining continuously")
	flag.IntVar(&o.churnRestarts, "churn-restarts", 10, "churn: Prosody restarts")
	flag.DurationVar(&o.churnEvery, "churn-every", 5*time.Second, "churn: time between Prosody restarts")
	flag.DurationVar(&o.outage, "outage", 60*time.Second, "outage: how long Prosody stays away")
	flag.IntVar(&o.bridgeRounds, "bridge-rounds", 10, "bridge: rounds, each a gavel kill -9 and restart, then a Prosody restart (SIGTERM, SIGKILL in turn)")
	flag.IntVar(&o.bridgeClients, "bridge-clients", 8, "bridge: clients joining and leaving continuously (besides 3 residents per room)")
	flag.DurationVar(&o.bridgeDown, "bridge-down", 2*time.Second, "bridge: how long gavel stays killed in each round")
	flag.DurationVar(&o.bridgeSettle, "bridge-settle", time.Second, "bridge: pause between faults (churn goes on)")
	flag.Parse()
	if o.short {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		short := map[string]func(){
			"restarts":       func() { o.restarts = 10 },
			"rooms":          func() { o.restartRooms = 20 },
			"kill-rounds":    func() { o.killRounds = 2 },
			"kill-bans":      func() { o.killBans = 200 },
			"churn-clients":  func() { o.churnClients = 10 },
			"churn-restarts": func() { o.churnRestarts = 3 },
			"churn-every":    func() { o.churnEvery = 4 * time.Second },
			"outage":         func() { o.outage = 10 * time.Second },
			"bridge-rounds":  func() { o.bridgeRounds = 6 },
			"bridge-clients": func() { o.bridgeClients = 6 },
			"bridge-down":    func() { o.bridgeDown = time.Second },
			"bridge-settle":  func() { o.bridgeSettle = 500 * time.Millisecond },
		}
		for name, f := range short {
			if !set[name] {
				f()
			}
		}
	}
	var chosen []scenario
	for _, n := range strings.Split(o.scenarios, ",") {
		n = strings.TrimSpace(n)
		found := false
		for _, s := range scenarios {
			if s.name == n {
				chosen, found = append(chosen, s), true
			}
		}
		if !found {
			fmt.Fprintf(os.Stderr, "gavel-soak: unknown scenario %q (have %s)\n", n, strings.Join(names, ", "))
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.dir == "" {
		d, err := os.MkdirTemp("", "gavel-soak-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "gavel-soak:", err)
			return 1
		}
		o.dir = d
	}
	o.dir, _ = filepath.Abs(o.dir)
	if err := os.MkdirAll(o.dir, 0o750); err != nil {
		fmt.Fprintln(os.Stderr, "gavel-soak:", err)
		return 1
	}
	if o.gavel == "" {
		o.gavel = filepath.Join(o.dir, "gavel")
		logf("building gavel: go build -o %s ./cmd/gavel", o.gavel)
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", o.gavel, "./cmd/gavel").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "gavel-soak: go build ./cmd/gavel (run from the repository root, or pass -gavel): %v\n%s", err, out)
			return 1
		}
	}
	o.gavel, _ = filepath.Abs(o.gavel)
	logf("work directory %s", o.dir)

	begin := time.Now()
	var results []*result
	for _, s := range chosen {
		if ctx.Err() != nil {
			break
		}
		r := &result{Name: s.name, Title: s.title}
		logf("scenario %s", s.name)
		t := time.Now()
		sdir := filepath.Join(o.dir, s.name)
		_ = os.RemoveAll(sdir)
		so := o
		so.dir = sdir
		r.Err = s.run(ctx, so, r)
		r.Duration = time.Since(t)
		r.writeText(os.Stdout)
		results = append(results, r)
	}
	total := time.Since(begin)
	failed := 0
	fmt.Println()
	for _, r := range results {
		if r.Passed() {
			fmt.Printf("PASS %s\n", r.Name)
			continue
		}
		failed++
		for _, f := range r.Failed() {
			fmt.Printf("FAIL %s: %s\n", r.Name, f)
		}
	}
	fmt.Printf("%d of %d scenarios passed in %.0f s; logs under %s\n", len(results)-failed, len(results), total.Seconds(), o.dir)
	if o.markdown != "" {
		if err := writeReport(ctx, o, results, total); err != nil {
			fmt.Fprintln(os.Stderr, "gavel-soak:", err)
			return 1
		}
		logf("report written to %s", o.markdown)
	}
	if failed > 0 || len(results) < len(chosen) {
		return 1
	}
	return 0
}

// keepMarker starts the part of the report that gavel-soak keeps when it
// writes the report again: notes and numbers of other runs (a -short
// run's), written by hand.
const keepMarker = "<!-- gavel-soak keeps what follows when it writes this file again -->"

// keptTail returns the part of an earlier report from keepMarker on ("" if
// it has none).
func keptTail(old []byte) string {
	if i := strings.Index(string(old), keepMarker); i >= 0 {
		return string(old[i:])
	}
	return ""
}

// writeReport writes the Markdown report with the machine and date, and
// what the earlier report had from keepMarker on.
func writeReport(ctx context.Context, o options, results []*result, total time.Duration) error {
	old, _ := os.ReadFile(o.markdown)
	kept := keptTail(old)
	f, err := os.Create(o.markdown)
	if err != nil {
		return err
	}
	defer f.Close()
	m := describeMachine(ctx, o.gavel)
	run := "full"
	if o.short {
		run = "short (`-short`)"
	}
	fmt.Fprintf(f, `# gavel reliability: the fault suite

Written by `+"`gavel-soak`"+` (`+"`make soak`"+`; `+"`make soak-short`"+` is the version CI runs).
gavel runs as a real process against a real Prosody on loopback; the
suite stops, kills and restarts both under load. What each scenario does
and checks: [the README](../README.md#reliability-make-soak) and
`+"`go doc ./cmd/gavel-soak`"+`.

| | |
| --- | --- |
| date | %s |
| run | %s, %.0f s, scenarios: %s |
| machine | %d CPUs (%s), %d GiB memory, Linux %s |
| Prosody | %s |
| gavel | %s |
| Go | %s |
`, m.date, run, total.Seconds(), o.scenarios, m.cpus, m.cpuModel, m.memGiB, m.kernel, m.prosody, m.gavel, m.goVersion)
	passed := 0
	for _, r := range results {
		if r.Passed() {
			passed++
		}
	}
	fmt.Fprintf(f, "\n%d of %d scenarios passed.\n", passed, len(results))
	for _, r := range results {
		if !r.Passed() {
			for _, x := range r.Failed() {
				fmt.Fprintf(f, "- **%s** failed: %s\n", r.Name, mdEscape(x))
			}
		}
	}
	for _, r := range results {
		r.writeMarkdown(f)
	}
	if kept != "" {
		fmt.Fprintf(f, "\n%s", kept)
	}
	return f.Close()
}

// machine describes where the suite ran.
type machine struct {
	date, cpuModel, kernel, prosody, gavel, goVersion string
	cpus, memGiB                                      int
}

func describeMachine(ctx context.Context, gavelBin string) machine {
	m := machine{
		date:      time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		cpus:      runtime.NumCPU(),
		goVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(cctx, "nproc").Output(); err == nil {
		fmt.Sscan(string(out), &m.cpus)
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		m.memGiB = int((kb + 512<<10) >> 20)
	}
	m.prosody = "unknown"
	if out, err := exec.CommandContext(cctx, "prosodyctl", "about").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "Prosody ") {
				m.prosody = strings.TrimSpace(line)
				break
			}
		}
	}
	if out, err := exec.CommandContext(cctx, gavelBin, "-version").Output(); err == nil {
		m.gavel = strings.TrimSpace(string(out))
	}
	return m
}

// rssKiB returns the resident set of pid in KiB (0 when it is gone).
func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(rest, &kb)
			return kb
		}
	}
	return 0
}
