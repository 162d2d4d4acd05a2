package bots

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/services/ingest/internal/botindex"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
	"github.com/usherhq/usher/shared/ids"
	"github.com/usherhq/usher/shared/pubacks"
	"github.com/usherhq/usher/shared/topology"
)

// claim is an index key this create holds, at the revision it wrote.
type claim struct {
	key string
	rev uint64
}

// Request is one bot to create: its project, its validated spec and, over
// NATS, the request's Nats-Msg-Id.
type Request struct {
	Project string
	Spec    botrequest.Spec
	MsgID   string
}

// Created is a Request's outcome: the bot's document, or why it was not
// created.
type Created struct {
	Doc *botdoc.Doc
	Err error
}

// Create creates a bot: it claims the Nats-Msg-Id (msgID, NATS only) and
// deduplication_key indexes, writes the document with a KV Create, and
// publishes the join job — immediate on usher.jobs.<platform>, or scheduled
// on usher.schedules.<bot_id> for JetStream to fire at join_at. A
// *DuplicateError names the bot that already holds an index. When the job
// cannot be published everything is undone and the error wraps
// ErrUnavailable: nothing half-created, nothing accepted and lost.
func (s *Service) Create(ctx context.Context, project string, spec botrequest.Spec, msgID string) (*botdoc.Doc, error) {
	out := s.CreateMany(ctx, []Request{{Project: project, Spec: spec, MsgID: msgID}})
	return out[0].Doc, out[0].Err
}

// creation is one bot of CreateMany on its way.
type creation struct {
	doc    *botdoc.Doc
	data   []byte
	claims []claim
	rev    uint64
	err    error
	start  time.Time
}

// CreateMany creates bots as Create does, each with its own outcome, in
// the same order. The documents of all of them are written at once, then
// all their jobs: a round trip per batch instead of two per bot, which is
// most of what a create costs. A write that fails is retried, or undone,
// for its own bot exactly as Create would.
func (s *Service) CreateMany(ctx context.Context, reqs []Request) []Created {
	cs := make([]*creation, len(reqs))
	for i, r := range reqs {
		cs[i] = s.prepare(ctx, r)
	}
	s.storeDocs(ctx, cs)
	for _, c := range cs {
		if c.err == nil && s.cfg.OnCreated != nil {
			// Before the job exists, so before any event of the bot.
			s.cfg.OnCreated(c.doc, c.rev)
		}
	}
	s.publishJobs(ctx, cs)
	out := make([]Created, len(cs))
	for i, c := range cs {
		if c.err != nil {
			out[i].Err = c.err
			continue
		}
		out[i].Doc = c.doc
		s.metrics.create.Observe(time.Since(c.start).Seconds())
	}
	return out
}

// prepare makes a bot's document and claims its indexes.
func (s *Service) prepare(ctx context.Context, r Request) *creation {
	now := s.cfg.Now()
	c := &creation{start: time.Now(), doc: botdoc.New(r.Spec, r.Project, ids.NewBotID(now), now, s.cfg.JoinDeadline)}
	doc := c.doc
	if r.MsgID != "" {
		key := botdoc.MsgIDIndexKey(r.Project, r.MsgID)
		// A Nats-Msg-Id names one request forever: whatever became of its bot.
		rev, err := s.claimRetrying(ctx, r.Project, key, doc.ID, DuplicateMsgID, func(*botdoc.Doc) bool { return true })
		if err != nil {
			c.err = err
			return c
		}
		doc.MsgIDKey = key
		c.claims = append(c.claims, claim{key, rev})
	}
	if doc.DedupKey != "" {
		// A deduplication key is free again once its bot is finished.
		rev, err := s.claimRetrying(ctx, r.Project, doc.DedupKey, doc.ID, DuplicateDedupKey, func(d *botdoc.Doc) bool { return !d.State.Terminal() })
		if err != nil {
			s.rollback(ctx, undo{doc: doc, claims: c.claims})
			c.err = err
			return c
		}
		c.claims = append(c.claims, claim{doc.DedupKey, rev})
	}
	var err error
	if c.data, err = doc.Marshal(); err != nil {
		s.rollback(ctx, undo{doc: doc, claims: c.claims})
		c.err = err
	}
	return c
}

