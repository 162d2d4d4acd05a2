package zoomtoken

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sony/gobreaker/v2"

	"github.com/usherhq/usher/shared/botstate"
)

// Outcome labels of the duration histogram: a closed set.
const (
	outcomeOK = "ok"
	// outcomeCanceled: the caller's context ended first (leave, deadline, drain).
	outcomeCanceled = "canceled"
)

// subCodeNone labels successful callbacks in the outcome counter.
const subCodeNone = "none"

type metrics struct {
	duration     *prometheus.HistogramVec
	outcomes     *prometheus.CounterVec
	retries      prometheus.Counter
	stateChanges *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, open func() int) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "usher_worker_zoom_tokens_callback_duration_seconds",
			Help: "Time to obtain Zoom tokens from zoom_tokens_url, retries included, by outcome.",
			// From the open-breaker fast path (µs) to three timed-out attempts.
			Buckets: []float64{0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60},
		}, []string{"outcome"}),
		outcomes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_zoom_tokens_callbacks_total",
			Help: "Zoom tokens callbacks by the sub_code they lead to (none when tokens were obtained).",
		}, []string{"sub_code"}),
		retries: f.NewCounter(prometheus.CounterOpts{
			Name: "usher_worker_zoom_tokens_callback_retries_total",
			Help: "Calls to zoom_tokens_url repeated after a timeout, a connection error or a 5xx.",
		}),
		stateChanges: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_zoom_tokens_breaker_state_changes_total",
			Help: "Circuit breaker state changes of callback hosts, by new state.",
		}, []string{"state"}),
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "usher_worker_zoom_tokens_breakers_open",
		Help: "Callback hosts whose circuit breaker is open now.",
	}, func() float64 { return float64(open()) })

	// Every series exists from the start, so rates and alerts see zeros.
	for _, o := range allOutcomes() {
		m.duration.WithLabelValues(o)
	}
	for _, c := range []string{subCodeNone, botstate.SubZoomTokensFailed, botstate.SubZoomTokensUnavailable, botstate.SubZoomTokensInvalid, botstate.SubZoomTokensURLForbidden} {
		m.outcomes.WithLabelValues(c)
	}
	for _, s := range []gobreaker.State{gobreaker.StateClosed, gobreaker.StateHalfOpen, gobreaker.StateOpen} {
		m.stateChanges.WithLabelValues(stateLabel(s))
	}
	return m
}

// allOutcomes is the histogram's label set: ok, canceled and every reason.
func allOutcomes() []string {
	return []string{
		outcomeOK, outcomeCanceled,
		ReasonInvalidURL, ReasonNotHTTPS, ReasonAddress, ReasonRedirect, ReasonSecretMissing,
		ReasonRejected, ReasonServerError, ReasonTimeout, ReasonConnection,
		ReasonBreakerOpen, ReasonBreakerProbing,
		ReasonTooLarge, ReasonNotJSON, ReasonNotObject, ReasonDuplicateKey, ReasonZAKMissing, ReasonTokenNotAString,
	}
}

func (m *metrics) observe(outcome, subCode string, d time.Duration) {
	m.duration.WithLabelValues(outcome).Observe(d.Seconds())
	if subCode != "" {
		m.outcomes.WithLabelValues(subCode).Inc()
	}
}

func (m *metrics) breakerChange(to gobreaker.State) {
	m.stateChanges.WithLabelValues(stateLabel(to)).Inc()
}
