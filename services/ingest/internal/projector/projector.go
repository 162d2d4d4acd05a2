// Package projector applies bot events from the EVENTS stream to the bot
// documents in the BOTS bucket (design.md "Projector"). It consumes the
// durable consumer "projector", shared by every ingest replica. Event seq n
// is applied only when the document's last_seq is n-1, with a
// compare-and-set on the document's revision: a redelivered event
// (seq ≤ last_seq) is acked and ignored, an early one (a gap) is naked with
// a short delay until its predecessor is in. So events are applied once and
// in order per bot, across restarts and replicas. Bots are spread over
// shards by subject, so different bots are projected in parallel while one
// bot's events stay in order; a bot's events are held back for a moment
// (Config.Linger) so that the ones that come close together (joining and
// joined) are applied in one document write. On a terminal event the bot's deduplication_key is released.
//
// Documents are cached with their revision. Seed adds the document of a bot
// this process just created, so its first event needs no read; a stale
// entry (another replica wrote since) only costs a failed compare-and-set
// and a read.
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/shared/topology"
)

// Config tunes the projector. Zero fields take the defaults in their
// comments (Linger's zero is a value: no hold-back).
type Config struct {
	// Shards is how many bots are projected at once. Default 16.
	Shards int
	// CacheSize is how many documents (with revisions) are kept in memory
	// across shards, so the common path is one KV update per batch of a
	// bot's events, with no read. Default 16384.
	CacheSize int
	// GapDelay is how long an event waits for a missing predecessor. Default 250ms.
	GapDelay time.Duration
	// RetryDelay is how long an event waits after a failed write. Default 1s.
	RetryDelay time.Duration
	// OrphanGrace: an event of a bot without a document is retried while the
	// bot id is younger than this (its document may not be readable yet on
	// every replica), then acked and ignored (a deleted bot). Default 30s.
	OrphanGrace time.Duration
	// DrainTimeout bounds the wait for events in hand at shutdown. Default 10s.
	DrainTimeout time.Duration
	// Linger is how long a bot's events are held back after the first
	// arrived, so the events of a bot that come a moment apart — joining
	// and joined are tens of milliseconds apart when joins are quick — are
	// applied in one document write: fewer writes to the BOTS bucket and to
	// whatever watches it, for a document that shows a state at most this
	// much later. Zero holds nothing back (ingest's default is
	// USHER_INGEST_PROJECTOR_LINGER's).
	Linger time.Duration
	// WriteTimeout bounds the wait for a batch's pipelined document writes;
	// a write not acknowledged by then is done again the careful way.
	// Default 5s.
	WriteTimeout time.Duration
	// Connected reports whether NATS is reachable; without it shutdown does
	// not wait for a drain that cannot happen. Default: always true.
	Connected func() bool
}

func (c *Config) defaults() {
	if c.Shards <= 0 {
		c.Shards = 16
	}
	if c.Connected == nil {
		c.Connected = func() bool { return true }
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 16384
	}
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&c.GapDelay, 250 * time.Millisecond}, {&c.RetryDelay, time.Second}, {&c.OrphanGrace, 30 * time.Second}, {&c.DrainTimeout, 10 * time.Second}, {&c.WriteTimeout, 5 * time.Second}} {
		if *d.p <= 0 {
			*d.p = d.v
		}
	}
}

// Projector projects events into documents.
type Projector struct {
	cfg      Config
	js       jetstream.JetStream
	consumer jetstream.Consumer
	kv       jetstream.KeyValue
	log      *slog.Logger
	metrics  *projectorMetrics
	shards   []*shard
	started  atomic.Bool
}

// New returns a Projector on the topology's projector consumer and BOTS
// bucket; js is the bucket's JetStream (the documents are written with it).
func New(cfg Config, js jetstream.JetStream, topo *topology.Topology, log *slog.Logger, reg prometheus.Registerer) *Projector {
	cfg.defaults()
	p := &Projector{cfg: cfg, js: js, consumer: topo.Projector, kv: topo.Bots, log: log, metrics: newMetrics(reg)}
	p.shards = make([]*shard, cfg.Shards)
	for i := range p.shards {
		p.shards[i] = &shard{
			p:     p,
			queue: make(chan jetstream.Msg, shardQueue),
			cache: newCache(max(cfg.CacheSize/cfg.Shards, 16)),
		}
	}
	return p
}

// Seed caches the document of a bot this process just wrote at rev (a KV
// Create), so projecting its first event needs no read. It never replaces
// an entry the projector holds already. doc must not be modified afterwards.
func (p *Projector) Seed(doc *botdoc.Doc, rev uint64) {
	s := p.shardOf(topology.EventSubject(doc.Project, doc.ID))
	s.mu.Lock()
	s.cache.add(doc.Key(), doc, rev)
	s.mu.Unlock()
}

// shardOf is the shard of an event subject (FNV-1a, without allocating).
func (p *Projector) shardOf(subject string) *shard {
	h := uint32(2166136261)
	for i := 0; i < len(subject); i++ {
		h ^= uint32(subject[i])
		h *= 16777619
	}
	return p.shards[h%uint32(len(p.shards))]
}

// Run projects until ctx is done, then drains: events already fetched are
// applied (or naked) before it returns. It can be called once.
func (p *Projector) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("projector: Run called twice")
	}
	base := context.WithoutCancel(ctx)
	// quit ends the shards; messages still queued then are not acked and
	// come back after the consumer's AckWait (projection is idempotent).
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range p.shards {
		wg.Go(func() { s.run(base, quit) })
	}
	defer wg.Wait()
	defer close(quit)
	cc, err := p.consumer.Consume(func(m jetstream.Msg) {
		select {
		case p.shardOf(m.Subject()).queue <- m:
		case <-quit:
		}
	}, jetstream.PullMaxMessages(1024), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			p.log.Debug("projector consume", "error", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", topology.ConsumerProjector, err)
	}
	p.log.Info("projector running", "shards", p.cfg.Shards)
	<-ctx.Done()

	// Stop fetching; the callback finishes handing over what was fetched.
	if !p.cfg.Connected() {
		cc.Stop() // unacked events come back to the next projector
		return nil
	}
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(p.cfg.DrainTimeout):
		p.log.Warn("projector drain timed out")
		cc.Stop()
	}
	// Let the shards finish what is queued, within the same bound; a batch
	// a shard holds is finished before wg.Wait returns.
	deadline := time.After(p.cfg.DrainTimeout)
	for _, s := range p.shards {
		for len(s.queue) > 0 {
			select {
			case <-deadline:
				return nil
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}
