package webjoin

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/usherhq/usher/shared/metrics"
)

// Join outcomes (label values besides the public sub-codes).
const (
	outcomeJoined   = "joined"
	outcomeCrashed  = "browser_crashed"
	outcomeCanceled = "canceled"
	outcomeError    = "error"
)

// Leave reasons (label values besides driver.EndReason values).
const (
	reasonLeft     = "left"            // Meeting.Leave took the bot out
	reasonCrashed  = "browser_crashed" // the browser died under the meeting
	reasonPageLost = "page_lost"       // the meeting page stopped showing the meeting
	reasonClosed   = "closed"          // closed without any of the above (cancelled)
)

// Metrics of the browser drivers, shared by all platforms: build once per
// registry and pass to every driver.
type Metrics struct {
	joinDuration *prometheus.HistogramVec
	inMeeting    *prometheus.GaugeVec
	leaves       *prometheus.CounterVec
}

// NewMetrics registers the drivers' metrics on reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		joinDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usher_worker_browser_join_duration_seconds",
			Help:    "Time from opening a tab to being in the meeting (or failing), waiting room included, by platform and outcome (joined, a sub-code, browser_crashed, canceled, error).",
			Buckets: metrics.SlowBuckets,
		}, []string{"platform", "outcome"}),
		inMeeting: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usher_worker_browser_bots_in_meeting",
			Help: "Bots currently in a meeting through a browser, by platform.",
		}, []string{"platform"}),
		leaves: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_browser_meeting_exits_total",
			Help: "Bots out of a meeting, by platform and reason (meeting_ended, removed_from_meeting, alone, left, browser_crashed, page_lost, closed).",
		}, []string{"platform", "reason"}),
	}
}
