package main

// The Jitsi phases (docs/jitsi.md): clients that never knock, as Jitsi Meet
// clients do.
//
//   - bridge (bridge.go): joins through mod_gavel_bridge (the module
//     shipped in prosody-modules/), with gavel outside the rooms and in
//     them, knocking clients with and without the module, bare Prosody
//     and a stand-in for Jitsi's token_affiliation, all in one Prosody,
//     in alternating rounds: Prosody CPU per join, stanzas per join and
//     latency, as a join burst (joins) and at a fixed rate (paced).
//   - polling: gavel without a module (discover_rooms at the default
//     interval, trust_identity): a focus creates rooms, a moderator joins
//     0, 50, 150 or 300 ms later, and the time from its join to its owner
//     presence is measured.
//
// Each runs on a Prosody and gavel of its own, after the other phases.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

func init() {
	// Registered here so that the phase list in main.go stays as it is.
	allPhases = append(allPhases, "bridge", "polling")
	defaultPhases = append(defaultPhases, "bridge", "polling")
	markdownHooks = append(markdownHooks, func(w io.Writer, r *results) {
		if rs, ok := r.Extra["polling"].([]*pollingResult); ok {
			fmt.Fprintf(w, "\n#### Polling mode: join presence to owner presence, %d rooms per delay, default interval\n\n", pollingRooms)
			writePolling(w, rs, true)
		}
	})
}

// jitsiPhases runs the phases of this file that were selected.
func (b *bench) jitsiPhases(ctx context.Context) error {
	if b.o.phases["bridge"] {
		if err := b.bridgePhase(ctx); err != nil {
			return err
		}
	}
	if b.o.phases["polling"] {
		return b.pollingPhase(ctx)
	}
	return nil
}

// benchSessionTokenModule is a STAND-IN for Jitsi's token login
// (mod_auth_token with mod_jitsi_session), written by gavel-bench into a
// temporary plugin directory. It keeps the raw token on the session
// (session.auth_token, which mod_gavel_bridge reads) and the token's
// context.user (session.jitsi_meet_context_user, which token_affiliation
// reads), decoded without checking the signature: Jitsi's login checks it
// once per login, not per join, and this benchmark measures joins. The
// client hands the token over in an IQ to its own server after logging in;
// an empty token leaves the session without one (mod_gavel_bridge sends
// none), as a knocking client's.
const benchSessionTokenModule = `-- written by gavel-bench: a STAND-IN for Jitsi's token login, not Jitsi's code
local st = require "util.stanza";
local json = require "util.json";
local base64 = require "util.encodings".base64;

local function context_user(token)
	local payload = token:match("^[^.]+%.([^.]+)%.");
	if not payload then return nil; end
	payload = (payload:gsub("-", "+"):gsub("_", "/"));
	payload = payload .. string.rep("=", (4 - #payload % 4) % 4);
	local ok, claims = pcall(json.decode, base64.decode(payload) or "");
	if not ok or type(claims) ~= "table" or type(claims.context) ~= "table" then return nil; end
	return claims.context.user;
end

module:hook("iq-set/host/urn:gavel:bench:session-token:token", function(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "c2s" then return; end
	local token = stanza.tags[1]:get_text();
	origin.auth_token = token;
	origin.jitsi_meet_context_user = context_user(token);
	origin.send(st.reply(stanza));
	return true;
end);
`

