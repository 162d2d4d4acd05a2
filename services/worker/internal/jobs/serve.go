package jobs

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/topology"
)

// serve takes one delivered job through its whole life in this worker. It
// owns one slot, given back on return.
func (r *Runtime) serve(base context.Context, d *delivery) {
	defer r.slots.release(1)
	defer r.met.busy.Dec()
	switch {
	case d.err != nil:
		r.log.Error("job without jetstream metadata terminated", "error", d.err)
		_ = d.msg.TermWithReason(botstate.SubInvalidJob)
		return
	case d.invalid != nil:
		r.rejectInvalid(base, d.msg, d.md, d.idents, d.invalid)
		return
	}
	b := d.b
	defer d.cancel(nil)
	switch d.reg {
	case regDraining:
		r.handBack(base, b)
		return
	case regDuplicate:
		r.leaseHeld(base, b)
		return
	}
	defer r.unregister(b)

	if d.claimed {
		if !r.claimed(base, b, d.md, b.lease, d.claimErr) {
			return
		}
	} else if !r.claim(base, b, d.md) {
		return
	}
	defer r.releaseLease(base, b)

	// A job delivered for the first time is almost always a new bot with no
	// event yet: its joining is published as event 1 straight away, and
	// botevents' compare-and-set (expected last sequence 0) refuses it if
	// anyone wrote first. Only then, or for any other delivery, is the
	// bot's last event read before deciding.
	optimistic := d.md.NumDelivered == 1 && !b.lease.TakenOver()
	if !optimistic && !r.resume(base, b) {
		return
	}

	var run bool
	var err error
	switch {
	case d.started:
		run = true
	case d.startErr != nil:
		err = d.startErr
	default:
		run, err = r.start(base, b, optimistic)
	}
	if errors.Is(err, errNotFirst) {
		r.met.firstConflicts.Inc()
		if !r.resume(base, b) {
			return
		}
		run, err = r.start(base, b, false)
	}
	if run {
		err = r.handle(d.ctx, b)
	}
	r.finish(base, b, err)
}

// errNotFirst: an optimistic first event found the bot with events already.
var errNotFirst = errors.New("bot has events already")

// resume reads the bot's last event into b and settles a bot that must not
// be started: finished (acked) or leaving (ended). It returns whether the
// bot should be started.
func (r *Runtime) resume(base context.Context, b *Bot) bool {
	ctx, cancelOp := r.opCtx(base)
	cur, err := r.events.Last(ctx, b.job.GetProject(), b.job.GetBotId(), initialState(b.job))
	cancelOp()
	if err != nil {
		r.finish(base, b, fmt.Errorf("read last event: %w", err))
		return false
	}
	b.setCursor(cur)
	switch {
	case cur.State.Terminal():
		b.log.Info("job of a finished bot acked", "state", cur.State)
		r.ack(b)
		return false
	case cur.State == botstate.Leaving:
		// Its worker died while leaving: the meeting is over for the bot.
		r.finish(base, b, r.endLeaving(base, b))
		return false
	}
	return true
}

// handle runs the handler; a panic fails the bot (internal_error) instead of
// taking every other bot of the worker down with it.
func (r *Runtime) handle(ctx context.Context, b *Bot) (err error) {
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("handler panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = Permanent(botstate.SubInternalError, fmt.Errorf("handler panic: %v", p))
		}
	}()
	return r.handler.Handle(ctx, b)
}

// start moves the bot to joining (unless it already is) and reports whether
// the handler should run. optimistic publishes joining as the bot's first
// event without having read its last one: errNotFirst when the bot had one.
func (r *Runtime) start(base context.Context, b *Bot, optimistic bool) (bool, error) {
	ctx, cancel := r.opCtx(base)
	defer cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.usableLocked(); err != nil {
		return false, err
	}
	if b.leaveAsked {
		// A leave command came in before the bot started: it is leaving.
		return false, b.publishLocked(ctx, botstate.Ended, b.leaveSub, nil)
	}
	if dl := b.job.GetJoinDeadline(); dl != nil && time.Now().After(dl.AsTime()) {
		return false, Permanent(botstate.SubJoinDeadlineExceeded, fmt.Errorf("join deadline %s passed", dl.AsTime().Format(time.RFC3339)))
	}
	var meta map[string]string
	switch b.cur.State {
	case botstate.Joining:
		return true, nil
	case botstate.Joined, botstate.WaitingRoom:
		meta = map[string]string{"reason": "redelivered"}
	}
	if b.lease != nil && b.lease.TakenOver() {
		meta = map[string]string{"reason": botstate.SubWorkerShutdown}
	}
	if optimistic {
		return b.publishFirstLocked(ctx)
	}
	if err := b.publishLocked(ctx, botstate.Joining, "", meta); err != nil {
		return false, err
	}
	return true, nil
}

