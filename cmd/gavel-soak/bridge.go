package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
)

// The bridge scenario: a Jitsi-shaped deployment. mod_gavel_bridge (the
// file shipped in prosody-modules/) asks gavel at pre-join what each
// joiner gets, and reports the occupants so that gavel governs the rooms
// without entering them (docs/protocol.md, "The bridge"). Clients log in,
// hand their token to their session (a stand-in for Jitsi's token login,
// which keeps it as session.auth_token) and join without knocking; a
// Jicofo-like focus, bypassed by the module and a bot to gavel, creates
// some of the rooms first.

// The focus lives on a domain of its own, as Jicofo's does (auth.).
const (
	focusHost = "auth." + prosodytest.Host
	focusUser = "focus"
	focusNick = "focus"
	// gavelNick is gavel's nick in rooms (config muc nick, default);
	// gavel tries suffixed variants when it is taken.
	gavelNick = "gavel"
)

// bridgeJoinTimeout bounds every join: the module waits 2 s for gavel
// (gavel_bridge_timeout) and then refuses, so a join without an answer
// by this time is a join left unanswered.
const bridgeJoinTimeout = 5 * time.Second

// Recovery bounds: from gavel's start to the first owner-correct state,
// and from Prosody listening again to every resident back in its room
// with the owners right.
const (
	gavelRecoveryBound   = 5 * time.Second
	prosodyRecoveryBound = 15 * time.Second
)

// soakSessionTokenModule is a STAND-IN for Jitsi's token login
// (mod_auth_token with mod_jitsi_session), which keeps the raw token on
// the Prosody session as session.auth_token, where mod_gavel_bridge reads
// it. Jitsi Meet hands the token over at login (?jwt= on the BOSH or
// WebSocket URL); here the client hands it over in an IQ to its own
// server after logging in and before joining. It checks nothing, as
// Jitsi's login keeps the token whatever gavel later thinks of it.
const soakSessionTokenModule = `-- written by gavel-soak: a STAND-IN for Jitsi's token login, not Jitsi's code
local st = require "util.stanza";

module:hook("iq-set/host/urn:gavel:soak:session-token:token", function(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "c2s" then return; end
	origin.auth_token = stanza.tags[1]:get_text();
	origin.send(st.reply(stanza));
	return true;
end);
`

// bridgeRoom is one room of the scenario.
type bridgeRoom struct {
	jid    string
	tenant string // tenantAuto or tenantToken
	focus  bool   // the focus creates it first and stays
	hold   bool   // residents only: the catch-up happens here
}

// newBridgeEnv starts the Jitsi-shaped Prosody and a gavel with the
// bridge on, under dir.
func newBridgeEnv(ctx context.Context, dir, gavelBin string) (*env, error) {
	shipped, err := filepath.Abs("prosody-modules")
	if err == nil {
		_, err = os.Stat(filepath.Join(shipped, "mod_gavel_bridge.lua"))
	}
	if err != nil {
		return nil, fmt.Errorf("prosody-modules/mod_gavel_bridge.lua not found (run from the repository root): %w", err)
	}
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o750); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(plugins, "mod_soak_session_token.lua"), []byte(soakSessionTokenModule), 0o644); err != nil {
		return nil, err
	}
	focus := focusUser + "@" + focusHost
	return newEnvWith(ctx, dir, gavelBin, "info", envSetup{
		prosody: &prosodytest.Options{
			PluginPaths:  []string{plugins, shipped},
			ExtraModules: []string{"soak_session_token"},
			MUCModules:   []string{"gavel_bridge"},
			// Jitsi turns room locking off and lets clients create rooms.
			NoRoomLocking: true,
			// The focus's host, as Jicofo's auth. host (a section of its
			// own: it ends the global one).
			ExtraConfig: fmt.Sprintf("muc_room_cache_size = 1000\n\nVirtualHost %q\n", focusHost),
			// As in Jitsi's config, the focus is an admin of the MUC
			// (owner everywhere, past members-only), and the module never
			// asks about it.
			MUCAdmins: []string{focus},
			MUCConfig: fmt.Sprintf("\tgavel_bridge_component = %q\n\tgavel_bridge_bypass = { %q }\n", prosodytest.Component, focus),
		},
		mucYAML:    "    bridge: true\n",
		tenantYAML: fmt.Sprintf("    bot_domains: [%s]\n", focusHost),
	})
}

