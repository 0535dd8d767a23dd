package main

// The shards phase (docs/scale-out.md): two shards, each a Prosody with its
// own domains and a gavel binary, on one PostgreSQL (fsync on). It
// measures
//
//   - the time from a ban's 2xx on gavel A's HTTP API to the removal of the
//     banned occupant from a room on shard B, as an occupant of that room
//     sees it, over -shard-bans bans one after another;
//   - knock latency on shard B at -shard-rate knocks/s, with gavel on the
//     shared store and with gavel on bbolt, in alternating rounds on the
//     same Prosody (bans are read from a local cache in both).
//
// It runs on a PostgreSQL, Prosody and gavels of its own, after the other
// phases.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/pgtest"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

func init() {
	// Registered here so that the phase list in main.go stays as it is.
	allPhases = append(allPhases, "shards")
	defaultPhases = append(defaultPhases, "shards")
}

// Settings of the shards phase (no flags: one fixed, bounded run).
const (
	shardBans       = 200
	shardRooms      = 10
	shardKnockRate  = 100.0 // knocks/s
	shardKnockTime  = 5 * time.Second
	shardKnockRound = 3 // rounds per backend
	shardTenantName = "acme"
	shardAdminKey   = "gavel-bench-admin-secret-0123456789abcdef"
)

// shardResult is what the phase measured.
type shardResult struct {
	Bans       int             `json:"bans"`
	BanToB     []time.Duration `json:"-"`
	BanAck     []time.Duration `json:"-"`
	KnockPG    []time.Duration `json:"-"`
	KnockBolt  []time.Duration `json:"-"`
	KnockErrPG int             `json:"knock_errors_postgres"`
	KnockErrBB int             `json:"knock_errors_bbolt"`
}

// benchShard is one shard of the phase.
type benchShard struct {
	names prosodytest.Names
	srv   *prosodytest.Server
	http  string
	cmd   *exec.Cmd
	done  chan struct{}
	dir   string
}

