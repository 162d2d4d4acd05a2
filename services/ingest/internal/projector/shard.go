package projector

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/services/ingest/internal/botindex"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/ids"
	"github.com/usherhq/usher/shared/pubacks"
	"github.com/usherhq/usher/shared/topology"
)

// shardQueue is the capacity of a shard's queue, and the most events a
// shard takes in one batch.
const shardQueue = 256

// shard projects the bots hashed to it: it takes every event waiting in its
// queue at once and holds each bot's events back for Config.Linger after
// the first arrived, so that events a moment apart (joining, then joined)
// are applied in one document write.
type shard struct {
	p     *Projector
	queue chan jetstream.Msg

	mu    sync.Mutex // guards cache
	cache *cache
}

// delivery is one event in hand, with the message to settle.
type delivery struct {
	msg jetstream.Msg
	ev  *usherv1.BotEvent
}

// botBatch is the held events of one bot, in the order they arrived.
type botBatch struct {
	key   string
	since time.Time // when the first of them arrived
	dels  []delivery
}

func (s *shard) run(ctx context.Context, quit <-chan struct{}) {
	linger := s.p.cfg.Linger
	batch := make([]jetstream.Msg, 0, shardQueue)
	var held holding
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var due <-chan time.Time
		if held.events > 0 {
			timer.Reset(time.Until(held.oldest().Add(linger)))
			due = timer.C
		}
		select {
		case m := <-s.queue:
			batch = append(batch[:0], m)
		gather:
			for len(batch) < cap(batch) {
				select {
				case m := <-s.queue:
					batch = append(batch, m)
				default:
					break gather
				}
			}
			s.hold(batch, &held, time.Now())
			clear(batch) // hold no message until the next batch
		case <-due:
		case <-quit:
			// Events held back are projected before the shard stops, as
			// a drain promises; without NATS they come back after AckWait.
			if held.events > 0 && s.p.cfg.Connected() {
				s.project(ctx, held.take(time.Now(), 0))
			}
			return
		}
		if bots := held.take(time.Now().Add(-linger), maxHeld); len(bots) > 0 {
			s.project(ctx, bots)
		}
	}
}

// maxHeld bounds the events a shard holds back: past it, the oldest bots
// are projected at once.
const maxHeld = 2048

// holding is the bots whose events a shard holds back, in the order their
// first held event arrived.
type holding struct {
	order  []*botBatch
	byKey  map[string]*botBatch
	events int
}

// oldest is when the first held event arrived.
func (h *holding) oldest() time.Time { return h.order[0].since }

// take removes and returns the bots held since cutoff or earlier, and the
// oldest others while more than limit events stay held.
func (h *holding) take(cutoff time.Time, limit int) []*botBatch {
	n := 0
	for n < len(h.order) && (!h.order[n].since.After(cutoff) || h.events > limit) {
		h.events -= len(h.order[n].dels)
		delete(h.byKey, h.order[n].key)
		n++
	}
	if n == 0 {
		return nil
	}
	out := slices.Clone(h.order[:n])
	h.order = slices.Delete(h.order, 0, n)
	return out
}

// hold decodes a batch and adds each event to its bot's held events, in
// arrival order. An undecodable event is terminated at once.
func (s *shard) hold(msgs []jetstream.Msg, h *holding, now time.Time) {
	p := s.p
	if md, err := msgs[len(msgs)-1].Metadata(); err == nil {
		p.metrics.pending.Set(float64(md.NumPending))
	}
	if h.byKey == nil {
		h.byKey = make(map[string]*botBatch, len(msgs))
	}
	for _, m := range msgs {
		ev, err := botevents.Decode(m.Data())
		if err != nil || topology.EventSubject(ev.GetProject(), ev.GetBotId()) != m.Subject() {
			p.log.Error("undecodable bot event", "subject", m.Subject(), "error", err)
			_ = m.Term()
			p.metrics.events[outcomeInvalid].Inc()
			continue
		}
		key := topology.BotKey(ev.GetProject(), ev.GetBotId())
		b := h.byKey[key]
		if b == nil {
			b = &botBatch{key: key, since: now}
			h.byKey[key] = b
			h.order = append(h.order, b)
		}
		b.dels = append(b.dels, delivery{msg: m, ev: ev})
		h.events++
	}
}

