package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// prosodyRestarts restarts Prosody o.restarts times in a row, alternating
// SIGTERM and SIGKILL, under o.restartRooms governed rooms each held by a
// client (owner by token). After every restart each holder logs in again,
// knocks (retrying what a client retries) and rejoins; then one new ban
// removes a victim who joined a room (by user id and by JID, alternately).
// At the end every ban must be listed and enforced, gavel's RSS (sampled
// every 10 restarts) flat, and its log free of warnings other than one per
// connection state change.
func prosodyRestarts(ctx context.Context, o options, r *result) error {
	e, err := newEnv(ctx, o.dir, o.gavel, "info")
	if err != nil {
		return err
	}
	defer e.close()
	begin := time.Now()
	var st knockStats
	n := o.restartRooms
	rooms := make([]string, n)
	toks := make([]string, n)
	for i := range rooms {
		rooms[i] = room(tenantToken, fmt.Sprintf("held-%d", i))
		toks[i] = e.token(rooms[i], fmt.Sprintf("holder-%d", i), true, 24*time.Hour)
	}
	holders := make([]*xclient.Client, n)
	defer func() { closeAll(holders) }()
	// hold logs every holder in and into its room.
	hold := func() (errs []error) {
		return parallel(n, 10, func(i int) error {
			if holders[i] != nil {
				holders[i].Close()
			}
			c, err := loginRetry(ctx, e, fmt.Sprintf("holder%d", i), 30*time.Second)
			if err != nil {
				return err
			}
			holders[i] = c
			_, _, err = enter(ctx, &st, c, rooms[i], "host", toks[i])
			return err
		})
	}
	if errs := hold(); len(errs) > 0 {
		return fmt.Errorf("setup: %d of %d rooms not held; first: %w", len(errs), n, errs[0])
	}
	var (
		rss       []int64
		issued    []ban
		removed   int
		banErrs   int
		rejoin    []time.Duration
		holdFails int
	)
	rss = append(rss, rssKiB(e.gavelPID()))
	for i := 1; i <= o.restarts && ctx.Err() == nil; i++ {
		sig := "SIGTERM"
		if i%2 == 0 {
			sig = "SIGKILL"
		}
		if sig == "SIGTERM" {
			// As real clients do, each holder closes its socket once the
			// server ends its stream, so Prosody need not wait for it.
			for _, c := range holders {
				go func() { <-c.Done(); c.Close() }()
			}
			err = e.srv.Stop()
		} else {
			err = e.srv.Kill()
		}
		if err != nil {
			return fmt.Errorf("restart %d: stop: %w", i, err)
		}
		if err := e.srv.Restart(); err != nil {
			return fmt.Errorf("restart %d: %w", i, err)
		}
		t := time.Now()
		errs := hold()
		rejoin = append(rejoin, time.Since(t))
		if len(errs) > 0 {
			holdFails += len(errs)
			r.notef("restart %d (%s): %d room(s) not held again; first: %v", i, sig, len(errs), errs[0])
		}
		// One new ban: a victim joins a room, and is banned by user id or JID.
		b := ban{Kind: "user", Value: fmt.Sprintf("victim-%d", i)}
		if i%2 == 0 {
			b = ban{Kind: "jid", Value: fmt.Sprintf("victim%d@%s", i, prosodytest.Host)}
		}
		got, err := banPresent(ctx, e, &st, rooms[i%n], fmt.Sprintf("victim%d", i), fmt.Sprintf("victim-%d", i), b)
		issued = append(issued, b)
		removed += got
		if err != nil {
			banErrs++
			r.notef("restart %d: ban %s %s: %v", i, b.Kind, b.Value, err)
		}
		if i%10 == 0 {
			rss = append(rss, rssKiB(e.gavelPID()))
		}
		logf("prosody-restarts: %d/%d (%s) rejoined in %v", i, o.restarts, sig, rejoin[len(rejoin)-1].Round(time.Millisecond))
	}
	restarts := len(rejoin)

	// Every ban listed, and enforced: a user ban refuses the user id from
	// another account, a JID ban the account with another user id.
	listed, err := e.bans(ctx, tenantToken)
	if err != nil {
		return err
	}
	missing := 0
	for _, b := range issued {
		if !slices.ContainsFunc(listed, func(l listedBan) bool { return l.Kind == b.Kind && l.Value == b.Value }) {
			missing++
			r.notef("ban not listed: %s %s", b.Kind, b.Value)
		}
	}
	notEnforced := 0
	errs := parallel(len(issued), 10, func(j int) error {
		b, i := issued[j], j+1
		account, uid := fmt.Sprintf("probe%d", i), fmt.Sprintf("victim-%d", i)
		if b.Kind == "jid" {
			account, uid = fmt.Sprintf("victim%d", i), fmt.Sprintf("other-%d", i)
		}
		c, err := e.login(ctx, account)
		if err != nil {
			return err
		}
		defer c.Close()
		_, out, _ := knock(ctx, &st, c, rooms[i%n], e.token(rooms[i%n], uid, false, time.Hour))
		if out != "banned" {
			return fmt.Errorf("%s ban %s: knock answered %s, want banned", b.Kind, b.Value, out)
		}
		return nil
	})
	for _, err := range errs {
		notEnforced++
		r.notef("%v", err)
	}

	r.row("Prosody restarts (alternating SIGTERM, SIGKILL)", fmt.Sprint(restarts))
	r.row("governed rooms held by clients", fmt.Sprint(n))
	slices.Sort(rejoin)
	if restarts > 0 {
		r.row("restart -> every holder back in its room, median", fmt.Sprintf("%.2f s", rejoin[restarts/2].Seconds()))
		r.row("restart -> every holder back in its room, max", fmt.Sprintf("%.2f s", rejoin[restarts-1].Seconds()))
	}
	r.check("rooms not held again after a restart", fmt.Sprint(holdFails), holdFails == 0)
	st.rows(r)
	r.check("bans issued between restarts, answered 2xx", fmt.Sprintf("%d of %d", len(issued)-banErrs, len(issued)), banErrs == 0)
	r.check("present victims removed by their ban", fmt.Sprintf("%d of %d", removed, len(issued)), removed == len(issued))
	r.check("bans missing from the list at the end", fmt.Sprint(missing), missing == 0)
	r.check("bans not enforced at the end", fmt.Sprint(notEnforced), notEnforced == 0)
	growth, ok := flat(rss)
	r.check("gavel RSS every 10 restarts (MiB)", mib(rss), ok)
	r.row("  growth first to last", fmt.Sprintf("%.1f MiB", float64(growth)/1024))
	logChecks(r, e, begin, time.Now(), restarts)
	return nil
}