// bridge runs o.bridgeRounds rounds, each: gavel killed (SIGKILL), kept
// down for o.bridgeDown while the sole owner of a residents-only
// auto-owner room leaves, and started again; then Prosody restarted
// (SIGTERM and SIGKILL in turn). Residents (three per room) stay in six
// rooms (four auto-owner, two token; the focus creates half of them
// first), o.bridgeClients churners join and leave the others throughout.
// It checks that every join ends (joined, refused with a stanza error, or
// cut off with the client's connection), that service-unavailable comes
// only while gavel cannot answer, that token joiners get what their token
// says in their first presence, that after each recovery (bounded) every
// auto-owner room with people has an owner and token moderators are the
// owners, that an owner who left while gavel was down is replaced (by the
// longest present) once it is back and is not owner on returning, and
// that gavel is never an occupant.
func bridge(ctx context.Context, o options, r *result) error {
	e, err := newBridgeEnv(ctx, o.dir, o.gavel)
	if err != nil {
		return err
	}
	defer e.close()
	begin := time.Now()
	b := &bridgeRun{e: e, stop: make(chan struct{}), focusErrs: map[string]int{}}
	b.rooms = []bridgeRoom{
		{jid: room(tenantAuto, "hold-0"), tenant: tenantAuto, focus: true, hold: true},
		{jid: room(tenantAuto, "hold-1"), tenant: tenantAuto, hold: true},
		{jid: room(tenantAuto, "busy-0"), tenant: tenantAuto, focus: true},
		{jid: room(tenantAuto, "busy-1"), tenant: tenantAuto},
		{jid: room(tenantToken, "busy-0"), tenant: tenantToken, focus: true},
		{jid: room(tenantToken, "busy-1"), tenant: tenantToken},
	}
	var focusRooms, churnRooms, holdRooms []bridgeRoom
	tokenRooms := 0
	for _, rm := range b.rooms {
		if rm.focus {
			focusRooms = append(focusRooms, rm)
		}
		if rm.hold {
			holdRooms = append(holdRooms, rm)
		} else {
			churnRooms = append(churnRooms, rm)
		}
		if rm.tenant == tenantToken {
			tokenRooms++
		}
	}
	var wg sync.WaitGroup
	defer func() {
		select {
		case <-b.stop:
		default:
			close(b.stop)
		}
		wg.Wait()
	}()

	// The focus creates its rooms first.
	ready := make(chan struct{})
	wg.Add(1)
	go func() { defer wg.Done(); b.focus(ctx, focusRooms, ready) }()
	<-ready
	const perRoom = 3
	for ri, rm := range b.rooms {
		for j := 0; j < perRoom; j++ {
			mod := rm.tenant == tenantToken && j == 0
			suffix := "-part"
			if mod {
				suffix = "-mod"
			}
			res := &resident{
				account: fmt.Sprintf("bres%d-%d", ri, j), nick: fmt.Sprintf("r%d%s", j, suffix), room: rm,
				tok: e.token(rm.jid, fmt.Sprintf("res-%d-%d", ri, j), mod, 24*time.Hour), cmd: make(chan bool), done: make(chan error, 1),
			}
			if rm.hold {
				res.stagger = time.Duration(j) * 150 * time.Millisecond
			}
			b.residents = append(b.residents, res)
		}
	}
	// Residents arrive one after the other, so that each room has a clear
	// first joiner and join order.
	for _, res := range b.residents {
		wg.Add(1)
		go func() { defer wg.Done(); res.run(ctx, b) }()
		if err := waitFor(ctx, 10*time.Second, res.in); err != nil {
			return fmt.Errorf("setup: %s did not get into %s: %w", res.nick, res.room.jid, err)
		}
	}
	for i := 0; i < o.bridgeClients; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); b.churner(ctx, i, churnRooms) }()
	}
	if d, why := b.settle(ctx, time.Now(), 15*time.Second, nil); d < 0 {
		return fmt.Errorf("setup: the rooms never got their owners: %s", why)
	}
	logf("bridge: %d residents in %d rooms, %d churners", len(b.residents), len(b.rooms), o.bridgeClients)

	var t bridgeTally
	for round := 1; round <= o.bridgeRounds && ctx.Err() == nil; round++ {
		if err := b.gavelRound(ctx, o, r, &t, round, holdRooms[round%len(holdRooms)]); err != nil {
			return err
		}
		time.Sleep(o.bridgeSettle)
		if err := b.prosodyRound(ctx, r, &t, round); err != nil {
			return err
		}
	}
	time.Sleep(o.bridgeSettle)
	close(b.stop)
	wg.Wait()
	end := time.Now()

	r.row("rooms: auto-owner, token", fmt.Sprintf("%d, %d", len(b.rooms)-tokenRooms, tokenRooms))
	r.row("  created by the focus first (bypassed, a bot)", fmt.Sprint(len(focusRooms)))
	r.row("residents (3 per room), churners", fmt.Sprintf("%d, %d", len(b.residents), o.bridgeClients))
	r.row("gavel kills (SIGKILL), each down for", fmt.Sprintf("%d, %v", t.kills, o.bridgeDown))
	r.row("Prosody restarts (alternating SIGTERM, SIGKILL)", fmt.Sprint(t.prosodyRestarts))
	r.row("duration", fmt.Sprintf("%.0f s", end.Sub(begin).Seconds()))
	b.mu.Lock()
	r.row("client logins (first and after each Prosody restart)", fmt.Sprint(b.sessions))
	gavelSeen := b.gavelSeen
	focusErrs := b.focusErrs
	b.mu.Unlock()
	b.st.rows(r)
	for _, k := range sortedKeys(focusErrs) {
		r.notef("focus join failed: %s (x%d)", k, focusErrs[k])
	}
	r.check("presences from a room nick of gavel's (gavel an occupant)", fmt.Sprint(gavelSeen), gavelSeen == 0)
	r.check("sole owners who left while gavel was down, replaced after it came back", fmt.Sprintf("%d of %d", t.replaced, t.soleLeft), t.replaced == t.soleLeft && t.soleLeft > 0)
	r.check("  the longest present promoted (join order from the module; where joins were 100 ms apart)", fmt.Sprintf("%d of %d", t.inOrder, t.orderChecked), t.inOrder == t.orderChecked)
	r.check("  on coming back, joined as non-owner", fmt.Sprintf("%d of %d", t.returnedOK, t.returned), t.returnedOK == t.returned && t.returned == t.soleLeft)
	r.check(fmt.Sprintf("gavel start -> owner-correct state, p50 / max (bound %v)", gavelRecoveryBound), p50max(t.gavelRec, t.gavelLate), t.gavelLate == 0 && len(t.gavelRec) > 0)
	r.check(fmt.Sprintf("Prosody listening -> residents back, owner-correct, p50 / max (bound %v)", prosodyRecoveryBound), p50max(t.prosodyRec, t.prosodyLate), t.prosodyLate == 0 && len(t.prosodyRec) > 0)
	logChecks(r, e, begin, end, t.kills+t.prosodyRestarts)
	return nil
}

