package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestMeetingsDurable stores meetings in Bolt, closes it, and finds them
// again after reopening, with their tokens and end state; Memory answers
// the same.
func TestMeetingsDurable(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	a := Meeting{ID: "m1", Tenant: "acme", Room: "[acme]m1@conference.example.test", Start: start, End: start.Add(time.Hour), HostUntil: start.Add(2 * time.Hour),
		Tokens: []MeetingToken{{Role: "host", Hash: strings.Repeat("ab", 32), Expires: start.Add(2 * time.Hour)}}}
	b := Meeting{ID: "m0", Tenant: "other", Room: "[other]m0@conference.example.test", Start: start.Add(time.Minute), End: start.Add(time.Hour)}
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mem := NewMemory()
	for _, st := range []Store{s, mem} {
		for _, m := range []Meeting{a, b} {
			if err := st.PutMeeting(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		a.Ended = start.Add(30 * time.Minute)
		if err := st.PutMeeting(ctx, a); err != nil {
			t.Fatal(err)
		}
		a.Ended = time.Time{}
		if err := st.PutMeeting(ctx, Meeting{ID: "bad", Tenant: "acme", Room: "r@x", Start: start, End: start}); !errors.Is(err, ErrInvalid) {
			t.Errorf("meeting ending at its start: %v, want ErrInvalid", err)
		}
	}
	s.Close()
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, st := range map[string]Store{"bolt": s, "memory": mem} {
		all, err := st.Meetings(ctx, "")
		if err != nil || len(all) != 2 || all[0].ID != "m1" || all[1].ID != "m0" {
			t.Fatalf("%s: all meetings: %v %+v", name, err, all)
		}
		got, _ := st.Meetings(ctx, "acme")
		if len(got) != 1 || !got[0].Ended.Equal(start.Add(30*time.Minute)) || len(got[0].Tokens) != 1 || !strings.HasPrefix(got[0].Room, "[acme]") {
			t.Errorf("%s: acme's meetings: %+v", name, got)
		}
	}
}
