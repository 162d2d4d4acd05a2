package bots

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/usherhq/usher/shared/metrics"
)

// Label values.
const (
	kindImmediate = "immediate"
	kindScheduled = "scheduled"

	rollbackClean      = "clean"
	rollbackIncomplete = "incomplete"

	leaveWorker      = "worker"
	leaveNoWorker    = "no_worker"
	leaveAlready     = "already_leaving"
	leaveTerminal    = "terminal"
	leaveRefused     = "refused"
	leaveTimeout     = "timeout"
	leaveUnavailable = "unavailable"
)

type serviceMetrics struct {
	jobs      *prometheus.CounterVec
	rollbacks *prometheus.CounterVec
	leaves    *prometheus.CounterVec
	deletes   prometheus.Counter
	create    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *serviceMetrics {
	f := promauto.With(reg)
	m := &serviceMetrics{
		jobs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_ingest_jobs_published_total",
			Help: "Join jobs published to JOBS, by kind (immediate, scheduled).",
		}, []string{"kind"}),
		rollbacks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_ingest_create_rollbacks_total",
			Help: "Creates undone after a JetStream failure, by outcome (clean, or incomplete: abandoned at shutdown or with a full retry queue).",
		}, []string{"outcome"}),
		leaves: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_ingest_leave_requests_total",
			Help: "Leave requests by outcome (worker, no_worker, already_leaving, terminal, refused, timeout, unavailable).",
		}, []string{"outcome"}),
		deletes: f.NewCounter(prometheus.CounterOpts{
			Name: "usher_ingest_scheduled_bots_deleted_total",
			Help: "Scheduled bots deleted through the API.",
		}),
		create: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "usher_ingest_create_duration_seconds",
			Help:    "Time to create a bot: indexes, document and job publish.",
			Buckets: metrics.FastBuckets,
		}),
	}
	for _, k := range []string{kindImmediate, kindScheduled} {
		m.jobs.WithLabelValues(k)
	}
	for _, o := range []string{rollbackClean, rollbackIncomplete} {
		m.rollbacks.WithLabelValues(o)
	}
	return m
}
