package jobs

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/usherhq/usher/shared/metrics"
)

// Job dispositions: what the runtime did with a delivered job.
const (
	dispAcked      = "acked"       // the bot joined or reached a terminal state
	dispTerminated = "terminated"  // permanent failure or invalid job
	dispRetried    = "retried"     // naked with a delay
	dispHandedBack = "handed_back" // naked while draining, before joined
	dispHandedOff  = "handed_off"  // in-meeting bot moved to another worker
	dispHeld       = "lease_held"  // another worker serves the bot
	dispAbandoned  = "abandoned"   // lease lost: left to redelivery or the reaper
)

type runtimeMetrics struct {
	slots    prometheus.Gauge
	busy     prometheus.Gauge
	claim    prometheus.Histogram
	batches  prometheus.Histogram
	disps    *prometheus.CounterVec
	outcomes *prometheus.CounterVec
	events   *prometheus.CounterVec
	retries  *prometheus.CounterVec
	// firstConflicts counts first deliveries whose optimistic first event
	// was refused: the bot had events already.
	firstConflicts prometheus.Counter
}

func newRuntimeMetrics(reg prometheus.Registerer) *runtimeMetrics {
	f := promauto.With(reg)
	return &runtimeMetrics{
		slots: f.NewGauge(prometheus.GaugeOpts{
			Name: "usher_worker_bot_slots",
			Help: "Bot slots of this worker (USHER_WORKER_SLOTS).",
		}),
		busy: f.NewGauge(prometheus.GaugeOpts{
			Name: "usher_worker_bot_slots_busy",
			Help: "Bot slots serving a job or a bot in a meeting.",
		}),
		batches: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "usher_worker_claim_batch_size",
			Help:    "First deliveries claimed together (leases, then first events, each in one burst).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 … 512
		}),
		claim: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "usher_worker_claim_latency_seconds",
			Help:    "Time from a job's first storage on the JOBS stream to this worker holding its lease (first deliveries only).",
			Buckets: metrics.QueueBuckets,
		}),
		disps: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_job_dispositions_total",
			Help: "Delivered jobs by what the worker did with them (acked, terminated, retried, handed_back, handed_off, lease_held, abandoned).",
		}, []string{"disposition"}),
		outcomes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_job_outcomes_total",
			Help: "Bots served by this worker reaching joined or a terminal state, by state and sub_code.",
		}, []string{"state", "sub_code"}),
		events: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_events_published_total",
			Help: "Bot events published by this worker, by new state.",
		}, []string{"state"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_job_retries_total",
			Help: "Jobs handed back for a delayed retry, by sub_code (none for unexpected errors).",
		}, []string{"sub_code"}),
		firstConflicts: f.NewCounter(prometheus.CounterOpts{
			Name: "usher_worker_first_event_conflicts_total",
			Help: "First deliveries of a job whose bot already had events (written by ingest or a previous worker): joining was refused and the bot's state read instead.",
		}),
	}
}

func subLabel(sub string) string {
	if sub == "" {
		return "none"
	}
	return sub
}
