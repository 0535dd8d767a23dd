package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// knockStats counts knock outcomes and wrong roles; safe for concurrent use.
type knockStats struct {
	mu       sync.Mutex
	outcomes map[string]int
	wrongs   []string
}

func (s *knockStats) add(outcome string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outcomes == nil {
		s.outcomes = map[string]int{}
	}
	s.outcomes[outcome]++
}

func (s *knockStats) wrong(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wrongs = append(s.wrongs, what)
}

// counts returns the knocks sent, answered (granted or refused),
// unanswered, lost with the client's connection, and the refusals by
// reason.
func (s *knockStats) counts() (sent, answered, unanswered, lost int, refused map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refused = map[string]int{}
	for k, n := range s.outcomes {
		sent += n
		switch k {
		case outUnanswered:
			unanswered += n
		case outLost:
			lost += n
		case outGranted:
			answered += n
		default:
			answered += n
			refused[k] += n
		}
	}
	return sent, answered, unanswered, lost, refused
}

// wrongRoles returns the wrong roles seen.
func (s *knockStats) wrongRoles() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.wrongs)
}

// rows returns the knock counts as report rows, with a check that no
// knock went unanswered and no joiner got a wrong role.
func (s *knockStats) rows(r *result) {
	sent, answered, unanswered, lost, refused := s.counts()
	r.row("knocks sent", fmt.Sprint(sent))
	r.row("knocks answered (granted or refused)", fmt.Sprint(answered))
	r.row("  granted", fmt.Sprint(answered-sum(refused)))
	for _, k := range sortedKeys(refused) {
		r.row("  refused: "+k, fmt.Sprint(refused[k]))
	}
	r.row("knocks lost with the client's connection (server stopped)", fmt.Sprint(lost))
	r.check("knocks unanswered within 5 s", fmt.Sprint(unanswered), unanswered == 0)
	w := s.wrongRoles()
	r.check("joiners with a wrong role", fmt.Sprint(len(w)), len(w) == 0)
	for i, x := range w {
		if i == 5 {
			r.note(fmt.Sprintf("... and %d more wrong roles", len(w)-5))
			break
		}
		r.note("wrong role: " + x)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// result is one scenario's report: rows of values, some of them checks
// that pass or fail, and free-form notes (first errors, log lines).
type result struct {
	Name     string
	Title    string
	Duration time.Duration
	Rows     []row
	Notes    []string
	// Err is set when the scenario could not run to its end.
	Err error
}

type row struct {
	What, Value string
	Check       bool // a pass/fail check, not only a number
	OK          bool
}

func (r *result) row(what, value string) { r.Rows = append(r.Rows, row{What: what, Value: value}) }

func (r *result) check(what, value string, ok bool) {
	r.Rows = append(r.Rows, row{What: what, Value: value, Check: true, OK: ok})
}

func (r *result) note(s string) { r.Notes = append(r.Notes, s) }

// notef adds a note, keeping at most 20 so a failing loop cannot flood the report.
func (r *result) notef(format string, args ...any) {
	if len(r.Notes) == 20 {
		r.Notes = append(r.Notes, "(further notes left out)")
	}
	if len(r.Notes) > 20 {
		return
	}
	r.note(fmt.Sprintf(format, args...))
}

// Passed reports whether the scenario ran to its end and every check passed.
func (r *result) Passed() bool {
	if r.Err != nil {
		return false
	}
	for _, x := range r.Rows {
		if x.Check && !x.OK {
			return false
		}
	}
	return true
}

// Failed lists the failed checks.
func (r *result) Failed() []string {
	var out []string
	if r.Err != nil {
		out = append(out, "did not finish: "+r.Err.Error())
	}
	for _, x := range r.Rows {
		if x.Check && !x.OK {
			out = append(out, x.What+": "+x.Value)
		}
	}
	return out
}

func verdict(r row) string {
	switch {
	case !r.Check:
		return ""
	case r.OK:
		return "ok"
	default:
		return "FAIL"
	}
}

// writeText prints the scenario's table for a terminal.
func (r *result) writeText(w io.Writer) {
	status := "PASS"
	if !r.Passed() {
		status = "FAIL"
	}
	fmt.Fprintf(w, "\n== %s: %s (%s, %.0f s)\n", r.Name, r.Title, status, r.Duration.Seconds())
	width := 0
	for _, x := range r.Rows {
		width = max(width, len(x.What))
	}
	for _, x := range r.Rows {
		fmt.Fprintf(w, "%-*s  %-12s %s\n", width, x.What, x.Value, verdict(x))
	}
	if r.Err != nil {
		fmt.Fprintf(w, "error: %v\n", r.Err)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
}

// writeMarkdown writes the scenario as a Markdown section.
func (r *result) writeMarkdown(w io.Writer) {
	status := "pass"
	if !r.Passed() {
		status = "**FAIL**"
	}
	fmt.Fprintf(w, "\n### %s: %s\n\n%s in %.0f s.\n\n", r.Name, r.Title, status, r.Duration.Seconds())
	fmt.Fprintln(w, "| | value | check |")
	fmt.Fprintln(w, "| --- | ---: | --- |")
	for _, x := range r.Rows {
		v := verdict(x)
		if v == "FAIL" {
			v = "**FAIL**"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", mdEscape(strings.TrimSpace(x.What)), mdEscape(x.Value), v)
	}
	if r.Err != nil || len(r.Notes) > 0 {
		fmt.Fprintln(w)
	}
	if r.Err != nil {
		fmt.Fprintf(w, "- did not finish: `%s`\n", r.Err)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", mdEscape(n))
	}
	if r.Err != nil || len(r.Notes) > 0 {
		fmt.Fprintln(w) // a list must end before the next heading
	}
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// flat reports whether a series of RSS samples (KiB) is flat: the last
// sample is at most 25 % and 8 MiB above the first. Go's heap settles
// after the first few restarts; steady growth beyond that is a leak.
func flat(samples []int64) (growthKiB int64, ok bool) {
	if len(samples) < 2 {
		return 0, true
	}
	first, last := samples[0], samples[len(samples)-1]
	growth := last - first
	return growth, growth <= 8<<10 || float64(last) <= 1.25*float64(first)
}

// durations formats a list of durations compactly: "100ms 200ms 400ms".
func durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(parts, " ")
}

// tokenHash is the value under which gavel lists a token ban: SHA-256 of
// header.payload, in hex (docs/api.md, Normalization).
func tokenHash(jwt string) string {
	hp := jwt
	if i := strings.LastIndexByte(jwt, '.'); i >= 0 {
		hp = jwt[:i]
	}
	h := sha256.Sum256([]byte(hp))
	return hex.EncodeToString(h[:])
}

// logLine is one line of gavel's JSON log.
type logLine struct {
	Time    time.Time
	Level   string
	Msg     string
	RetryIn time.Duration
	Raw     string
}

// readLog parses gavel's JSON log; lines that are not JSON (a panic, the
// Go runtime) come back with level "raw".
func readLog(path string) ([]logLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseLog(f)
}

func parseLog(r io.Reader) ([]logLine, error) {
	var out []logLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		raw := sc.Text()
		if strings.TrimSpace(raw) == "" {
			continue
		}
		var j struct {
			Time    string `json:"time"`
			Level   string `json:"level"`
			Msg     string `json:"msg"`
			RetryIn any    `json:"retry_in"`
		}
		if json.Unmarshal([]byte(raw), &j) != nil {
			out = append(out, logLine{Level: "raw", Msg: raw, Raw: raw})
			continue
		}
		l := logLine{Level: j.Level, Msg: j.Msg, Raw: raw}
		l.Time, _ = time.Parse("2006-01-02T15:04:05.000Z0700", j.Time)
		switch v := j.RetryIn.(type) {
		case string:
			l.RetryIn, _ = time.ParseDuration(v)
		case float64: // zap's default duration encoder: seconds
			l.RetryIn = time.Duration(v * float64(time.Second))
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// between returns the lines logged in [from, to).
func between(lines []logLine, from, to time.Time) []logLine {
	var out []logLine
	from, to = from.Truncate(time.Millisecond), to.Truncate(time.Millisecond).Add(time.Millisecond)
	for _, l := range lines {
		if !l.Time.Before(from) && l.Time.Before(to) {
			out = append(out, l)
		}
	}
	return out
}

// stateChange reports whether a line is one of the component's connection
// state lines ("component connected", "component disconnected",
// "component unreachable", "component refused").
func stateChange(l logLine) bool {
	switch l.Msg {
	case "component connected", "component disconnected", "component unreachable", "component refused":
		return true
	}
	return false
}

// problems returns the lines at warn level or above (and unparsed lines)
// that are not connection state changes.
func problems(lines []logLine) []logLine {
	var out []logLine
	for _, l := range lines {
		if stateChange(l) {
			continue
		}
		switch l.Level {
		case "warn", "error", "dpanic", "panic", "fatal", "raw":
			out = append(out, l)
		}
	}
	return out
}

// above returns the lines at info level or above.
func above(lines []logLine, level string) []logLine {
	rank := map[string]int{"debug": 0, "info": 1, "warn": 2, "error": 3, "dpanic": 4, "panic": 5, "fatal": 6, "raw": 7}
	var out []logLine
	for _, l := range lines {
		if rank[l.Level] >= rank[level] {
			out = append(out, l)
		}
	}
	return out
}

// summarize counts lines by level and message: "warn room refused a change x3".
func summarize(lines []logLine, limit int) []string {
	counts := map[string]int{}
	var order []string
	for _, l := range lines {
		k := l.Level + " " + l.Msg
		if len(k) > 160 {
			k = k[:160] + "..."
		}
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	var out []string
	for i, k := range order {
		if i == limit {
			out = append(out, fmt.Sprintf("... %d more kinds", len(order)-limit))
			break
		}
		out = append(out, fmt.Sprintf("%s (x%d)", k, counts[k]))
	}
	return out
}
