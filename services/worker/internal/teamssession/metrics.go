package teamssession

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	hits          prometheus.Counter
	misses        prometheus.Counter
	invalidations prometheus.Counter
	bypassed      prometheus.Counter
	errors        *prometheus.CounterVec
	up            prometheus.Gauge
	lockWait      *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		hits: f.NewCounter(prometheus.CounterOpts{
			Name: "usher_worker_teams_session_cache_hits_total",
			Help: "Teams session lookups answered from the cache.",
		}),
		misses: f.NewCounter(prometheus.CounterOpts{
			Name: "usher_worker_teams_session_cache_misses_total",
			Help: "Teams session lookups that found no session (a login by this or another worker follows).",
		}),
		invalidations: f.NewCounter(prometheus.CounterOpts{
			Name: "usher_worker_teams_session_cache_invalidations_total",
			Help: "Teams sessions dropped because a join bounced to the login page.",
		}),
		bypassed: f.NewCounter(prometheus.CounterOpts{
			Name: "usher_worker_teams_session_cache_bypassed_total",
			Help: "Teams session lookups that logged in without the cache because Redis did not answer.",
		}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_teams_session_cache_errors_total",
			Help: "Redis commands of the Teams session cache that failed, by operation.",
		}, []string{"op"}),
		up: f.NewGauge(prometheus.GaugeOpts{
			Name: "usher_worker_teams_session_cache_up",
			Help: "1 when the last Redis command of the Teams session cache succeeded, 0 when it failed.",
		}),
		lockWait: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usher_worker_teams_session_lock_wait_seconds",
			Help:    "Time from a cache miss until this worker held the login lock (acquired) or another worker's login ended (session, failure, timeout).",
			Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120},
		}, []string{"outcome"}),
	}
	for _, op := range []string{"get", "lock", "store", "invalidate", "unlock"} {
		m.errors.WithLabelValues(op)
	}
	m.up.Set(1)
	return m
}
