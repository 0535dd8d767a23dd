package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/store"
)

const jaccess = "/jaccess/v1/access-management/acme"

// TestJSONShapes pins the exact JSON of a ban response, an unban response, a
// list and an error.
func TestJSONShapes(t *testing.T) {
	f := newFixture(t, nil)
	f.cmds.set(func(f *fakeCommands) {
		f.removed = 2
		f.bans = []store.Ban{
			{Tenant: "acme", Kind: store.KindUser, Value: "alice", Reason: "spam", By: "api:acme", Created: testEpoch},
			{Tenant: "acme", Kind: store.KindToken, Value: strings.Repeat("0f", 32), By: "admin@example.test",
				Created: testEpoch.Add(time.Minute), Expires: testEpoch.Add(24 * time.Hour)},
		}
	})
	tok := mint(t, testEpoch, nil)
	cases := []struct {
		name, method, path, token, body string
		status                          int
		want                            string
	}{
		{"ban", "POST", jaccess + "/ban/user/alice", tok, "", 200,
			`{"tenant":"acme","kind":"user","value":"alice","removed":2}` + "\n"},
		{"ban with expiry", "POST", jaccess + "/ban/user/alice", tok, `{"reason":"spam","duration":"24h"}`, 200,
			`{"tenant":"acme","kind":"user","value":"alice","expires":"2030-01-03T15:04:05Z","removed":2}` + "\n"},
		{"unban", "DELETE", jaccess + "/ban/user/alice", tok, "", 200,
			`{"tenant":"acme","kind":"user","value":"alice","unbanned":true}` + "\n"},
		{"list", "GET", jaccess + "/bans", tok, "", 200,
			`{"bans":[{"tenant":"acme","kind":"user","value":"alice","reason":"spam","by":"api:acme","created":"2030-01-02T15:04:05Z"},` +
				`{"tenant":"acme","kind":"token","value":"` + strings.Repeat("0f", 32) + `","reason":"","by":"admin@example.test","created":"2030-01-02T15:05:05Z","expires":"2030-01-03T15:04:05Z"}]}` + "\n"},
		{"error", "GET", jaccess + "/bans", "", "", 401,
			`{"error":"unauthorized","message":"missing Authorization header: want Bearer <admin JWT>"}` + "\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.do(t, tc.method, tc.path, tc.token, tc.body)
			if resp.status != tc.status || resp.body != tc.want {
				t.Errorf("got %d %s\nwant %d %s", resp.status, resp.body, tc.status, tc.want)
			}
			if ct := resp.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

// TestEmptyList checks that no bans give an empty array, not null.
func TestEmptyList(t *testing.T) {
	f := newFixture(t, nil)
	resp := f.do(t, "GET", jaccess+"/bans", mint(t, testEpoch, nil), "")
	if resp.status != 200 || resp.body != `{"bans":[]}`+"\n" {
		t.Errorf("got %d %s", resp.status, resp.body)
	}
	if c := f.cmds.Calls(); len(c) != 1 || c[0].Tenant != "acme" {
		t.Errorf("calls = %+v", c)
	}
}

// TestBanRequests checks what a ban passes to the command layer.
func TestBanRequests(t *testing.T) {
	tok := mint(t, testEpoch, nil)
	cases := []struct {
		name, path, body string
		want             commands.BanRequest
	}{
		{"user", jaccess + "/ban/user/alice", "", commands.BanRequest{Tenant: "acme", Kind: store.KindUser, Value: "alice", By: "api:acme"}},
		{"jid", jaccess + "/ban/user/bob@example.test", "", commands.BanRequest{Tenant: "acme", Kind: store.KindJID, Value: "bob@example.test", By: "api:acme"}},
		{"escaped user id", jaccess + "/ban/user/a%2Fb%20c", "", commands.BanRequest{Tenant: "acme", Kind: store.KindUser, Value: "a/b c", By: "api:acme"}},
		{"app id lowercased", "/jaccess/v1/access-management/ACME/ban/user/alice", "", commands.BanRequest{Tenant: "acme", Kind: store.KindUser, Value: "alice", By: "api:acme"}},
		{"reason and duration", jaccess + "/ban/user/alice", `{"reason":"spam","duration":"90m"}`,
			commands.BanRequest{Tenant: "acme", Kind: store.KindUser, Value: "alice", Reason: "spam", By: "api:acme", Expires: testEpoch.Add(90 * time.Minute)}},
		{"expiresAt", jaccess + "/ban/user/alice", `{"expiresAt":"2030-02-01T10:00:00+01:00"}`,
			commands.BanRequest{Tenant: "acme", Kind: store.KindUser, Value: "alice", By: "api:acme", Expires: time.Date(2030, 2, 1, 9, 0, 0, 0, time.UTC)}},
		{"null body", jaccess + "/ban/user/alice", `null`, commands.BanRequest{Tenant: "acme", Kind: store.KindUser, Value: "alice", By: "api:acme"}},
		{"empty object", jaccess + "/ban/user/alice", `{}`, commands.BanRequest{Tenant: "acme", Kind: store.KindUser, Value: "alice", By: "api:acme"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			resp := f.do(t, "POST", tc.path, tok, tc.body)
			if resp.status != 200 {
				t.Fatalf("status = %d; body %s", resp.status, resp.body)
			}
			calls := f.cmds.Calls()
			if len(calls) != 1 || calls[0].Method != "Ban" {
				t.Fatalf("calls = %+v", calls)
			}
			got := calls[0].Ban
			if got.Tenant != tc.want.Tenant || got.Kind != tc.want.Kind || got.Value != tc.want.Value ||
				got.Reason != tc.want.Reason || got.By != tc.want.By || !got.Expires.Equal(tc.want.Expires) {
				t.Errorf("ban = %+v\nwant  %+v", got, tc.want)
			}
		})
	}
}

// TestBadBodies checks the 400 and 413 answers to bodies.
func TestBadBodies(t *testing.T) {
	tok := mint(t, testEpoch, nil)
	victim := mint(t, testEpoch, func(r *auth.MintRequest) { r.Extra = nil })
	meeting := "/conference-commands/v1/meeting"
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed JSON", "POST", jaccess + "/ban/user/alice", `{"reason":`, 400, "bad-request"},
		{"unknown field", "POST", jaccess + "/ban/user/alice", `{"reason":"x","color":"red"}`, 400, "bad-request"},
		{"trailing data", "POST", jaccess + "/ban/user/alice", `{"reason":"x"} {}`, 400, "bad-request"},
		{"array body", "POST", jaccess + "/ban/user/alice", `[]`, 400, "bad-request"},
		{"wrong type", "POST", jaccess + "/ban/user/alice", `{"reason":42}`, 400, "bad-request"},
		{"both expiries", "POST", jaccess + "/ban/user/alice", `{"expiresAt":"2031-01-01T00:00:00Z","duration":"1h"}`, 400, "bad-request"},
		{"past expiresAt", "POST", jaccess + "/ban/user/alice", `{"expiresAt":"2029-01-01T00:00:00Z"}`, 400, "bad-request"},
		{"bad expiresAt", "POST", jaccess + "/ban/user/alice", `{"expiresAt":"tomorrow"}`, 400, "bad-request"},
		{"bad duration", "POST", jaccess + "/ban/user/alice", `{"duration":"1 week"}`, 400, "bad-request"},
		{"negative duration", "POST", jaccess + "/ban/user/alice", `{"duration":"-1h"}`, 400, "bad-request"},
		{"reason too long", "POST", jaccess + "/ban/user/alice", `{"reason":"` + strings.Repeat("r", maxReasonBytes+1) + `"}`, 400, "bad-request"},
		{"body too large", "POST", jaccess + "/ban/user/alice", `{"reason":"` + strings.Repeat("r", 2048) + `"}`, 413, "body-too-large"},
		{"ban jwt without body", "POST", jaccess + "/ban/jwt", "", 400, "bad-request"},
		{"ban jwt missing jwt", "POST", jaccess + "/ban/jwt", `{"reason":"x"}`, 400, "bad-request"},
		{"ban jwt not a jwt", "POST", jaccess + "/ban/jwt", `{"jwt":"hello"}`, 400, "bad-request"},
		{"ban jwt unknown field", "POST", jaccess + "/ban/jwt", `{"jwt":"` + victim + `","token":"x"}`, 400, "bad-request"},
		{"ban jwt too large", "POST", jaccess + "/ban/jwt", `{"jwt":"` + strings.Repeat("a", 3000) + `"}`, 413, "body-too-large"},
		{"unban jwt neither", "DELETE", jaccess + "/ban/jwt", `{}`, 400, "bad-request"},
		{"unban jwt both", "DELETE", jaccess + "/ban/jwt", `{"jwt":"` + victim + `","hash":"` + strings.Repeat("a", 64) + `"}`, 400, "bad-request"},
		{"unban jwt short hash", "DELETE", jaccess + "/ban/jwt", `{"hash":"abcd"}`, 400, "bad-request"},
		{"unban jwt non-hex hash", "DELETE", jaccess + "/ban/jwt", `{"hash":"` + strings.Repeat("g", 64) + `"}`, 400, "bad-request"},
		{"meeting without body", "POST", meeting, "", 400, "bad-request"},
		{"meeting unknown action", "POST", meeting, `{"action":"MUTE","payload":{"conferenceFullName":"` + testRoom + `"}}`, 400, "unknown-action"},
		{"meeting lowercase action", "POST", meeting, `{"action":"destroy","payload":{"conferenceFullName":"` + testRoom + `"}}`, 400, "unknown-action"},
		{"meeting no action", "POST", meeting, `{"payload":{"conferenceFullName":"` + testRoom + `"}}`, 400, "bad-request"},
		{"meeting no payload", "POST", meeting, `{"action":"DESTROY"}`, 400, "bad-request"},
		{"meeting no room", "POST", meeting, `{"action":"DESTROY","payload":{}}`, 400, "bad-request"},
		{"meeting kick without participant", "POST", meeting, `{"action":"KICK_PARTICIPANT","payload":{"conferenceFullName":"` + testRoom + `"}}`, 400, "bad-request"},
		{"meeting destroy with participant", "POST", meeting, `{"action":"DESTROY","payload":{"conferenceFullName":"` + testRoom + `","participantId":"x"}}`, 400, "bad-request"},
		{"meeting unknown field", "POST", meeting, `{"action":"DESTROY","payload":{"conferenceFullName":"` + testRoom + `"},"x":1}`, 400, "bad-request"},
		{"meeting invalid room", "POST", meeting, `{"action":"DESTROY","payload":{"conferenceFullName":"no-at-sign"}}`, 400, "bad-request"},
		{"meeting ungoverned room", "POST", meeting, `{"action":"DESTROY","payload":{"conferenceFullName":"[acme]x@muc.elsewhere.test"}}`, 404, "not-governed"},
		{"meeting too large", "POST", meeting, `{"action":"DESTROY","payload":{"conferenceFullName":"` + testRoom + `","reason":"` + strings.Repeat("r", 2048) + `"}}`, 413, "body-too-large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.MaxBodyBytes = 2048 })
			resp := f.do(t, tc.method, tc.path, tok, tc.body)
			if resp.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tc.status, resp.body)
			}
			if got := resp.errorCode(t); got != tc.code {
				t.Errorf("error = %q, want %q (%s)", got, tc.code, resp.body)
			}
			if c := f.cmds.Calls(); len(c) != 0 {
				t.Errorf("commands ran: %+v", c)
			}
		})
	}
}

