package api

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The health view: the XMPP connections and the store (Options.Health),
// and, from the metrics registry, knocks per outcome and token validation
// time over the last hour, sampled once a minute.

// historyMinutes is how far back the health view looks.
const historyMinutes = 60

// sample is the metrics as they stood at one time.
type sample struct {
	at      time.Time
	knocks  map[string]float64 // gavel_knocks_total by outcome
	tokN    uint64             // gavel_token_validation_seconds: count,
	tokSum  float64            // sum
	buckets []bucket           // and cumulative buckets
}

type bucket struct {
	le float64
	n  uint64
}

// history keeps the last historyMinutes samples, oldest first: a bounded
// ring, whatever the uptime.
type history struct {
	mu      sync.Mutex
	samples []sample
}

func newHistory() *history { return &history{} }

// start takes the first sample, the baseline of the first minute.
func (c *console) start() { c.sampleIfDue(c.s.now()) }

// sampleIfDue takes a sample when the last is a minute old or more.
func (c *console) sampleIfDue(now time.Time) {
	h := c.history
	h.mu.Lock()
	due := len(h.samples) == 0 || now.Sub(h.samples[len(h.samples)-1].at) >= time.Minute
	h.mu.Unlock()
	if !due {
		return
	}
	s := c.gather(now)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples = append(h.samples, s)
	if n := len(h.samples) - historyMinutes; n > 0 {
		h.samples = append(h.samples[:0], h.samples[n:]...)
	}
}

// gather reads the knock and token metrics from the registry.
func (c *console) gather(now time.Time) sample {
	s := sample{at: now, knocks: map[string]float64{}}
	families, _ := c.s.registry.Gather()
	for _, f := range families {
		switch f.GetName() {
		case "gavel_knocks_total":
			for _, m := range f.GetMetric() {
				s.knocks[label(m, "outcome")] += m.GetCounter().GetValue()
			}
		case "gavel_token_validation_seconds":
			for _, m := range f.GetMetric() {
				hg := m.GetHistogram()
				s.tokN, s.tokSum = hg.GetSampleCount(), hg.GetSampleSum()
				for _, b := range hg.GetBucket() {
					s.buckets = append(s.buckets, bucket{le: b.GetUpperBound(), n: b.GetCumulativeCount()})
				}
			}
		}
	}
	return s
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// healthJSON answers GET /console/api/health.
type healthJSON struct {
	Now     string             `json:"now"`
	Ready   string             `json:"ready"` // "ok" or why not
	Store   string             `json:"store"` // "ok" or why not
	Servers []serverHealthJSON `json:"servers"`
	Knocks  knockHistoryJSON   `json:"knocks"`
	Token   tokenLatencyJSON   `json:"tokenValidation"`
}

type serverHealthJSON struct {
	Address    string `json:"address"`
	Connected  bool   `json:"connected"`
	Reconnects uint64 `json:"reconnects"`
}

// knockHistoryJSON is knocks per outcome per minute, oldest first, the
// last minute still running.
type knockHistoryJSON struct {
	Since    string           `json:"since"`
	Minutes  int              `json:"minutes"`
	Outcomes map[string][]int `json:"outcomes"`
	Totals   map[string]int   `json:"totals"`
}

type tokenLatencyJSON struct {
	Count  uint64  `json:"count"`
	MeanMS float64 `json:"meanMs"`
	P95MS  float64 `json:"p95Ms"`
}

func (c *console) healthView(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.reader(w, r); !ok {
		return
	}
	now := c.s.now()
	c.sampleIfDue(now)
	out := healthJSON{Now: formatTime(now), Ready: "ok", Store: "ok", Servers: []serverHealthJSON{}}
	if err := c.s.ready(); err != nil {
		out.Ready = err.Error()
	}
	if c.health != nil {
		h := c.health()
		for _, s := range h.Servers {
			out.Servers = append(out.Servers, serverHealthJSON(s))
		}
		if h.Store != "" {
			out.Store = h.Store
		}
	}
	cur := c.gather(now)
	c.history.mu.Lock()
	samples := append(append([]sample(nil), c.history.samples...), cur)
	c.history.mu.Unlock()
	out.Knocks, out.Token = summarize(samples)
	writeJSON(w, r, http.StatusOK, out)
}

// summarize turns samples (oldest first, the current values last) into
// the per-minute knocks and the token validation time between the first
// and the last.
func summarize(samples []sample) (knockHistoryJSON, tokenLatencyJSON) {
	k := knockHistoryJSON{Outcomes: map[string][]int{}, Totals: map[string]int{}}
	first, last := samples[0], samples[len(samples)-1]
	k.Since = formatTime(first.at)
	k.Minutes = len(samples) - 1
	outcomes := map[string]bool{}
	for _, s := range samples {
		for o := range s.knocks {
			outcomes[o] = true
		}
	}
	for o := range outcomes {
		series := make([]int, 0, len(samples)-1)
		for i := 1; i < len(samples); i++ {
			d := int(math.Max(0, samples[i].knocks[o]-samples[i-1].knocks[o]))
			series = append(series, d)
			k.Totals[o] += d
		}
		k.Outcomes[o] = series
	}
	var t tokenLatencyJSON
	if last.tokN > first.tokN {
		t.Count = last.tokN - first.tokN
		t.MeanMS = (last.tokSum - first.tokSum) / float64(t.Count) * 1000
		// The p95 is the upper bound of the bucket it falls in.
		want := uint64(math.Ceil(float64(t.Count) * 0.95))
		// The registry gives buckets in order, the same ones each time.
		for i, b := range last.buckets {
			var before uint64
			if i < len(first.buckets) {
				before = first.buckets[i].n
			}
			if b.n-before >= want {
				t.P95MS = b.le * 1000
				break
			}
		}
	}
	return k, t
}

// sampleEvery samples the metrics every interval until ctx ends.
func (c *console) sampleEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	c.sampleIfDue(c.s.now())
	for {
		select {
		case <-t.C:
			c.sampleIfDue(c.s.now())
		case <-ctx.Done():
			return
		}
	}
}
