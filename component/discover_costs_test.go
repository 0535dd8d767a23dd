package component

import (
	"testing"
	"time"
)

// One slow room-list answer does not set the pause before the next poll:
// the median of the last few round trips does.
func TestListCostsMedianIgnoresOneSlowAnswer(t *testing.T) {
	var c listCosts
	ms := time.Millisecond
	for _, d := range []time.Duration{2 * ms, 3 * ms, 2 * ms, 2 * ms} {
		c.add(d)
	}
	if got := c.add(2 * time.Second); got != 2*ms {
		t.Errorf("after one slow answer the cost is %v, want 2ms", got)
	}
	for range 3 {
		c.add(500 * ms)
	}
	if got := c.add(500 * ms); got != 500*ms {
		t.Errorf("a server slow for good costs %v, want 500ms", got)
	}
}

func TestHealthCheckRooms(t *testing.T) {
	for room, want := range map[string]bool{
		"__jicofo-health-check-abc123@conference.example.test": true,
		"standup@conference.example.test":                      false,
		"jicofo-health-check@conference.example.test":          false,
	} {
		if got := healthCheckRoom(room); got != want {
			t.Errorf("healthCheckRoom(%q) = %v, want %v", room, got, want)
		}
	}
}
