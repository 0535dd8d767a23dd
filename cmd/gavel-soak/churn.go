package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gavelxmpp/gavel/internal/xclient"
)

// churn has o.churnClients clients knock, join, stay a moment and leave,
// over and over, in rooms of every policy, while Prosody is restarted
// o.churnRestarts times (alternating SIGTERM and SIGKILL, o.churnEvery
// apart). It counts knocks answered, refused by reason and unanswered,
// and joiners whose first self-presence differs from what their knock
// promised (must be 0).
func churn(ctx context.Context, o options, r *result) error {
	e, err := newEnv(ctx, o.dir, o.gavel, "info")
	if err != nil {
		return err
	}
	defer e.close()
	begin := time.Now()
	rooms := []string{
		room(tenantToken, "churn-0"), room(tenantToken, "churn-1"),
		room(tenantAuto, "churn-0"), room(tenantAuto, "churn-1"),
		room(tenantAll, "churn-0"),
	}
	var (
		st       knockStats
		mu       sync.Mutex
		visits   int
		joinErrs = map[string]int{}
		logins   int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < o.churnClients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *xclient.Client
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			user := fmt.Sprintf("churn%d", i)
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if c == nil || sessionEnded(c) {
					if c != nil {
						c.Close()
					}
					var err error
					if c, err = loginRetry(ctx, e, user, 30*time.Second); err != nil {
						mu.Lock()
						joinErrs["login failed for 30 s"]++
						mu.Unlock()
						c = nil
						time.Sleep(time.Second)
						continue
					}
					mu.Lock()
					logins++
					mu.Unlock()
				}
				rm := rooms[(i+k)%len(rooms)]
				tok := e.token(rm, user, strings.Contains(rm, "["+tenantToken+"]") && k%2 == 0, time.Hour)
				nick := fmt.Sprintf("%s-%d", user, k)
				res, out, err := knock(ctx, &st, c, rm, tok)
				if err != nil {
					if retryable(out) || out == outLost {
						time.Sleep(200 * time.Millisecond)
					}
					continue
				}
				jctx, cancel := context.WithTimeout(ctx, opTimeout)
				p, err := c.Join(jctx, rm, nick)
				cancel()
				mu.Lock()
				visits++
				mu.Unlock()
				if err != nil {
					why := "join failed: " + err.Error()
					if sessionEnded(c) {
						why = "join cut off: the server went away"
					}
					mu.Lock()
					joinErrs[why]++
					mu.Unlock()
					continue
				}
				if w := wrongRole(res, p); w != "" {
					st.wrong(rm + ": " + w)
				}
				time.Sleep(100 * time.Millisecond)
				_ = leave(ctx, c, rm, nick)
			}
		}()
	}
	restarts := 0
	var restartErr error
	for j := 1; j <= o.churnRestarts && ctx.Err() == nil; j++ {
		time.Sleep(o.churnEvery)
		var err error
		if j%2 == 1 {
			err = e.srv.Stop()
		} else {
			err = e.srv.Kill()
		}
		if err == nil {
			err = e.srv.Restart()
		}
		if err != nil {
			restartErr = err
			break
		}
		restarts++
		logf("churn: Prosody restart %d/%d", j, o.churnRestarts)
	}
	time.Sleep(o.churnEvery)
	close(stop)
	wg.Wait()
	if restartErr != nil {
		return restartErr
	}
	r.row("clients knocking and joining", fmt.Sprint(o.churnClients))
	r.row("Prosody restarts (alternating SIGTERM, SIGKILL)", fmt.Sprint(restarts))
	r.row("duration", fmt.Sprintf("%.0f s", time.Since(begin).Seconds()))
	r.row("logins (first and after each restart)", fmt.Sprint(logins))
	r.row("joins after a granted knock", fmt.Sprint(visits))
	for _, k := range sortedKeys(joinErrs) {
		r.row("  "+k, fmt.Sprint(joinErrs[k]))
	}
	st.rows(r)
	logChecks(r, e, begin, time.Now(), restarts)
	return nil
}
