package component

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the component's Prometheus metrics.
type Metrics struct {
	Knocks       *prometheus.CounterVec // by outcome (knockOutcome): granted or the refusal condition
	KnockLatency prometheus.Histogram
	TokenLatency prometheus.Histogram
	// KnocksInFlight are knocks being verified or looked up (at most
	// MaxKnocksInFlight).
	KnocksInFlight prometheus.Gauge
	Changes        *prometheus.CounterVec // affiliation and role changes by kind and result
	Joins          *prometheus.CounterVec // gavel's joins of rooms, by outcome
	StateWrites    *prometheus.CounterVec // rooms' governing state written to the store, by result
	Rooms          prometheus.Gauge
	Occupants      prometheus.Gauge
	// PendingIQs is the number of IQs gavel sent and waits for;
	// DroppedIQs counts IQ answers dropped because they came from another
	// JID than the request went to (forged or misrouted).
	PendingIQs prometheus.Gauge
	DroppedIQs prometheus.Counter
	// BridgeRequests counts requests from bridge modules by kind: join,
	// created, destroyed, or not-a-bridge (refused: wrong sender). Join
	// outcomes are counted with the knocks.
	BridgeRequests *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Knocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_knocks_total", Help: "Knocks answered, by outcome.",
		}, []string{"outcome"}),
		KnockLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gavel_knock_seconds", Help: "Time from a knock's arrival to its answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		TokenLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gavel_token_validation_seconds", Help: "Token validation time.",
			Buckets: []float64{.00001, .00005, .0001, .0005, .001, .005, .01, .05, .1, .5},
		}),
		KnocksInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_knocks_in_flight", Help: "Knocks being verified or looked up now.",
		}),
		Changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_room_changes_total", Help: "Affiliation and role changes sent to rooms, by kind and result.",
		}, []string{"kind", "result"}),
		StateWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_room_state_writes_total", Help: "Writes of rooms' governing state to the store, by result (ok, error).",
		}, []string{"result"}),
		Joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_room_joins_total", Help: "gavel's joins of rooms, by outcome: joined, refused, retried, timeout, nick-taken.",
		}, []string{"outcome"}),
		Rooms:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "gavel_rooms", Help: "Rooms gavel governs now."}),
		Occupants:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "gavel_occupants", Help: "Occupants tracked in governed rooms."}),
		PendingIQs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gavel_pending_iqs", Help: "IQs sent to the server and waiting for an answer."}),
		DroppedIQs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_iq_answers_dropped_total", Help: "IQ answers dropped because they did not come from the JID the request went to.",
		}),
		BridgeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_bridge_requests_total", Help: "Requests from MUC bridge modules, by kind: join, created, destroyed, not-a-bridge.",
		}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.Knocks, m.KnockLatency, m.TokenLatency, m.KnocksInFlight, m.Changes, m.Joins, m.StateWrites, m.Rooms, m.Occupants, m.PendingIQs, m.DroppedIQs, m.BridgeRequests)
	}
	return m
}

// knockCounters returns the counter of each knock outcome, created up front
// so that every outcome is exported from the start, at zero.
func (m *Metrics) knockCounters() [numKnockOutcomes]prometheus.Counter {
	var c [numKnockOutcomes]prometheus.Counter
	for o := range c {
		c[o] = m.Knocks.WithLabelValues(knockOutcome(o).String())
	}
	return c
}

func (m *Metrics) bridgeRequest(kind string) { m.BridgeRequests.WithLabelValues(kind).Inc() }
