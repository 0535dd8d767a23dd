package main

// The bridge phase (issue 13, "Measure both against today's knock-and-grant
// path"): one Prosody with three MUC services and one gavel governing all
// three, the same clients joining rooms of each kind in alternating,
// rotating rounds:
//
//   - knock-grant (a): today's path. Knocking clients (a token per visit,
//     tenant "deny": guests: deny, members-only rooms) into a MUC without
//     mod_gavel_bridge; gavel is an occupant of every room and sets member
//     (owner for moderators) before it answers each knock, and resets it
//     when the joiner leaves (clear_on_leave).
//   - knock-bridge (b): the same knocks into rooms of the bridged MUC
//     (occupants reported): the module applies the knocker's affiliation
//     at pre-join, without Prosody's announcement; gavel is not in the
//     rooms.
//   - bridge (c): Jitsi-style clients (the token on the session, no knock)
//     into the bridged MUC: gavel decides at pre-join, outside the rooms.
//   - bridge+seat (d): the same as (c) on a second bridged MUC with
//     gavel_bridge_occupants = false, where gavel enters every room: (c)
//     against (d) is what gavel's seat in the rooms costs.
//   - bare: Prosody alone (rooms the bridge skips by name).
//   - lua-affiliation: a stand-in for Jitsi's token_affiliation (jitsi.go)
//     in rooms the bridge skips.
//
// (d) replaces the earlier lua+seat side (the stand-in with one idle
// extra occupant per room), which estimated gavel's seat indirectly.
//
// Every side runs in the same Prosody, with the same modules loaded on
// every MUC service apart from the bridge and its option. Before each
// round the joiners hand their server a fresh session token (Jitsi-style
// sides) or an empty one (knocking sides: a knocker's session has no
// token, as without Jitsi's token login), outside the timing.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// Modes of the bridge phase.
const (
	modeKnockGrant  = "knock-grant"     // (a)
	modeKnockBridge = "knock-bridge"    // (b)
	modeBridge      = "bridge"          // (c)
	modeBridgeSeat  = "bridge+seat"     // (d)
	modeLuaAff      = "lua-affiliation" // the token_affiliation stand-in
)

// The bridge phase's extra MUC services (beside prosodytest.MUC, which
// has the bridge with occupant reports).
const (
	mucPlain = "plain.example.test" // no bridge: knock-grant
	// mucSeat has the bridge with gavel_bridge_occupants = false. A token
	// without a [tenant] names the MUC domain conference.<sub>: the
	// bridge+seat side's session tokens have sub seatSub.
	mucSeat = "conference." + seatSub
	seatSub = "seat.example.test"
)

// bridgeGavelConfig: three MUC services (two with the bridge), the token
// policy with guests as members in the default tenant (the Jitsi-style
// sides' open rooms) and denied in tenant "deny" (the knocking sides'
// members-only rooms, gavel's default), knock limits far above the rates.
const bridgeGavelConfig = `# written by gavel-bench (bridge phase)
component:
  jid: %s
  address: %s
  secret: %q
muc:
  # The bridge reports occupants: gavel governs from outside the rooms.
  - domain: %s
    bridge: true
  # The bridge with gavel_bridge_occupants = false: gavel enters the rooms.
  - domain: ` + mucSeat + `
    bridge: true
  # No module: gavel enters the rooms, knocks and grants.
  - domain: ` + mucPlain + `
log:
  level: warn
data_dir: %s
tenants:
  default:
    policy: token
    guests: member
    clear_on_leave: true
    knocks_per_minute: 100000000
    knocks_per_minute_per_jid: 100000000
    token:
      app_id: ` + appID + `
      secrets: [%q]
  deny:
    guests: deny             # the rest from default
`

