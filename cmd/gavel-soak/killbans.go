package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
)

// killBans sends o.killBans concurrent bans (a third each by user id, JID
// and token), and kills gavel with SIGKILL as soon as the last one is
// answered; o.killRounds times, then once more while the bans are still
// in flight (after a quarter of them are answered). After each restart
// every ban answered 2xx must be listed.
func killBans(ctx context.Context, o options, r *result) error {
	e, err := newEnv(ctx, o.dir, o.gavel, "info")
	if err != nil {
		return err
	}
	defer e.close()
	tokRoom := room(tenantToken, "leaked")
	var (
		acked, sent, missing, failed int
		restartWall                  []time.Duration
	)
	// round sends the bans of round k; with inFlight it kills gavel after a
	// quarter of them are answered. It returns the acknowledged bans.
	round := func(k int, inFlight bool) ([]ban, int, error) {
		bans := make([]ban, o.killBans)
		for i := range bans {
			v := fmt.Sprintf("kb-%d-%d", k, i)
			switch i % 3 {
			case 0:
				bans[i] = ban{Kind: "user", Value: v}
			case 1:
				bans[i] = ban{Kind: "jid", Value: v + "@" + prosodytest.Host}
			default:
				bans[i] = ban{Kind: "token", Value: e.token(tokRoom, v, false, time.Hour)}
			}
		}
		var (
			mu       sync.Mutex
			ok       []ban
			answered atomic.Int32
			errs     int
			killed   = make(chan struct{})
			once     sync.Once
		)
		kill := func() {
			once.Do(func() {
				_ = e.stopGavel(syscall.SIGKILL)
				close(killed)
			})
		}
		var wg sync.WaitGroup
		for _, b := range bans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.issue(ctx, tenantToken, b)
				mu.Lock()
				defer mu.Unlock()
				if err == nil && res.Code/100 == 2 {
					ok = append(ok, b)
				} else {
					errs++
				}
				if inFlight && int(answered.Add(1)) == len(bans)/4 {
					go kill()
				}
			}()
		}
		wg.Wait()
		kill()
		<-killed
		return ok, errs, nil
	}
	check := func(label string, ok []ban) error {
		t := time.Now()
		if err := e.startGavel(ctx); err != nil {
			return fmt.Errorf("%s: restart: %w", label, err)
		}
		restartWall = append(restartWall, time.Since(t))
		listed, err := e.bans(ctx, tenantToken)
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		have := map[string]bool{}
		for _, l := range listed {
			have[l.Kind+" "+l.Value] = true
		}
		for _, b := range ok {
			v := b.Value
			if b.Kind == "token" {
				v = tokenHash(v)
			}
			if !have[b.Kind+" "+v] {
				missing++
				if missing <= 5 {
					r.notef("%s: acknowledged ban missing after kill -9: %s %s", label, b.Kind, v)
				}
			}
		}
		return nil
	}
	for k := 1; k <= o.killRounds && ctx.Err() == nil; k++ {
		ok, errs, err := round(k, false)
		if err != nil {
			return err
		}
		sent += o.killBans
		acked += len(ok)
		failed += errs
		if err := check(fmt.Sprintf("round %d", k), ok); err != nil {
			return err
		}
		logf("kill-bans: round %d: %d of %d acknowledged, then kill -9", k, len(ok), o.killBans)
	}
	r.row("rounds: bans, all answered, then kill -9", fmt.Sprint(o.killRounds))
	r.row("bans sent (user, JID, token in turn)", fmt.Sprint(sent))
	r.check("bans not answered 2xx (gavel was up)", fmt.Sprint(failed), failed == 0)
	r.row("bans acknowledged (2xx)", fmt.Sprint(acked))
	r.check("acknowledged bans missing after kill -9 and restart", fmt.Sprint(missing), missing == 0)

	missing = 0
	ok, errs, err := round(0, true)
	if err != nil {
		return err
	}
	if err := check("in flight", ok); err != nil {
		return err
	}
	logf("kill-bans: in flight: %d of %d acknowledged before kill -9", len(ok), o.killBans)
	r.row("in flight: bans sent, kill -9 after a quarter answered", fmt.Sprint(o.killBans))
	r.row("in flight: acknowledged (2xx) / not answered", fmt.Sprintf("%d / %d", len(ok), errs))
	r.check("in flight: acknowledged bans missing after restart", fmt.Sprint(missing), missing == 0)
	var worst time.Duration
	for _, d := range restartWall {
		worst = max(worst, d)
	}
	r.row("gavel start -> /readyz 200, slowest", fmt.Sprintf("%.2f s", worst.Seconds()))
	return nil
}