// TestCommandErrors maps every error of the command layer on every command.
func TestCommandErrors(t *testing.T) {
	errs := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"invalid", fmt.Errorf("%w: tenant and value are required", commands.ErrInvalid), 400, "bad-request"},
		{"room not found", commands.ErrRoomNotFound, 404, "room-not-found"},
		{"participant not found", commands.ErrParticipantNotFound, 404, "participant-not-found"},
		{"not governed", commands.ErrNotGoverned, 404, "not-governed"},
		{"not connected", fmt.Errorf("sending: %w", commands.ErrUnavailable), 503, "not-connected"},
		{"other", errors.New("disk on fire"), 500, "internal"},
	}
	kick := `{"action":"KICK_PARTICIPANT","payload":{"conferenceFullName":"` + testRoom + `","participantId":"abcd1234"}}`
	var eps []endpoint
	eps = append(eps, commandEndpoints(t)...)
	eps = append(eps, endpoint{name: "kick", method: "POST", path: "/conference-commands/v1/meeting", body: kick})
	tok := mint(t, testEpoch, nil)
	for _, ep := range eps {
		for _, e := range errs {
			t.Run(ep.name+"/"+e.name, func(t *testing.T) {
				f := newFixture(t, nil)
				f.cmds.set(func(f *fakeCommands) { f.err = e.err })
				resp := f.do(t, ep.method, ep.path, tok, ep.body)
				if resp.status != e.status {
					t.Fatalf("status = %d, want %d; body %s", resp.status, e.status, resp.body)
				}
				if got := resp.errorCode(t); got != e.code {
					t.Errorf("error = %q, want %q", got, e.code)
				}
				if e.code == "internal" {
					if strings.Contains(resp.body, "disk on fire") {
						t.Errorf("internal error leaked: %s", resp.body)
					}
					lines := f.logs.FilterMessage("http request").All()
					if len(lines) != 1 || lines[0].Level.String() != "error" || lines[0].ContextMap()["error"] != e.err.Error() {
						t.Errorf("internal error not logged:\n%s", f.logText())
					}
				}
			})
		}
	}
}

