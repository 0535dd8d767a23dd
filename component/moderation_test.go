package component

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

const testSecret = "0123456789abcdef-test-secret"

var roomSeq atomic.Int64

// newRoom returns a fresh room JID, with a tenant when tenant is set.
func newRoom(tenant string) string {
	n := roomSeq.Add(1)
	if tenant != "" {
		return fmt.Sprintf("[%s]room%d@%s", tenant, n, prosodytest.MUC)
	}
	return fmt.Sprintf("room%d@%s", n, prosodytest.MUC)
}

// moderated is a running gavel with moderation, for tests.
type moderated struct {
	*running
	mod   *Moderation
	cmds  *commands.Service // the command layer, as cmd wires it
	audit *observer.ObservedLogs
	store store.Store
}

// startModerated runs gavel against srv with tenant settings per tenant
// name ("" is the default).
func startModerated(t *testing.T, srv *server, tenants map[string]Tenant, st store.Store) *moderated {
	t.Helper()
	return startModeratedMUC(t, srv, MUC{Domain: prosodytest.MUC}, tenants, st)
}

// startModeratedMUC is startModerated with the MUC's settings (Jitsi mode).
func startModeratedMUC(t *testing.T, srv *server, muc MUC, tenants map[string]Tenant, st store.Store) *moderated {
	t.Helper()
	return startModeratedWith(t, srv, muc, tenants, st, nil)
}