// storeDocs writes the documents with a KV Create each (the key's first
// revision), all sent before any is awaited. A write the burst could not
// make is made again the careful way: kv.Create, retried while it surely
// did not happen; a failure then undoes the bot.
func (s *Service) storeDocs(ctx context.Context, cs []*creation) {
	burst := s.burst(ctx, cs, func(c *creation) (*nats.Msg, []jetstream.PublishOpt) {
		msg := &nats.Msg{Subject: topology.BotsKeyPrefix + c.doc.Key(), Data: c.data}
		pubacks.ExpectLastSequence(msg, 0)
		return msg, nil
	})
	for i, c := range cs {
		if c.err != nil {
			continue
		}
		if burst[i].Err == nil {
			c.rev = burst[i].Ack.Sequence
			continue
		}
		// A refused compare-and-set is a KV Create over a deleted key's
		// marker: kv.Create knows what to do.
		if !notSent(burst[i].Err) && !pubacks.WrongLastSequence(burst[i].Err) {
			// A timeout may hide a write that landed: delete the key to be sure.
			s.rollback(ctx, undo{doc: c.doc, docWritten: true, claims: c.claims})
			c.err = unavailable(fmt.Sprintf("store bot %s", c.doc.ID), burst[i].Err)
			continue
		}
		err := s.retry(ctx, c.doc.ID, notSent, func(ctx context.Context) error {
			var err error
			c.rev, err = s.kv.Create(ctx, c.doc.Key(), c.data)
			return err
		})
		if err != nil {
			s.rollback(ctx, undo{doc: c.doc, docWritten: !notSent(err), claims: c.claims})
			c.err = unavailable(fmt.Sprintf("store bot %s", c.doc.ID), err)
		}
	}
}

// publishJobs publishes the join jobs, all sent before any is awaited; a
// job the burst could not publish is published the careful way
// (publishJob), and a failure then undoes its bot.
func (s *Service) publishJobs(ctx context.Context, cs []*creation) {
	burst := s.burst(ctx, cs, func(c *creation) (*nats.Msg, []jetstream.PublishOpt) {
		msg, opts, err := jobMessage(c.doc)
		if err != nil {
			return nil, nil
		}
		return msg, opts
	})
	for i, c := range cs {
		if c.err != nil {
			continue
		}
		err := burst[i].Err
		if err != nil && jobRetryable(err) {
			err = s.publishJob(ctx, c.doc)
		}
		if err != nil {
			s.rollback(ctx, undo{doc: c.doc, docWritten: true, claims: c.claims, jobMaybeQueued: !definite(err) && !notSent(err)})
			c.err = unavailable(fmt.Sprintf("publish job of bot %s", c.doc.ID), err)
			continue
		}
		s.metrics.jobs.WithLabelValues(jobKind(c.doc)).Inc()
	}
}

// errNotBurst marks a write the burst did not attempt (it could not be
// encoded): surely not sent, so it is made the careful way, which says why.
var errNotBurst = errors.New("not sent in the burst")

// burst publishes one message for each creation still going, every one
// before awaiting any, and returns what became of each (indexed like cs).
// Each is bounded by PublishAttemptTimeout, like one attempt of retry.
func (s *Service) burst(ctx context.Context, cs []*creation, msg func(*creation) (*nats.Msg, []jetstream.PublishOpt)) []pubacks.Result {
	out := make([]pubacks.Result, len(cs))
	futs := make([]jetstream.PubAckFuture, len(cs))
	for i, c := range cs {
		if c.err != nil {
			continue
		}
		m, opts := msg(c)
		if m == nil {
			out[i].Err = errNotBurst
			continue
		}
		futs[i], out[i].Err = s.js.PublishMsgAsync(m, opts...)
	}
	actx, cancel := context.WithTimeout(ctx, s.cfg.PublishAttemptTimeout)
	defer cancel()
	for i, r := range pubacks.Await(actx, futs) {
		if futs[i] != nil {
			out[i] = r
		}
	}
	return out
}

// claimRetrying is claim, retried while the connection is re-establishing.
func (s *Service) claimRetrying(ctx context.Context, project, key, botID string, kind DuplicateKind, counts func(*botdoc.Doc) bool) (uint64, error) {
	var rev uint64
	err := s.retry(ctx, botID, notSent, func(ctx context.Context) error {
		var err error
		rev, err = s.claim(ctx, project, key, botID, kind, counts)
		return err
	})
	return rev, err
}