// TestUnban checks unbans by user, JID, token and hash, and a missing ban.
func TestUnban(t *testing.T) {
	tok := mint(t, testEpoch, nil)
	victim := mint(t, testEpoch, func(r *auth.MintRequest) { r.Extra = nil; r.Subject = "x" })
	victimHash := tokenHash(victim)
	upper := strings.ToUpper(strings.Repeat("ab", 32))
	cases := []struct {
		name, method, path, body string
		notFound                 bool
		status                   int
		kind                     store.Kind
		value                    string
		shown                    string
	}{
		{"user", "DELETE", jaccess + "/ban/user/alice", "", false, 200, store.KindUser, "alice", "alice"},
		{"jid", "DELETE", jaccess + "/ban/user/bob@example.test", "", false, 200, store.KindJID, "bob@example.test", "bob@example.test"},
		{"missing", "DELETE", jaccess + "/ban/user/alice", "", true, 404, store.KindUser, "alice", ""},
		// The command layer hashes the token, or takes the hash as given.
		{"by token", "DELETE", jaccess + "/ban/jwt", `{"jwt":"` + victim + `"}`, false, 200, store.KindToken, victim, "sha256:" + victimHash[:16]},
		{"by hash", "DELETE", jaccess + "/ban/jwt", `{"hash":"` + upper + `"}`, false, 200, store.KindToken, upper, "sha256:abababababababab"},
		{"missing token", "DELETE", jaccess + "/ban/jwt", `{"jwt":"` + victim + `"}`, true, 404, store.KindToken, victim, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.cmds.set(func(f *fakeCommands) { f.notFound = tc.notFound })
			resp := f.do(t, tc.method, tc.path, tok, tc.body)
			if resp.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tc.status, resp.body)
			}
			calls := f.cmds.Calls()
			if len(calls) != 1 {
				t.Fatalf("calls = %+v", calls)
			}
			c := calls[0]
			if c.Method != "Unban" || c.Tenant != "acme" || c.Kind != tc.kind || c.Value != tc.value || c.By != "api:acme" {
				t.Errorf("call = %+v", c)
			}
			if tc.status == 404 {
				if code := resp.errorCode(t); code != "no-such-ban" {
					t.Errorf("error = %q, want no-such-ban", code)
				}
				return
			}
			want := fmt.Sprintf(`{"tenant":"acme","kind":"%s","value":"%s","unbanned":true}`+"\n", tc.kind, tc.shown)
			if resp.body != want {
				t.Errorf("body = %s, want %s", resp.body, want)
			}
			if strings.Contains(resp.body, victim) {
				t.Errorf("the token is echoed")
			}
		})
	}
}