func (b *bench) shards(ctx context.Context) error {
	logf("shards: PostgreSQL, two Prosody, two gavels; %d bans A -> B, knocks at %g/s on PostgreSQL and bbolt", shardBans, shardKnockRate)
	dir, err := os.MkdirTemp(b.e.dir, "shards-")
	if err != nil {
		return err
	}
	pg, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		return err
	}
	defer pg.Close()
	dsn, err := pg.CreateDB(ctx)
	if err != nil {
		return err
	}
	os.Setenv("GAVEL_BENCH_PG_DSN", dsn)
	var shards []*benchShard
	defer func() {
		for _, s := range shards {
			s.stop()
			_ = s.srv.Close()
		}
	}()
	for _, name := range []string{"a", "b"} {
		names := prosodytest.Names{Host: name + ".test", MUC: "conference." + name + ".test", Component: "mod." + name + ".test"}
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
		srv, err := prosodytest.Start(d, prosodytest.Options{RestrictRoomCreation: true, Names: names})
		if err != nil {
			return err
		}
		s := &benchShard{names: srv.Names, srv: srv, dir: d}
		shards = append(shards, s)
		if err := s.start(ctx, b.e.gavelBin, string(b.e.secret), true); err != nil {
			return err
		}
	}
	a, sb := shards[0], shards[1]
	res := &shardResult{Bans: shardBans}

	// Occupants of B's rooms, one observer per room.
	observers := make([]*xclient.Client, shardRooms)
	room := func(i int) string { return fmt.Sprintf("[%s]r%d@%s", shardTenantName, i, sb.names.MUC) }
	for i := range observers {
		c, err := sb.join(ctx, fmt.Sprintf("obs%d", i), room(i), fmt.Sprintf("obs-%d", i), string(b.e.secret), true)
		if err != nil {
			return err
		}
		defer c.Close()
		observers[i] = c
	}
	victims := make([]*xclient.Client, shardBans)
	err = parallel(ctx, shardBans, 20, func(i int) error {
		c, err := sb.join(ctx, fmt.Sprintf("v%d", i), room(i%shardRooms), fmt.Sprintf("victim-%d", i), string(b.e.secret), false)
		victims[i] = c
		return err
	})
	defer closeAll(victims)
	if err != nil {
		return err
	}
	admin, _ := auth.Mint(auth.MintRequest{Secret: []byte(shardAdminKey), Subject: shardTenantName, Issuer: "bench", Audience: []string{"bench"}, TTL: time.Hour, Extra: map[string]any{"admin": true}})
	for i := range shardBans {
		start := time.Now()
		code, body, err := httpDo(ctx, "POST", "http://"+a.http+"/jaccess/v1/access-management/"+shardTenantName+"/ban/user/"+fmt.Sprintf("victim-%d", i), admin, `{"reason":"bench"}`)
		if err != nil || code != 200 {
			return fmt.Errorf("shards: ban %d through A: %d %s %v", i, code, body, err)
		}
		acked := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		nick := fmt.Sprintf("v%d", i)
		_, err = observers[i%shardRooms].WaitPresence(wctx, func(p xclient.Presence) bool {
			return strings.HasSuffix(p.From, "/"+nick) && p.Type == "unavailable"
		})
		cancel()
		if err != nil {
			return fmt.Errorf("shards: ban %d: the occupant was not removed on B: %v", i, err)
		}
		res.BanAck = append(res.BanAck, acked.Sub(start))
		res.BanToB = append(res.BanToB, max(0, time.Since(acked)))
	}
	closeAll(victims)

	// Knocks on B: gavel on PostgreSQL, then on bbolt, alternating.
	knockers := make([]*xclient.Client, 20)
	for i := range knockers {
		c, err := sb.login(ctx, fmt.Sprintf("k%d", i))
		if err != nil {
			return err
		}
		defer c.Close()
		knockers[i] = c
	}
	for round := range 2 * shardKnockRound {
		onPG := round%2 == 0
		sb.stop()
		if err := sb.start(ctx, b.e.gavelBin, string(b.e.secret), onPG); err != nil {
			return err
		}
		lat, errs := knockRound(ctx, sb, knockers, room(0), string(b.e.secret))
		if onPG {
			res.KnockPG, res.KnockErrPG = append(res.KnockPG, lat...), res.KnockErrPG+errs
		} else {
			res.KnockBolt, res.KnockErrBB = append(res.KnockBolt, lat...), res.KnockErrBB+errs
		}
	}
	writeShards(os.Stdout, res)
	return nil
}

// knockRound knocks at shardKnockRate for shardKnockTime, round-robin over
// the clients, and returns each knock's latency.
func knockRound(ctx context.Context, s *benchShard, clients []*xclient.Client, room, secret string) ([]time.Duration, int) {
	tok, _ := auth.Mint(auth.MintRequest{Secret: []byte(secret), Issuer: appID, Audience: []string{"jitsi"}, Subject: shardTenantName, Room: "*", UserID: "knocker", TTL: time.Hour})
	n := int(shardKnockRate * shardKnockTime.Seconds())
	every := time.Duration(float64(time.Second) / shardKnockRate)
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			kctx, cancel := context.WithTimeout(ctx, opTimeout)
			defer cancel()
			t0 := time.Now()
			_, err := clients[i%len(clients)].Knock(kctx, s.names.Component, room, tok)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			lat = append(lat, d)
		}()
	}
	wg.Wait()
	return lat, errs
}