// project writes the documents of the bots taken from holding, then settles
// every message by its own outcome.
func (s *shard) project(ctx context.Context, bots []*botBatch) {
	p := s.p
	// Every bot's write is sent before any is awaited: one round trip for
	// the batch instead of one per bot. A bot whose write is refused or
	// unanswered is projected again the careful way (apply), which reads
	// the document and decides afresh.
	var writes []*write
	var futs []jetstream.PubAckFuture
	for _, b := range bots {
		out, w := s.attempt(ctx, b.key, b.dels)
		switch {
		case out != nil:
			s.settleAll(b, out)
			continue
		case w != nil:
			m := w.msg()
			pubacks.ExpectLastSequence(m, w.rev)
			if fut, err := p.js.PublishMsgAsync(m); err == nil {
				w.b = b
				writes, futs = append(writes, w), append(futs, fut)
				continue
			}
		}
		s.settleAll(b, s.apply(ctx, b.key, b.dels))
	}
	if len(writes) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	defer cancel()
	for i, r := range pubacks.Await(wctx, futs) {
		w := writes[i]
		if r.Err != nil {
			s.drop(w.b.key)
			s.settleAll(w.b, s.apply(ctx, w.b.key, w.b.dels))
			continue
		}
		s.settleAll(w.b, s.written(ctx, w, r.Ack.Sequence))
	}
}

// settleAll settles a bot's events by their outcomes.
func (s *shard) settleAll(b *botBatch, outcomes []string) {
	for i, d := range b.dels {
		s.settle(d, outcomes[i])
	}
}

// settle acks or naks one event by its outcome.
func (s *shard) settle(d delivery, outcome string) {
	p := s.p
	switch outcome {
	case outcomeApplied, outcomeDuplicate, outcomeOrphan:
		_ = d.msg.Ack()
	case outcomeGap:
		_ = d.msg.NakWithDelay(p.cfg.GapDelay)
	case outcomeRetry:
		_ = d.msg.NakWithDelay(p.cfg.RetryDelay)
	}
	p.metrics.events[outcome].Inc()
	if outcome == outcomeApplied && d.ev.GetAt() != nil {
		p.metrics.lag.Observe(time.Since(d.ev.GetAt().AsTime()).Seconds())
	}
}

// apply applies one bot's events, in order, to its document with a single
// write, and returns each event's outcome. An event is applied only after
// its predecessor (in the document, or earlier in dels); one already in the
// document or earlier in dels is a duplicate; any other is a gap. Nothing
// is acked before the write that holds it succeeded.
func (s *shard) apply(ctx context.Context, key string, dels []delivery) []string {
	p := s.p
	for range 4 {
		out, w := s.attempt(ctx, key, dels)
		if out != nil {
			return out
		}
		if w == nil {
			continue // the cached document was stale: read it again
		}
		rev, err := p.kv.Update(ctx, key, w.data, w.rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			s.drop(key) // another writer: read again
			continue
		}
		if err != nil {
			s.drop(key)
			p.log.Warn("update bot document", "bot_id", w.next.ID, "error", err)
			return retryAll(w.out)
		}
		return s.written(ctx, w, rev)
	}
	return fill(make([]string, len(dels)), outcomeRetry)
}

// write is a bot's new document on its way to the bucket, with the
// outcomes its events get once it is stored.
type write struct {
	key  string
	data []byte
	rev  uint64 // the revision it replaces
	next *botdoc.Doc
	last int // index of the last applied event
	out  []string

	b *botBatch // pipelined writes only
}

// msg is the write as a message on the key's subject; sent expecting rev
// as the subject's last sequence, it is what jetstream.KeyValue.Update sends.
func (w *write) msg() *nats.Msg {
	return &nats.Msg{Subject: topology.BotsKeyPrefix + w.key, Data: w.data}
}

