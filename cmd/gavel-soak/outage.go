package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// outage stops Prosody for o.outage while gavel runs with debug logging,
// polling /readyz every 100 ms. It reports gavel's log lines during the
// outage (at most one per state change at info level and above), the
// backoff intervals between reconnection attempts (capped at
// reconnect_max, 1 s), /readyz going 503 and back to 200, and that knocks
// are answered again afterwards.
func outage(ctx context.Context, o options, r *result) error {
	e, err := newEnv(ctx, o.dir, o.gavel, "debug")
	if err != nil {
		return err
	}
	defer e.close()
	type sample struct {
		at   time.Time
		code int
	}
	var (
		mu      sync.Mutex
		samples []sample
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			code := e.readyz(ctx)
			mu.Lock()
			samples = append(samples, sample{time.Now(), code})
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	down := time.Now()
	logf("outage: Prosody stopped for %v", o.outage)
	if err := e.srv.Stop(); err != nil {
		return err
	}
	time.Sleep(o.outage - time.Since(down))
	if err := e.srv.Restart(); err != nil {
		return err
	}
	up := time.Now()
	readyErr := e.waitReady(ctx, 15*time.Second)
	ready := time.Now()
	time.Sleep(time.Second)
	close(stop)
	<-sampled
	end := time.Now()

	// /readyz: first 503 after the stop, first 200 after the restart.
	first503, back200 := time.Duration(-1), time.Duration(-1)
	for _, s := range samples {
		if first503 < 0 && s.at.After(down) && s.code == 503 {
			first503 = s.at.Sub(down)
		}
		if back200 < 0 && s.at.After(up) && s.code == 200 {
			back200 = s.at.Sub(up)
		}
	}
	bad200 := 0 // 200 while Prosody was away (after the first 503)
	for _, s := range samples {
		if first503 >= 0 && s.at.After(down.Add(first503)) && s.at.Before(up) && s.code == 200 {
			bad200++
		}
	}
	secs := func(d time.Duration) string {
		if d < 0 {
			return "never"
		}
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	r.row("Prosody away (SIGTERM, then started again)", fmt.Sprintf("%.0f s", up.Sub(down).Seconds()))
	r.check("/readyz 503 after the stop, within", secs(first503), first503 >= 0 && first503 <= 2*time.Second)
	r.check("/readyz answers 200 while Prosody is away", fmt.Sprint(bad200), bad200 == 0)
	r.check("/readyz 200 after Prosody listens again, within", secs(back200), readyErr == nil && back200 >= 0 && back200 <= 3*time.Second)

	lines, err := readLog(e.logPath)
	if err != nil {
		return err
	}
	during := between(lines, down, ready)
	loud := above(during, "info")
	states := 0
	for _, l := range loud {
		if stateChange(l) {
			states++
		}
	}
	r.check("gavel log lines (info and above) during the outage", fmt.Sprintf("%d (%d state changes)", len(loud), states), len(loud) <= 3 && states <= 3)
	for _, s := range summarize(loud, 8) {
		r.notef("log: %s", s)
	}
	var backoff []time.Duration
	for _, l := range during {
		if l.Msg == "component unreachable" {
			backoff = append(backoff, l.RetryIn)
		}
	}
	var worst time.Duration
	for _, d := range backoff {
		worst = max(worst, d)
	}
	r.row("reconnection attempts during the outage", fmt.Sprint(len(backoff)))
	show := backoff
	if len(show) > 12 {
		show = show[:12]
	}
	r.row("backoff intervals (first 12)", durations(show))
	r.check("longest backoff interval (reconnect_max 1 s)", worst.Round(time.Millisecond).String(), len(backoff) > 0 && worst <= time.Second)
	var connected time.Duration = -1
	for _, l := range between(lines, up, end) {
		if l.Msg == "component connected" {
			connected = l.Time.Sub(up.Truncate(time.Millisecond))
			break
		}
	}
	r.check("Prosody listening -> gavel connected (reconnect_max + 1 s)", secs(connected), connected >= 0 && connected <= 2*time.Second)

	// Knocks are answered again.
	c, err := e.login(ctx, "after")
	if err != nil {
		return err
	}
	defer c.Close()
	var st knockStats
	rm := room(tenantToken, "after-outage")
	_, _, err = enter(ctx, &st, c, rm, "after", e.token(rm, "after", true, time.Hour))
	r.check("a knock and join after the outage", fmt.Sprint(err == nil), err == nil)
	if err != nil {
		r.notef("after the outage: %v", err)
	}
	return nil
}
