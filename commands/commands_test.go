package commands

import (
	"context"
	"encoding/hex"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/store"
)

const governed = "conference.example.test"

// rooms is an in-test implementation of gavel's own Rooms interface: it
// records what the command layer asks of the XMPP side.
type rooms struct {
	mu       sync.Mutex
	enforced []store.Ban
	kicks    []string
	destroys []string
	removed  int
	err      error // returned by EnforceBan with removed
	lifted   []store.Outcast
	liftErr  error // returned by LiftOutcasts, which then lifts nothing
}

func (r *rooms) Governs(d string) bool { return d == governed }

func (r *rooms) EnforceBan(_ context.Context, b store.Ban) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enforced = append(r.enforced, b)
	return r.removed, r.err
}

func (r *rooms) Kick(_ context.Context, room, nick, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kicks = append(r.kicks, room+"/"+nick)
	return nil
}

func (r *rooms) Destroy(_ context.Context, room, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.destroys = append(r.destroys, room)
	return nil
}

func (r *rooms) LiftOutcasts(_ context.Context, list []store.Outcast) ([]store.Outcast, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.liftErr != nil {
		return nil, r.liftErr
	}
	r.lifted = append(r.lifted, list...)
	return list, nil
}

type fixture struct {
	svc    *Service
	store  store.Store
	rooms  *rooms
	logs   *observer.ObservedLogs
	reg    *prometheus.Registry
	forgot [][32]byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	f := &fixture{store: store.NewMemory(), rooms: &rooms{}, logs: logs, reg: prometheus.NewRegistry()}
	t.Cleanup(func() { f.store.Close() })
	svc, err := New(Options{
		Store: f.store, Rooms: f.rooms, Logger: zap.New(core), Metrics: f.reg,
		ForgetToken: func(h [32]byte) { f.forgot = append(f.forgot, h) },
		Now:         func() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func hashOf(tok string) string {
	h := auth.TokenHash(tok)
	return hex.EncodeToString(h[:])
}

// TestNormalizeKey: one normalization for tenants, user ids, JIDs and
// tokens, whatever interface the command came from. (Before, an ad-hoc ban
// for tenant "ACME" or " acme " was stored under that spelling and never
// applied in [acme] rooms.)
func TestNormalizeKey(t *testing.T) {
	tests := []struct {
		name   string
		tenant string
		kind   store.Kind
		value  string
		hashOK bool
		want   Key
		errHas string
	}{
		{"tenant upper case", "ACME", store.KindUser, "u1", false, Key{"acme", store.KindUser, "u1"}, ""},
		{"tenant spaces", " acme ", store.KindUser, "u1", false, Key{"acme", store.KindUser, "u1"}, ""},
		{"tenant full-width", "ＡＣＭＥ", store.KindUser, "u1", false, Key{"acme", store.KindUser, "u1"}, ""},
		{"tenant domain", "Example.Test", store.KindUser, "u1", false, Key{"example.test", store.KindUser, "u1"}, ""},
		{"user id trimmed, case kept", "acme", store.KindUser, " User-1 ", false, Key{"acme", store.KindUser, "User-1"}, ""},
		{"jid bare and prepared", "acme", store.KindJID, " Troll@Example.TEST/phone ", false, Key{"acme", store.KindJID, "troll@example.test"}, ""},
		{"token hashed", "acme", store.KindToken, " a.b.c ", false, Key{"acme", store.KindToken, hashOf("a.b.c")}, ""},
		{"hash kept on unban", "acme", store.KindToken, strings.ToUpper(hashOf("a.b.c")), true, Key{"acme", store.KindToken, hashOf("a.b.c")}, ""},
		{"empty tenant", "  ", store.KindUser, "u", false, Key{}, "tenant is required"},
		{"long tenant", strings.Repeat("t", 2000), store.KindUser, "u", false, Key{}, "tenant"},
		{"tenant with space", "ac me", store.KindUser, "u", false, Key{}, "tenant"},
		{"tenant with bracket", "ac]me", store.KindUser, "u", false, Key{}, "brackets"},
		{"empty user", "acme", store.KindUser, " ", false, Key{}, "user id is required"},
		{"long user", "acme", store.KindUser, strings.Repeat("u", 10000), false, Key{}, "the limit is 1024"},
		{"control character", "acme", store.KindUser, "a\x07b", false, Key{}, "control character"},
		{"invalid utf-8", "acme", store.KindUser, "a\xffb", false, Key{}, "UTF-8"},
		{"bad jid", "acme", store.KindJID, "a b@example.test", false, Key{}, "JID"},
		{"empty token", "acme", store.KindToken, "  ", false, Key{}, "token is required"},
		{"unknown kind", "acme", store.Kind("ip"), "1.2.3.4", false, Key{}, `ban kind "ip" is unknown`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeKey(tt.tenant, tt.kind, tt.value, tt.hashOK)
			if tt.errHas != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want ErrInvalid saying %q", err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeKey = %+v, %v; want %+v", got, err, tt.want)
			}
			// Idempotent: the stored form normalizes to itself.
			again, err := NormalizeKey(got.Tenant, got.Kind, got.Value, true)
			if err != nil || again != got {
				t.Errorf("again = %+v, %v", again, err)
			}
		})
	}
}

