// Package reaper settles bots whose worker is gone.
//
// Reaper watches the WORKER_BEATS bucket's stream through a durable consumer
// that every worker shares (so each expiry is handled once in the fleet). A
// worker that stops renewing its heartbeat key loses it after the TTL, and
// the server leaves a marker (header Nats-Marker-Reason: MaxAge) on its
// subject. The reaper then reads the BOT_LEASES bucket for the leases that
// named that heartbeat: a bot still in a meeting state — its job was acked
// at joined, so nothing will redeliver it — is failed with worker_lost; a bot
// still joining is left to its job's redelivery; a handed-off bot is left to
// its hand-off job. Each settled lease is purged, so the bucket keeps no key
// of a lost worker. A worker that stopped cleanly holds no lease any more
// when its heartbeat expires.
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

	"github.com/usherhq/usher/services/worker/internal/lease"
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
			Help: "Bot leases of expired worker heartbeats handled, by result (worker_lost, settled, handed_off, taken_over, error).",
		}, []string{"result"}),
	}
}

// Run consumes lease markers until ctx is done. A ctx cancelled before the
// consumer is in place (a worker stopped right after start-up) is a clean
// stop, not an error.
func (r *Reaper) Run(ctx context.Context) error {
	cons, err := r.js.CreateOrUpdateConsumer(ctx, topology.StreamBeats, r.topo.Config.ReaperConsumer())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("ensure consumer %s on %s: %w", topology.ConsumerReaper, topology.StreamBeats, err)
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
	beat := strings.TrimPrefix(msg.Subject(), "$KV."+topology.BucketBeats+".")
	ctx, cancel := context.WithTimeout(base, 30*time.Second)
	defer cancel()
	err := r.ReapBeat(ctx, beat)
	if err != nil {
		delay := time.Second
		if md, merr := msg.Metadata(); merr == nil {
			delay = min(time.Duration(md.NumDelivered)*time.Second, time.Minute)
		}
		r.log.Warn("heartbeat marker not settled; retrying", "beat", beat, "delay", delay, "error", err)
		_ = msg.NakWithDelay(delay)
		return
	}
	_ = msg.Ack()
}

// ReapBeat settles the bots whose leases named heartbeat beat, which
// expired. It reads every lease in the bucket — a worker's loss is rare, and
// leases are one small key per bot being served — and reaps the ones that
// name beat. It returns the first error; the marker is then tried again, and
// what was settled is found settled.
func (r *Reaper) ReapBeat(ctx context.Context, beat string) error {
	mine, err := r.leasesOf(ctx, beat)
	if err != nil {
		return err
	}
	var first error
	for _, e := range mine {
		result, err := r.Reap(ctx, e)
		r.marks.WithLabelValues(result).Inc()
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

// leasesOf returns the lease entries that name heartbeat beat.
func (r *Reaper) leasesOf(ctx context.Context, beat string) ([]jetstream.KeyValueEntry, error) {
	w, err := r.topo.Leases.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var mine []jetstream.KeyValueEntry
	for {
		select {
		case e := <-w.Updates():
			if e == nil { // the end of the current values
				return mine, nil
			}
			if v, err := lease.Decode(e.Value()); err == nil && v.Beat == beat {
				mine = append(mine, e)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("read leases: %w", ctx.Err())
		}
	}
}

// Reap settles the bot of a lease whose heartbeat expired: failed/
// worker_lost when it is still in its meeting, nothing when it is joining or
// handed off (its job brings it back). The lease is then purged, unless it
// moved meanwhile (another worker took the bot over). Reap returns what it
// did: worker_lost, settled, handed_off, taken_over or error.
func (r *Reaper) Reap(ctx context.Context, lost jetstream.KeyValueEntry) (string, error) {
	botID := lost.Key()
	if cur, err := r.topo.Leases.Get(ctx, botID); err != nil {
		if lease.Gone(err) {
			return "settled", nil
		}
		return "error", fmt.Errorf("read lease: %w", err)
	} else if cur.Revision() != lost.Revision() {
		return "taken_over", nil
	}
	v, err := lease.Decode(lost.Value())
	if err != nil {
		return "error", fmt.Errorf("decode lease: %w", err)
	}
	result, err := r.settle(ctx, botID, v.HandOff)
	if err != nil || result == "handed_off" {
		return result, err
	}
	err = lease.Purge(ctx, r.topo.Leases, botID, lost.Revision())
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return "error", fmt.Errorf("purge lease: %w", err)
	}
	return result, nil
}

// settle fails the bot with worker_lost when it is still in its meeting. A
// handed-off bot that is not finished is left to its hand-off job.
func (r *Reaper) settle(ctx context.Context, botID string, handedOff bool) (string, error) {
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
		switch {
		case handedOff && !state.Terminal():
			return "handed_off", nil
		case handedOff || !inMeeting(state, ev.GetMetadata()):
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
