package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/services/worker/internal/lease"
	"github.com/usherhq/usher/shared/botevents"
)

// delivery is a delivered job on its way into this worker: read and
// registered by admit (no I/O), maybe claimed and started by claimMany
// together with the other jobs of its batch, then served by serve.
type delivery struct {
	msg     jetstream.Msg
	md      *jetstream.MsgMetadata
	err     error // no JetStream metadata
	invalid error // the job does not decode or validate
	idents  JobIDs
	b       *Bot
	// ctx is the bot's, made at admission so that a drain can stop the bot
	// from then on; serve is its only user and cancels it on return.
	ctx    context.Context
	cancel context.CancelCauseFunc
	reg    registration

	// Set by claimMany.
	claimed  bool  // a lease was asked for: claimErr, or b.lease, says how it went
	claimErr error // why the lease was not acquired
	started  bool  // joining was published as the bot's first event
	startErr error // why it was not (errNotFirst: the bot had events)
}

// admit reads a delivered job and registers its bot.
func (r *Runtime) admit(base context.Context, msg jetstream.Msg) *delivery {
	d := &delivery{msg: msg}
	if d.md, d.err = msg.Metadata(); d.err != nil {
		return d
	}
	job, idents, err := DecodeJob(msg.Data())
	if err != nil {
		d.invalid, d.idents = err, idents
		return d
	}
	b := &Bot{
		rt:       r,
		job:      job,
		msg:      msg,
		delivery: d.md.NumDelivered,
		last:     r.maxDeliver > 0 && d.md.NumDelivered >= r.maxDeliver,
		leave:    make(chan struct{}),
		onLeave:  make(map[int]func()),
		log:      r.log.With("bot_id", job.GetBotId(), "project", job.GetProject()),
		cur:      botevents.Cursor{Project: job.GetProject(), BotID: job.GetBotId(), State: initialState(job)},
	}
	d.b = b
	d.ctx, d.cancel = context.WithCancelCause(base)
	b.cancel = d.cancel
	d.reg = r.register(b)
	return d
}

// claimMany claims the first deliveries of a batch together: their leases
// in one burst, then their joining events in another. A bot the bursts could not claim or start is left to serve,
// which does it the careful way, one bot at a time.
func (r *Runtime) claimMany(base context.Context, ds []*delivery) {
	var wants []lease.Want
	var firsts []*delivery
	for _, d := range ds {
		if d.b != nil && d.reg == registered && d.md.NumDelivered == 1 {
			wants = append(wants, lease.Want{BotID: d.b.job.GetBotId(), OnLost: d.b.onLeaseLost})
			firsts = append(firsts, d)
		}
	}
	if len(wants) == 0 {
		return
	}
	r.met.batches.Observe(float64(len(wants)))
	ctx, cancel := r.opCtx(base)
	defer cancel()
	var apps []botevents.Append
	var starting []*delivery
	for i, got := range r.leases.AcquireMany(ctx, wants) {
		d := firsts[i]
		d.claimed, d.claimErr = true, got.Err
		if got.Err != nil {
			continue
		}
		b := d.b
		b.lease = got.Lease
		r.observeClaim(d.md)
		if got.Lease.TakenOver() {
			continue
		}
		b.mu.Lock() // until its first event is settled, like start
		if b.usableLocked() != nil || b.leaveAsked || pastDeadline(b.job, 0) {
			b.mu.Unlock()
			continue
		}
		apps = append(apps, botevents.Append{Cur: b.cur, Change: b.firstChange()})
		starting = append(starting, d)
	}
	for i, res := range r.events.PublishMany(ctx, apps) {
		d := starting[i]
		d.started, d.startErr = d.b.firstPublishedLocked(res.Cur, res.Err)
		d.b.mu.Unlock()
	}
}

// claim takes the bot's lease. It returns false when the job was dealt with
// (held elsewhere, or the lease could not be taken).
func (r *Runtime) claim(base context.Context, b *Bot, md *jetstream.MsgMetadata) bool {
	ctx, cancel := r.opCtx(base)
	defer cancel()
	l, err := r.leases.Acquire(ctx, b.job.GetBotId(), b.onLeaseLost)
	if err == nil {
		r.observeClaim(md)
	}
	return r.claimed(base, b, md, l, err)
}

// claimed settles an attempt to take the bot's lease: false when the job
// was dealt with (held elsewhere, or the lease could not be taken).
func (r *Runtime) claimed(base context.Context, b *Bot, md *jetstream.MsgMetadata, l *lease.Lease, err error) bool {
	if errors.Is(err, lease.ErrHeld) {
		r.leaseHeld(base, b)
		return false
	}
	if err != nil {
		r.finish(base, b, err)
		return false
	}
	b.lease = l
	return true
}

// observeClaim records the claim latency of a first delivery.
func (r *Runtime) observeClaim(md *jetstream.MsgMetadata) {
	if md.NumDelivered != 1 {
		return
	}
	d := time.Since(md.Timestamp)
	r.met.claim.Observe(d.Seconds())
	if r.onClaim != nil {
		r.onClaim(d)
	}
}
