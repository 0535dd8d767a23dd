package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/xclient"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name            string
		err             error
		timedOut, ended bool
		want            string
	}{
		{"granted", nil, false, false, outGranted},
		{"gavel's reason", &xclient.Error{Type: "auth", Condition: "forbidden", App: "banned"}, false, false, "banned"},
		{"server while gavel is down", &xclient.Error{Type: "wait", Condition: "remote-server-timeout", App: "not-connected"}, false, false, "remote-server-timeout"},
		{"no answer on a live session", errors.New("context deadline exceeded"), true, false, outUnanswered},
		{"session ended", errors.New("EOF"), true, true, outLost},
		{"send failed", errors.New("broken pipe"), false, false, outLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.err, tc.timedOut, tc.ended); got != tc.want {
				t.Errorf("classify = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestKnockStatsRows(t *testing.T) {
	var st knockStats
	for _, o := range []string{outGranted, outGranted, "banned", "remote-server-timeout", outLost} {
		st.add(o)
	}
	sent, answered, unanswered, lost, refused := st.counts()
	if sent != 5 || answered != 4 || unanswered != 0 || lost != 1 || refused["banned"] != 1 || refused["remote-server-timeout"] != 1 {
		t.Fatalf("counts = %d %d %d %d %v", sent, answered, unanswered, lost, refused)
	}
	var r result
	st.rows(&r)
	if !r.Passed() {
		t.Errorf("no unanswered knock, no wrong role: failed %v", r.Failed())
	}
	st.add(outUnanswered)
	st.wrong("promised owner/moderator, joined as none/participant")
	r = result{}
	st.rows(&r)
	if f := r.Failed(); len(f) != 2 {
		t.Errorf("failed checks = %v, want unanswered and wrong role", f)
	}
}

func TestWrongRole(t *testing.T) {
	res := xclient.KnockResult{Affiliation: "owner", Role: "moderator", Reason: "token-moderator"}
	if w := wrongRole(res, xclient.Presence{Affiliation: "owner", Role: "moderator"}); w != "" {
		t.Errorf("same role: %q", w)
	}
	if w := wrongRole(res, xclient.Presence{Affiliation: "none", Role: "participant"}); !strings.Contains(w, "joined as none/participant") {
		t.Errorf("other role: %q", w)
	}
}

func TestFlat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples []int64
		want    bool
	}{
		{"one sample", []int64{20000}, true},
		{"steady", []int64{20000, 21000, 20500, 21500}, true},
		{"small absolute growth", []int64{10000, 18000}, true},
		{"within a quarter", []int64{60000, 74000}, true},
		{"leak", []int64{20000, 30000, 40000, 50000}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := flat(tc.samples); ok != tc.want {
				t.Errorf("flat(%v) = %v, want %v", tc.samples, ok, tc.want)
			}
		})
	}
}

func TestTokenHash(t *testing.T) {
	// SHA-256 of "a.b": the signature is not part of the hash.
	const want = "2e7336dc8eba87ef472df568c35482abf2575dc3e5eac0c5c62b8ffaeac2c934"
	if got := tokenHash("a.b.sig"); got != want {
		t.Errorf("tokenHash = %q, want %q", got, want)
	}
	if tokenHash("a.b.other") != want {
		t.Errorf("the signature changes the hash")
	}
}

const sampleLog = `{"level":"info","time":"2026-11-27T13:02:45.993Z","logger":"component","msg":"component connected","jid":"mod.example.test"}
{"level":"warn","time":"2026-11-27T13:02:50.017Z","logger":"component","msg":"component disconnected","reason":"connection reset by peer"}
{"level":"warn","time":"2026-11-27T13:02:50.017Z","logger":"component","msg":"room refused a change","room":"r@c"}
{"level":"warn","time":"2026-11-27T13:02:50.018Z","logger":"component","msg":"room refused a change","room":"s@c"}
{"level":"warn","time":"2026-11-27T13:02:50.070Z","logger":"component","msg":"component unreachable","retry_in":0.1004,"reason":"connection refused"}
{"level":"debug","time":"2026-11-27T13:02:50.300Z","logger":"component","msg":"component unreachable","retry_in":"250ms"}
panic: something
`

func TestParseLog(t *testing.T) {
	lines, err := parseLog(strings.NewReader(sampleLog))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 7", len(lines))
	}
	if lines[4].RetryIn != 100400*time.Microsecond || lines[5].RetryIn != 250*time.Millisecond {
		t.Errorf("retry_in = %v, %v", lines[4].RetryIn, lines[5].RetryIn)
	}
	from := time.Date(2026, 11, 27, 13, 2, 50, 0, time.UTC)
	during := between(lines, from, from.Add(time.Second))
	if len(during) != 5 {
		t.Errorf("between: %d lines, want 5", len(during))
	}
	bad := problems(lines)
	if len(bad) != 3 || bad[2].Level != "raw" {
		t.Errorf("problems = %+v, want the two refused changes and the panic", bad)
	}
	if n := len(above(lines, "info")); n != 6 {
		t.Errorf("above info: %d, want 6", n)
	}
	s := summarize(bad, 1)
	if len(s) != 2 || s[0] != "warn room refused a change (x2)" {
		t.Errorf("summarize = %q", s)
	}
}

func TestReport(t *testing.T) {
	r := &result{Name: "demo", Title: "a | table", Duration: 3 * time.Second}
	r.row("knocks", "10")
	r.check("unanswered", "0", true)
	r.check("missing | bans", "2", false)
	r.note("first error: x")
	if r.Passed() {
		t.Fatal("a failed check passes")
	}
	var text, md bytes.Buffer
	r.writeText(&text)
	r.writeMarkdown(&md)
	for _, want := range []string{"== demo: a | table (FAIL, 3 s)", "unanswered", "FAIL", "first error: x"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	for _, want := range []string{"### demo: a | table", "| missing \\| bans | 2 | **FAIL** |", "| unanswered | 0 | ok |", "- first error: x"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	for i := 0; i < 30; i++ {
		r.notef("n%d", i)
	}
	if len(r.Notes) != 21 {
		t.Errorf("%d notes kept, want 20 and a marker", len(r.Notes))
	}
}

func TestKeptTail(t *testing.T) {
	if got := keptTail([]byte("# report\n\n| a | b |\n")); got != "" {
		t.Errorf("no marker: kept %q", got)
	}
	old := "# report\n\nnumbers\n\n" + keepMarker + "\n\n## by hand\n"
	if got, want := keptTail([]byte(old)), keepMarker+"\n\n## by hand\n"; got != want {
		t.Errorf("kept %q, want %q", got, want)
	}
}