// TestBanSpellingsOfATenant: a ban for " ACME " is stored under "acme", the
// tenant of [acme] rooms, and enforced there.
func TestBanSpellingsOfATenant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, err := f.svc.Ban(ctx, BanRequest{Tenant: " ACME ", Kind: store.KindUser, Value: " troll ", By: "admin@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ban.Tenant != "acme" || res.Ban.Value != "troll" {
		t.Errorf("stored %+v", res.Ban)
	}
	ar, err := auth.ParseRoom("[ACME]standup@" + governed)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.store.Banned(ar.Tenant, store.KindUser, "troll", time.Date(2030, 1, 2, 3, 5, 0, 0, time.UTC)); !ok {
		t.Errorf("the ban does not apply in %s (tenant %q)", ar.JID, ar.Tenant)
	}
	if len(f.rooms.enforced) != 1 || f.rooms.enforced[0].Tenant != "acme" {
		t.Errorf("enforced %+v", f.rooms.enforced)
	}
	if _, err := f.svc.Unban(ctx, UnbanRequest{Tenant: "Acme", Kind: store.KindUser, Value: "troll"}); err != nil {
		t.Errorf("unban by another spelling: %v", err)
	}
}

// TestBadInputIsInvalid: what fails validation in the store, too, is
// ErrInvalid, never an error an interface answers as internal. (Before, an
// unban of a 10,000-character user id, a 2,000-character tenant or an
// unknown kind reached the store and came back as a 500 /
// internal-server-error.)
func TestBadInputIsInvalid(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for name, req := range map[string]UnbanRequest{
		"long user":    {Tenant: "acme", Kind: store.KindUser, Value: strings.Repeat("u", 10000)},
		"long tenant":  {Tenant: strings.Repeat("t", 2000), Kind: store.KindUser, Value: "u"},
		"unknown kind": {Tenant: "acme", Kind: "nope", Value: "u"},
	} {
		if _, err := f.svc.Unban(ctx, req); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: unban: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := f.svc.Ban(ctx, BanRequest{Tenant: "acme", Kind: store.KindUser, Value: "u", Reason: strings.Repeat("r", 2000)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("long reason: %v, want ErrInvalid", err)
	}
	if _, err := f.svc.Ban(ctx, BanRequest{Tenant: "acme", Kind: store.KindUser, Value: "u", Expires: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("expiry in the past: %v, want ErrInvalid", err)
	}
	if _, err := f.svc.Bans(ctx, strings.Repeat("t", 2000)); !errors.Is(err, ErrInvalid) {
		t.Errorf("list for a long tenant: %v, want ErrInvalid", err)
	}
	if _, err := f.svc.TenantOf("no-at-sign"); !errors.Is(err, ErrInvalid) {
		t.Errorf("TenantOf: %v, want ErrInvalid", err)
	}
	if len(f.rooms.enforced) != 0 {
		t.Errorf("an invalid ban was enforced: %+v", f.rooms.enforced)
	}
}

// TestUnbanMissing: an unban of a ban that does not exist is ErrNoSuchBan.
// (Before, ad-hoc answered "no such room".)
func TestUnbanMissing(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Unban(context.Background(), UnbanRequest{Tenant: "acme", Kind: store.KindUser, Value: "nobody"})
	if !errors.Is(err, ErrNoSuchBan) || errors.Is(err, ErrRoomNotFound) {
		t.Errorf("err = %v, want ErrNoSuchBan", err)
	}
}

// TestBanIncomplete: when not every room answered, the ban is stored, the
// result counts the removals so far, and the error says so.
func TestBanIncomplete(t *testing.T) {
	f := newFixture(t)
	f.rooms.removed, f.rooms.err = 1, errors.New("component: 2 of 3 room(s) did not answer: context deadline exceeded")
	res, err := f.svc.Ban(context.Background(), BanRequest{Tenant: "acme", Kind: store.KindUser, Value: "troll"})
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "2 of 3 room(s) did not answer") {
		t.Fatalf("err = %v, want ErrIncomplete with the count of rooms", err)
	}
	if res.Removed != 1 || res.Ban.Value != "troll" {
		t.Errorf("result = %+v", res)
	}
	if bans, _ := f.svc.Bans(context.Background(), "acme"); len(bans) != 1 {
		t.Errorf("the ban is not stored: %+v", bans)
	}
	if got := counter(t, f.reg, "ban", "incomplete"); got != 1 {
		t.Errorf("incomplete bans counted %v", got)
	}
}

// TestTokenBan: a token is stored as auth.TokenHash, forgotten by the cache,
// and never written to the audit log.
func TestTokenBan(t *testing.T) {
	f := newFixture(t)
	tok := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA"
	res, err := f.svc.Ban(context.Background(), BanRequest{Tenant: "acme", Kind: store.KindToken, Value: " " + tok + " "})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ban.Value != hashOf(tok) {
		t.Errorf("stored %s, want auth.TokenHash", res.Ban.Value)
	}
	if len(f.forgot) != 1 || hex.EncodeToString(f.forgot[0][:]) != hashOf(tok) {
		t.Errorf("forgot %x", f.forgot)
	}
	if _, err := f.svc.Unban(context.Background(), UnbanRequest{Tenant: "acme", Kind: store.KindToken, Value: res.Ban.Value}); err != nil {
		t.Errorf("unban by hash: %v", err)
	}
	_, _ = f.svc.Ban(context.Background(), BanRequest{Tenant: strings.Repeat("x", 2000), Kind: store.KindToken, Value: tok})
	for _, e := range f.logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, "c2lnbmF0dXJl") {
				t.Errorf("audit field %s holds the token: %q", k, s)
			}
		}
	}
}