// benchTokenAffiliationModule is a STAND-IN for Jitsi's token_affiliation
// (jitsi-contrib), written by gavel-bench: at muc-occupant-pre-join it sets
// the joiner's affiliation from the context.user kept on its session
// (owner for affiliation owner/moderator/teacher or moderator true, else
// member) with room:set_affiliation, as token_affiliation does. No
// signature work (the login did it). It acts only in rooms whose name
// starts with bench_token_affiliation_rooms, so that the bare and bridge
// rooms of the same Prosody are untouched.
const benchTokenAffiliationModule = `-- written by gavel-bench: a STAND-IN for token_affiliation, not Jitsi's code
local jid = require "util.jid";
local prefix = module:get_option_string("bench_token_affiliation_rooms", "lua-");

module:hook("muc-occupant-pre-join", function(event)
	local room, occupant, session = event.room, event.occupant, event.origin;
	if (jid.node(room.jid) or ""):sub(1, #prefix) ~= prefix then return; end
	local user = session and session.jitsi_meet_context_user;
	if type(user) ~= "table" then return; end
	local a, m = user.affiliation, user.moderator;
	if a == "owner" or a == "moderator" or a == "teacher" or m == true or m == "true" then
		room:set_affiliation(true, occupant.bare_jid, "owner");
	else
		room:set_affiliation(true, occupant.bare_jid, "member");
	end
end);
`

// benchIdentityModule is a STAND-IN for Jitsi's mod_presence_identity
// (the same as component/jitsi_test.go's): it strips client identities
// and stamps one made from the account name: mod-<id> is a moderator,
// tok-<id> a participant.
const benchIdentityModule = `-- written by gavel-bench: a STAND-IN for mod_presence_identity, not Jitsi's code
local st = require "util.stanza";
if module.host ~= "example.test" then return end
local function token_of(username)
	local kind, id = username:match("^(%a+)%-([^-]+)");
	if kind == "mod" then return id, "true"; end
	if kind == "tok" then return id, "false"; end
end
local function stamp(event)
	local origin, stanza = event.origin, event.stanza;
	stanza:maptags(function (tag)
		if tag.name == "identity" then return nil; end
		return tag;
	end);
	if not origin or not origin.username then return; end
	local id, moderator = token_of(origin.username);
	if not id then return; end
	stanza:add_direct_child(st.stanza("identity")
		:tag("user")
			:tag("id"):text(id):up()
			:tag("name"):text(origin.username):up()
			:tag("moderator"):text(moderator):up()
		:up()
		:tag("group"):text("bench"):up());
end
module:hook("pre-presence/bare", stamp);
module:hook("pre-presence/full", stamp);
`

// startSide starts a Prosody and a gavel of their own for a Jitsi phase,
// in name under the run's work directory, with the run's keys. gavelYAML
// is gavel's configuration with verbs for the component JID, address and
// secret (%q), the MUC domain, the data directory and the run's HS256
// secret (%q), in that order.
func (b *bench) startSide(ctx context.Context, name string, popts prosodytest.Options, gavelYAML string) (*env, error) {
	e := &env{o: b.o, dir: filepath.Join(b.e.dir, name), gavelBin: b.e.gavelBin,
		secret: b.e.secret, rsaKey: b.e.rsaKey, pinned: b.e.pinned}
	if popts.Prosody == "" {
		popts.Prosody = b.o.prosody // -prosody: the same server as the other phases
	}
	popts.ExtraModules = append(popts.ExtraModules, "admin_shell")
	popts.ExtraConfig += fmt.Sprintf("muc_room_cache_size = %d\n", 2000)
	srv, err := prosodytest.Start(filepath.Join(e.dir, "prosody"), popts)
	if err != nil {
		return nil, err
	}
	e.srv = srv
	if err := e.pinProsody(); err != nil {
		e.close()
		return nil, err
	}
	if b.e.gcOK {
		if _, err := e.prosodyGC(ctx); err == nil {
			e.gcOK = true
		}
	}
	cfg := filepath.Join(e.dir, "gavel.yml")
	body := fmt.Sprintf(gavelYAML, prosodytest.Component, srv.ComponentAddr, srv.Secret, prosodytest.MUC, filepath.Join(e.dir, "gavel-data"), string(e.secret))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		e.close()
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, e.gavelBin, "-config", cfg, "-check").CombinedOutput(); err != nil {
		e.close()
		return nil, fmt.Errorf("%s: gavel -check: %v\n%s", name, err, out)
	}
	e.gavelLog = filepath.Join(e.dir, "gavel.log")
	logFile, err := os.Create(e.gavelLog)
	if err != nil {
		e.close()
		return nil, err
	}
	cmd := exec.Command(e.gavelBin, "-config", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		e.close()
		return nil, err
	}
	e.gavel, e.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(e.done) }()
	probe, err := e.login(ctx, "probe")
	if err != nil {
		e.close()
		return nil, err
	}
	defer probe.Close()
	if err := e.waitGavel(ctx, probe, 15*time.Second); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// writePlugins writes modules (file name -> source) into a new plugin
