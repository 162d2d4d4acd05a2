// Package lease keeps the worker's bot leases in the BOT_LEASES bucket: one
// key per bot (<bot_id>), created with KV Create so only one worker serves a
// bot, released with a purge, or handed off to the next worker.
//
// A lease does not expire by itself: it names the heartbeat of the worker
// that holds it, a key in the WORKER_BEATS bucket that the worker renews
// every TTL/3 with a compare-and-set, and that expires TTL after the last
// renewal. One write per worker keeps all of its leases alive, however many
// bots it serves, and the reaper — which must see every write of the bucket
// it watches — reads one heartbeat per worker instead of every lease write.
// When a heartbeat expires, every lease naming it is over: a worker may take
// such a lease over, and the reaper settles the bots left in meetings.
//
// The worker loses all its leases at once when its heartbeat's revision moved
// under it (the key expired, or someone else wrote it) or when it could not
// renew it for most of the TTL; each owner is told at once through the
// callback given to Acquire and must stop its bot. The worker then starts a
// new heartbeat for the bots it takes next.
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
	// Beat is the WORKER_BEATS key the lease lives by: the holder's
	// heartbeat, or a key of its own once the holder abandoned the bot. A
	// lease without one is held for as long as the key exists.
	Beat string `json:"beat,omitempty"`
	// HandOff is set by a draining worker that left the meeting and published
	// a hand-off job: the next worker may take the lease over.
	HandOff bool `json:"hand_off,omitempty"`
	// Control is the subject prefix the holder takes the bot's commands on
	// (package botcontrol): senders read it here.
	Control string `json:"control,omitempty"`
}

// Holder is who writes a Manager's leases.
type Holder struct {
	// Worker is the worker's id.
	Worker string
	// Control is its control prefix (botcontrol.NewPrefix).
	Control string
}

// Decode reads a lease key's value.
func Decode(data []byte) (Value, error) {
	var v Value
	err := json.Unmarshal(data, &v)
	return v, err
}

// beatValue is what a heartbeat key holds.
type beatValue struct {
	Worker string `json:"worker"`
	// Bot is set on the key of an abandoned lease.
	Bot string `json:"abandoned_bot,omitempty"`
}

// Manager acquires one worker's leases and keeps them alive with its heartbeat.
type Manager struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	beats   jetstream.KeyValue
	prefix  string
	ttl     time.Duration
	worker  string
	control string
	log     *slog.Logger
	met     *metrics
	// beatVal is what this worker's heartbeat key holds.
	beatVal []byte

	// beatMu serialises starting a heartbeat.
	beatMu sync.Mutex

	mu        sync.Mutex
	held      map[*Lease]struct{}
	beat      string // the current heartbeat key; "" before the first lease or once lost
	beatRev   uint64
	beatAt    time.Time // last successful write of beat
	abandoned []*Lease  // leases still to be moved to a beat of their own
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
			Help: "Worker heartbeats, each renewing every bot lease the worker holds, by result (ok, error).",
		}, []string{"result"}),
		losses: f.NewCounter(prometheus.CounterOpts{
			Name: "usher_worker_lease_losses_total",
			Help: "Bot leases lost while serving the bot (the worker's heartbeat expired, moved or was not renewed in time).",
		}),
		held: f.NewGauge(prometheus.GaugeOpts{
			Name: "usher_worker_leases_held",
			Help: "Bot leases this worker holds.",
		}),
	}
}

// New returns a Manager on the leases and heartbeats buckets; ttl is the
// heartbeats' time to live (topology LeaseTTL) and holder this worker.
func New(js jetstream.JetStream, kv, beats jetstream.KeyValue, ttl time.Duration, holder Holder, log *slog.Logger, reg prometheus.Registerer) *Manager {
	beatVal, _ := json.Marshal(beatValue{Worker: holder.Worker}) // strings only: it cannot fail
	return &Manager{
		beatVal: beatVal,
		js:      js,
		kv:      kv,
		beats:   beats,
		prefix:  "$KV." + topology.BucketLeases + ".",
		ttl:     ttl,
		worker:  holder.Worker,
		control: holder.Control,
		log:     log,
		met:     newMetrics(reg),
		held:    make(map[*Lease]struct{}),
	}
}

// TTL is the heartbeat's time to live.
func (m *Manager) TTL() time.Duration { return m.ttl }

