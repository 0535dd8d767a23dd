package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// recoveryResult is the restart of Prosody under governed rooms. Times
// after the restart count from the moment Prosody listens again.
type recoveryResult struct {
	// Stop is how Prosody was stopped: "term" (SIGTERM: clients are
	// disconnected, rooms saved with their affiliations) or "kill"
	// (SIGKILL: a crash; rooms are lost, gavel saw nobody leave).
	Stop    string `json:"stop"`
	Rooms   int    `json:"rooms"`
	Clients int    `json:"clients"`
	// Setup: every room created by a knock (gavel creates and unlocks it and
	// makes the knocker owner) and joined.
	SetupWall time.Duration `json:"setup_ns"`
	SetupPerS float64       `json:"setup_rooms_per_second"`
	// StopWall is SIGTERM to exit (Prosody saves the rooms); StartWall the
	// restart until both ports listen.
	StopWall  time.Duration `json:"stop_ns"`
	StartWall time.Duration `json:"start_ns"`
	// GavelLogged is when gavel logged "component connected" (-1: not
	// found); GavelAnswered when it first answered a probe's disco#info.
	GavelLogged   time.Duration `json:"gavel_connected_logged_ns"`
	GavelAnswered time.Duration `json:"gavel_answered_ns"`
	// A probe knock into every room is answered only once gavel is back in
	// that room and has reconciled it (affiliations re-applied).
	P50Answered  time.Duration  `json:"p50_room_answered_ns"`
	AllAnswered  time.Duration  `json:"all_rooms_answered_ns"`
	Retries      int            `json:"knock_retries"`
	RetryReasons map[string]int `json:"knock_retry_reasons,omitempty"`
	Errors       int            `json:"errors"`
	FirstErr     string         `json:"first_error,omitempty"`
	// ProsodyCPU counts from the restart, GavelCPU from the stop, both
	// until every room answered.
	ProsodyCPU time.Duration `json:"prosody_cpu_ns"`
	GavelCPU   time.Duration `json:"gavel_cpu_ns"`
	// GavelPeakKiB is gavel's peak RSS over the whole recovery run.
	GavelPeakKiB int64 `json:"gavel_peak_rss_kib"`
}