// finish turns the handler's result into the job's fate.
func (r *Runtime) finish(base context.Context, b *Bot, err error) {
	cur, lost := b.snapshot()
	acked := b.acked.Load()
	switch {
	case lost || errors.Is(err, ErrLeaseLost):
		// Another worker may own the bot now: write nothing for it.
		b.log.Warn("bot stopped: lease lost", "state", cur.State)
		r.met.disps.WithLabelValues(dispAbandoned).Inc()
		if !acked && !b.last {
			_ = b.msg.NakWithDelay(r.topo.Config.LeaseTTL)
		}
		return
	case errors.Is(err, ErrBotFinished):
		b.log.Info("bot finished by another writer", "error", err)
		r.ack(b)
		return
	case cur.State.Terminal():
		if err != nil {
			b.log.Warn("handler error after the bot finished", "state", cur.State, "error", err)
		}
		r.met.outcomes.WithLabelValues(string(cur.State), subLabel(b.lastSub())).Inc()
		r.ack(b)
		return
	case errors.Is(err, ErrHandOff) && acked && cur.State != botstate.Leaving:
		r.handOff(base, b)
		return
	case errors.Is(err, ErrDraining) && !acked:
		r.handBack(base, b)
		return
	case err == nil:
		err = fmt.Errorf("handler returned with the bot %s", cur.State)
	}

	if f, ok := AsFailure(err); ok {
		r.fail(base, b, f.SubCode, f.Meta, err)
		return
	}
	if re, ok := AsRetry(err); ok {
		if acked || b.last || pastDeadline(b.job, re.After) {
			r.fail(base, b, re.SubCode, nil, err)
			return
		}
		r.retry(base, b, re.After, re.SubCode, err)
		return
	}
	switch delay := r.backoff(b.delivery); {
	case acked:
		r.fail(base, b, botstate.SubInternalError, nil, err)
	case b.last:
		r.fail(base, b, botstate.SubMaxDeliveriesExceeded, nil, err)
	case pastDeadline(b.job, delay):
		r.fail(base, b, botstate.SubJoinDeadlineExceeded, nil, err)
	default:
		r.retry(base, b, delay, "", err)
	}
}

// fail publishes failed/subCode and terminates the job.
func (r *Runtime) fail(base context.Context, b *Bot, subCode string, meta map[string]string, cause error) {
	b.log.Warn("bot failed", "sub_code", subCode, "error", cause)
	ctx, cancel := r.opCtx(base)
	defer cancel()
	b.mu.Lock()
	err := b.publishLocked(ctx, botstate.Failed, subCode, meta)
	b.mu.Unlock()
	acked := b.acked.Load()
	switch {
	case errors.Is(err, ErrBotFinished):
		r.ack(b)
		return
	case err != nil:
		b.log.Error("failed event not published", "sub_code", subCode, "error", err)
		if acked {
			// Let the lease expire: the reaper records worker_lost.
			if b.lease != nil {
				b.lease.Abandon()
			}
			r.met.disps.WithLabelValues(dispAbandoned).Inc()
			return
		}
		if b.last {
			// Never nak the last delivery: the max-deliveries advisory fails the bot.
			r.met.disps.WithLabelValues(dispAbandoned).Inc()
			return
		}
		r.retry(base, b, r.backoff(b.delivery), "", err)
		return
	}
	r.met.outcomes.WithLabelValues(string(botstate.Failed), subLabel(subCode)).Inc()
	if !acked {
		if err := b.msg.TermWithReason(subCode); err != nil {
			b.log.Warn("terminate job failed", "error", err)
		}
		r.met.disps.WithLabelValues(dispTerminated).Inc()
	}
}