// startModeratedWith is startModeratedMUC with a change to the moderation
// options (a fake clock, short join timeouts).
func startModeratedWith(t *testing.T, srv *server, muc MUC, tenants map[string]Tenant, st store.Store, mutate func(*ModerationOptions)) *moderated {
	t.Helper()
	v, err := auth.New(map[string]auth.Settings{"": func() auth.Settings {
		s := auth.DefaultSettings("gavel-test")
		s.Secrets = [][]byte{[]byte(testSecret)}
		return s
	}()}, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	if st == nil {
		st = store.NewMemory()
	}
	opts := ModerationOptions{
		MUCs:     []MUC{muc},
		Verifier: v,
		Store:    st,
		Tenant:   tenantsFunc(tenants),
		Admins:   []string{"admin@" + prosodytest.Host},
	}
	if mutate != nil {
		mutate(&opts)
	}
	mod, err := NewModeration(opts)
	if err != nil {
		t.Fatal(err)
	}
	core, audit := observer.New(zap.DebugLevel)
	cmds, err := commands.New(commands.Options{Store: st, Rooms: mod, ForgetToken: v.Forget, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	mod.UseCommands(cmds)
	liftCtx, stopLift := context.WithCancel(context.Background())
	lifted := make(chan struct{})
	go func() { cmds.Run(liftCtx); close(lifted) }()
	t.Cleanup(func() { stopLift(); <-lifted })
	r := startComponent(t, srv, func(o *Options) { o.Moderation = mod })
	r.waitConnected(t, 5*time.Second)
	return &moderated{running: r, mod: mod, cmds: cmds, audit: audit, store: st}
}

func tenant(kind policy.Kind, guests policy.Guests) Tenant {
	return Tenant{
		Policy:          policy.Options{Kind: kind, Guests: guests, ClearOnLeave: true},
		KnocksPerMinute: 100000, KnocksPerMinutePerJID: 600,
	}
}

// mint makes a token for room (its name is the room claim).
func mint(t *testing.T, room string, moderator bool, mutate func(*auth.MintRequest)) string {
	t.Helper()
	ar, err := auth.ParseRoom(room)
	if err != nil {
		t.Fatal(err)
	}
	sub := ar.Tenant
	req := auth.MintRequest{
		Secret: []byte(testSecret), Issuer: "gavel-test", Audience: []string{"jitsi"},
		Subject: sub, Room: ar.Name, UserID: fmt.Sprintf("user-%d", roomSeq.Add(1)),
		Moderator: moderator, TTL: time.Hour,
	}
	if mutate != nil {
		mutate(&req)
	}
	tok, err := auth.Mint(req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// knockJoin knocks with token and joins as nick; it returns the knock
// result and the first self-presence.
func knockJoin(t *testing.T, cl *xclient.Client, room, token, nick string) (xclient.KnockResult, xclient.Presence) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	res, err := cl.Knock(ctx, prosodytest.Component, room, token)
	if err != nil {
		t.Fatalf("knock %s: %v", nick, err)
	}
	p, err := cl.Join(ctx, room, nick)
	if err != nil {
		t.Fatalf("join %s: %v", nick, err)
	}
	return res, p
}

func wantRefusal(t *testing.T, err error, typ, cond, app string) {
	t.Helper()
	var xe *xclient.Error
	if !errors.As(err, &xe) {
		t.Fatalf("error = %v, want %s/%s (%s)", err, typ, cond, app)
	}
	if xe.Type != typ || xe.Condition != cond || xe.App != app {
		t.Errorf("error = %v, want %s/%s (%s)", xe, typ, cond, app)
	}
	if xe.Text == "" {
		t.Errorf("refusal %s has no text", app)
	}
}

func TestTokenPolicyRoles(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		g := startModerated(t, srv, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
		_ = g
		room := newRoom("")
		host := login(t, srv)
		res, p := knockJoin(t, host, room, mint(t, room, true, nil), "host")
		if res.Affiliation != "owner" || res.Role != "moderator" || res.Reason != "token-moderator" {
			t.Errorf("host knock = %+v", res)
		}
		if p.Affiliation != "owner" || p.Role != "moderator" {
			t.Errorf("host's first presence: %s/%s, want owner/moderator", p.Affiliation, p.Role)
		}
		guestTok := mint(t, room, false, nil)
		part := login(t, srv)
		res, p = knockJoin(t, part, room, guestTok, "part")
		if res.Role != "participant" || p.Role != "participant" || p.Affiliation != "member" {
			t.Errorf("participant: knock %+v, presence %s/%s", res, p.Affiliation, p.Role)
		}
		ctx := ctxT(t, 10*time.Second)

		// No token under guests: deny.
		guest := login(t, srv)
		_, err := guest.Knock(ctx, prosodytest.Component, room, "")
		wantRefusal(t, err, "auth", "not-authorized", "token-required")
		// Skipping the knock does not help: the room is members-only.
		_, err = guest.Join(ctx, room, "sneaky")
		var xe *xclient.Error
		if !errors.As(err, &xe) || xe.Condition != "registration-required" {
			t.Errorf("join without knock: %v, want registration-required", err)
		}

		// Refusals, each with its reason.
		other := newRoom("")
		cases := []struct {
			name, token, app, cond string
		}{
			{"expired", mint(t, room, true, func(r *auth.MintRequest) {
				r.Expires = time.Now().Add(-time.Hour)
				r.IssuedAt = time.Now().Add(-2 * time.Hour)
			}), "token-expired", "not-authorized"},
			{"wrong room", mint(t, other, true, nil), "token-wrong-room", "forbidden"},
			{"bad signature", mint(t, room, true, func(r *auth.MintRequest) { r.Secret = []byte("another-secret-of-16-bytes") }), "token-bad-signature", "not-authorized"},
			{"garbage", "not.a.token", "token-malformed", "not-authorized"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				_, err := guest.Knock(ctx, prosodytest.Component, room, c.token)
				wantRefusal(t, err, "auth", c.cond, c.app)
			})
		}
		_, err = guest.Knock(ctx, prosodytest.Component, "room@conference.elsewhere.test", "")
		wantRefusal(t, err, "cancel", "item-not-found", "not-governed")
		_, err = guest.Knock(ctx, prosodytest.Component, "no-at-sign", "")
		wantRefusal(t, err, "modify", "bad-request", "bad-room")
	})
}

func TestLogsNeverHoldTokens(t *testing.T) {
	g := startModerated(t, shared, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	room := newRoom("")
	tok := mint(t, room, true, nil)
	cl := login(t, shared)
	knockJoin(t, cl, room, tok, "h")
	_, _ = cl.Knock(ctxT(t, 5*time.Second), prosodytest.Component, room, tok+"x")
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	for _, e := range g.logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && (strings.Contains(s, sig) || strings.Contains(s, tok[:40])) {
				t.Errorf("log %q field %s holds the token", e.Message, k)
			}
		}
	}
}

var _ = zap.NewNop
var _ sync.Mutex
var _ context.Context

// TestKnockLeewayMatchesVerify: the knock applies auth's one expiry rule
// (exp plus the tenant's leeway, 30s by default), as "gavel token verify"
// does: a token 10s past exp is granted, with expires at exp+30s; one 40s
// past exp is refused as token-expired.
func TestKnockLeewayMatchesVerify(t *testing.T) {
	startModerated(t, shared, map[string]Tenant{"": tenant(policy.Token, policy.GuestsDeny)}, nil)
	cases := []struct {
		name    string
		pastExp time.Duration
		refusal string
	}{
		{"10s past exp, within the leeway", 10 * time.Second, ""},
		{"40s past exp, beyond the leeway", 40 * time.Second, "token-expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			room := newRoom("")
			exp := time.Now().Add(-tc.pastExp).Truncate(time.Second)
			tok := mint(t, room, true, func(r *auth.MintRequest) {
				r.TTL, r.Expires, r.IssuedAt = 0, exp, exp.Add(-time.Hour)
			})
			cl := login(t, shared)
			res, err := cl.Knock(ctxT(t, 10*time.Second), prosodytest.Component, room, tok)
			if tc.refusal != "" {
				wantRefusal(t, err, "auth", "not-authorized", tc.refusal)
				return
			}
			if err != nil {
				t.Fatalf("knock: %v", err)
			}
			if res.Affiliation != "owner" {
				t.Errorf("knock result %+v, want owner", res)
			}
			if want := exp.Add(auth.DefaultLeeway).UTC().Format(time.RFC3339); res.Expires != want {
				t.Errorf("expires = %q, want %q (exp plus the leeway)", res.Expires, want)
			}
		})
	}
}
