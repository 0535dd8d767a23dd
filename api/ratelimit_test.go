package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRateLimit checks the per-address bucket through the HTTP stack.
func TestRateLimit(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.RatePerMinute = 3 })
	tok := mint(t, testEpoch, nil)
	for i := range 3 {
		if resp := f.do(t, "GET", jaccess+"/bans", tok, ""); resp.status != 200 {
			t.Fatalf("request %d: status %d", i, resp.status)
		}
	}
	resp := f.do(t, "GET", jaccess+"/bans", tok, "")
	if resp.status != http.StatusTooManyRequests || resp.errorCode(t) != "rate-limited" {
		t.Fatalf("got %d %s", resp.status, resp.body)
	}
	if got := resp.header.Get("Retry-After"); got != "20" {
		t.Errorf("Retry-After = %q, want 20", got)
	}
	if l := f.logs.FilterMessage("http request").All(); l[len(l)-1].ContextMap()["route"] != "list_bans" {
		t.Errorf("rate-limited request logged as %v", l[len(l)-1].ContextMap())
	}
	// Refused requests take no token, and unauthenticated ones are limited too.
	if resp := f.do(t, "POST", jaccess+"/ban/user/x", "", ""); resp.status != http.StatusTooManyRequests {
		t.Errorf("unauthenticated request: status %d", resp.status)
	}
	// Probes are never limited.
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp := f.do(t, "GET", p, "", ""); resp.status != 200 {
			t.Errorf("%s: status %d", p, resp.status)
		}
	}
	f.clock.Add(20 * time.Second)
	if resp := f.do(t, "GET", jaccess+"/bans", tok, ""); resp.status != 200 {
		t.Errorf("after refill: status %d", resp.status)
	}
	if resp := f.do(t, "GET", jaccess+"/bans", tok, ""); resp.status != http.StatusTooManyRequests {
		t.Errorf("second after refill: status %d", resp.status)
	}
	if n := len(f.cmds.Calls()); n != 4 {
		t.Errorf("%d commands ran, want 4", n)
	}
}

// TestRateLimitPerAddress checks that addresses have their own buckets.
func TestRateLimitPerAddress(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.RatePerMinute = 1 })
	h := f.srv.Handler()
	cases := []struct {
		name, remote string
		status       int
	}{
		{"first v4", "192.0.2.1:1000", 200},
		{"same v4 other port", "192.0.2.1:2000", 429},
		{"other v4", "192.0.2.2:1000", 200},
		{"v4-mapped v6 is the v4", "[::ffff:192.0.2.2]:1000", 429},
		{"first v6", "[2001:db8::1]:1000", 200},
		{"same v6 /64", "[2001:db8::ffff]:1000", 429},
		{"other v6 /64", "[2001:db8:0:1::1]:1000", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.RemoteAddr = tc.remote
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Errorf("status = %d, want %d", rec.Code, tc.status)
			}
		})
	}
}

// TestLimiterBounded checks that the limiter forgets clients to stay bounded.
func TestLimiterBounded(t *testing.T) {
	c := &clock{t: testEpoch}
	l := newLimiter(2, 3, c.Now)
	for i := range 10 {
		l.allow(fmt.Sprint("client", i))
		if n := l.size(); n > 3 {
			t.Fatalf("after %d clients the limiter holds %d", i+1, n)
		}
	}
	// Idle clients go first: a minute later all three are dropped at once.
	c.Add(time.Minute)
	l.allow("new")
	if n := l.size(); n > 3 {
		t.Errorf("size = %d", n)
	}
	if ok, _ := l.allow("new"); !ok {
		t.Errorf("second request of a burst of 2 refused")
	}
	if ok, wait := l.allow("new"); ok || wait != 30*time.Second {
		t.Errorf("third request: ok %v, wait %v", ok, wait)
	}
}

func TestClientKey(t *testing.T) {
	cases := []struct {
		name, remote, want string
	}{
		{"v4", "192.0.2.1:1234", "192.0.2.1"},
		{"v6", "[2001:db8::1]:1234", "2001:db8::/64"},
		{"v6 zone", "[fe80::1%eth0]:1234", "fe80::/64"},
		{"mapped", "[::ffff:192.0.2.1]:1", "192.0.2.1"},
		{"no port", "192.0.2.1", "192.0.2.1"},
		{"garbage", "pipe", "pipe"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if got := clientKey(r); got != tc.want {
				t.Errorf("clientKey = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	cases := []struct {
		name string
		d    time.Duration
		want int
	}{
		{"zero", 0, 1},
		{"sub-second", 10 * time.Millisecond, 1},
		{"exact", 20 * time.Second, 20},
		{"rounds up", 20*time.Second + time.Millisecond, 21},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryAfter(tc.d); got != tc.want {
				t.Errorf("retryAfter(%v) = %d, want %d", tc.d, got, tc.want)
			}
		})
	}
}