// TestAudit: every command leaves one audit line with by, target, tenant
// and result, and is counted.
func TestAudit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, _ = f.svc.Ban(ctx, BanRequest{Tenant: "ACME", Kind: store.KindJID, Value: "Troll@Example.test", By: "admin@example.test"})
	_, _ = f.svc.Unban(ctx, UnbanRequest{Tenant: "acme", Kind: store.KindUser, Value: "nobody", By: "api:acme"})
	_ = f.svc.Kick(ctx, "[acme]standup@"+governed, "abcd", "", "api:acme")
	_ = f.svc.Destroy(ctx, "[acme]standup@conference.elsewhere.test", "", "api:acme")
	f.svc.Refused("ban-user", "eve@example.test", "not an admin")
	want := []map[string]any{
		{"command": "ban", "by": "admin@example.test", "target": "jid:troll@example.test", "tenant": "acme", "result": "ok"},
		{"command": "unban", "by": "api:acme", "target": "user:nobody", "tenant": "acme", "result": "commands: no such ban"},
		{"command": "kick", "by": "api:acme", "target": "[acme]standup@" + governed + "/abcd", "tenant": "acme", "result": "ok"},
		{"command": "destroy", "by": "api:acme", "target": "[acme]standup@conference.elsewhere.test", "tenant": "acme", "result": "commands: room is not on a governed MUC domain: conference.elsewhere.test"},
		{"command": "ban-user", "by": "eve@example.test", "target": "", "tenant": "", "result": "refused: not an admin"},
	}
	lines := f.logs.FilterMessage("audit").All()
	if len(lines) != len(want) {
		t.Fatalf("%d audit lines, want %d", len(lines), len(want))
	}
	for i, l := range lines {
		got := l.ContextMap()
		for k, v := range want[i] {
			if got[k] != v {
				t.Errorf("line %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
	}
	if got := counter(t, f.reg, "ban", "ok"); got != 1 {
		t.Errorf("gavel_commands_total{ban,ok} = %v", got)
	}
	if got := counter(t, f.reg, "unban", "error"); got != 1 {
		t.Errorf("gavel_commands_total{unban,error} = %v", got)
	}
}

// TestEndedContextDoesNotAct: a kick or destroy whose request has ended
// does not reach the rooms.
func TestEndedContextDoesNotAct(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	room := "[acme]standup@" + governed
	if err := f.svc.Kick(ctx, room, "abcd", "", "t"); !errors.Is(err, context.Canceled) {
		t.Errorf("kick: %v", err)
	}
	if err := f.svc.Destroy(ctx, room, "", "t"); !errors.Is(err, context.Canceled) {
		t.Errorf("destroy: %v", err)
	}
	if len(f.rooms.kicks)+len(f.rooms.destroys) != 0 {
		t.Errorf("acted: %v %v", f.rooms.kicks, f.rooms.destroys)
	}
}

// TestRoomsPrepared: rooms reach the XMPP side prepared as the server
// prepares them.
func TestRoomsPrepared(t *testing.T) {
	f := newFixture(t)
	if err := f.svc.Kick(context.Background(), " [ACME]Ｓtandup@Conference.Example.Test ", "abcd", "", "t"); err != nil {
		t.Fatal(err)
	}
	if f.rooms.kicks[0] != "[acme]standup@"+governed+"/abcd" {
		t.Errorf("kicked %v", f.rooms.kicks)
	}
	if tn, err := f.svc.TenantOf("[ACME]x@" + governed); err != nil || tn != "acme" {
		t.Errorf("TenantOf = %q, %v", tn, err)
	}
}

// TestImports: neither api nor commands imports component, directly or
// through another package.
func TestImports(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/gavelxmpp/gavel/api", "github.com/gavelxmpp/gavel/commands").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/gavelxmpp/gavel/component" || strings.HasPrefix(p, "github.com/gavelxmpp/gavel/component/") {
			t.Errorf("api or commands depends on %s", p)
		}
	}
}

// counter reads gavel_commands_total{command, result} from reg.
func counter(t *testing.T, reg *prometheus.Registry, command, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gavel_commands_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["command"] == command && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