// logChecks reads gavel's log between from and to: at most three
// connection state lines per restart (disconnected, unreachable,
// connected), and no other warning or error.
func logChecks(r *result, e *env, from, to time.Time, restarts int) {
	lines, err := readLog(e.logPath)
	if err != nil {
		r.check("gavel log readable", err.Error(), false)
		return
	}
	lines = between(lines, from, to)
	states := 0
	for _, l := range lines {
		if stateChange(l) {
			states++
		}
	}
	r.check("gavel log: connection state lines (at most 3 per restart)", fmt.Sprintf("%d for %d restarts", states, restarts), states <= 3*restarts)
	bad := problems(lines)
	r.check("gavel log: other warning and error lines", fmt.Sprint(len(bad)), len(bad) == 0)
	for _, s := range summarize(bad, 8) {
		r.notef("log: %s", s)
	}
}

func mib(samples []int64) string {
	s := ""
	for i, kb := range samples {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%.1f", float64(kb)/1024)
	}
	return s
}

// banPresent has a victim (account, with a token for uid) knock into and
// join roomJID, bans it with b, and returns how many occupants the ban
// removed; it waits for the victim to see itself removed.
func banPresent(ctx context.Context, e *env, st *knockStats, roomJID, account, uid string, b ban) (int, error) {
	c, err := e.login(ctx, account)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, _, err := enter(ctx, st, c, roomJID, account, e.token(roomJID, uid, false, time.Hour)); err != nil {
		return 0, err
	}
	res, err := e.issue(ctx, tenantToken, b)
	if err != nil {
		return 0, err
	}
	if res.Code/100 != 2 {
		return 0, fmt.Errorf("answered %d %s", res.Code, res.Raw)
	}
	n, _ := res.Body["removed"].(float64)
	if err := removedFrom(ctx, c, roomJID, account, 5*time.Second); err != nil {
		return int(n), fmt.Errorf("victim not removed from %s: %w", roomJID, err)
	}
	return int(n), nil
}

// loginRetry logs in, retrying for up to limit while Prosody comes back.
func loginRetry(ctx context.Context, e *env, user string, limit time.Duration) (*xclient.Client, error) {
	deadline := time.Now().Add(limit)
	for {
		c, err := e.login(ctx, user)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return c, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func closeAll(cs []*xclient.Client) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.Close() }()
		}
	}
	wg.Wait()
}

// parallel runs f(0..n-1) with at most conc calls at once and returns
// every error.
func parallel(n, conc int, f func(i int) error) []error {
	sem := make(chan struct{}, conc)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}