// TestBanJWTNeverLeaks checks that the banned token reaches the command
// layer and nothing else: not the response, not the logs.
func TestBanJWTNeverLeaks(t *testing.T) {
	tok := mint(t, testEpoch, nil)
	victim := mint(t, testEpoch, func(r *auth.MintRequest) { r.Extra = nil; r.Subject = "x"; r.UserID = "victim" })
	hash := tokenHash(victim)
	cases := []struct {
		name   string
		body   string
		err    error
		status int
	}{
		{"ok", `{"jwt":" ` + victim + ` ","reason":"leaked","duration":"1h"}`, nil, 200},
		{"invalid", `{"jwt":"` + victim + `"}`, commands.ErrInvalid, 400},
		{"internal", `{"jwt":"` + victim + `"}`, errors.New("boom"), 500},
		{"unknown field", `{"jwt":"` + victim + `","x":1}`, nil, 400},
		{"bad duration", `{"jwt":"` + victim + `","duration":"` + victim + `"}`, nil, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.cmds.set(func(f *fakeCommands) { f.err = tc.err; f.removed = 1 })
			resp := f.do(t, "POST", jaccess+"/ban/jwt", tok, tc.body)
			if resp.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tc.status, resp.body)
			}
			for _, part := range append(strings.Split(victim, "."), victim) {
				if strings.Contains(resp.body, part) {
					t.Errorf("response contains the token: %s", resp.body)
				}
				if strings.Contains(f.logText(), part) {
					t.Errorf("log contains the token:\n%s", f.logText())
				}
			}
			if f.logs.FilterMessage("http request").Len() != 1 {
				t.Errorf("want one request log line:\n%s", f.logText())
			}
			if tc.status != 200 {
				return
			}
			want := `{"tenant":"acme","kind":"token","value":"sha256:` + hash[:16] + `","expires":"2030-01-02T16:04:05Z","removed":1}` + "\n"
			if resp.body != want {
				t.Errorf("body = %s, want %s", resp.body, want)
			}
			c := f.cmds.Calls()[0].Ban
			if c.Kind != store.KindToken || c.Value != victim || c.Reason != "leaked" {
				t.Errorf("ban = %+v", c)
			}
		})
	}
}