// retry hands the job back for redelivery after delay, freeing the slot and
// the lease while it waits.
func (r *Runtime) retry(base context.Context, b *Bot, delay time.Duration, subCode string, cause error) {
	b.log.Info("job retried", "delay", delay, "sub_code", subCode, "delivery", b.delivery, "error", cause)
	r.releaseLease(base, b)
	if err := b.msg.NakWithDelay(delay); err != nil {
		b.log.Warn("nak failed", "error", err)
	}
	r.met.retries.WithLabelValues(subLabel(subCode)).Inc()
	r.met.disps.WithLabelValues(dispRetried).Inc()
}

// handBack returns a job that has not joined to the queue at once (the
// worker is draining). The last delivery cannot be naked, so it is
// republished as a new job instead.
func (r *Runtime) handBack(base context.Context, b *Bot) {
	r.releaseLease(base, b)
	r.met.disps.WithLabelValues(dispHandedBack).Inc()
	if !b.last {
		if err := b.msg.Nak(); err != nil {
			b.log.Warn("hand back failed", "error", err)
		}
		b.log.Info("job handed back")
		return
	}
	cur, _ := b.snapshot()
	if err := r.publishJob(base, b.job, cur.Seq); err != nil {
		b.log.Error("hand back of last delivery failed", "error", err)
		return
	}
	r.ack(b)
	b.log.Info("job handed back as a new job")
}

// handOff moves a bot that left its meeting (drain timeout) to another
// worker: mark the lease handed off, publish a hand-off job, and record
// joined → joining (reason worker_shutdown).
func (r *Runtime) handOff(base context.Context, b *Bot) {
	ctx, cancel := r.opCtx(base)
	defer cancel()
	if err := b.lease.HandOff(ctx); err != nil {
		b.log.Error("hand off: lease not marked; the bot is left to the reaper", "error", err)
		r.met.disps.WithLabelValues(dispAbandoned).Inc()
		return
	}
	cur, _ := b.snapshot()
	if err := r.publishJob(base, b.job, cur.Seq); err != nil {
		// The lease expires unrenewed and the reaper fails the bot.
		b.log.Error("hand-off job not published", "error", err)
		r.met.disps.WithLabelValues(dispAbandoned).Inc()
		return
	}
	r.met.disps.WithLabelValues(dispHandedOff).Inc()
	if cur.State == botstate.Joining {
		return
	}
	_, _, err := r.events.Publish(ctx, cur, botevents.Change{
		To:          botstate.Joining,
		Meta:        map[string]string{"reason": botstate.SubWorkerShutdown},
		BotMetadata: b.job.GetMetadata(),
	})
	switch {
	case errors.Is(err, botevents.ErrConflict):
		// The next worker already picked the bot up and moved it.
	case err != nil:
		b.log.Warn("hand-off event not published; the next worker records it", "error", err)
	default:
		r.met.events.WithLabelValues(string(botstate.Joining)).Inc()
	}
	b.log.Info("bot handed off")
}

// publishJob publishes a copy of job as a hand-off (or hand-back) job with
// a fresh join window, deduplicated on job:<bot_id>:h<seq>.
func (r *Runtime) publishJob(base context.Context, job *usherv1.JoinJob, seq uint64) error {
	next := handOffJob(job, r.cfg.HandOffWindow, time.Now())
	var err error
	for attempt := range 3 {
		ctx, cancel := r.opCtx(base)
		err = publishJoinJob(ctx, r.js, next, topology.HandOffMsgID(job.GetBotId(), seq))
		cancel()
		if err == nil {
			return nil
		}
		pause(base, time.Duration(attempt+1)*100*time.Millisecond)
	}
	return err
}