// attempt works out what one bot's events do to its document: either their
// outcomes (nothing to write), or the write that applies them, or neither
// when a cached document proved stale (dropped: the caller reads again).
func (s *shard) attempt(ctx context.Context, key string, dels []delivery) ([]string, *write) {
	p := s.p
	out := make([]string, len(dels))
	botID := dels[0].ev.GetBotId()
	doc, rev, cached, err := s.load(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		if time.Since(ids.BotIDTime(botID)) < p.cfg.OrphanGrace {
			return fill(out, outcomeRetry), nil
		}
		p.log.Debug("event of a bot without document ignored", "bot_id", botID, "events", len(dels))
		return fill(out, outcomeOrphan), nil
	}
	if err != nil {
		p.log.Warn("read bot document", "bot_id", botID, "error", err)
		return fill(out, outcomeRetry), nil
	}
	next, last, gaps, dups := doc, -1, false, false
	for i, d := range dels {
		applied, outcome := next.Apply(d.ev)
		switch outcome {
		case botdoc.Applied:
			next, last, out[i] = applied, i, outcomeApplied
		case botdoc.Duplicate:
			out[i], dups = outcomeDuplicate, true
		case botdoc.Gap:
			out[i], gaps = outcomeGap, true
		}
	}
	if gaps && cached {
		// A cached document may be behind the bucket (another replica
		// projected since): only a document just read proves a gap.
		s.drop(key)
		return nil, nil
	}
	if last < 0 {
		// Nothing new. A finished bot's key may still need releasing.
		if dups && doc.State.Terminal() && !s.release(ctx, doc) {
			replace(out, outcomeDuplicate, outcomeRetry)
		}
		return out, nil
	}
	data, err := next.Marshal()
	if err != nil {
		p.log.Error("encode bot document", "bot_id", botID, "error", err)
		return retryAll(out), nil
	}
	return nil, &write{key: key, data: data, rev: rev, next: next, last: last, out: out}
}

// written records a stored write at its new revision and returns the
// outcomes of its events.
func (s *shard) written(ctx context.Context, w *write, rev uint64) []string {
	s.put(w.key, w.next, rev)
	s.p.metrics.writes.Inc()
	if w.next.State.Terminal() && !s.release(ctx, w.next) {
		// The document is updated; the redelivery of the event that
		// finished the bot is a duplicate that retries the release.
		w.out[w.last] = outcomeRetry
	}
	return w.out
}

// load returns the document and its revision, from the cache when it is
// there (cached reports which).
func (s *shard) load(ctx context.Context, key string) (doc *botdoc.Doc, rev uint64, cached bool, err error) {
	s.mu.Lock()
	doc, rev, ok := s.cache.get(key)
	s.mu.Unlock()
	if ok {
		return doc, rev, true, nil
	}
	entry, err := s.p.kv.Get(ctx, key)
	if err != nil {
		return nil, 0, false, err
	}
	doc, err = botdoc.Unmarshal(entry.Value())
	if err != nil {
		return nil, 0, false, err
	}
	s.put(key, doc, entry.Revision())
	return doc, entry.Revision(), false, nil
}

func (s *shard) put(key string, doc *botdoc.Doc, rev uint64) {
	s.mu.Lock()
	s.cache.put(key, doc, rev)
	s.mu.Unlock()
}

func (s *shard) drop(key string) {
	s.mu.Lock()
	s.cache.drop(key)
	s.mu.Unlock()
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

func fill(out []string, outcome string) []string {
	for i := range out {
		out[i] = outcome
	}
	return out
}

func replace(out []string, from, to string) {
	for i, o := range out {
		if o == from {
			out[i] = to
		}
	}
}

// retryAll marks every event but the gaps for a retry: a failed write
// settled none of them.
func retryAll(out []string) []string {
	for i, o := range out {
		if o != outcomeGap {
			out[i] = outcomeRetry
		}
	}
	return out
}
