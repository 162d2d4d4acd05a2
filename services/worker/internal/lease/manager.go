// Package lease keeps the worker's bot leases in the BOT_LEASES bucket: one
// key per bot (<bot_id>), created with KV Create so only one worker serves a
// bot, renewed by a heartbeat (a compare-and-set on the revision every
// TTL/3), released with a delete, or handed off to the next worker.
//
// A lease is lost when its revision moved under the worker (someone else
// wrote the key) or when it could not be renewed for most of its TTL; the
// owner is told at once through the callback given to Acquire, and must stop
// the bot: the key may already belong to another worker.
//
// Renewals of all leases are pipelined (async publishes, then one wait), so a
// worker with thousands of bots pays one round trip per heartbeat, not one per
// bot, and runs one goroutine for all of them.
package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/usherhq/usher/shared/pubacks"
	"github.com/usherhq/usher/shared/topology"
)

// ErrHeld is returned by Acquire when another worker holds the bot's lease.
var ErrHeld = errors.New("bot lease held by another worker")

// ErrLost means the lease no longer belongs to this worker.
var ErrLost = errors.New("bot lease lost")

// Value is what a lease key holds.
type Value struct {
	// Worker is the holder's worker id, for operators reading the bucket.
	Worker string `json:"worker"`
	// Token identifies one acquisition, so a worker recognises its own lease
	// after a write it did not see acknowledged.
	Token string `json:"token"`
	// HandOff is set by a draining worker that left the meeting and published
	// a hand-off job: the next worker may take the lease over.
	HandOff bool `json:"hand_off,omitempty"`
}

// renewBatch bounds how many renewals are in flight at once (the JetStream
// client stalls past its async pending limit).
const renewBatch = 512

// Manager acquires and renews one worker's leases.
type Manager struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	prefix string
	ttl    time.Duration
	worker string
	log    *slog.Logger
	met    *metrics

	mu   sync.Mutex
	held map[*Lease]struct{}
}

type metrics struct {
	renewals *prometheus.CounterVec
	losses   prometheus.Counter
	held     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		renewals: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_lease_renewals_total",
			Help: "Bot lease heartbeats, by result (ok, error).",
		}, []string{"result"}),
		losses: f.NewCounter(prometheus.CounterOpts{
			Name: "usher_worker_lease_losses_total",
			Help: "Bot leases lost while serving the bot (revision moved or not renewed in time).",
		}),
		held: f.NewGauge(prometheus.GaugeOpts{
			Name: "usher_worker_leases_held",
			Help: "Bot leases this worker holds.",
		}),
	}
}

// New returns a Manager on the leases bucket; ttl is the bucket's TTL
// (topology LeaseTTL) and worker this worker's id.
func New(js jetstream.JetStream, kv jetstream.KeyValue, ttl time.Duration, worker string, log *slog.Logger, reg prometheus.Registerer) *Manager {
	return &Manager{
		js:     js,
		kv:     kv,
		prefix: "$KV." + topology.BucketLeases + ".",
		ttl:    ttl,
		worker: worker,
		log:    log,
		met:    newMetrics(reg),
		held:   make(map[*Lease]struct{}),
	}
}

// TTL is the leases' time to live.
func (m *Manager) TTL() time.Duration { return m.ttl }

// Held returns how many leases this worker holds.
func (m *Manager) Held() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.held)
}

// Acquire takes the bot's lease. It returns ErrHeld when another worker holds
// it, unless that worker handed the bot off, in which case the lease is taken
// over with a compare-and-set. onLost is called (once, from the heartbeat
// goroutine) if the lease is lost later; it must not block.
func (m *Manager) Acquire(ctx context.Context, botID string, onLost func()) (*Lease, error) {
	val, err := m.value(botID)
	if err != nil {
		return nil, err
	}
	rev, err := m.kv.Create(ctx, botID, val)
	takenOver := false
	if errors.Is(err, jetstream.ErrKeyExists) {
		rev, takenOver, err = m.takeOver(ctx, botID, val)
	}
	if err != nil {
		return nil, fmt.Errorf("acquire lease of bot %s: %w", botID, err)
	}
	return m.hold(botID, val, rev, takenOver, onLost), nil
}

// Want is a lease AcquireMany should take.
type Want struct {
	BotID  string
	OnLost func()
}

// Got is what AcquireMany got for a Want: Acquire's results.
type Got struct {
	Lease *Lease
	Err   error
}

// AcquireMany takes the leases of many bots, each as Acquire does: every
// first write (a KV create) is sent before any is awaited, and a lease the
// burst could not create — held, handed off, or the write failed — is
// acquired again the careful way, by Acquire. Outcomes are in the order of
// wants.
func (m *Manager) AcquireMany(ctx context.Context, wants []Want) []Got {
	out := make([]Got, len(wants))
	vals := make([][]byte, len(wants))
	futs := make([]jetstream.PubAckFuture, len(wants))
	for i, w := range wants {
		val, err := m.value(w.BotID)
		if err != nil {
			out[i].Err = err
			continue
		}
		vals[i] = val
		msg := &nats.Msg{Subject: m.prefix + w.BotID, Data: val}
		futs[i], _ = m.js.PublishMsgAsync(msg, jetstream.WithExpectLastSequencePerSubject(0))
	}
	for i, r := range pubacks.Await(ctx, futs) {
		switch {
		case out[i].Err != nil: // not encoded
		case r.Ack != nil:
			out[i].Lease = m.hold(wants[i].BotID, vals[i], r.Ack.Sequence, false, wants[i].OnLost)
		default: // not sent, refused or unanswered
			out[i].Lease, out[i].Err = m.Acquire(ctx, wants[i].BotID, wants[i].OnLost)
		}
	}
	return out
}

