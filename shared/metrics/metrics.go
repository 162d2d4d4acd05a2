// Package metrics holds what every Usher service shares for Prometheus: a
// private registry, the /metrics handler, HTTP request instrumentation and
// bucket layouts. Names follow usher_<service>_<noun>_<unit>.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Bucket layouts, in seconds.
var (
	// FastBuckets suit in-process and local network steps (100 µs to 5 s).
	FastBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
	// QueueBuckets suit waits in a queue, from a millisecond to a scale-out
	// that starts new pods (100 µs to 5 min).
	QueueBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// SlowBuckets suit browser steps such as joining a meeting (50 ms to 10 min).
	SlowBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600}
)

// NewRegistry returns a private registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves the registry on /metrics.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// HTTP instruments HTTP handlers by route (the ServeMux pattern, never the raw path) and status code.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewHTTP registers usher_<service>_http_requests_total and
// usher_<service>_http_request_duration_seconds.
func NewHTTP(reg prometheus.Registerer, service string) *HTTP {
	f := promauto.With(reg)
	return &HTTP{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_" + service + "_http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usher_" + service + "_http_request_duration_seconds",
			Help:    "HTTP request duration by route pattern.",
			Buckets: FastBuckets,
		}, []string{"route"}),
	}
}

// Wrap instruments a handler. The route label is the pattern ServeMux matched
// (so ids in paths never become label values); unmatched requests count as "unmatched".
func (m *HTTP) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
		m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code = code
		r.wroteHeader = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