// recovery has recClients clients create and hold recRooms rooms through
// gavel, stops Prosody (stop "term" or "kill"), starts it again and
// measures how long until every room answers a knock.
//
// Each recovery runs on a Prosody and gavel of its own: a clean stop saves
// every live room, and Prosody's internal storage then rewrites its list
// of saved rooms on every room created or destroyed, which would slow any
// later phase on the same Prosody several times over.
func (b *bench) recovery(ctx context.Context, stop string) (*recoveryResult, error) {
	o := b.o
	o.dir = filepath.Join(b.e.dir, "recovery-"+stop)
	o.gavel = b.e.gavelBin
	e, err := start(ctx, o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	res := &recoveryResult{Stop: stop, Rooms: o.recRooms, Clients: o.recClients, GavelLogged: -1}
	users, err := e.register("k", o.recClients)
	if err != nil {
		return nil, err
	}
	const probes = 8
	probeUsers, err := e.register("probe", probes)
	if err != nil {
		return nil, err
	}
	holders, err := e.loginAll(ctx, users, o.concurrency)
	if err != nil {
		return nil, err
	}
	defer closeAll(holders)
	rooms := make([]string, o.recRooms)
	hostToks := make([]string, o.recRooms)
	probeToks := make([]string, o.recRooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("rec-%s-%d@%s", stop, i, prosodytest.MUC)
		if hostToks[i], err = e.token(algHS256, rooms[i], fmt.Sprintf("rec-host-%d", i), true); err != nil {
			return nil, err
		}
		if probeToks[i], err = e.token(algHS256, rooms[i], fmt.Sprintf("rec-probe-%d", i), false); err != nil {
			return nil, err
		}
	}
	logf("recovery: %d clients knock into and join %d rooms", o.recClients, o.recRooms)
	start := time.Now()
	err = parallel(ctx, o.recRooms, o.concurrency, func(i int) error {
		return enter(ctx, holders[i%len(holders)], rooms[i], fmt.Sprintf("k%d", i), hostToks[i], true)
	})
	if err != nil {
		return nil, fmt.Errorf("recovery setup: %w", err)
	}
	res.SetupWall = time.Since(start)
	res.SetupPerS = float64(o.recRooms) / res.SetupWall.Seconds()
	time.Sleep(500 * time.Millisecond) // gavel's last changes settle

	e.quiesce(ctx)
	u0 := e.usage()
	t := time.Now()
	if stop == "kill" {
		logf("recovery: killing Prosody (SIGKILL) under %d governed rooms", o.recRooms)
		err = e.srv.Kill()
	} else {
		logf("recovery: stopping Prosody (SIGTERM) under %d governed rooms", o.recRooms)
		// As real clients do, each holder closes its socket once the
		// server ends its stream, so Prosody need not wait for it.
		for _, c := range holders {
			go func() { <-c.Done(); c.Close() }()
		}
		err = e.srv.Stop()
	}
	if err != nil {
		return nil, err
	}
	res.StopWall = time.Since(t)
	t = time.Now()
	if err := e.srv.Restart(); err != nil {
		return nil, err
	}
	listening := time.Now()
	res.StartWall = listening.Sub(t)
	if err := e.pinProsody(); err != nil {
		logf("recovery: %v", err)
	}

	probeClients, err := e.loginAll(ctx, probeUsers, probes)
	if err != nil {
		return nil, fmt.Errorf("recovery probes: %w", err)
	}
	defer closeAll(probeClients)
	if err := e.waitGavel(ctx, probeClients[0], 30*time.Second); err != nil {
		return nil, err
	}
	res.GavelAnswered = time.Since(listening)

	answered := make([]time.Duration, o.recRooms)
	var (
		mu  sync.Mutex
		bad errs
	)
	deadline := time.Now().Add(60 * time.Second)
	_ = parallel(ctx, o.recRooms, 256, func(i int) error {
		c := probeClients[i%probes]
		for {
			cctx, cancel := context.WithTimeout(ctx, opTimeout)
			_, err := c.Knock(cctx, prosodytest.Component, rooms[i], probeToks[i])
			cancel()
			if err == nil {
				answered[i] = time.Since(listening)
				return nil
			}
			// Before gavel is back in the room the knock may be refused;
			// the time that counts is the first knock answered.
			var xe *xclient.Error
			if !errors.As(err, &xe) || time.Now().After(deadline) || ctx.Err() != nil {
				bad.add(fmt.Errorf("%s: %w", rooms[i], err))
				return nil
			}
			mu.Lock()
			res.Retries++
			if res.RetryReasons == nil {
				res.RetryReasons = map[string]int{}
			}
			res.RetryReasons[xe.Error()]++
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	})
	u1 := e.usage()
	// The restarted Prosody is a new process: its CPU counts from its start.
	res.ProsodyCPU, res.GavelCPU = u1.prosody, u1.gavel-u0.gavel
	res.Errors, res.FirstErr = bad.n, bad.first
	var ok []time.Duration
	for _, d := range answered {
		if d > 0 {
			ok = append(ok, d)
		}
	}
	slices.Sort(ok)
	res.P50Answered = pct(ok, 50)
	if len(ok) > 0 {
		res.AllAnswered = ok[len(ok)-1]
	}
	if res.Errors > 0 {
		res.AllAnswered = -1
	}
	if at, found := loggedConnected(e.gavelLog, listening); found {
		res.GavelLogged = at.Sub(listening)
	}
	res.GavelPeakKiB, _ = memKiB(e.gavelPID())
	return res, nil
}

// loggedConnected finds the first "component connected" line gavel logged
// after since.
func loggedConnected(path string, since time.Time) (time.Time, bool) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Time string `json:"time"`
			Msg  string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "component connected" {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", line.Time)
		if err == nil && !at.Before(since.Truncate(time.Millisecond)) {
			return at, true
		}
	}
	return time.Time{}, false
}

func writeRecovery(w io.Writer, r *recoveryResult, md bool) {
	sec := func(d time.Duration) string {
		if d < 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f s", d.Seconds())
	}
	how := "SIGTERM: clean stop"
	if r.Stop == "kill" {
		how = "SIGKILL: crash"
	}
	rows := [][2]string{
		{"Prosody stopped by", how},
		{"governed rooms (one owner each, held by clients)", fmt.Sprintf("%d (%d clients)", r.Rooms, r.Clients)},
		{"setup: knock and join creating each room", fmt.Sprintf("%s (%.0f rooms/s)", sec(r.SetupWall), r.SetupPerS)},
		{"Prosody stop until exited", sec(r.StopWall)},
		{"Prosody start until listening", sec(r.StartWall)},
		{"listening -> gavel logs \"component connected\"", sec(r.GavelLogged)},
		{"listening -> gavel answers a probe", sec(r.GavelAnswered)},
		{"listening -> half the rooms answer a knock", sec(r.P50Answered)},
		{"listening -> every room answers a knock", sec(r.AllAnswered)},
		{"probe knocks retried (refused while gavel was rejoining)", fmt.Sprint(r.Retries)},
		{"errors", fmt.Sprint(r.Errors)},
		{"Prosody CPU, restart to all answered", sec(r.ProsodyCPU)},
		{"gavel CPU, stop to all answered", sec(r.GavelCPU)},
		{"gavel peak RSS", fmt.Sprintf("%.1f MiB", float64(r.GavelPeakKiB)/1024)},
	}
	if md {
		mdRow(w, []string{"recovery", "value"})
		mdRow(w, []string{"---", "---:"})
	} else {
		fmt.Fprintf(w, "\n== Recovery: Prosody restarted under %d governed rooms (%s)\n", r.Rooms, how)
	}
	for _, row := range rows {
		if md {
			mdRow(w, row[:])
		} else {
			fmt.Fprintf(w, "%-58s %s\n", row[0], row[1])
		}
	}
	if r.FirstErr != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstErr)
	}
	for why, n := range r.RetryReasons {
		fmt.Fprintf(w, "knocks refused before an answer, %dx: %s\n", n, why)
	}
}
