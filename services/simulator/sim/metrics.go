package sim

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the simulator's Prometheus series. Labels come from closed
// sets (platform, outcome); never a meeting id, name or email.
type metrics struct {
	joins      *prometheus.CounterVec
	signIns    *prometheus.CounterVec
	zoomTokens *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		joins: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_simulator_meeting_joins_total",
			Help: "Join clicks on the simulated meeting pages, by platform and outcome (waiting, in_meeting, refused, ended).",
		}, []string{"platform", "outcome"}),
		signIns: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_simulator_microsoft_sign_ins_total",
			Help: "Simulated Microsoft sign-ins by outcome (ok, unknown_user, wrong_password, locked, mfa, captcha).",
		}, []string{"outcome"}),
		zoomTokens: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_simulator_zoom_tokens_total",
			Help: "Zoom tokens minted and tokens the web client rejected (outcome minted or rejected).",
		}, []string{"outcome"}),
	}
}
