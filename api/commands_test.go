package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/store"
)

// rooms is an in-test implementation of gavel's own commands.Rooms, so that
// these tests drive the real command layer on a real (memory) store.
type rooms struct {
	mu       sync.Mutex
	enforced []store.Ban
	removed  int
	err      error
}

func (r *rooms) Governs(d string) bool { return d == testDomain }

func (r *rooms) EnforceBan(_ context.Context, b store.Ban) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enforced = append(r.enforced, b)
	return r.removed, r.err
}

func (r *rooms) Kick(context.Context, string, string, string) error { return nil }
func (r *rooms) Destroy(context.Context, string, string) error      { return nil }
func (r *rooms) LiftOutcasts(_ context.Context, l []store.Outcast) ([]store.Outcast, error) {
	return l, nil
}

// newRealFixture is newFixture with the real command layer.
func newRealFixture(t *testing.T) (*fixture, store.Store, *rooms) {
	t.Helper()
	st, rm := store.NewMemory(), &rooms{}
	t.Cleanup(func() { st.Close() })
	svc, err := commands.New(commands.Options{Store: st, Rooms: rm, Now: (&clock{t: testEpoch}).Now})
	if err != nil {
		t.Fatal(err)
	}
	return newFixture(t, func(o *Options) { o.Commands = svc }), st, rm
}

// TestAppIDSpellings: the {appId} of a JaaS URL is prepared like a room's
// tenant, so a ban for " ACME " or "ＡＣＭＥ" applies in [acme] rooms.
func TestAppIDSpellings(t *testing.T) {
	for _, appID := range []string{" ACME ", "ACME", "ＡＣＭＥ"} {
		t.Run(appID, func(t *testing.T) {
			f, st, _ := newRealFixture(t)
			tok := mint(t, testEpoch, nil)
			base := "/jaccess/v1/access-management/" + url.PathEscape(appID)
			resp := f.do(t, "POST", base+"/ban/user/troll", tok, "")
			if resp.status != 200 {
				t.Fatalf("ban: %d %s", resp.status, resp.body)
			}
			if _, ok := st.Banned("acme", store.KindUser, "troll", testEpoch); !ok {
				t.Errorf("the ban does not apply to tenant acme: %s", resp.body)
			}
			if !strings.Contains(resp.body, `"tenant":"acme"`) {
				t.Errorf("body %s", resp.body)
			}
			if resp := f.do(t, "DELETE", base+"/ban/user/troll", tok, ""); resp.status != 200 {
				t.Errorf("unban: %d %s", resp.status, resp.body)
			}
		})
	}
}

// TestBadInputAnswers400: input the command layer or the store refuses is
// 400 bad-request with the reason, never 500. (Before, a DELETE of a
// 10,000-character user id or a 2,000-character tenant answered 500.)
func TestBadInputAnswers400(t *testing.T) {
	f, _, _ := newRealFixture(t)
	long := strings.Repeat("t", 2000)
	tok := mint(t, testEpoch, nil)
	cases := []struct {
		name, method, path, token, want string
	}{
		{"long user id", "DELETE", jaccess + "/ban/user/" + strings.Repeat("u", 10000), tok, "the limit is 1024"},
		{"long user id ban", "POST", jaccess + "/ban/user/" + strings.Repeat("u", 10000), tok, "the limit is 1024"},
		{"control character", "POST", jaccess + "/ban/user/a%07b", tok, "control character"},
		{"bad jid", "POST", jaccess + "/ban/user/a%20b@example.test", tok, "JID"},
		{"long tenant", "DELETE", "/jaccess/v1/access-management/" + long + "/ban/user/u", mint(t, testEpoch, nil), "tenant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.do(t, tc.method, tc.path, tc.token, "")
			if resp.status != 400 || resp.errorCode(t) != "bad-request" || !strings.Contains(resp.body, tc.want) {
				t.Errorf("%d %s, want 400 bad-request saying %q", resp.status, resp.body, tc.want)
			}
		})
	}
}

// TestUnbanMissingIsNoSuchBan: 404 no-such-ban.
func TestUnbanMissingIsNoSuchBan(t *testing.T) {
	f, _, _ := newRealFixture(t)
	resp := f.do(t, "DELETE", jaccess+"/ban/user/nobody", mint(t, testEpoch, nil), "")
	if resp.status != 404 || resp.errorCode(t) != "no-such-ban" {
		t.Errorf("%d %s, want 404 no-such-ban", resp.status, resp.body)
	}
}

// TestBanIncompleteIs202: a ban stored but not enforced in every room in
// time is 202 Accepted with the count so far and a warning.
func TestBanIncompleteIs202(t *testing.T) {
	f, st, rm := newRealFixture(t)
	rm.removed, rm.err = 2, errors.New("component: 1 of 3 room(s) did not answer: context deadline exceeded")
	resp := f.do(t, "POST", jaccess+"/ban/user/troll", mint(t, testEpoch, nil), "")
	var body banResponse
	if err := json.Unmarshal([]byte(resp.body), &body); err != nil {
		t.Fatal(err)
	}
	if resp.status != 202 || body.Removed != 2 || !strings.Contains(body.Warning, "1 of 3 room(s) did not answer") {
		t.Errorf("%d %s, want 202 with removed 2 and a warning", resp.status, resp.body)
	}
	if _, ok := st.Banned("acme", store.KindUser, "troll", testEpoch); !ok {
		t.Error("the ban is not stored")
	}
}