// bridgeTally counts the rounds' faults and what followed them.
type bridgeTally struct {
	kills, prosodyRestarts int
	gavelRec, prosodyRec   []time.Duration // recoveries within their bound
	gavelLate, prosodyLate int             // recoveries beyond it
	soleLeft, replaced     int             // the catch-up
	inOrder, orderChecked  int
	returned, returnedOK   int
}

// wrong returns why the rooms are not owner-correct ("" when they are):
// every resident (but away) is in its room, and in every resident's view
// the room's owners are what its policy says.
func (b *bridgeRun) wrong(away *resident) string {
	for _, res := range b.residents {
		if res == away {
			continue
		}
		v, in := res.view()
		if !in {
			return res.nick + " is not in " + res.room.jid
		}
		if w := ownersWrong(res.room.tenant, v); w != "" {
			return res.room.jid + " as " + res.nick + " sees it: " + w
		}
	}
	return ""
}

// settle waits until the rooms are owner-correct and returns how long it
// took from since, or -1 (and why) once limit has passed.
func (b *bridgeRun) settle(ctx context.Context, since time.Time, limit time.Duration, away *resident) (time.Duration, string) {
	var why string
	for time.Since(since) < limit && ctx.Err() == nil {
		if why = b.wrong(away); why == "" {
			return time.Since(since), ""
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1, why
}

// residentsOf returns the residents of rm.
func (b *bridgeRun) residentsOf(rm bridgeRoom) []*resident {
	var out []*resident
	for _, res := range b.residents {
		if res.room.jid == rm.jid {
			out = append(out, res)
		}
	}
	return out
}

// gavelRound kills gavel, has the sole owner of hold room rm leave while
// it is down, starts it again and measures the time to owner-correct
// rooms; then the owner who left comes back.
func (b *bridgeRun) gavelRound(ctx context.Context, o options, r *result, t *bridgeTally, round int, rm bridgeRoom) error {
	e := b.e
	if d, why := b.settle(ctx, time.Now(), 15*time.Second, nil); d < 0 {
		r.notef("round %d: owners not right before the gavel kill: %s", round, why)
	}
	b.out.begin()
	if err := e.stopGavel(syscall.SIGKILL); err != nil {
		return err
	}
	down := time.Now()
	t.kills++
	var leaver *resident
	var owners []string
	in := b.residentsOf(rm)
	if v, ok := in[0].view(); ok {
		for _, nick := range sortedKeys(v) {
			if nick != focusNick && v[nick].aff == "owner" {
				owners = append(owners, nick)
			}
		}
	}
	if len(owners) == 1 {
		for _, res := range in {
			if res.nick == owners[0] {
				leaver = res
			}
		}
	}
	if leaver != nil {
		time.Sleep(200 * time.Millisecond) // joins are refused meanwhile
		if err := leaver.tell(ctx, true); err != nil {
			r.notef("round %d: the owner of %s could not leave: %v", round, rm.jid, err)
			leaver = nil
		} else {
			t.soleLeft++
		}
	} else {
		r.notef("round %d: %s had owners %v, not one: no catch-up this round", round, rm.jid, owners)
	}
	time.Sleep(time.Until(down.Add(o.bridgeDown)))
	if err := e.spawnGavel(); err != nil {
		return err
	}
	started := e.started
	if err := e.waitReady(ctx, 15*time.Second); err != nil {
		return err
	}
	b.out.end()
	d, why := b.settle(ctx, started, gavelRecoveryBound, leaver)
	switch {
	case d < 0:
		t.gavelLate++
		r.notef("round %d: gavel restart: owners not right within %v: %s", round, gavelRecoveryBound, why)
	default:
		t.gavelRec = append(t.gavelRec, d)
		if leaver == nil {
			break
		}
		t.replaced++
		// The replacement is the longest present: gavel took the join
		// order from the module.
		if ok, checked := longestPresentPromoted(in, leaver, r, round); checked {
			t.orderChecked++
			if ok {
				t.inOrder++
			}
		}
	}
	logf("bridge: round %d: gavel killed, down %v, owner-correct %v after its start", round, o.bridgeDown, d.Round(time.Millisecond))
	if leaver == nil {
		return nil
	}
	if err := leaver.tell(ctx, false); err != nil {
		r.notef("round %d: the owner who left could not come back: %v", round, err)
		return nil
	}
	t.returned++
	leaver.mu.Lock()
	aff := leaver.firstAff
	leaver.mu.Unlock()
	if aff == "owner" {
		r.notef("round %d: %s, who left %s as owner while gavel was down, came back as owner", round, leaver.nick, rm.jid)
	} else {
		t.returnedOK++
	}
	return nil
}

// prosodyRound restarts Prosody (SIGTERM in odd rounds, SIGKILL in even
// ones) and measures the time from its listening again to every resident
// back in its room and the owners right.
func (b *bridgeRun) prosodyRound(ctx context.Context, r *result, t *bridgeTally, round int) error {
	e := b.e
	sig := "SIGTERM"
	if round%2 == 0 {
		sig = "SIGKILL"
	}
	if d, why := b.settle(ctx, time.Now(), 15*time.Second, nil); d < 0 {
		r.notef("round %d: owners not right before the Prosody %s: %s", round, sig, why)
	}
	connected := e.connections()
	b.out.begin()
	var err error
	if sig == "SIGTERM" {
		err = e.srv.Stop()
	} else {
		err = e.srv.Kill()
	}
	if err == nil {
		err = e.srv.Restart()
	}
	if err != nil {
		return fmt.Errorf("round %d: Prosody %s: %w", round, sig, err)
	}
	up := time.Now()
	t.prosodyRestarts++
	err = e.waitReconnected(ctx, connected, 15*time.Second)
	b.out.end()
	if err != nil {
		return err
	}
	d, why := b.settle(ctx, up, prosodyRecoveryBound, nil)
	if d < 0 {
		t.prosodyLate++
		r.notef("round %d: Prosody %s: residents and owners not back within %v: %s", round, sig, prosodyRecoveryBound, why)
	} else {
		t.prosodyRec = append(t.prosodyRec, d)
	}
	logf("bridge: round %d: Prosody %s, everyone back and owner-correct %v after it listened", round, sig, d.Round(time.Millisecond))
	return nil
}

// longestPresentPromoted reports whether, in a hold room whose owner
// (leaver) left, the remaining resident that joined first is the owner.
// checked is false when the first two joined within 100 ms of each other
// (client-side times cannot order them).
func longestPresentPromoted(residents []*resident, leaver *resident, r *result, round int) (ok, checked bool) {
	type joined struct {
		nick string
		at   time.Time
	}
	var rest []joined
	var v map[string]occupantView
	for _, res := range residents {
		if res == leaver {
			continue
		}
		res.mu.Lock()
		rest = append(rest, joined{res.nick, res.joinedAt})
		res.mu.Unlock()
		if v == nil {
			v, _ = res.view()
		}
	}
	slices.SortFunc(rest, func(a, b joined) int { return a.at.Compare(b.at) })
	if len(rest) == 0 || v == nil || len(rest) > 1 && rest[1].at.Sub(rest[0].at) < 100*time.Millisecond {
		return false, false
	}
	var owners []string
	for _, nick := range sortedKeys(v) {
		if nick != focusNick && v[nick].aff == "owner" {
			owners = append(owners, nick)
		}
	}
	if len(owners) == 1 && owners[0] == rest[0].nick {
		return true, true
	}
	r.notef("round %d: %s joined first of those left, but the owners are %v", round, rest[0].nick, owners)
	return false, true
}

// p50max formats the median and maximum of ds, and how many exceeded
// their bound.
func p50max(ds []time.Duration, late int) string {
	if len(ds) == 0 {
		return fmt.Sprintf("none of %d", late)
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	v := fmt.Sprintf("%.2f s / %.2f s", s[len(s)/2].Seconds(), s[len(s)-1].Seconds())
	if late > 0 {
		v += fmt.Sprintf(" (%d late)", late)
	}
	return v
}

// waitFor polls cond every 10 ms until it holds or limit has passed.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