// TestMeeting checks the conference commands.
func TestMeeting(t *testing.T) {
	cases := []struct {
		name string
		body string
		want call
	}{
		{"destroy", `{"action":"DESTROY","payload":{"conferenceFullName":"` + testRoom + `"}}`,
			call{Method: "Destroy", Room: testRoom, By: "api:acme"}},
		{"destroy with reason", `{"action":"DESTROY","payload":{"conferenceFullName":"` + testRoom + `","reason":"over"}}`,
			call{Method: "Destroy", Room: testRoom, Reason: "over", By: "api:acme"}},
		{"kick", `{"action":"KICK_PARTICIPANT","payload":{"conferenceFullName":"` + testRoom + `","participantId":"abcd1234"}}`,
			call{Method: "Kick", Room: testRoom, Nick: "abcd1234", By: "api:acme"}},
		{"kick with reason", `{"payload":{"participantId":"p1","reason":"rude","conferenceFullName":"` + testRoom + `"},"action":"KICK_PARTICIPANT"}`,
			call{Method: "Kick", Room: testRoom, Nick: "p1", Reason: "rude", By: "api:acme"}},
	}
	tok := mint(t, testEpoch, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			resp := f.do(t, "POST", "/conference-commands/v1/meeting", tok, tc.body)
			if resp.status != 200 {
				t.Fatalf("status = %d; body %s", resp.status, resp.body)
			}
			calls := f.cmds.Calls()
			if len(calls) != 1 || calls[0] != tc.want {
				t.Errorf("calls = %+v, want %+v", calls, tc.want)
			}
			want := `{"action":"` + map[string]string{"Destroy": "DESTROY", "Kick": "KICK_PARTICIPANT"}[tc.want.Method] +
				`","conferenceFullName":"` + testRoom + `"`
			if tc.want.Nick != "" {
				want += `,"participantId":"` + tc.want.Nick + `"`
			}
			if want += "}\n"; resp.body != want {
				t.Errorf("body = %s, want %s", resp.body, want)
			}
			lines := f.logs.FilterMessage("http request").All()
			if len(lines) != 1 || lines[0].ContextMap()["tenant"] != "acme" || lines[0].ContextMap()["route"] != "meeting" {
				t.Errorf("log = %s", f.logText())
			}
		})
	}
}

// TestProbes checks /healthz, /readyz and /metrics.
func TestProbes(t *testing.T) {
	cases := []struct {
		name   string
		path   string
		ready  error
		status int
		body   string
	}{
		{"healthz", "/healthz", errors.New("down"), 200, "ok\n"},
		{"ready", "/readyz", nil, 200, "ok\n"},
		{"not ready", "/readyz", errors.New("not connected to the XMPP server"), 503,
			`{"error":"not-ready","message":"not connected to the XMPP server"}` + "\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.Ready = func() error { return tc.ready } })
			resp := f.do(t, "GET", tc.path, "", "")
			if resp.status != tc.status || resp.body != tc.body {
				t.Errorf("got %d %q, want %d %q", resp.status, resp.body, tc.status, tc.body)
			}
		})
	}
	t.Run("metrics", func(t *testing.T) {
		f := newFixture(t, nil)
		f.do(t, "GET", "/healthz", "", "")
		f.do(t, "GET", jaccess+"/bans", "", "")
		resp := f.do(t, "GET", "/metrics", "", "")
		if resp.status != 200 {
			t.Fatalf("status = %d", resp.status)
		}
		for _, want := range []string{
			`gavel_http_requests_total{code="200",route="healthz"} 1`,
			`gavel_http_requests_total{code="401",route="list_bans"} 1`,
		} {
			if !strings.Contains(resp.body, want) {
				t.Errorf("metrics lack %s:\n%s", want, resp.body)
			}
		}
	})
	t.Run("nil Ready is ready", func(t *testing.T) {
		f := newFixture(t, nil)
		if resp := f.do(t, "GET", "/readyz", "", ""); resp.status != 200 {
			t.Errorf("status = %d", resp.status)
		}
	})
}

