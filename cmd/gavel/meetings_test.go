package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// TestMeetingsAPI drives /v1/meetings on the real binary: a meeting with
// its three links from the tenant's URL template, GET and list with its
// state, another tenant's 404, and DELETE, which destroys the room and
// refuses the meeting's tokens.
func TestMeetingsAPI(t *testing.T) {
	g := startGavelHTTP(t, `
muc:
  - domain: conference.example.test
tenants:
  default:
    viewers: true
    token:
      app_id: myapp
      secrets: ["`+secret+`"]
    meetings:
      url_template: "https://meet.example.test/{room}?jwt={token}"
`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := adminToken(t, "acme")
	end := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	code, out := g.do(t, "POST", "/v1/meetings", admin, `{"endDate": "`+end.Format(time.RFC3339)+`", "roomNamePrefix": "standup", "fields": ["hostRoomUrl", "viewerRoomUrl"], "templateType": "viewerMode"}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, out)
	}
	id, _ := out["meetingId"].(string)
	room, _ := out["roomName"].(string)
	tokens, _ := out["tokens"].(map[string]any)
	host, _ := tokens["host"].(string)
	participant, _ := tokens["participant"].(string)
	if !strings.HasPrefix(room, "[acme]standup-") || out["endDate"] != end.Format(time.RFC3339) || out["state"] != "active" ||
		out["hostRoomUrl"] != "https://meet.example.test/standup-"+id+"?jwt="+host || tokens["viewer"] == nil ||
		!strings.Contains(out["viewerRoomUrl"].(string), "?jwt=") || !strings.Contains(out["roomUrl"].(string), participant) {
		t.Fatalf("create answered %v", out)
	}
	if code, out := g.do(t, "POST", "/v1/meetings", admin, `{"endDate": "2001-01-01T00:00:00Z"}`); code != 400 {
		t.Errorf("a meeting in the past: %d %v", code, out)
	}
	// Created locked: nobody but a host gets in while no host is there.
	code, locked := g.do(t, "POST", "/v1/meetings", admin, `{"endDate": "`+end.Format(time.RFC3339)+`", "locked": true}`)
	if code != 201 || locked["locked"] != true {
		t.Fatalf("create locked: %d %v", code, locked)
	}
	lockedTokens, _ := locked["tokens"].(map[string]any)
	lockedRoom, _ := locked["roomName"].(string)
	if _, err := g.login(t, ctx, "early").Knock(ctx, prosodytest.Component, lockedRoom, lockedTokens["participant"].(string)); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Errorf("knock into a meeting created locked: %v, want locked", err)
	}

	cl := g.login(t, ctx, "host")
	if res, err := cl.Knock(ctx, prosodytest.Component, room, host); err != nil || res.Affiliation != "owner" {
		t.Fatalf("host knock: %+v %v", res, err)
	}
	if _, err := cl.Join(ctx, room, "host"); err != nil {
		t.Fatal(err)
	}

	if code, out := g.do(t, "GET", "/v1/meetings/"+id, admin, ""); code != 200 || out["roomName"] != room || out["tokens"] != nil {
		t.Errorf("get: %d %v", code, out)
	}
	if code, out := g.do(t, "GET", "/v1/meetings/"+id, adminToken(t, "other"), ""); code != 404 || out["error"] != "no-such-meeting" {
		t.Errorf("get from another tenant: %d %v", code, out)
	}
	if code, out := g.do(t, "GET", "/v1/meetings", admin, ""); code != 200 || len(out["results"].([]any)) != 2 {
		t.Errorf("list: %d %v", code, out)
	}
	if code, out := g.do(t, "DELETE", "/v1/meetings/"+id, admin, ""); code != 200 || out["state"] != "ended" {
		t.Fatalf("delete: %d %v", code, out)
	}
	if _, err := cl.WaitPresence(ctx, func(p xclient.Presence) bool { return p.Destroyed }); err != nil {
		t.Errorf("DELETE did not destroy the room: %v", err)
	}
	if _, err := g.login(t, ctx, "late").Knock(ctx, prosodytest.Component, room, participant); err == nil || !strings.Contains(err.Error(), "banned") {
		t.Errorf("knock with an ended meeting's token: %v, want banned", err)
	}
	code, out = g.do(t, "GET", "/v1/meetings", admin, "")
	ended := false
	for _, m := range out["results"].([]any) {
		if m := m.(map[string]any); m["meetingId"] == id {
			ended = m["state"] == "ended"
		}
	}
	if code != 200 || !ended {
		t.Errorf("list after DELETE: %d %v", code, out)
	}
}
