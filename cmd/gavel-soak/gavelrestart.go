package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// member is one client in a room of the gavel-restart scenario.
type member struct {
	c    *xclient.Client
	room string
	nick string // also the account name
	uid  string
}

func (m member) occupant() string { return m.room + "/" + m.nick }

// gavelRestart restarts gavel, once with SIGKILL and once with SIGTERM,
// under three occupied rooms (token, auto-owner, all-owners policy), and
// checks afterwards that gavel is back in every room within 1 s and still
// governs them:
//
//   - token room: an owner whose token expired while gavel was down, and
//     one whose token expires after the restart, lose owner rights; an
//     owner who left while gavel was down is not owner when rejoining with
//     a participant token (clear_on_leave); a ban by user id removes the
//     present occupant (removed: 1), and after the unban they get back in;
//     someone removed by a timed ban before the restart gets back in once
//     it ends;
//   - auto-owner room: when the owner leaves, the longest-present occupant
//     is promoted, then the next one, in arrival order from before the
//     restart;
//   - all-owners room: a new joiner is owner; a ban by JID removes the
//     present occupant and refuses their next knock.
//
// The same steps run first without any restart ("control"): a check that
// fails there fails without a restart too.
func gavelRestart(ctx context.Context, o options, r *result) error {
	e, err := newEnv(ctx, o.dir, o.gavel, "info")
	if err != nil {
		return err
	}
	defer e.close()
	var st knockStats
	defer st.rows(r)
	// Signal 0 is the control: the same steps without a restart, so that a
	// failure after a restart can be told apart from one without.
	sigs := []syscall.Signal{0, syscall.SIGKILL, syscall.SIGTERM}
	if o.control {
		sigs = sigs[:1]
	}
	for _, sig := range sigs {
		if err := restartOnce(ctx, e, &st, sig, sig == 0, r); err != nil {
			return err
		}
	}
	return nil
}

