package reaper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/usherhq/usher/services/worker/internal/jobs"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/topology"
)

// AdvisorySubject is where the server reports a job of the workers consumer
// that reached MaxDeliver. It is only sent while a pull request is waiting,
// which is whenever a worker has a free slot.
const AdvisorySubject = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + topology.StreamJobs + "." + topology.ConsumerWorkers

// QueueGroup makes one worker of the fleet handle each advisory.
const QueueGroup = "usher-worker-max-deliveries"

type maxDeliverAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// MaxDeliveries fails the bots of jobs that exhausted their deliveries.
type MaxDeliveries struct {
	nc      *nats.Conn
	topo    *topology.Topology
	events  *botevents.Store
	log     *slog.Logger
	results *prometheus.CounterVec
}

// NewMaxDeliveries returns the advisory handler; Run starts it.
func NewMaxDeliveries(nc *nats.Conn, js jetstream.JetStream, topo *topology.Topology, log *slog.Logger, reg prometheus.Registerer) *MaxDeliveries {
	return &MaxDeliveries{
		nc:     nc,
		topo:   topo,
		events: botevents.New(js, topo.Events),
		log:    log,
		results: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_max_deliveries_advisories_total",
			Help: "MAX_DELIVERIES advisories of the workers consumer handled, by result (failed, finished, gone, error).",
		}, []string{"result"}),
	}
}

// Run handles advisories until ctx is done. The subscription is in place
// when ready is closed (ready may be nil).
func (m *MaxDeliveries) Run(ctx context.Context, ready chan<- struct{}) error {
	ch := make(chan *nats.Msg, 256)
	sub, err := m.nc.ChanQueueSubscribe(AdvisorySubject, QueueGroup, ch)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", AdvisorySubject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = m.nc.FlushWithContext(fctx)
	cancel()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("subscribe %s: %w", AdvisorySubject, err)
	}
	if ready != nil {
		close(ready)
	}
	base := context.WithoutCancel(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg := <-ch:
			m.handle(base, msg)
		}
	}
}

func (m *MaxDeliveries) handle(base context.Context, msg *nats.Msg) {
	var adv maxDeliverAdvisory
	if err := json.Unmarshal(msg.Data, &adv); err != nil || adv.StreamSeq == 0 {
		m.log.Warn("unreadable max-deliveries advisory", "error", err)
		return
	}
	if adv.Stream != topology.StreamJobs || adv.Consumer != topology.ConsumerWorkers {
		return
	}
	var (
		result string
		err    error
	)
	for attempt := range 3 {
		ctx, cancel := context.WithTimeout(base, 10*time.Second)
		result, err = m.Settle(ctx, adv.StreamSeq)
		cancel()
		if err == nil {
			break
		}
		t := time.NewTimer(time.Duration(attempt+1) * 200 * time.Millisecond)
		<-t.C
	}
	m.results.WithLabelValues(result).Inc()
	if err != nil {
		m.log.Error("job past max deliveries not settled", "stream_seq", adv.StreamSeq, "error", err)
	}
}

// Settle fails the bot of the job stored at seq on JOBS (unless it is
// finished) with max_deliveries_exceeded, then deletes the job, which a
// work-queue stream would otherwise keep forever. It returns what it did.
func (m *MaxDeliveries) Settle(ctx context.Context, seq uint64) (string, error) {
	raw, err := m.topo.Jobs.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "gone", nil
	}
	if err != nil {
		return "error", fmt.Errorf("load job %d: %w", seq, err)
	}
	result := "finished"
	job, idents, derr := jobs.DecodeJob(raw.Data)
	if idents.Readable() {
		failed, err := m.fail(ctx, idents, job.GetMetadata(), derr)
		if err != nil {
			return "error", err
		}
		if failed {
			result = "failed"
		}
	}
	if err := m.topo.Jobs.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return "error", fmt.Errorf("delete job %d: %w", seq, err)
	}
	return result, nil
}

// fail publishes failed/max_deliveries_exceeded (invalid_job for a job that
// does not decode) unless the bot is finished.
func (m *MaxDeliveries) fail(ctx context.Context, idents jobs.JobIDs, botMeta map[string]string, decodeErr error) (bool, error) {
	sub := botstate.SubMaxDeliveriesExceeded
	if decodeErr != nil {
		sub = botstate.SubInvalidJob
	}
	for range 5 {
		cur, err := m.events.Last(ctx, idents.Project, idents.BotID, botstate.Ready)
		if err != nil {
			return false, err
		}
		if cur.State.Terminal() {
			return false, nil
		}
		_, _, err = m.events.Publish(ctx, cur, botevents.Change{To: botstate.Failed, SubCode: sub, BotMetadata: botMeta})
		if errors.Is(err, botevents.ErrConflict) {
			continue
		}
		if err != nil {
			return false, err
		}
		m.log.Warn("bot failed: job delivered too many times", "bot_id", idents.BotID, "project", idents.Project, "sub_code", sub)
		return true, nil
	}
	return false, fmt.Errorf("bot %s: %w", idents.BotID, botevents.ErrConflict)
}
