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
	"github.com/usherhq/usher/shared/topology"
)

// claim is an index key this create holds, at the revision it wrote.
type claim struct {
	key string
	rev uint64
}

// Create creates a bot: it claims the Nats-Msg-Id (msgID, NATS only) and
// deduplication_key indexes, writes the document with a KV Create, and
// publishes the join job — immediate on usher.jobs.<platform>, or scheduled
// on usher.schedules.<bot_id> for JetStream to fire at join_at. A
// *DuplicateError names the bot that already holds an index. When the job
// cannot be published everything is undone and the error wraps
// ErrUnavailable: nothing half-created, nothing accepted and lost.
func (s *Service) Create(ctx context.Context, project string, spec botrequest.Spec, msgID string) (*botdoc.Doc, error) {
	start := time.Now()
	now := s.cfg.Now()
	doc := botdoc.New(spec, project, ids.NewBotID(now), now, s.cfg.JoinDeadline)

	var claims []claim
	if msgID != "" {
		key := botdoc.MsgIDIndexKey(project, msgID)
		// A Nats-Msg-Id names one request forever: whatever became of its bot.
		rev, err := s.claimRetrying(ctx, project, key, doc.ID, DuplicateMsgID, func(*botdoc.Doc) bool { return true })
		if err != nil {
			return nil, err
		}
		doc.MsgIDKey = key
		claims = append(claims, claim{key, rev})
	}
	if doc.DedupKey != "" {
		// A deduplication key is free again once its bot is finished.
		rev, err := s.claimRetrying(ctx, project, doc.DedupKey, doc.ID, DuplicateDedupKey, func(d *botdoc.Doc) bool { return !d.State.Terminal() })
		if err != nil {
			s.rollback(ctx, undo{doc: doc, claims: claims})
			return nil, err
		}
		claims = append(claims, claim{doc.DedupKey, rev})
	}

	data, err := doc.Marshal()
	if err != nil {
		s.rollback(ctx, undo{doc: doc, claims: claims})
		return nil, err
	}
	var rev uint64
	err = s.retry(ctx, doc.ID, notSent, func(ctx context.Context) error {
		var err error
		rev, err = s.kv.Create(ctx, doc.Key(), data)
		return err
	})
	if err != nil {
		// A timeout may hide a write that landed: delete the key to be sure.
		s.rollback(ctx, undo{doc: doc, docWritten: !notSent(err), claims: claims})
		return nil, unavailable(fmt.Sprintf("store bot %s", doc.ID), err)
	}
	if s.cfg.OnCreated != nil {
		// Before the job exists, so before any event of the bot.
		s.cfg.OnCreated(doc, rev)
	}
	if err := s.publishJob(ctx, doc); err != nil {
		s.rollback(ctx, undo{doc: doc, docWritten: true, claims: claims, jobMaybeQueued: !definite(err) && !notSent(err)})
		return nil, unavailable(fmt.Sprintf("publish job of bot %s", doc.ID), err)
	}
	s.metrics.create.Observe(time.Since(start).Seconds())
	return doc, nil
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

// publishJob publishes the bot's join job, retrying a transient failure with
// the same Nats-Msg-Id (so a retry of a publish that landed is a no-op).
func (s *Service) publishJob(ctx context.Context, doc *botdoc.Doc) error {
	data, err := proto.Marshal(doc.Job())
	if err != nil {
		return fmt.Errorf("encode job: %w", err)
	}
	platform := doc.PlatformEnum()
	msg := &nats.Msg{
		Subject: topology.JobSubject(platform),
		Data:    data,
		Header:  nats.Header{topology.HeaderContentType: []string{topology.ContentTypeProtobuf}},
	}
	opts := []jetstream.PublishOpt{
		jetstream.WithMsgID(topology.JobMsgID(doc.ID)),
		jetstream.WithExpectStream(topology.StreamJobs),
	}
	kind := kindImmediate
	if doc.JoinAt != nil {
		kind = kindScheduled
		msg.Subject = topology.ScheduleSubject(doc.ID)
		opts = append(opts,
			// @at has second resolution: rounding down would fire early.
			jetstream.WithScheduleAt(CeilSecond(*doc.JoinAt)),
			jetstream.WithScheduleTarget(topology.JobSubject(platform)))
	}
	// A timeout may hide a stored job: retrying with the same Nats-Msg-Id is
	// safe, JetStream drops the copy.
	err = s.retry(ctx, doc.ID, func(err error) bool { return notSent(err) || !definite(err) }, func(ctx context.Context) error {
		_, err := s.js.PublishMsg(ctx, msg, opts...)
		return err
	})
	if err != nil {
		return err
	}
	s.metrics.jobs.WithLabelValues(kind).Inc()
	return nil
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
// connection is re-establishing), so it surely did not happen.
func notSent(err error) bool {
	return errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
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