func restartOnce(ctx context.Context, e *env, st *knockStats, sig syscall.Signal, control bool, r *result) error {
	label := "SIGKILL"
	if sig == syscall.SIGTERM {
		label = "SIGTERM"
	}
	if control {
		// The same steps without the restart: shows that the checks
		// themselves hold against a gavel that never went away.
		label = "control (no restart)"
	}
	s := strings.ToLower(label[3:7])
	T, U, W := room(tenantToken, "gr-"+s), room(tenantAuto, "gr-"+s), room(tenantAll, "gr-"+s)
	var err error
	var all []*xclient.Client
	defer func() { closeAll(all) }()
	// join logs a member in and enters the room with a token (moderator,
	// valid until exp); it fails the scenario on error.
	join := func(roomJID, who string, moderator bool, exp time.Time) (member, error) {
		m := member{room: roomJID, nick: "gr" + s + who, uid: "gr-" + s + "-" + who}
		c, err := e.login(ctx, m.nick)
		if err != nil {
			return m, err
		}
		all = append(all, c)
		m.c = c
		_, wrong, err := enter(ctx, st, c, roomJID, m.nick, e.tokenUntil(roomJID, m.uid, moderator, exp))
		if err != nil {
			return m, fmt.Errorf("%s setup: %s: %w", label, who, err)
		}
		if wrong != "" {
			return m, fmt.Errorf("%s setup: %s: %s", label, who, wrong)
		}
		return m, nil
	}
	long := time.Now().Add(24 * time.Hour)
	var (
		obsT, b, cOwner, d, a1, a2 member
		u                          [4]member
		w0, w1                     member
	)
	steps := []struct {
		m         *member
		room, who string
		mod       bool
	}{
		{&obsT, T, "obs", false}, {&b, T, "b", false}, {&cOwner, T, "c", true}, {&d, T, "d", false},
		{&u[0], U, "u0", false}, {&u[1], U, "u1", false}, {&u[2], U, "u2", false}, {&u[3], U, "u3", false},
		{&w0, W, "w0", false}, {&w1, W, "w1", false},
	}
	for _, x := range steps {
		if *x.m, err = join(x.room, x.who, x.mod, long); err != nil {
			return err
		}
		if x.room == U {
			time.Sleep(50 * time.Millisecond) // a clear arrival order
		}
	}
	// A timed ban removes d before the restart and ends after it.
	res, err := e.issue(ctx, tenantToken, ban{Kind: "user", Value: d.uid, Duration: "6s"})
	if err != nil || res.Code/100 != 2 {
		return fmt.Errorf("%s setup: timed ban: %v %d %s", label, err, res.Code, res.Raw)
	}
	timedBanEnds := time.Now().Add(6 * time.Second)
	if err := removedFrom(ctx, d.c, T, d.nick, 5*time.Second); err != nil {
		r.notef("%s: the timed ban did not remove its occupant before the restart: %v", label, err)
	}
	// Owners whose tokens expire 2 s from now (while gavel is down) and
	// 2 s after the restart.
	a1Exp := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	if a1, err = join(T, "a1", true, a1Exp); err != nil {
		return err
	}
	a2Exp := a1Exp.Add(3 * time.Second)
	if a2, err = join(T, "a2", true, a2Exp); err != nil {
		return err
	}
	observers := []member{obsT, u[3], w0}
	seen := make([]int, len(observers))
	for i, m := range observers {
		seen[i] = len(m.c.Presences())
	}
	logf("gavel-restart: %s under 3 occupied rooms", label)
	if !control {
		if err := e.stopGavel(sig); err != nil {
			return err
		}
	}
	// While gavel is down: owner c leaves, a1's token expires.
	if err := leave(ctx, cOwner.c, T, cOwner.nick); err != nil {
		return fmt.Errorf("%s: c leaves: %w", label, err)
	}
	time.Sleep(time.Until(a1Exp.Add(300 * time.Millisecond)))
	if control {
		return restartChecks(ctx, e, st, label, r, checkState{obsT, b, cOwner, d, a1, a2, u, w0, w1, T, U, W, a2Exp, timedBanEnds, long}, join)
	}
	if err := e.spawnGavel(); err != nil {
		return err
	}
	started := e.started

	// Back in every room: an observer sees gavel's presence again.
	back := make([]time.Duration, len(observers))
	errs := parallel(len(observers), len(observers), func(i int) error {
		m := observers[i]
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		n := 0
		_, err := m.c.WaitPresence(wctx, func(p xclient.Presence) bool {
			n++
			return n > seen[i] && p.Type == "" && strings.EqualFold(p.From, m.room+"/gavel")
		})
		back[i] = time.Since(started)
		if err != nil {
			back[i] = -1
			return fmt.Errorf("%s: gavel not back in %s within 5 s", label, m.room)
		}
		return nil
	})
	for _, err := range errs {
		r.notef("%v", err)
	}
	var worst time.Duration
	for _, d := range back {
		if d < 0 || worst < 0 {
			worst = -1
		} else {
			worst = max(worst, d)
		}
	}
	v := "not back within 5 s"
	if worst >= 0 {
		v = fmt.Sprintf("%.2f s", worst.Seconds())
	}
	r.check(label+": gavel start -> back in all 3 rooms (1 s)", v, worst >= 0 && worst <= time.Second)
	if err := e.waitReady(ctx, 15*time.Second); err != nil {
		return err
	}
	return restartChecks(ctx, e, st, label, r, checkState{obsT, b, cOwner, d, a1, a2, u, w0, w1, T, U, W, a2Exp, timedBanEnds, long}, join)
}

// checkState is what the checks after a restart need from the set-up.
type checkState struct {
	obsT, b, cOwner, d, a1, a2 member
	u                          [4]member
	w0, w1                     member
	T, U, W                    string
	a2Exp, timedBanEnds, long  time.Time
}

