package api

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxClients bounds the number of client addresses the limiter remembers.
const maxClients = 10000

// limiter is a token bucket per client address: perMinute requests at
// once, refilled at perMinute a minute. It remembers at most max clients; a
// client idle for a minute has a full bucket again and is forgotten first.
type limiter struct {
	mu        sync.Mutex
	perMinute int
	max       int
	now       func() time.Time
	clients   map[string]*client
}

// client is the bucket of one address.
type client struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(perMinute, max int, now func() time.Time) *limiter {
	return &limiter{perMinute: perMinute, max: max, now: now, clients: make(map[string]*client)}
}

// allow takes a token from key's bucket. When there is none it reports false
// and how long until there is one.
func (l *limiter) allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.clients[key]
	if !ok {
		if len(l.clients) >= l.max {
			l.evict(now)
		}
		c = &client{lim: rate.NewLimiter(rate.Every(time.Minute/time.Duration(l.perMinute)), l.perMinute)}
		l.clients[key] = c
	}
	c.seen = now
	res := c.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evict forgets every client idle for a minute (their buckets are full), and
// one more client if that freed no room.
func (l *limiter) evict(now time.Time) {
	for k, c := range l.clients {
		if now.Sub(c.seen) >= time.Minute {
			delete(l.clients, k)
		}
	}
	for k := range l.clients {
		if len(l.clients) < l.max {
			break
		}
		delete(l.clients, k)
	}
}

// size returns the number of clients remembered.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// clientKey is the bucket of a request: its remote IP address, or its /64
// for IPv6, where one client commonly holds a whole /64.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}

// retryAfter renders a delay as whole seconds for the Retry-After header,
// rounding up and at least 1.
func retryAfter(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}
