package browser

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics of the engine; reg may be nil (not exported anywhere).
type metrics struct {
	contexts prometheus.Gauge
	restarts prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, memory func() (int64, error)) *metrics {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "usher_worker_browser_memory_bytes",
		Help: "Proportional set size of all the browser's processes (0 while it restarts).",
	}, func() float64 {
		n, err := memory()
		if err != nil {
			return 0
		}
		return float64(n)
	})
	return &metrics{
		contexts: f.NewGauge(prometheus.GaugeOpts{
			Name: "usher_worker_browser_contexts_open",
			Help: "Incognito browser contexts (one per bot) currently open.",
		}),
		restarts: f.NewCounter(prometheus.CounterOpts{
			Name: "usher_worker_browser_restarts_total",
			Help: "Times the browser process died and was restarted.",
		}),
	}
}
