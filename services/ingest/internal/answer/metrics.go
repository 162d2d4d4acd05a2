package answer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Sources of create requests (metric label).
const (
	SourceHTTP = "http"
	SourceNATS = "nats"
)

// Metrics count create requests by outcome, for both transports.
type Metrics struct {
	created  *prometheus.CounterVec
	rejected *prometheus.CounterVec
}

// NewMetrics registers usher_ingest_bots_created_total{source} and
// usher_ingest_requests_rejected_total{source,reason}.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		created: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_ingest_bots_created_total",
			Help: "Bots created, by source (http, nats).",
		}, []string{"source"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_ingest_requests_rejected_total",
			Help: "Create requests refused, by source (http, nats) and reason.",
		}, []string{"source", "reason"}),
	}
	for _, src := range []string{SourceHTTP, SourceNATS} {
		m.created.WithLabelValues(src)
		for _, r := range Reasons {
			m.rejected.WithLabelValues(src, r)
		}
	}
	return m
}

// Record counts an answer.
func (m *Metrics) Record(source string, a Answer) {
	if a.Reason == "" {
		m.created.WithLabelValues(source).Inc()
		return
	}
	m.rejected.WithLabelValues(source, a.Reason).Inc()
}