// start runs the shard's gavel on PostgreSQL or on bbolt, and waits until
// it answers /readyz.
func (s *benchShard) start(ctx context.Context, bin, secret string, postgres bool) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.http = l.Addr().String()
	l.Close()
	storeCfg := ""
	if postgres {
		storeCfg = "store:\n  postgres:\n    dsn_env: GAVEL_BENCH_PG_DSN\n"
	}
	cfg := fmt.Sprintf(`# written by gavel-bench (shards)
component:
  jid: %s
  address: %s
  secret: %q
muc:
  - domain: %s
http:
  listen: %s
  admin_token:
    secrets: [%q]
log:
  level: warn
data_dir: %s
%stenants:
  default:
    policy: token
    guests: member
    knocks_per_minute: 100000000
    knocks_per_minute_per_jid: 100000000
    token:
      app_id: %s
      secrets: [%q]
`, s.names.Component, s.srv.ComponentAddr, s.srv.Secret, s.names.MUC, s.http, shardAdminKey, filepath.Join(s.dir, "gavel-data"), storeCfg, appID, secret)
	path := filepath.Join(s.dir, "gavel.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(s.dir, "gavel.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "-config", path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); logFile.Close(); close(done) }(s.done)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if code, _, err := httpDo(ctx, "GET", "http://"+s.http+"/readyz", "", ""); err == nil && code == 200 {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("shards: gavel %s exited; see %s", s.names.Component, filepath.Join(s.dir, "gavel.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("shards: gavel %s not ready within 20s; see %s", s.names.Component, filepath.Join(s.dir, "gavel.log"))
}

// stop ends the shard's gavel (SIGTERM) and waits for it.
func (s *benchShard) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

func (s *benchShard) login(ctx context.Context, user string) (*xclient.Client, error) {
	if err := s.srv.Register(user, s.names.Host, "pw"); err != nil {
		return nil, err
	}
	return xclient.Login(ctx, s.srv.C2SAddr, user, s.names.Host, "pw")
}

// join logs user in, knocks as userID and joins room under the nick user.
func (s *benchShard) join(ctx context.Context, user, room, userID, secret string, moderator bool) (*xclient.Client, error) {
	c, err := s.login(ctx, user)
	if err != nil {
		return nil, err
	}
	tok, _ := auth.Mint(auth.MintRequest{Secret: []byte(secret), Issuer: appID, Audience: []string{"jitsi"}, Subject: shardTenantName, Room: "*", UserID: userID, Moderator: moderator, TTL: time.Hour})
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := c.Knock(octx, s.names.Component, room, tok); err != nil {
		c.Close()
		return nil, fmt.Errorf("shards: %s knocks on %s: %w", user, room, err)
	}
	if _, err := c.Join(octx, room, user); err != nil {
		c.Close()
		return nil, fmt.Errorf("shards: %s joins %s: %w", user, room, err)
	}
	return c, nil
}

func httpDo(ctx context.Context, method, url, token, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// writeShards prints the phase's table (Markdown, ready for
// docs/BENCHMARKS.md) and its JSON line.
func writeShards(w io.Writer, r *shardResult) {
	row := func(name string, d []time.Duration, errs int) {
		s := slices.Clone(d)
		slices.Sort(s)
		if len(s) == 0 {
			fmt.Fprintf(w, "| %s | 0 | %d | | | | |\n", name, errs)
			return
		}
		fmt.Fprintf(w, "| %s | %d | %d | %v | %v | %v | %v |\n", name, len(s), errs,
			pct(s, 50).Round(10*time.Microsecond), pct(s, 90).Round(10*time.Microsecond), pct(s, 99).Round(10*time.Microsecond), slices.Max(s).Round(10*time.Microsecond))
	}
	fmt.Fprintf(w, "\nShards: two Prosody, two gavels, one PostgreSQL (fsync on)\n\n")
	fmt.Fprintf(w, "| measure | n | errors | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|\n")
	row("ban: POST on A to its 2xx", r.BanAck, 0)
	row("ban: 2xx on A to removal seen on B", r.BanToB, 0)
	row(fmt.Sprintf("knock on B, PostgreSQL store, %g/s", shardKnockRate), r.KnockPG, r.KnockErrPG)
	row(fmt.Sprintf("knock on B, bbolt store, %g/s", shardKnockRate), r.KnockBolt, r.KnockErrBB)
	j, _ := json.Marshal(r)
	fmt.Fprintf(w, "\n%s\n", j)
}
