package credentials

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/usherhq/usher/shared/teamsaccount"
)

// StatusGauge keeps usher_ingest_teams_accounts{status} current by watching
// the TEAMS_ACCOUNTS bucket, so the count includes the statuses workers set.
// Every ingest replica reports the same fleet-wide numbers (aggregate with
// max, not sum).
type StatusGauge struct {
	kv    jetstream.KeyValue
	log   *slog.Logger
	gauge *prometheus.GaugeVec
}

// NewStatusGauge registers the gauge; Run keeps it current.
func NewStatusGauge(kv jetstream.KeyValue, log *slog.Logger, reg prometheus.Registerer) *StatusGauge {
	g := promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
		Name: "usher_ingest_teams_accounts",
		Help: "Teams bot accounts stored, by status (ok, invalid, locked, mfa_required), across all projects.",
	}, []string{"status"})
	for _, s := range teamsaccount.Statuses() {
		g.WithLabelValues(s)
	}
	return &StatusGauge{kv: kv, log: log, gauge: g}
}

// Run watches the bucket until ctx is done.
func (g *StatusGauge) Run(ctx context.Context) error {
	w, err := g.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch teams accounts: %w", err)
	}
	defer func() { _ = w.Stop() }()
	status := map[string]string{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watch teams accounts: watcher closed")
			}
			if e == nil {
				continue // initial values delivered
			}
			if e.Operation() != jetstream.KeyValuePut {
				delete(status, e.Key())
			} else {
				var rec struct {
					Status string `json:"status"`
				}
				if err := json.Unmarshal(e.Value(), &rec); err != nil {
					g.log.Warn("undecodable teams account record", "key", e.Key(), "err", err)
					continue
				}
				status[e.Key()] = rec.Status
			}
			g.publish(status)
		}
	}
}

func (g *StatusGauge) publish(status map[string]string) {
	counts := map[string]int{}
	for _, s := range status {
		counts[s]++
	}
	for _, s := range teamsaccount.Statuses() {
		g.gauge.WithLabelValues(s).Set(float64(counts[s]))
	}
}