// Held returns how many leases this worker holds.
func (m *Manager) Held() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.held)
}

// Beat returns the worker's current heartbeat key, "" when it has none.
func (m *Manager) Beat() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.beat
}

// currentBeat returns the heartbeat new leases name, starting one when the
// worker has none (before its first lease, or after it lost the last).
func (m *Manager) currentBeat(ctx context.Context) (string, error) {
	if b := m.Beat(); b != "" {
		return b, nil
	}
	m.beatMu.Lock()
	defer m.beatMu.Unlock()
	if b := m.Beat(); b != "" {
		return b, nil
	}
	key := nuid.Next()
	rev, err := m.beats.Create(ctx, key, m.beatVal)
	if err != nil {
		return "", fmt.Errorf("start heartbeat: %w", err)
	}
	m.mu.Lock()
	m.beat, m.beatRev, m.beatAt = key, rev, time.Now()
	m.mu.Unlock()
	m.log.Debug("heartbeat started", "beat", key)
	return key, nil
}

// Acquire takes the bot's lease. It returns ErrHeld when another worker
// holds it, unless that worker handed the bot off or its heartbeat is gone,
// in which case the lease is taken over with a compare-and-set. onLost is
// called (once, from the heartbeat goroutine) if the lease is lost later; it
// must not block.
func (m *Manager) Acquire(ctx context.Context, botID string, onLost func()) (*Lease, error) {
	beat, err := m.currentBeat(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire lease of bot %s: %w", botID, err)
	}
	val, err := m.value(botID, beat)
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
	return m.hold(botID, val, beat, rev, takenOver, onLost), nil
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
	beat, err := m.currentBeat(ctx)
	if err != nil {
		for i := range out {
			out[i].Err = fmt.Errorf("acquire lease of bot %s: %w", wants[i].BotID, err)
		}
		return out
	}
	vals := make([][]byte, len(wants))
	futs := make([]jetstream.PubAckFuture, len(wants))
	for i, w := range wants {
		val, err := m.value(w.BotID, beat)
		if err != nil {
			out[i].Err = err
			continue
		}
		vals[i] = val
		msg := &nats.Msg{Subject: m.prefix + w.BotID, Data: val}
		pubacks.ExpectLastSequence(msg, 0)
		futs[i], _ = m.js.PublishMsgAsync(msg)
	}
	for i, r := range pubacks.Await(ctx, futs) {
		switch {
		case out[i].Err != nil: // not encoded
		case r.Ack != nil:
			out[i].Lease = m.hold(wants[i].BotID, vals[i], beat, r.Ack.Sequence, false, wants[i].OnLost)
		default: // not sent, refused or unanswered
			out[i].Lease, out[i].Err = m.Acquire(ctx, wants[i].BotID, wants[i].OnLost)
		}
	}
	return out
}

// value is a new lease value of this worker for botID.
func (m *Manager) value(botID, beat string) ([]byte, error) {
	val, err := json.Marshal(Value{Worker: m.worker, Token: nuid.Next(), Beat: beat, Control: m.control})
	if err != nil {
		return nil, fmt.Errorf("encode lease of bot %s: %w", botID, err)
	}
	return val, nil
}

// hold records a lease this worker now holds at rev. A lease whose
// heartbeat was lost while it was being written is lost at once.
func (m *Manager) hold(botID string, val []byte, beat string, rev uint64, takenOver bool, onLost func()) *Lease {
	l := &Lease{m: m, botID: botID, value: val, beat: beat, onLost: onLost, takenOver: takenOver, rev: rev}
	m.mu.Lock()
	current := m.beat == beat
	m.held[l] = struct{}{}
	m.mu.Unlock()
	m.met.held.Inc()
	if !current {
		l.lose("heartbeat lost while acquiring")
	}
	return l
}

