// Package reaper settles bots whose worker is gone.
//
// Reaper watches the BOT_LEASES bucket's stream through a durable consumer
// that every worker shares (so each expiry is handled once in the fleet). A
// lease whose worker stops renewing it expires after the TTL and the server
// leaves a marker (header Nats-Marker-Reason: MaxAge) on its subject; when the
// bot is still in a meeting state — its job was acked at joined, so nothing
// will redeliver it — the reaper fails it with worker_lost. Bots still
// joining are left to the job's redelivery. Releases are deletes, whose
// tombstones expire with a marker too; the bot's state (terminal, or joining)
// tells them apart.
//
// MaxDeliveries turns the JetStream MAX_DELIVERIES advisory of the workers
// consumer (a worker killed on a job's last delivery) into
// failed/max_deliveries_exceeded and deletes the job.
package reaper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/topology"
)

// markerMaxAge is the marker reason of a key removed by the bucket's TTL.
const markerMaxAge = "MaxAge"

// Reaper fails bots lost with their worker.
type Reaper struct {
	js     jetstream.JetStream
	topo   *topology.Topology
	events *botevents.Store
	log    *slog.Logger
	marks  *prometheus.CounterVec
}

// New returns a Reaper; Run starts it.
func New(js jetstream.JetStream, topo *topology.Topology, log *slog.Logger, reg prometheus.Registerer) *Reaper {
	return &Reaper{
		js:     js,
		topo:   topo,
		events: botevents.New(js, topo.Events),
		log:    log,
		marks: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_reaper_markers_total",
			Help: "Lease expiry markers handled, by result (worker_lost, settled, taken_over, error).",
		}, []string{"result"}),
	}
}

// Run consumes lease markers until ctx is done. A ctx cancelled before the
// consumer is in place (a worker stopped right after start-up) is a clean
// stop, not an error.
func (r *Reaper) Run(ctx context.Context) error {
	cons, err := r.js.CreateOrUpdateConsumer(ctx, topology.StreamLeases, r.topo.Config.ReaperConsumer())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("ensure consumer %s on %s: %w", topology.ConsumerReaper, topology.StreamLeases, err)
	}
	base := context.WithoutCancel(ctx)
	cc, err := cons.Consume(func(msg jetstream.Msg) { r.handle(base, msg) },
		jetstream.PullMaxMessages(256),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				r.log.Debug("reaper consume error", "error", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", topology.ConsumerReaper, err)
	}
	<-ctx.Done()
	cc.Drain()
	<-cc.Closed()
	return nil
}

func (r *Reaper) handle(base context.Context, msg jetstream.Msg) {
	if msg.Headers().Get(jetstream.MarkerReasonHeader) != markerMaxAge {
		_ = msg.Ack()
		return
	}
	botID := strings.TrimPrefix(msg.Subject(), "$KV."+topology.BucketLeases+".")
	ctx, cancel := context.WithTimeout(base, 10*time.Second)
	defer cancel()
	result, err := r.Reap(ctx, botID)
	r.marks.WithLabelValues(result).Inc()
	if err != nil {
		delay := time.Second
		if md, merr := msg.Metadata(); merr == nil {
			delay = min(time.Duration(md.NumDelivered)*time.Second, time.Minute)
		}
		r.log.Warn("lease marker not settled; retrying", "bot_id", botID, "delay", delay, "error", err)
		_ = msg.NakWithDelay(delay)
		return
	}
	_ = msg.Ack()
}

// Reap settles a bot whose lease expired: failed/worker_lost when it is
// still in its meeting and nobody holds it. It returns what it did.
func (r *Reaper) Reap(ctx context.Context, botID string) (string, error) {
	if _, err := r.topo.Leases.Get(ctx, botID); err == nil {
		return "taken_over", nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
		return "error", fmt.Errorf("read lease: %w", err)
	}
	for range 5 {
		raw, err := r.topo.Events.GetLastMsgForSubject(ctx, topology.EventsPrefix+".*."+botID)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return "settled", nil
		}
		if err != nil {
			return "error", fmt.Errorf("read last event: %w", err)
		}
		ev, err := botevents.Decode(raw.Data)
		if err != nil {
			return "error", err
		}
		state := botstate.State(ev.GetNewState())
		if !inMeeting(state, ev.GetMetadata()) {
			return "settled", nil
		}
		cur := botevents.Cursor{Project: ev.GetProject(), BotID: botID, State: state, Seq: ev.GetSeq(), StreamSeq: raw.Sequence}
		_, _, err = r.events.Publish(ctx, cur, botevents.Change{
			To:          botstate.Failed,
			SubCode:     botstate.SubWorkerLost,
			BotMetadata: ev.GetBotMetadata(),
		})
		if errors.Is(err, botevents.ErrConflict) {
			continue
		}
		if err != nil {
			return "error", err
		}
		r.log.Warn("bot failed: worker lost", "bot_id", botID, "project", ev.GetProject(), "state", state)
		return "worker_lost", nil
	}
	return "error", fmt.Errorf("bot %s: %w", botID, botevents.ErrConflict)
}

// inMeeting reports whether a bot in this state has no job left to bring it
// back: it was in its meeting (joined, leaving), or rejoining after a browser
// crash (its job was acked at the first join).
func inMeeting(state botstate.State, meta map[string]string) bool {
	switch state {
	case botstate.Joined, botstate.Leaving:
		return true
	case botstate.Joining, botstate.WaitingRoom:
		return meta["reason"] == botstate.SubBrowserCrashed
	}
	return false
}