// directory under dir and returns it.
func writePlugins(dir string, modules map[string]string) (string, error) {
	p := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", err
	}
	for name, src := range modules {
		if err := os.WriteFile(filepath.Join(p, name), []byte(src), 0o644); err != nil {
			return "", err
		}
	}
	return p, nil
}

// sessionToken mints a token for any room of MUC domain conference.<sub>
// (the session's, as a Jitsi login keeps it) and hands it to the
// session-token stand-in.
func (b *bench) sessionToken(ctx context.Context, c *xclient.Client, user string, moderator bool, sub string) error {
	tok, err := auth.Mint(auth.MintRequest{Secret: b.e.secret, Issuer: appID, Audience: []string{"jitsi"},
		Subject: sub, Room: "*", UserID: user, Name: user, Moderator: moderator, TTL: 2 * time.Hour})
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return c.IQ(cctx, prosodytest.Host, "set", `<token xmlns='urn:gavel:bench:session-token'>`+tok+`</token>`, nil)
}

// pollingGavelConfig: no module; gavel discovers rooms at the default
// interval and trusts the stamped identity of example.test.
const pollingGavelConfig = `# written by gavel-bench (polling phase)
component:
  jid: %s
  address: %s
  secret: %q
muc:
  - domain: %s
    discover_rooms: true
    trust_identity: true
    identity_domains: [` + prosodytest.Host + `]
log:
  level: warn
data_dir: %s
tenants:
  default:
    policy: token
    guests: member
    knocks_per_minute: 100000000
    knocks_per_minute_per_jid: 100000000
    token:
      app_id: ` + appID + `
      secrets: [%q]
`

// Settings of the polling phase (no flags: one fixed, bounded run).
const pollingRooms = 50

var pollingDelays = []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond}

// pollingResult is what the polling phase measured, per delay.
type pollingResult struct {
	Delay   time.Duration   `json:"delay_ns"`
	Rooms   int             `json:"rooms"`
	Owner   []time.Duration `json:"-"` // join presence to owner presence
	AtOnce  int             `json:"first_presence_owner"`
	Missing int             `json:"not_owner_within_5s"`
	Errors  int             `json:"errors"`
}

