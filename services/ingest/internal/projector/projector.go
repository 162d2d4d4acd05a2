// Package projector applies bot events from the EVENTS stream to the bot
// documents in the BOTS bucket (design.md "Projector"). It consumes the
// durable consumer "projector", shared by every ingest replica. Event seq n
// is applied only when the document's last_seq is n-1, with a
// compare-and-set on the document's revision: a redelivered event
// (seq ≤ last_seq) is acked and ignored, an early one (a gap) is naked with
// a short delay until its predecessor is in. So events are applied once and
// in order per bot, across restarts and replicas. Bots are spread over
// shards by subject, so different bots are projected in parallel while one
// bot's events stay in order. On a terminal event the bot's
// deduplication_key is released.
package projector

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/services/ingest/internal/botindex"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/ids"
	"github.com/usherhq/usher/shared/topology"
)

// Config tunes the projector. Zero fields take the defaults in their comments.
type Config struct {
	// Shards is how many bots are projected at once. Default 16.
	Shards int
	// CacheSize is how many documents (with revisions) are kept in memory
	// across shards, so the common path is one KV update per event. Default 16384.
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
	}{{&c.GapDelay, 250 * time.Millisecond}, {&c.RetryDelay, time.Second}, {&c.OrphanGrace, 30 * time.Second}, {&c.DrainTimeout, 10 * time.Second}} {
		if *d.p <= 0 {
			*d.p = d.v
		}
	}
}

// Projector projects events into documents.
type Projector struct {
	cfg      Config
	consumer jetstream.Consumer
	kv       jetstream.KeyValue
	log      *slog.Logger
	metrics  *projectorMetrics
}

// New returns a Projector on the topology's projector consumer and BOTS bucket.
func New(cfg Config, topo *topology.Topology, log *slog.Logger, reg prometheus.Registerer) *Projector {
	cfg.defaults()
	return &Projector{cfg: cfg, consumer: topo.Projector, kv: topo.Bots, log: log, metrics: newMetrics(reg)}
}

// Run projects until ctx is done, then drains: events already fetched are
// applied (or naked) before it returns.
func (p *Projector) Run(ctx context.Context) error {
	base := context.WithoutCancel(ctx)
	// quit ends the shards; messages still queued then are not acked and
	// come back after the consumer's AckWait (projection is idempotent).
	quit := make(chan struct{})
	queues := make([]chan jetstream.Msg, p.cfg.Shards)
	var wg sync.WaitGroup
	for i := range queues {
		q := make(chan jetstream.Msg, 64)
		queues[i] = q
		s := &shard{p: p, cache: newCache(max(p.cfg.CacheSize/p.cfg.Shards, 16))}
		wg.Go(func() {
			for {
				select {
				case m := <-q:
					s.handle(base, m)
				case <-quit:
					return
				}
			}
		})
	}
	defer wg.Wait()
	defer close(quit)
	cc, err := p.consumer.Consume(func(m jetstream.Msg) {
		h := fnv.New32a()
		_, _ = h.Write([]byte(m.Subject()))
		select {
		case queues[h.Sum32()%uint32(len(queues))] <- m:
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
	// Let the shards finish what is queued, within the same bound.
	deadline := time.After(p.cfg.DrainTimeout)
	for _, q := range queues {
		for len(q) > 0 {
			select {
			case <-deadline:
				return nil
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// shard projects the bots hashed to it, one event at a time.
type shard struct {
	p     *Projector
	cache *cache
}

func (s *shard) handle(ctx context.Context, m jetstream.Msg) {
	p := s.p
	if md, err := m.Metadata(); err == nil {
		p.metrics.pending.Set(float64(md.NumPending))
	}
	ev, err := botevents.Decode(m.Data())
	if err != nil || topology.EventSubject(ev.GetProject(), ev.GetBotId()) != m.Subject() {
		p.log.Error("undecodable bot event", "subject", m.Subject(), "error", err)
		_ = m.Term()
		p.metrics.events.WithLabelValues(outcomeInvalid).Inc()
		return
	}
	outcome := s.apply(ctx, ev)
	switch outcome {
	case outcomeApplied, outcomeDuplicate, outcomeOrphan:
		_ = m.Ack()
	case outcomeGap:
		_ = m.NakWithDelay(p.cfg.GapDelay)
	case outcomeRetry:
		_ = m.NakWithDelay(p.cfg.RetryDelay)
	}
	p.metrics.events.WithLabelValues(outcome).Inc()
	if outcome == outcomeApplied && ev.GetAt() != nil {
		p.metrics.lag.Observe(time.Since(ev.GetAt().AsTime()).Seconds())
	}
}

// apply applies ev to its document and says what happened.
func (s *shard) apply(ctx context.Context, ev *usherv1.BotEvent) string {
	p := s.p
	key := topology.BotKey(ev.GetProject(), ev.GetBotId())
	for range 4 {
		doc, rev, err := s.load(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if time.Since(ids.BotIDTime(ev.GetBotId())) < p.cfg.OrphanGrace {
				return outcomeRetry
			}
			p.log.Debug("event of a bot without document ignored", "bot_id", ev.GetBotId(), "seq", ev.GetSeq())
			return outcomeOrphan
		}
		if err != nil {
			p.log.Warn("read bot document", "bot_id", ev.GetBotId(), "error", err)
			return outcomeRetry
		}
		next, outcome := doc.Apply(ev)
		switch outcome {
		case botdoc.Duplicate:
			if doc.State.Terminal() && !s.release(ctx, doc) {
				return outcomeRetry
			}
			return outcomeDuplicate
		case botdoc.Gap:
			return outcomeGap
		}
		data, err := next.Marshal()
		if err != nil {
			p.log.Error("encode bot document", "bot_id", ev.GetBotId(), "error", err)
			return outcomeRetry
		}
		newRev, err := p.kv.Update(ctx, key, data, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			s.cache.drop(key) // another writer: read again
			continue
		}
		if err != nil {
			s.cache.drop(key)
			p.log.Warn("update bot document", "bot_id", ev.GetBotId(), "error", err)
			return outcomeRetry
		}
		s.cache.put(key, next, newRev)
		if next.State.Terminal() && !s.release(ctx, next) {
			// The document is updated; the redelivery is a duplicate that
			// retries the release.
			return outcomeRetry
		}
		return outcomeApplied
	}
	return outcomeRetry
}

func (s *shard) load(ctx context.Context, key string) (*botdoc.Doc, uint64, error) {
	if doc, rev, ok := s.cache.get(key); ok {
		return doc, rev, nil
	}
	entry, err := s.p.kv.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	doc, err := botdoc.Unmarshal(entry.Value())
	if err != nil {
		return nil, 0, err
	}
	s.cache.put(key, doc, entry.Revision())
	return doc, entry.Revision(), nil
}

// release frees the deduplication_key of a finished bot.
func (s *shard) release(ctx context.Context, doc *botdoc.Doc) bool {
	if doc.DedupKey == "" {
		return true
	}
	if err := botindex.Release(ctx, s.p.kv, doc.DedupKey, doc.ID); err != nil {
		s.p.log.Warn("release deduplication key", "bot_id", doc.ID, "error", err)
		return false
	}
	return true
}