// bridgeProsodyConfig is the MUC configuration of the bridge phase: the
// options of prosodytest.MUC's block (the bridge, reporting occupants),
// then the blocks of the two other MUC services.
func bridgeProsodyConfig() string {
	const skip = `{ "bare-", "lua-", "__jicofo-health-check" }`
	cfg := fmt.Sprintf("\tgavel_bridge_component = %q\n\tgavel_bridge_skip_rooms = %s\n\tbench_token_affiliation_rooms = \"lua-\"\n",
		prosodytest.Component, skip)
	block := func(domain, modules, options string) string {
		return fmt.Sprintf("\nComponent %q \"muc\"\n\tadmins = { %q }\n\tcomponent_admins_as_room_owners = true\n"+
			"\tmodules_enabled = { %s }\n\tmuc_room_default_public = true\n\tmuc_room_locking = false\n"+
			"\tbench_token_affiliation_rooms = \"lua-\"\n%s",
			domain, prosodytest.Component, modules, options)
	}
	cfg += block(mucPlain, `"bench_token_affiliation"`, "")
	cfg += block(mucSeat, `"gavel_bridge"; "bench_token_affiliation"`,
		fmt.Sprintf("\tgavel_bridge_component = %q\n\tgavel_bridge_skip_rooms = %s\n\tgavel_bridge_occupants = false\n", prosodytest.Component, skip))
	return cfg
}