// restartChecks verifies that gavel still governs the three rooms.
func restartChecks(ctx context.Context, e *env, st *knockStats, label string, r *result, cs checkState,
	join func(roomJID, who string, moderator bool, exp time.Time) (member, error)) error {
	obsT, b, cOwner, d, a1, a2, u, w1 := cs.obsT, cs.b, cs.cOwner, cs.d, cs.a1, cs.a2, cs.u, cs.w1
	T, U, W, a2Exp, timedBanEnds, long := cs.T, cs.U, cs.W, cs.a2Exp, cs.timedBanEnds, cs.long

	ok := func(what string, err error) {
		if err != nil {
			r.check(label+": "+what, "no", false)
			r.notef("%s: %s: %v", label, what, err)
			return
		}
		r.check(label+": "+what, "yes", true)
	}
	notOwner := func(m member, until time.Time) error {
		wctx, cancel := context.WithDeadline(ctx, until)
		defer cancel()
		_, err := obsT.c.WaitPresence(wctx, func(p xclient.Presence) bool {
			return p.Type == "" && strings.EqualFold(p.From, m.occupant()) && p.Affiliation != "owner" && p.Role != "moderator"
		})
		return err
	}
	ok("owner whose token expired while gavel was down loses owner rights", notOwner(a1, time.Now().Add(3*time.Second)))
	ok("owner whose token expired after the restart loses owner rights", notOwner(a2, a2Exp.Add(3*time.Second)))

	// c left while gavel was down: a participant token must not make it owner.
	ok("owner who left while gavel was down rejoins with a participant token as non-owner", func() error {
		res, out, err := knockRetry(ctx, st, cOwner.c, T, e.tokenUntil(T, cOwner.uid, false, long), 10*time.Second)
		if err != nil {
			return fmt.Errorf("knock: %s", out)
		}
		jctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		p, err := cOwner.c.Join(jctx, T, cOwner.nick)
		if err != nil {
			return err
		}
		if w := wrongRole(res, p); w != "" {
			st.wrong(w)
		}
		if res.Affiliation == "owner" || p.Affiliation == "owner" {
			return fmt.Errorf("knock promised %s/%s (%s), joined as %s/%s", res.Affiliation, res.Role, res.Reason, p.Affiliation, p.Role)
		}
		return nil
	}())

	// A ban by user id removes the present occupant; after the unban they
	// get back in.
	ok("ban by user id after the restart removes the present occupant (removed: 1)", func() error {
		res, err := e.issue(ctx, tenantToken, ban{Kind: "user", Value: b.uid})
		if err != nil {
			return err
		}
		if res.Code != 200 || res.Body["removed"] != float64(1) {
			return fmt.Errorf("answered %d %s", res.Code, res.Raw)
		}
		return removedFrom(ctx, b.c, T, b.nick, 5*time.Second)
	}())
	ok("after the unban the user gets back into the room", func() error {
		res, err := e.unban(ctx, tenantToken, b.uid)
		if err != nil {
			return err
		}
		if res.Code != 200 {
			return fmt.Errorf("unban answered %d %s", res.Code, res.Raw)
		}
		_, _, err = enter(ctx, st, b.c, T, b.nick, e.tokenUntil(T, b.uid, false, long))
		return err
	}())
	time.Sleep(time.Until(timedBanEnds.Add(500 * time.Millisecond)))
	ok("after the timed ban ends the user gets back into the room", func() error {
		_, _, err := enter(ctx, st, d.c, T, d.nick, e.tokenUntil(T, d.uid, false, long))
		return err
	}())

	// Auto-owner: u0 (first joiner, owner) leaves, then u1: u1, then u2
	// are promoted, in the arrival order from before the restart.
	ok("auto-owner: owner leaves, the longest-present occupant is promoted", func() error {
		n := len(u[3].c.Presences())
		if err := leave(ctx, u[0].c, U, u[0].nick); err != nil {
			return err
		}
		return seesAffiliation(ctx, u[3].c, u[1].occupant(), "owner", n, 3*time.Second)
	}())
	ok("auto-owner: that owner leaves, the next in arrival order is promoted", func() error {
		n := len(u[3].c.Presences())
		if err := leave(ctx, u[1].c, U, u[1].nick); err != nil {
			return err
		}
		return seesAffiliation(ctx, u[3].c, u[2].occupant(), "owner", n, 3*time.Second)
	}())

	// All-owners: a new joiner is owner; a JID ban removes and refuses.
	ok("all-owners: a new joiner is owner", func() error {
		w2, err := join(W, "w2", false, long)
		if err != nil {
			return err
		}
		if p := w2.c.Presences(); len(p) == 0 {
			return fmt.Errorf("no presence")
		}
		return seesAffiliation(ctx, w2.c, w2.occupant(), "owner", 0, 3*time.Second)
	}())
	ok("all-owners: a ban by JID removes the present occupant and refuses the next knock", func() error {
		bare := w1.nick + "@" + prosodytest.Host
		res, err := e.issue(ctx, tenantAll, ban{Kind: "jid", Value: bare})
		if err != nil {
			return err
		}
		if res.Code != 200 || res.Body["removed"] != float64(1) {
			return fmt.Errorf("answered %d %s", res.Code, res.Raw)
		}
		if err := removedFrom(ctx, w1.c, W, w1.nick, 5*time.Second); err != nil {
			return err
		}
		_, out, _ := knock(ctx, st, w1.c, W, e.tokenUntil(W, w1.uid, false, long))
		if out != "banned" {
			return fmt.Errorf("knock after the ban: %s, want banned", out)
		}
		return nil
	}())
	return nil
}
