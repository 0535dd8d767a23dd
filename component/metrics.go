package component

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the component's Prometheus metrics.
type Metrics struct {
	Knocks       *prometheus.CounterVec // by outcome: granted or the refusal condition
	KnockLatency prometheus.Histogram
	TokenLatency prometheus.Histogram
	Changes      *prometheus.CounterVec // affiliation and role changes by kind and result
	Joins        *prometheus.CounterVec // gavel's joins of rooms, by outcome
	Commands     *prometheus.CounterVec // by command and result
	Rooms        prometheus.Gauge
	Occupants    prometheus.Gauge
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
		Changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_room_changes_total", Help: "Affiliation and role changes sent to rooms, by kind and result.",
		}, []string{"kind", "result"}),
		Joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_room_joins_total", Help: "gavel's joins of rooms, by outcome: joined, refused, retried, timeout, nick-taken.",
		}, []string{"outcome"}),
		Commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_commands_total", Help: "Admin commands, by command and result.",
		}, []string{"command", "result"}),
		Rooms:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "gavel_rooms", Help: "Rooms gavel governs now."}),
		Occupants: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gavel_occupants", Help: "Occupants tracked in governed rooms."}),
	}
	if reg != nil {
		reg.MustRegister(m.Knocks, m.KnockLatency, m.TokenLatency, m.Changes, m.Joins, m.Commands, m.Rooms, m.Occupants)
	}
	return m
}