// TestRouting checks the ServeMux's own answers, in JSON.
func TestRouting(t *testing.T) {
	cases := []struct {
		name, method, path string
		status             int
		code, allow        string
	}{
		{"GET on a ban", "GET", jaccess + "/ban/user/alice", 405, "method-not-allowed", "DELETE, POST"},
		{"PUT on meeting", "PUT", "/conference-commands/v1/meeting", 405, "method-not-allowed", "POST"},
		{"POST on healthz", "POST", "/healthz", 405, "method-not-allowed", "GET, HEAD"},
		{"unknown path", "GET", "/nope", 404, "not-found", ""},
		{"empty user id", "POST", jaccess + "/ban/user/", 404, "not-found", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			resp := f.do(t, tc.method, tc.path, mint(t, testEpoch, nil), "")
			if resp.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tc.status, resp.body)
			}
			if got := resp.errorCode(t); got != tc.code {
				t.Errorf("error = %q, want %q", got, tc.code)
			}
			if got := resp.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			if ct := resp.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if l := f.logs.FilterMessage("http request").All(); len(l) != 1 || l[0].ContextMap()["route"] != routeUnmatched {
				t.Errorf("log = %s", f.logText())
			}
		})
	}
}

// TestPanic checks that a panicking command gives a JSON 500.
func TestPanic(t *testing.T) {
	f := newFixture(t, nil)
	f.cmds.set(func(f *fakeCommands) { f.panics = true })
	resp := f.do(t, "GET", jaccess+"/bans", mint(t, testEpoch, nil), "")
	if resp.status != 500 || resp.errorCode(t) != "internal" {
		t.Errorf("got %d %s", resp.status, resp.body)
	}
	if f.logs.FilterMessage("panic serving request").Len() != 1 {
		t.Errorf("panic not logged:\n%s", f.logText())
	}
}

// TestRequestLog checks the one line each command request leaves.
func TestRequestLog(t *testing.T) {
	f := newFixture(t, nil)
	tok := mint(t, testEpoch, nil)
	f.do(t, "POST", jaccess+"/ban/user/alice", tok, "")
	f.do(t, "POST", "/jaccess/v1/access-management/other/ban/user/alice", tok, "")
	f.do(t, "GET", "/healthz", "", "")
	lines := f.logs.FilterMessage("http request").All()
	if len(lines) != 3 {
		t.Fatalf("lines:\n%s", f.logText())
	}
	want := []struct {
		level, route, tenant, result string
		status                       int64
	}{
		{"info", "ban_user", "acme", "ok", 200},
		{"info", "ban_user", "other", "wrong-tenant", 403},
		{"debug", "healthz", "", "ok", 200},
	}
	for i, w := range want {
		m := lines[i].ContextMap()
		if lines[i].Level.String() != w.level || m["route"] != w.route || m["tenant"] != w.tenant || m["result"] != w.result || m["status"] != w.status {
			t.Errorf("line %d = %s %v, want %+v", i, lines[i].Level, m, w)
		}
	}
	if strings.Contains(f.logText(), tok) || strings.Contains(f.logText(), strings.Split(tok, ".")[2]) {
		t.Errorf("the admin token is logged")
	}
}

// TestStatusWriterPassthrough checks that handlers' own 404s are kept.
func TestStatusWriterPassthrough(t *testing.T) {
	f := newFixture(t, nil)
	f.cmds.set(func(f *fakeCommands) { f.err = commands.ErrRoomNotFound })
	body := `{"action":"DESTROY","payload":{"conferenceFullName":"` + testRoom + `"}}`
	resp := f.do(t, "POST", "/conference-commands/v1/meeting", mint(t, testEpoch, nil), body)
	if resp.status != http.StatusNotFound || resp.errorCode(t) != "room-not-found" {
		t.Errorf("got %d %s", resp.status, resp.body)
	}
}