// pollingPhase: a focus creates pollingRooms rooms per delay, their
// creations spread over 2 intervals (so they fall on every point of the
// poll cycle); delay after each creation a moderator (stamped identity)
// joins; the time from its join presence to its owner presence is taken.
func (b *bench) pollingPhase(ctx context.Context) error {
	dir := filepath.Join(b.e.dir, "polling")
	plugins, err := writePlugins(dir, map[string]string{"mod_bench_presence_identity.lua": benchIdentityModule})
	if err != nil {
		return err
	}
	e, err := b.startSide(ctx, "polling", prosodytest.Options{
		PluginPaths:   []string{plugins},
		ExtraModules:  []string{"bench_presence_identity"},
		NoRoomLocking: true,
	}, pollingGavelConfig)
	if err != nil {
		return err
	}
	defer e.close()
	focus, err := e.login(ctx, "focus")
	if err != nil {
		return err
	}
	defer focus.Close()
	var out []*pollingResult
	const interval = 250 * time.Millisecond // component.DefaultDiscoverInterval
	for d, delay := range pollingDelays {
		users := make([]string, pollingRooms)
		for i := range users {
			users[i] = fmt.Sprintf("mod-p%dx%d", d, i)
		}
		for _, u := range users {
			if err := e.srv.Register(u, prosodytest.Host, "pw"); err != nil {
				return err
			}
		}
		mods, err := e.loginAll(ctx, users, b.o.concurrency)
		if err != nil {
			return err
		}
		r := &pollingResult{Delay: delay, Rooms: pollingRooms}
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		spread := 2 * interval / pollingRooms
		for i := range mods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sleepCtx(ctx, time.Until(start.Add(time.Duration(i)*spread)))
				room := fmt.Sprintf("poll%d-%d@%s", d, i, prosodytest.MUC)
				cctx, cancel := context.WithTimeout(ctx, opTimeout)
				defer cancel()
				fail := func() { mu.Lock(); r.Errors++; mu.Unlock() }
				if _, err := focus.Join(cctx, room, "focus"); err != nil {
					fail()
					return
				}
				sleepCtx(ctx, delay)
				p, err := mods[i].Join(cctx, room, "mod")
				if err != nil {
					fail()
					return
				}
				in := time.Now()
				if p.Affiliation == "owner" {
					mu.Lock()
					r.AtOnce++
					r.Owner = append(r.Owner, 0)
					mu.Unlock()
					return
				}
				wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
				defer wcancel()
				_, err = mods[i].WaitPresence(wctx, func(q xclient.Presence) bool {
					return q.From == room+"/mod" && q.Type == "" && q.Affiliation == "owner"
				})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					r.Missing++
					return
				}
				r.Owner = append(r.Owner, time.Since(in))
			}()
		}
		wg.Wait()
		closeAll(mods)
		// The focus leaves: the group's rooms end (gavel leaves empty
		// rooms), so that each group starts from no rooms.
		_ = parallel(ctx, pollingRooms, b.o.concurrency, func(i int) error {
			room := fmt.Sprintf("poll%d-%d@%s", d, i, prosodytest.MUC)
			_ = leave(ctx, focus, room, "focus")
			return nil
		})
		sleepCtx(ctx, 2*time.Second)
		out = append(out, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	writePolling(os.Stdout, out, false)
	var all []time.Duration
	missing := 0
	for _, r := range out {
		all = append(all, r.Owner...)
		missing += r.Missing + r.Errors
	}
	slices.Sort(all)
	if len(all) == 0 {
		return errors.New("polling: no moderator became owner")
	}
	p95 := ms(pct(all, 95))
	if missing > 0 {
		p95 = ms(5 * time.Second) // a missing one counts as beyond the window
	}
	t := target{Name: fmt.Sprintf("polling: join to owner p95 (%d rooms per delay, 0-300 ms)", pollingRooms),
		Goal: "< 400 ms", Measured: fmt.Sprintf("%.1f ms", p95), Met: p95 < 400}
	if !t.Met {
		t.Gap = fmt.Sprintf("%.1f ms over", p95-400)
	}
	b.res.Targets = append(b.res.Targets, t)
	if b.res.Extra == nil {
		b.res.Extra = map[string]any{}
	}
	b.res.Extra["polling"] = out
	return nil
}

// writePolling prints the polling phase's table.
func writePolling(w io.Writer, rs []*pollingResult, md bool) {
	if !md {
		fmt.Fprintf(w, "\n== Polling mode: join presence to owner presence, %d rooms per delay, default interval\n\n", pollingRooms)
	}
	fmt.Fprintf(w, "| delay after creation | owner | first presence owner | not owner in 5 s | errors | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|---|---|\n")
	var all []time.Duration
	row := func(name string, d []time.Duration, at, miss, errs int) {
		s := slices.Clone(d)
		slices.Sort(s)
		var mx time.Duration
		if len(s) > 0 {
			mx = s[len(s)-1]
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %.1f | %.1f | %.1f | %.1f |\n", name, len(s), at, miss, errs,
			ms(pct(s, 50)), ms(pct(s, 95)), ms(pct(s, 99)), ms(mx))
	}
	at, miss, errs := 0, 0, 0
	for _, r := range rs {
		row(r.Delay.String(), r.Owner, r.AtOnce, r.Missing, r.Errors)
		all = append(all, r.Owner...)
		at, miss, errs = at+r.AtOnce, miss+r.Missing, errs+r.Errors
	}
	row("all", all, at, miss, errs)
}
