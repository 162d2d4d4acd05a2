package projector

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Outcomes of projecting one event (metric label).
const (
	outcomeApplied   = "applied"
	outcomeDuplicate = "duplicate"
	outcomeGap       = "gap"
	outcomeOrphan    = "orphan"
	outcomeRetry     = "retry"
	outcomeInvalid   = "invalid"
)

type projectorMetrics struct {
	// events holds the counter of each outcome, resolved once.
	events  map[string]prometheus.Counter
	writes  prometheus.Counter
	pending prometheus.Gauge
	lag     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *projectorMetrics {
	f := promauto.With(reg)
	events := f.NewCounterVec(prometheus.CounterOpts{
		Name: "usher_ingest_projector_events_total",
		Help: "Bot events handled by the projector, by outcome (applied, duplicate, gap, orphan, retry, invalid).",
	}, []string{"outcome"})
	m := &projectorMetrics{
		events: make(map[string]prometheus.Counter),
		writes: f.NewCounter(prometheus.CounterOpts{
			Name: "usher_ingest_projector_document_writes_total",
			Help: "Bot document updates written by the projector: one per bot for all of its events applied together.",
		}),
		pending: f.NewGauge(prometheus.GaugeOpts{
			Name: "usher_ingest_projector_pending_messages",
			Help: "Events not yet delivered to the projector, as of the last delivery.",
		}),
		lag: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "usher_ingest_projector_lag_seconds",
			Help:    "Time from an event's creation to its projection into the bot document.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
	}
	for _, o := range []string{outcomeApplied, outcomeDuplicate, outcomeGap, outcomeOrphan, outcomeRetry, outcomeInvalid} {
		m.events[o] = events.WithLabelValues(o)
	}
	return m
}
