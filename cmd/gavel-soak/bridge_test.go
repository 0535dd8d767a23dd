package main

import (
	"errors"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/xclient"
)

func TestClassifyJoin(t *testing.T) {
	for _, tc := range []struct {
		name            string
		err             error
		timedOut, ended bool
		want            string
	}{
		{"joined", nil, false, false, joinOK},
		{"fail closed", &xclient.Error{Type: "wait", Condition: "service-unavailable", Text: "moderation is unavailable"}, false, false, joinUnavail},
		{"gavel's refusal", &xclient.Error{Type: "auth", Condition: "forbidden", App: "banned"}, false, false, "auth/forbidden (banned)"},
		{"server's refusal", &xclient.Error{Type: "cancel", Condition: "conflict"}, false, false, "cancel/conflict"},
		{"no answer on a live session", errors.New("context deadline exceeded"), true, false, joinUnanswered},
		{"session ended", errors.New("session closed"), true, true, joinCutOff},
		{"send failed", errors.New("broken pipe"), false, false, joinCutOff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classifyJoin(tc.err, tc.timedOut, tc.ended); got != tc.want {
				t.Errorf("classifyJoin = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOutagesOverlap(t *testing.T) {
	var o outages
	t0 := time.Now()
	o.windows = [][2]time.Time{{t0, t0.Add(time.Second)}, {t0.Add(5 * time.Second), {}}}
	for _, tc := range []struct {
		name     string
		from, to time.Duration
		want     bool
	}{
		{"before", -2 * time.Second, -time.Second, false},
		{"across the start", -time.Second, 100 * time.Millisecond, true},
		{"inside", 200 * time.Millisecond, 300 * time.Millisecond, true},
		{"between", 2 * time.Second, 3 * time.Second, false},
		{"in the open window", 6 * time.Second, 7 * time.Second, true},
	} {
		if got := o.overlaps(t0.Add(tc.from), t0.Add(tc.to)); got != tc.want {
			t.Errorf("%s: overlaps = %t, want %t", tc.name, got, tc.want)
		}
	}
}

func TestFoldRoomAndOwners(t *testing.T) {
	const rm = "[auto]r@conference.example.test"
	ps := []xclient.Presence{
		{From: rm + "/focus", Affiliation: "owner", Role: "moderator"},
		{From: rm + "/a-part", Affiliation: "owner", Role: "moderator"},
		{From: rm + "/b-part", Affiliation: "none", Role: "participant"},
		{From: "[auto]other@conference.example.test/x", Affiliation: "owner"},
		{From: rm + "/a-part", Type: "unavailable"},
	}
	v := foldRoom(ps, rm)
	if len(v) != 2 || v["b-part"].aff != "none" || v["focus"].aff != "owner" {
		t.Fatalf("foldRoom = %v", v)
	}
	if w := ownersWrong(tenantAuto, v); w == "" {
		t.Error("auto-owner room with only the focus as owner passed")
	}
	v["b-part"] = occupantView{"owner", "moderator"}
	if w := ownersWrong(tenantAuto, v); w != "" {
		t.Errorf("auto-owner room with an owner: %s", w)
	}
	if w := ownersWrong(tenantAuto, map[string]occupantView{"focus": {"owner", "moderator"}}); w != "" {
		t.Errorf("a room with only the focus needs no owner: %s", w)
	}
	for _, tc := range []struct {
		name string
		v    map[string]occupantView
		ok   bool
	}{
		{"moderators owners", map[string]occupantView{"m-mod": {"owner", "moderator"}, "p-part": {"member", "participant"}, "focus": {"owner", "moderator"}}, true},
		{"moderator not owner", map[string]occupantView{"m-mod": {"member", "participant"}}, false},
		{"participant owner", map[string]occupantView{"m-mod": {"owner", "moderator"}, "p-part": {"owner", "moderator"}}, false},
	} {
		if got := ownersWrong(tenantToken, tc.v) == ""; got != tc.ok {
			t.Errorf("token %s: ok = %t, want %t", tc.name, got, tc.ok)
		}
	}
}

func TestGavelPresences(t *testing.T) {
	ps := []xclient.Presence{
		{From: "[auto]r@conference.example.test/gavel"},
		{From: "[auto]r@conference.example.test/Gavel-2"},
		{From: "[auto]r@conference.example.test/alice"},
		{From: "gavel@example.test/gavel"},
	}
	if n := gavelPresences(ps); n != 2 {
		t.Errorf("gavelPresences = %d, want 2", n)
	}
}

func TestP50Max(t *testing.T) {
	ds := []time.Duration{300 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
	if got, want := p50max(ds, 0), "0.20 s / 0.30 s"; got != want {
		t.Errorf("p50max = %q, want %q", got, want)
	}
	if got, want := p50max(ds, 1), "0.20 s / 0.30 s (1 late)"; got != want {
		t.Errorf("p50max = %q, want %q", got, want)
	}
	if got, want := p50max(nil, 2), "none of 2"; got != want {
		t.Errorf("p50max = %q, want %q", got, want)
	}
}