// bridgePhase runs the bridge comparison (see the top of this file).
func (b *bench) bridgePhase(ctx context.Context) error {
	o := b.o
	dir := filepath.Join(b.e.dir, "bridge")
	plugins, err := writePlugins(dir, map[string]string{
		"mod_bench_session_token.lua":     benchSessionTokenModule,
		"mod_bench_token_affiliation.lua": benchTokenAffiliationModule,
		"mod_bench_count_to_gavel.lua":    benchCountModule,
	})
	if err != nil {
		return err
	}
	shipped, _ := filepath.Abs("prosody-modules")
	if _, err := os.Stat(filepath.Join(shipped, "mod_gavel_bridge.lua")); err != nil {
		return fmt.Errorf("bridge: prosody-modules/mod_gavel_bridge.lua not found (run from the repository root): %w", err)
	}
	e, err := b.startSide(ctx, "bridge", prosodytest.Options{
		PluginPaths:   []string{plugins, shipped},
		ExtraModules:  []string{"bench_session_token", "bench_count_to_gavel"},
		ExtraConfig:   fmt.Sprintf("bench_count_component = %q\n", prosodytest.Component),
		MUCModules:    []string{"gavel_bridge", "bench_token_affiliation"},
		NoRoomLocking: true,
		MUCConfig:     bridgeProsodyConfig(),
	}, bridgeGavelConfig)
	if err != nil {
		return err
	}
	defer e.close()
	e.countGavel = true
	if e.toGavel(ctx) == nil {
		logf("bridge: stanzas to gavel are not counted")
		e.countGavel = false
	}
	jb := &bench{e: e, o: o, res: b.res, rooms: map[string]roomSet{}}
	defer func() { closeAll(jb.clients()) }()

	resUsers, err := e.register("r", o.m)
	if err != nil {
		return err
	}
	joinUsers, err := e.register("j", o.n)
	if err != nil {
		return err
	}
	logf("bridge: logging in %d residents and %d joiners", o.m, o.n)
	if jb.residents, err = e.loginAll(ctx, resUsers, o.concurrency); err != nil {
		return err
	}
	cs, err := e.loginAll(ctx, joinUsers, o.concurrency)
	if err != nil {
		return err
	}
	for i, c := range cs {
		jb.joiners = append(jb.joiners, &joiner{id: i, c: c})
	}

	// The knocking sides' rooms first, while the residents' sessions hold
	// no token: each resident knocks with a moderator token, joins as
	// owner and stays (knock-grant: gavel creates the room, members-only;
	// knock-bridge: the resident's join creates it, through the bridge).
	for _, k := range []struct{ mode, domain, prefix string }{
		{modeKnockGrant, mucPlain, "[deny]kg-"},
		{modeKnockBridge, prosodytest.MUC, "[deny]kb-"},
	} {
		rs, _, err := jb.primeSet(ctx, roomSet{gavel: true, deny: true, name: k.mode, domain: k.domain, mods: o.moderators}, k.prefix, o.m)
		if err != nil {
			return fmt.Errorf("bridge: %s rooms: %w", k.mode, err)
		}
		jb.rooms[k.mode] = rs
	}
	// Then the residents hold moderator tokens on their sessions and
	// create one room of each Jitsi-style side (bridge: through the
	// bridge, as owner).
	for _, mode := range []string{modeBare, modeLuaAff, modeBridge, modeBridgeSeat} {
		for i, c := range jb.residents {
			if err := b.sessionToken(ctx, c, resUsers[i], true, subjectOf(mode)); err != nil {
				return fmt.Errorf("bridge: session token: %w", err)
			}
		}
		prefix := map[string]string{modeBare: "bare-", modeLuaAff: "lua-", modeBridge: "br-", modeBridgeSeat: "br-"}[mode]
		rs := roomSet{name: mode, domain: prosodytest.MUC, jids: make([]string, o.m)}
		if mode == modeBridgeSeat {
			rs.domain = mucSeat
		}
		for i := range rs.jids {
			rs.jids[i] = fmt.Sprintf("%s%d@%s", prefix, i, rs.domain)
		}
		err := parallel(ctx, o.m, o.concurrency, func(i int) error {
			cctx, cancel := context.WithTimeout(ctx, opTimeout)
			defer cancel()
			p, err := jb.residents[i].Join(cctx, rs.jids[i], "host")
			if err == nil && p.Affiliation != "owner" {
				err = fmt.Errorf("joined as %s/%s", p.Affiliation, p.Role)
			}
			if err != nil {
				return fmt.Errorf("bridge: create %s: %w", rs.jids[i], err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		jb.rooms[mode] = rs
	}
	// gavel enters the rooms of the MUCs where it sits when told they
	// were created: let that settle before the first round.
	settle(ctx, jb.clients())
	for _, mode := range []string{modeKnockGrant, modeKnockBridge, modeBridge, modeBridgeSeat} {
		mo, occ := roomFacts(ctx, jb.residents[0], jb.rooms[mode].jids[0])
		logf("bridge: %s room %s: members-only %v, occupants %s (the resident, and gavel where it sits)", mode, jb.rooms[mode].jids[0], mo, occ)
	}

	// Every round hands each joiner its session token first (outside the
	// measurement): a fresh one for the Jitsi-style sides, so gavel's
	// token cache does not hit; an empty one for the knocking sides.
	seq := 0
	run := func(mode string, paced bool) func(ctx context.Context) (sample, error) {
		knock := mode == modeKnockGrant || mode == modeKnockBridge
		return func(ctx context.Context) (sample, error) {
			seq++
			err := parallel(ctx, len(jb.joiners), o.concurrency, func(i int) error {
				if knock {
					return clearSessionToken(ctx, jb.joiners[i].c)
				}
				return b.sessionToken(ctx, jb.joiners[i].c, fmt.Sprintf("u%d-%d", seq, i), moderator(i, o.m, o.moderators), subjectOf(mode))
			})
			if err != nil {
				return sample{}, fmt.Errorf("session tokens: %w", err)
			}
			var s sample
			if paced {
				s, err = jb.pacedRound(ctx, jb.rooms[mode], jb.joiners, o.rate, o.duration, o.stay)
			} else {
				s, err = jb.joinsRound(ctx, jb.rooms[mode], jb.joiners, o.concurrency, o.stay)
			}
			s.Mode = mode
			return s, err
		}
	}
	modes := []string{modeBare, modeKnockGrant, modeKnockBridge, modeBridge, modeBridgeSeat, modeLuaAff}
	variants := func(paced bool) []variant {
		var vs []variant
		for _, m := range modes {
			vs = append(vs, variant{m, run(m, paced)})
		}
		return vs
	}
	sides := fmt.Sprintf("%s (no module, gavel in the rooms), %s (knocks, the bridge reporting occupants), %s (session tokens, gavel outside the rooms), %s (the same, gavel_bridge_occupants = false: gavel in the rooms), %s stand-in",
		modeKnockGrant, modeKnockBridge, modeBridge, modeBridgeSeat, modeLuaAff)
	pairs := func(p *phase) {
		p.pairModes(modeKnockBridge, modeKnockGrant)
		p.pairModes(modeBridge, modeBridgeSeat)
		p.pairModes(modeBridge, modeLuaAff)
		p.pairModes(modeBridgeSeat, modeLuaAff)
	}
	logf("bridge: joins, %d rounds per mode", o.rounds)
	pj, err := jb.compare(ctx, "bridge-joins", fmt.Sprintf(
		"Bridge, joins: %d clients join %d rooms per side (%d in flight), stay %v, leave; bare, %s", o.n, o.m, o.concurrency, o.stay, sides), variants(false))
	if err != nil {
		return err
	}
	pairs(pj)
	b.res.Phases = append(b.res.Phases, pj)
	printPhase(os.Stdout, pj)
	logf("bridge: paced at %g joins/s for %v, %d rounds per mode", o.rate, o.duration, o.rounds)
	pp, err := jb.compare(ctx, "bridge-paced", fmt.Sprintf(
		"Bridge, paced: %g joins/s for %v into %d rooms per side, each joiner stays %v; bare, %s", o.rate, o.duration, o.m, o.stay, sides), variants(true))
	if err != nil {
		return err
	}
	pairs(pp)
	b.res.Phases = append(b.res.Phases, pp)
	printPhase(os.Stdout, pp)

	// The issues' targets: Prosody CPU per join, paired by round.
	add := func(name, goal string, v, want float64, unit string) {
		t := target{Name: name, Goal: goal, Measured: fmt.Sprintf("%.3f%s", v, unit), Met: v <= want}
		if !t.Met {
			t.Gap = fmt.Sprintf("%.3f%s over", v-want, unit)
		}
		b.res.Targets = append(b.res.Targets, t)
	}
	for _, p := range []*phase{pj, pp} {
		kind := map[string]string{"bridge-joins": "joins", "bridge-paced": fmt.Sprintf("%g joins/s", o.rate)}[p.Name]
		for _, mp := range p.Pairs {
			switch {
			case mp.A == modeKnockBridge && mp.B == modeKnockGrant:
				add(fmt.Sprintf("bridge: Prosody CPU per knock join, with the module / without (%s)", kind), "<= 1x knock-and-grant", mp.CPU, 1, "x")
			case mp.A == modeBridge && mp.B == modeBridgeSeat:
				add(fmt.Sprintf("bridge: Prosody CPU per join, gavel outside / in the rooms (%s)", kind), "<= 1x gavel in the rooms", mp.CPU, 1, "x")
			case mp.A == modeBridge && mp.B == modeLuaAff:
				add(fmt.Sprintf("bridge: Prosody CPU per join (%s)", kind), "<= 1x the Lua stand-in", mp.CPU, 1, "x")
			}
		}
	}
	for _, m := range pp.Modes {
		if m.Mode == modeBridge {
			add(fmt.Sprintf("bridge: p99 added at %g joins/s", o.rate), "<= 2 ms", m.PairedP99Add, 2, " ms")
		}
	}
	return nil
}

// subjectOf is the sub of the session tokens of a Jitsi-style side.
func subjectOf(mode string) string {
	if mode == modeBridgeSeat {
		return seatSub
	}
	return prosodytest.Host
}

// clearSessionToken hands the session-token stand-in an empty token: the
// session then has none, and the bridge asks gavel without one (a
// knocker's join is decided by its knock).
func clearSessionToken(ctx context.Context, c *xclient.Client) error {
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return c.IQ(cctx, prosodytest.Host, "set", `<token xmlns='urn:gavel:bench:session-token'/>`, nil)
}

// roomFacts asks room for its disco#info as c (its resident): whether it
// is members-only, and how many occupants it has (between rounds only the
// resident, and gavel where it sits in the room).
func roomFacts(ctx context.Context, c *xclient.Client, room string) (membersOnly bool, occupants string) {
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	type feature struct {
		Var string `xml:"var,attr"`
	}
	var info struct {
		Features []feature `xml:"query>feature"`
		Fields   []struct {
			Var   string `xml:"var,attr"`
			Value string `xml:"value"`
		} `xml:"query>x>field"`
	}
	if err := c.IQ(cctx, room, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`, &info); err != nil {
		return false, "unknown: " + err.Error()
	}
	membersOnly = slices.Contains(info.Features, feature{"muc_membersonly"})
	occupants = "unknown"
	for _, f := range info.Fields {
		if f.Var == "muc#roominfo_occupants" {
			occupants = f.Value
		}
	}
	return membersOnly, occupants
}
