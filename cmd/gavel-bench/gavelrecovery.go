package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// The gavel-recovery phase restarts gavel itself (not Prosody) under
// -recovery-rooms governed rooms, by SIGKILL and by SIGTERM, and measures
// how long after gavel's new process starts it is back in every room (its
// occupant's join, seen by the room's holder) and governing it (a knock
// into the room answered: knocks wait for the room's reconcile).

func init() {
	// Registered here so that the phase list in main.go stays as it is.
	allPhases = append(allPhases, "gavel-recovery")
	defaultPhases = append(defaultPhases, "gavel-recovery")
}

// gavelRecoveryResult is one restart of gavel under governed rooms.
type gavelRecoveryResult struct {
	Stop  string
	Rooms int
	// Back holds, per room, the time from the new process's start to
	// gavel's occupant joining the room again; Knock the time to a knock
	// into the room answered (a sample of rooms).
	Back, Knock []time.Duration
	Missing     int // rooms gavel did not come back to within the bound
}

func (b *bench) gavelRecovery(ctx context.Context, stop string) (*gavelRecoveryResult, error) {
	o := b.o
	o.dir = filepath.Join(b.e.dir, "gavel-recovery-"+stop)
	o.gavel = b.e.gavelBin
	e, err := start(ctx, o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	res := &gavelRecoveryResult{Stop: stop, Rooms: o.recRooms}
	users, err := e.register("g", o.recClients)
	if err != nil {
		return nil, err
	}
	holders, err := e.loginAll(ctx, users, o.concurrency)
	if err != nil {
		return nil, err
	}
	defer closeAll(holders)
	rooms := make([]string, o.recRooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("grec-%s-%d@%s", stop, i, prosodytest.MUC)
	}
	logf("gavel-recovery: %d clients knock into and join %d rooms", o.recClients, o.recRooms)
	err = parallel(ctx, o.recRooms, o.concurrency, func(i int) error {
		tok, err := e.token(algHS256, rooms[i], fmt.Sprintf("grec-host-%d", i), true)
		if err != nil {
			return err
		}
		return enter(ctx, holders[i%len(holders)], rooms[i], fmt.Sprintf("h%d", i), tok, true)
	})
	if err != nil {
		return nil, fmt.Errorf("gavel-recovery setup: %w", err)
	}
	// Each holder's presences so far: gavel's return is a presence after.
	seen := make([]int, len(holders))
	for i, c := range holders {
		seen[i] = len(c.Presences())
	}
	sig := syscall.SIGKILL
	if stop == "term" {
		sig = syscall.SIGTERM
	}
	logf("gavel-recovery: stopping gavel (%s) under %d governed rooms", sig, o.recRooms)
	_ = e.gavel.Process.Signal(sig)
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("gavel did not stop on %s", sig)
	}
	if err := e.startGavel(ctx); err != nil {
		return nil, err
	}
	started := e.gavelStarted // the process's start, after gavel -check
	// Governing: knocks into a sample of rooms, sent at once; each is
	// answered after its room's reconcile.
	probe, err := e.login(ctx, "grec-probe")
	if err != nil {
		return nil, err
	}
	defer probe.Close()
	var sample []int
	for i := 0; i < len(rooms); i += max(1, len(rooms)/20) {
		sample = append(sample, i)
	}
	knocked := make([]time.Duration, len(sample))
	knocks := make(chan struct{})
	go func() {
		defer close(knocks)
		_ = parallel(ctx, len(sample), len(sample), func(k int) error {
			i := sample[k]
			knocked[k] = -1
			tok, err := e.token(algHS256, rooms[i], fmt.Sprintf("grec-probe-%d", i), false)
			if err != nil {
				return nil
			}
			kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := probe.Knock(kctx, prosodytest.Component, rooms[i], tok); err == nil {
				knocked[k] = time.Since(started)
			}
			return nil
		})
	}()
	// Back in each room: the holder sees gavel's occupant available again.
	back := make([]time.Duration, len(rooms))
	err = parallel(ctx, len(rooms), o.concurrency, func(i int) error {
		h := i % len(holders)
		skip := seen[h]
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		prefix := strings.ToLower(rooms[i]) + "/gavel"
		_, err := holders[h].WaitPresence(wctx, func(p xclient.Presence) bool {
			if skip > 0 {
				skip--
				return false
			}
			return p.Type == "" && strings.HasPrefix(strings.ToLower(p.From), prefix)
		})
		if err != nil {
			back[i] = -1
			return nil
		}
		back[i] = time.Since(started)
		return nil
	})
	<-knocks
	if err != nil {
		return nil, err
	}
	for _, d := range back {
		if d < 0 {
			res.Missing++
			continue
		}
		res.Back = append(res.Back, d)
	}
	for _, d := range knocked {
		if d >= 0 {
			res.Knock = append(res.Knock, d)
		}
	}
	return res, nil
}

func writeGavelRecovery(r *gavelRecoveryResult) {
	how := map[string]string{"kill": "SIGKILL: crash", "term": "SIGTERM: clean stop"}[r.Stop]
	slices.Sort(r.Back)
	q := func(p float64) string {
		if len(r.Back) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f s", r.Back[min(len(r.Back)-1, int(p*float64(len(r.Back))))].Seconds())
	}
	fmt.Printf("\ngavel restarted (%s) under %d governed rooms\n", how, r.Rooms)
	fmt.Printf("  back in rooms (from the new process's start): p50 %s, p99 %s, all %s; rooms not back within 30 s: %d\n",
		q(0.5), q(0.99), q(1), r.Missing)
	if len(r.Knock) > 0 {
		fmt.Printf("  knocks sent at the start into a sample of %d rooms, all answered by %.2f s\n", len(r.Knock), slices.Max(r.Knock).Seconds())
	}
}