// leaseHeld deals with a job whose bot another worker holds.
func (r *Runtime) leaseHeld(base context.Context, b *Bot) {
	ctx, cancel := r.opCtx(base)
	defer cancel()
	cur, err := r.events.Last(ctx, b.job.GetProject(), b.job.GetBotId(), initialState(b.job))
	switch {
	case err != nil:
		b.log.Warn("read last event of a held bot", "error", err)
		if !b.last {
			_ = b.msg.NakWithDelay(r.topo.Config.LeaseTTL)
		}
		return
	case cur.State.Terminal(), b.last && (cur.State == botstate.Joined || cur.State == botstate.Leaving):
		// Done, or in its meeting under the holder's lease (a lost ack).
		r.ack(b)
		return
	case b.last:
		b.setCursor(cur)
		r.fail(base, b, botstate.SubMaxDeliveriesExceeded, nil, errors.New("last delivery while another worker holds the bot"))
		return
	}
	b.log.Info("bot held by another worker; job delayed", "delay", r.topo.Config.LeaseTTL)
	r.met.disps.WithLabelValues(dispHeld).Inc()
	_ = b.msg.NakWithDelay(r.topo.Config.LeaseTTL)
}

// endLeaving ends a bot found in leaving: its worker died while leaving.
func (r *Runtime) endLeaving(base context.Context, b *Bot) error {
	ctx, cancel := r.opCtx(base)
	defer cancel()
	sub := botstate.SubUserRequested
	raw, err := r.topo.Events.GetLastMsgForSubject(ctx, topology.EventSubject(b.job.GetProject(), b.job.GetBotId()))
	if err == nil {
		if ev, err := botevents.Decode(raw.Data); err == nil && ev.GetSubCode() != "" {
			sub = ev.GetSubCode()
		}
	}
	return b.Transition(ctx, botstate.Ended, sub, nil)
}

// rejectInvalid terminates a job that cannot be served, failing its bot
// with invalid_job when the bot can be read from it.
func (r *Runtime) rejectInvalid(base context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, idents JobIDs, cause error) {
	log := r.log
	if idents.Readable() {
		log = log.With("bot_id", idents.BotID, "project", idents.Project)
		ctx, cancel := r.opCtx(base)
		defer cancel()
		err := r.failUnheld(ctx, idents, botstate.SubInvalidJob)
		if err != nil && !errors.Is(err, ErrBotFinished) {
			log.Warn("invalid job: failed event not published", "error", err)
			if r.maxDeliver == 0 || md.NumDelivered < r.maxDeliver {
				_ = msg.NakWithDelay(r.backoff(md.NumDelivered))
				return
			}
		}
	}
	log.Warn("invalid job terminated", "error", cause)
	_ = msg.TermWithReason(botstate.SubInvalidJob)
	r.met.disps.WithLabelValues(dispTerminated).Inc()
}

// failUnheld fails a bot this worker does not serve (no lease, no job
// decoded): read its last event and publish failed unless it is finished.
func (r *Runtime) failUnheld(ctx context.Context, idents JobIDs, subCode string) error {
	cur, err := r.events.Last(ctx, idents.Project, idents.BotID, botstate.Ready)
	if err != nil {
		return err
	}
	if cur.State.Terminal() {
		return nil
	}
	if _, err := r.publish(ctx, cur, botevents.Change{To: botstate.Failed, SubCode: subCode}); err != nil {
		return err
	}
	r.met.outcomes.WithLabelValues(string(botstate.Failed), subCode).Inc()
	return nil
}

func (r *Runtime) ack(b *Bot) {
	if b.acked.Swap(true) {
		return
	}
	if err := b.msg.Ack(); err != nil {
		b.log.Warn("ack failed", "error", err)
	}
	r.met.disps.WithLabelValues(dispAcked).Inc()
}

func (r *Runtime) releaseLease(base context.Context, b *Bot) {
	if b.lease == nil {
		return
	}
	ctx, cancel := r.opCtx(base)
	defer cancel()
	if err := b.lease.Release(ctx); err != nil {
		b.log.Warn("lease not released; it expires", "error", err)
	}
}

func initialState(job *usherv1.JoinJob) botstate.State {
	if job.GetJoinAt() != nil {
		return botstate.Scheduled
	}
	return botstate.Ready
}

// pastDeadline reports whether retrying after d would start past the job's
// join deadline.
func pastDeadline(job *usherv1.JoinJob, d time.Duration) bool {
	dl := job.GetJoinDeadline()
	return dl != nil && time.Now().Add(d).After(dl.AsTime())
}