// value is a new lease value of this worker for botID.
func (m *Manager) value(botID string) ([]byte, error) {
	val, err := json.Marshal(Value{Worker: m.worker, Token: nuid.Next()})
	if err != nil {
		return nil, fmt.Errorf("encode lease of bot %s: %w", botID, err)
	}
	return val, nil
}

// hold records a lease this worker now holds at rev.
func (m *Manager) hold(botID string, val []byte, rev uint64, takenOver bool, onLost func()) *Lease {
	l := &Lease{m: m, botID: botID, value: val, onLost: onLost, takenOver: takenOver, rev: rev, renewedAt: time.Now()}
	m.mu.Lock()
	m.held[l] = struct{}{}
	m.mu.Unlock()
	m.met.held.Inc()
	return l
}

// takeOver takes a lease its holder handed off; any other live lease is ErrHeld.
func (m *Manager) takeOver(ctx context.Context, botID string, val []byte) (rev uint64, takenOver bool, err error) {
	entry, err := m.kv.Get(ctx, botID)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		// Released between our Create and Get: try once more.
		rev, err := m.kv.Create(ctx, botID, val)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, false, ErrHeld
		}
		return rev, false, err
	}
	if err != nil {
		return 0, false, fmt.Errorf("read: %w", err)
	}
	var cur Value
	if err := json.Unmarshal(entry.Value(), &cur); err != nil || !cur.HandOff {
		return 0, false, fmt.Errorf("worker %q: %w", cur.Worker, ErrHeld)
	}
	rev, err = m.kv.Update(ctx, botID, val, entry.Revision())
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, false, fmt.Errorf("take over: %w", ErrHeld)
	}
	if err != nil {
		return 0, false, fmt.Errorf("take over: %w", err)
	}
	return rev, true, nil
}

// Run renews every held lease each TTL/3 until ctx is done.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.RenewAll(ctx)
		}
	}
}

type renewal struct {
	l   *Lease
	rev uint64
	paf jetstream.PubAckFuture
}

// RenewAll renews every held lease once, pipelining the writes. Run calls it
// on its ticker; it is exported for tests and benchmarks.
func (m *Manager) RenewAll(ctx context.Context) {
	m.mu.Lock()
	leases := make([]*Lease, 0, len(m.held))
	for l := range m.held {
		leases = append(leases, l)
	}
	m.mu.Unlock()
	for start := 0; start < len(leases); start += renewBatch {
		m.renew(ctx, leases[start:min(start+renewBatch, len(leases))])
	}
}

func (m *Manager) renew(ctx context.Context, leases []*Lease) {
	now := time.Now()
	pending := make([]renewal, 0, len(leases))
	for _, l := range leases {
		l.mu.Lock()
		st, rev, renewed := l.state, l.rev, l.renewedAt
		l.mu.Unlock()
		if st != held {
			continue
		}
		// The key expires TTL after its last write; past most of it the
		// bucket may already have let another worker in.
		if now.Sub(renewed) >= m.ttl*9/10 {
			l.lose("not renewed in time")
			continue
		}
		msg := &nats.Msg{Subject: m.prefix + l.botID, Data: l.value, Header: nats.Header{}}
		paf, err := m.js.PublishMsgAsync(msg, jetstream.WithExpectLastSequencePerSubject(rev))
		if err != nil {
			m.met.renewals.WithLabelValues("error").Inc()
			m.log.Warn("lease renewal not sent", "bot_id", l.botID, "error", err)
			continue
		}
		pending = append(pending, renewal{l: l, rev: rev, paf: paf})
	}
	timeout := time.NewTimer(m.ttl / 3)
	defer timeout.Stop()
	for i, r := range pending {
		select {
		case ack := <-r.paf.Ok():
			m.met.renewals.WithLabelValues("ok").Inc()
			r.l.renewed(r.rev, ack.Sequence)
		case err := <-r.paf.Err():
			m.met.renewals.WithLabelValues("error").Inc()
			if pubacks.WrongLastSequence(err) {
				r.l.lose("revision moved")
				continue
			}
			m.log.Warn("lease renewal failed", "bot_id", r.l.botID, "error", err)
		case <-timeout.C:
			m.met.renewals.WithLabelValues("error").Add(float64(len(pending) - i))
			m.log.Warn("lease renewals unanswered", "count", len(pending)-i)
			return
		case <-ctx.Done():
			return
		}
	}
}

func (m *Manager) forget(l *Lease) {
	m.mu.Lock()
	_, ok := m.held[l]
	delete(m.held, l)
	m.mu.Unlock()
	if ok {
		m.met.held.Dec()
	}
}
