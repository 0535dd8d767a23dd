package api

import (
	"testing"
	"time"
)

// TestMeetingRoles checks SET_ROLE (by participant id and by user id, with
// an end time) and SET_POLICY.
func TestMeetingRoles(t *testing.T) {
	until := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name, body string
		want       call
		resp       string
	}{
		{"role by participant", `{"action":"SET_ROLE","payload":{"conferenceFullName":"` + testRoom + `","participantId":"abcd1234","role":"viewer"}}`,
			call{Method: "AssignRole", Room: testRoom, Nick: "abcd1234", Role: "viewer", By: "api:acme"},
			`{"action":"SET_ROLE","conferenceFullName":"` + testRoom + `","participantId":"abcd1234","role":"viewer","presentSessions":1}`},
		{"role by user id until", `{"action":"SET_ROLE","payload":{"conferenceFullName":"` + testRoom + `","userId":"u-1","role":"moderator","until":"2031-01-02T03:04:05Z"}}`,
			call{Method: "AssignRole", Room: testRoom, UserID: "u-1", Role: "moderator", Until: until, By: "api:acme"},
			`{"action":"SET_ROLE","conferenceFullName":"` + testRoom + `","userId":"u-1","role":"moderator","until":"2031-01-02T03:04:05Z","presentSessions":1}`},
		{"policy", `{"action":"SET_POLICY","payload":{"conferenceFullName":"` + testRoom + `","policy":"all-owners"}}`,
			call{Method: "SetPolicy", Room: testRoom, Policy: "all-owners", By: "api:acme"},
			`{"action":"SET_POLICY","conferenceFullName":"` + testRoom + `","policy":"all-owners"}`},
		{"lock", `{"action":"LOCK","payload":{"conferenceFullName":"` + testRoom + `"}}`,
			call{Method: "SetLock", Room: testRoom, Locked: true, By: "api:acme"},
			`{"action":"LOCK","conferenceFullName":"` + testRoom + `","locked":true}`},
		{"unlock", `{"action":"UNLOCK","payload":{"conferenceFullName":"` + testRoom + `"}}`,
			call{Method: "SetLock", Room: testRoom, By: "api:acme"},
			`{"action":"UNLOCK","conferenceFullName":"` + testRoom + `","locked":false}`},
	}
	tok := mint(t, testEpoch, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			resp := f.do(t, "POST", "/conference-commands/v1/meeting", tok, tc.body)
			if resp.status != 200 {
				t.Fatalf("status = %d; body %s", resp.status, resp.body)
			}
			if calls := f.cmds.Calls(); len(calls) != 1 || calls[0] != tc.want {
				t.Errorf("calls = %+v, want %+v", calls, tc.want)
			}
			if resp.body != tc.resp+"\n" {
				t.Errorf("body = %s, want %s", resp.body, tc.resp)
			}
		})
	}
	for name, body := range map[string]string{
		"both targets":  `{"action":"SET_ROLE","payload":{"conferenceFullName":"` + testRoom + `","participantId":"p","userId":"u","role":"viewer"}}`,
		"no target":     `{"action":"SET_ROLE","payload":{"conferenceFullName":"` + testRoom + `","role":"viewer"}}`,
		"bad until":     `{"action":"SET_ROLE","payload":{"conferenceFullName":"` + testRoom + `","userId":"u","role":"viewer","until":"tomorrow"}}`,
		"policy absent": `{"action":"SET_POLICY","payload":{"conferenceFullName":"` + testRoom + `"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			if resp := f.do(t, "POST", "/conference-commands/v1/meeting", tok, body); resp.status != 400 {
				t.Errorf("status = %d, want 400; body %s", resp.status, resp.body)
			}
			if calls := f.cmds.Calls(); len(calls) != 0 {
				t.Errorf("calls = %+v", calls)
			}
		})
	}
}