// takeOver takes a lease its holder handed off, or whose holder's heartbeat
// is gone; any other live lease is ErrHeld.
func (m *Manager) takeOver(ctx context.Context, botID string, val []byte) (rev uint64, takenOver bool, err error) {
	entry, err := m.kv.Get(ctx, botID)
	if Gone(err) {
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
	cur, err := Decode(entry.Value())
	if err != nil {
		return 0, false, fmt.Errorf("undecodable lease: %w", ErrHeld)
	}
	if !cur.HandOff {
		alive, err := m.alive(ctx, cur.Beat)
		if err != nil {
			return 0, false, err
		}
		if alive {
			return 0, false, fmt.Errorf("worker %q: %w", cur.Worker, ErrHeld)
		}
	}
	rev, err = m.kv.Update(ctx, botID, val, entry.Revision())
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, false, fmt.Errorf("take over: %w", ErrHeld)
	}
	if err != nil {
		return 0, false, fmt.Errorf("take over: %w", err)
	}
	if !cur.HandOff {
		m.log.Info("bot lease of a lost worker taken over", "bot_id", botID, "lost_worker", cur.Worker)
	}
	// Only a hand-off is a take-over for the bot: after a lost worker the
	// bot starts over as if its lease had been free.
	return rev, cur.HandOff, nil
}

// alive reports whether the heartbeat key beat still exists. A lease that
// names no heartbeat counts as alive: nothing says its holder is gone.
func (m *Manager) alive(ctx context.Context, beat string) (bool, error) {
	if beat == "" {
		return true, nil
	}
	_, err := m.beats.Get(ctx, beat)
	switch {
	case err == nil:
		return true, nil
	case Gone(err):
		return false, nil
	default:
		return false, fmt.Errorf("read holder's heartbeat: %w", err)
	}
}

// Run renews the heartbeat each TTL/3 until ctx is done, and moves
// abandoned leases to heartbeats of their own.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.Renew(ctx)
			m.moveAbandoned(ctx)
		}
	}
}

// Renew writes the heartbeat once, keeping every lease alive for another
// TTL. Run calls it on its ticker; it is exported for tests.
func (m *Manager) Renew(ctx context.Context) {
	m.mu.Lock()
	beat, rev, at := m.beat, m.beatRev, m.beatAt
	m.mu.Unlock()
	if beat == "" {
		return
	}
	// The key expires TTL after its last write; past most of it, other
	// workers may already count this one as gone.
	if time.Since(at) >= m.ttl*9/10 {
		m.met.renewals.WithLabelValues("error").Inc()
		m.loseBeat(beat, "heartbeat not renewed in time")
		return
	}
	wctx, cancel := context.WithTimeout(ctx, m.ttl/3)
	defer cancel()
	next, err := m.beats.Update(wctx, beat, m.beatVal, rev)
	if err != nil {
		m.met.renewals.WithLabelValues("error").Inc()
		if pubacks.WrongLastSequence(err) {
			m.loseBeat(beat, "heartbeat revision moved")
			return
		}
		m.log.Warn("heartbeat not renewed", "error", err)
		return
	}
	m.met.renewals.WithLabelValues("ok").Inc()
	m.mu.Lock()
	if m.beat == beat && m.beatRev == rev {
		m.beatRev, m.beatAt = next, time.Now()
	}
	m.mu.Unlock()
}

// loseBeat ends heartbeat beat: every lease naming it is lost, and the next
// lease starts a new heartbeat.
func (m *Manager) loseBeat(beat, why string) {
	m.mu.Lock()
	if m.beat == beat {
		m.beat = ""
	}
	var gone []*Lease
	for l := range m.held {
		if l.beat == beat {
			gone = append(gone, l)
		}
	}
	m.mu.Unlock()
	m.log.Warn("heartbeat lost: every bot lease it kept is lost", "reason", why, "leases", len(gone))
	for _, l := range gone {
		l.lose(why)
	}
}

// abandon queues a lease its worker can no longer settle; moveAbandoned
// gives it a heartbeat of its own that nobody renews, so it ends TTL later
// and the reaper settles the bot.
func (m *Manager) abandon(l *Lease) {
	m.mu.Lock()
	m.abandoned = append(m.abandoned, l)
	m.mu.Unlock()
}

// moveAbandoned points each abandoned lease at a new heartbeat key that is
// never renewed. A lease that cannot be moved now is tried again on the
// next beat; if the worker dies first, its own heartbeat ends the lease.
func (m *Manager) moveAbandoned(ctx context.Context) {
	m.mu.Lock()
	todo := m.abandoned
	m.abandoned = nil
	m.mu.Unlock()
	for _, l := range todo {
		if err := l.moveToOwnBeat(ctx); err != nil {
			if errors.Is(err, ErrLost) {
				continue
			}
			m.log.Warn("abandoned bot lease not yet moved to a heartbeat of its own", "bot_id", l.botID, "error", err)
			m.abandon(l)
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