// claim takes an index key for botID, or returns a *DuplicateError.
func (s *Service) claim(ctx context.Context, project, key, botID string, kind DuplicateKind, counts func(*botdoc.Doc) bool) (uint64, error) {
	var holderDoc *botdoc.Doc
	rev, err := botindex.Claim(ctx, s.kv, key, botID, func(ctx context.Context, holder string) (bool, error) {
		doc, err := s.Get(ctx, project, holder)
		switch {
		case errors.Is(err, ErrNotFound):
			// No document: either its create is in flight (the index is
			// written first) or it was rolled back or deleted.
			holderDoc = nil
			return s.cfg.Now().Sub(ids.BotIDTime(holder)) < s.cfg.InFlightGrace, nil
		case err != nil:
			return false, err
		}
		holderDoc = doc
		return counts(doc), nil
	})
	var held *botindex.HeldError
	if errors.As(err, &held) {
		return 0, &DuplicateError{Kind: kind, ExistingID: held.Holder, Existing: holderDoc}
	}
	if err != nil {
		return 0, unavailable("claim index", err)
	}
	return rev, nil
}

// jobMessage is the bot's join job and its publish options: immediate on
// usher.jobs.<platform>, or scheduled on usher.schedules.<bot_id>.
func jobMessage(doc *botdoc.Doc) (*nats.Msg, []jetstream.PublishOpt, error) {
	data, err := proto.Marshal(doc.Job())
	if err != nil {
		return nil, nil, fmt.Errorf("encode job: %w", err)
	}
	platform := doc.PlatformEnum()
	// Jobs are protobuf, the default without a Content-Type header.
	msg := &nats.Msg{Subject: topology.JobSubject(platform), Data: data, Header: make(nats.Header, 4)}
	pubacks.SetMsgID(msg, topology.JobMsgID(doc.ID))
	pubacks.ExpectStream(msg, topology.StreamJobs)
	var opts []jetstream.PublishOpt
	if doc.JoinAt != nil {
		msg.Subject = topology.ScheduleSubject(doc.ID)
		opts = append(opts,
			// @at has second resolution: rounding down would fire early.
			jetstream.WithScheduleAt(CeilSecond(*doc.JoinAt)),
			jetstream.WithScheduleTarget(topology.JobSubject(platform)))
	}
	return msg, opts, nil
}

func jobKind(doc *botdoc.Doc) string {
	if doc.JoinAt != nil {
		return kindScheduled
	}
	return kindImmediate
}

// jobRetryable: a job publish that surely did not happen, or may have, is
// retried with the same Nats-Msg-Id (JetStream drops a copy).
func jobRetryable(err error) bool { return notSent(err) || !definite(err) }

// publishJob publishes the bot's join job, retrying a transient failure with
// the same Nats-Msg-Id (so a retry of a publish that landed is a no-op).
func (s *Service) publishJob(ctx context.Context, doc *botdoc.Doc) error {
	msg, opts, err := jobMessage(doc)
	if err != nil {
		return err
	}
	// A timeout may hide a stored job: retrying with the same Nats-Msg-Id is
	// safe, JetStream drops the copy.
	return s.retry(ctx, doc.ID, jobRetryable, func(ctx context.Context) error {
		_, err := s.js.PublishMsg(ctx, msg, opts...)
		return err
	})
}

// retry runs op (each attempt bounded by PublishAttemptTimeout) until it
// succeeds, fails with an error retryable refuses, or PublishRetryFor is spent.
func (s *Service) retry(ctx context.Context, botID string, retryable func(error) bool, op func(context.Context) error) error {
	deadline := time.Now().Add(s.cfg.PublishRetryFor)
	backoff := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, s.cfg.PublishAttemptTimeout)
		err := op(actx)
		cancel()
		if err == nil {
			return nil
		}
		if !retryable(err) || ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			return err
		}
		s.log.Warn("jetstream write failed, retrying", "bot_id", botID, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// notSent reports whether a write failed before it left the process (the
// connection is re-establishing, or too many writes wait for their acks),
// so it surely did not happen.
func notSent(err error) bool {
	return errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrTooManyStalledMsgs) || errors.Is(err, errNotBurst)
}

// CeilSecond rounds t up to the next whole second.
func CeilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}

// definite reports whether a publish error means the message was surely not
// stored (the stream refused it, or nobody was there to receive it), as
// opposed to a timeout that may hide a stored message whose ack was lost.
func definite(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) || errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}
