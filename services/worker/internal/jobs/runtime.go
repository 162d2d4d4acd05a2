// Package jobs is the worker's job runtime: it pulls join jobs from the
// shared `workers` consumer only when a bot slot is free, leases each bot,
// keeps the job alive while joining, routes leave commands to the bot,
// publishes its events in order, and turns the handler's result into the
// job's fate (ack, term, delayed nak, hand back, hand off). Handlers, shaped
// like net/http, only drive the bot: see Handler and Bot.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/usherhq/usher/services/worker/internal/lease"
	"github.com/usherhq/usher/shared/botcontrol"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/topology"
)

// Handler serves one bot, from joining to a terminal state. Its ctx is
// cancelled with a cause (context.Cause) when the bot must stop: ErrLeaseLost,
// ErrDraining (before joined) or ErrHandOff (in the meeting). It returns nil
// once the bot is ended or failed (through bot.Transition), or an error that
// decides the job's fate: *Failure fails the bot and terminates the job,
// *RetryError retries it later, the stop causes above do what they say, and
// anything else is retried with backoff (or fails the bot on the last
// delivery or once it joined).
type Handler interface {
	Handle(ctx context.Context, bot *Bot) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, bot *Bot) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, bot *Bot) error { return f(ctx, bot) }

// Option configures a Runtime.
type Option func(*Runtime)

// WithClaimObserver calls f with the claim latency (first storage of the job
// → lease held) of every first delivery, for benchmarks. f must be quick.
func WithClaimObserver(f func(latency time.Duration)) Option {
	return func(r *Runtime) { r.onClaim = f }
}

// controlBuffer is the capacity of the channel of the control subscription
// (commands are rare and handled off the dispatcher at once).
const controlBuffer = 4096

// Runtime runs a worker's bots.
type Runtime struct {
	cfg        Config
	nc         *nats.Conn
	js         jetstream.JetStream
	topo       *topology.Topology
	events     *botevents.Store
	leases     *lease.Manager
	acks       *acker
	joins      *joinWriter
	handler    Handler
	log        *slog.Logger
	met        *runtimeMetrics
	onClaim    func(time.Duration)
	maxDeliver uint64

	slots *slots
	// controlPrefix is where this worker takes its bots' commands; its
	// leases name it.
	controlPrefix string
	control       chan *nats.Msg
	serving       sync.WaitGroup // one per delivered job
	settling      sync.WaitGroup // one per joined event settled off the join writer
	commands      sync.WaitGroup // one per leave command being handled
	started       atomic.Bool

	mu       sync.Mutex
	bots     map[string]*Bot
	draining bool
	idle     chan struct{} // closed when draining and no bot is left
}

// New returns a runtime fetching from topo's workers consumer. nc must be
// the connection js was made from. Run starts it.
func New(cfg Config, nc *nats.Conn, js jetstream.JetStream, topo *topology.Topology, h Handler, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	events := botevents.New(js, topo.Events)
	control := botcontrol.NewPrefix()
	r := &Runtime{
		cfg:           cfg,
		nc:            nc,
		js:            js,
		topo:          topo,
		events:        events,
		leases:        lease.New(js, topo.Leases, topo.Beats, topo.Config.LeaseTTL, lease.Holder{Worker: cfg.WorkerID, Control: control}, log, reg),
		acks:          newAcker(nc, cfg.OpTimeout, log),
		joins:         newJoinWriter(events),
		handler:       h,
		log:           log,
		met:           newRuntimeMetrics(reg),
		slots:         newSlots(cfg.Slots),
		controlPrefix: control,
		control:       make(chan *nats.Msg, controlBuffer),
		bots:          make(map[string]*Bot),
		idle:          make(chan struct{}),
	}
	if topo.Config.JobMaxDeliver > 0 {
		r.maxDeliver = uint64(topo.Config.JobMaxDeliver)
	}
	for _, o := range opts {
		o(r)
	}
	r.met.slots.Set(float64(cfg.Slots))
	return r, nil
}

// Busy returns how many bots the worker is serving.
func (r *Runtime) Busy() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bots)
}

// Draining reports whether the worker stopped taking jobs.
func (r *Runtime) Draining() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.draining
}

// Run serves jobs until ctx is done, then drains: it stops fetching, hands
// joining bots back to the queue, gives bots in meetings DrainTimeout to
// finish, hands the rest off to other workers, and returns once every bot
// and goroutine it started is gone. It can be called once.
func (r *Runtime) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("jobs runtime: Run called twice")
	}
	// Commands reach the bots from their first lease to the end of the drain.
	sub, err := r.subscribeControl()
	if err != nil {
		return fmt.Errorf("jobs runtime: subscribe control: %w", err)
	}
	// Bots outlive ctx: they are stopped by the drain, not by ctx.
	base := context.WithoutCancel(ctx)
	bg, stopBg := context.WithCancel(base)
	var bgWG sync.WaitGroup
	bgWG.Go(func() { _ = r.leases.Run(bg) })
	bgWG.Go(func() { r.keepAlive(bg) })
	bgWG.Go(func() { r.dispatchControl(bg, base) })
	bgWG.Go(func() { r.acks.run(bg) })
	bgWG.Go(func() { r.joins.run(bg) })

	r.log.Info("worker runtime started", "slots", r.cfg.Slots)
	r.fetchLoop(ctx, base)
	r.beginDrain()
	r.awaitMeetings()
	r.serving.Wait()
	if err := sub.Unsubscribe(); err != nil {
		r.log.Warn("unsubscribe control", "error", err)
	}
	stopBg()
	bgWG.Wait()
	r.settling.Wait()
	r.commands.Wait()
	// Acks and naks are plain publishes: make sure the server has them
	// before saying every job was settled.
	if err := r.nc.FlushTimeout(r.cfg.OpTimeout); err != nil {
		r.log.Warn("flush on stop", "error", err)
	}
	r.log.Info("worker runtime stopped")
	return nil
}

// fetchLoop pulls jobs while ctx lives, never more than the free slots.
func (r *Runtime) fetchLoop(ctx, base context.Context) {
	for ctx.Err() == nil {
		n := r.slots.reserve(ctx, r.cfg.FetchBatch)
		if n == 0 {
			return
		}
		batch, err := r.topo.Workers.Fetch(n, jetstream.FetchMaxWait(r.cfg.FetchWait))
		if err != nil {
			r.slots.release(n)
			r.log.Warn("fetch jobs failed", "error", err)
			pause(ctx, 500*time.Millisecond)
			continue
		}
		used := 0
		done := ctx.Done()
		msgs := batch.Messages()
		for msgs != nil {
			select {
			case msg, ok := <-msgs:
				if !ok {
					msgs = nil
					continue
				}
				// Every job that came with this one is claimed with it.
				got := []jetstream.Msg{msg}
				for more := true; more && len(got) < n-used; {
					select {
					case m, ok := <-msgs:
						if !ok {
							msgs, more = nil, false
							continue
						}
						got = append(got, m)
					default:
						more = false
					}
				}
				used += len(got)
				r.met.busy.Add(float64(len(got)))
				ds := make([]*delivery, len(got))
				for i, m := range got {
					ds[i] = r.admit(base, m)
				}
				r.claimMany(base, ds)
				for _, d := range ds {
					r.serving.Go(func() { r.serve(base, d) })
				}
			case <-done:
				// The pull request lives on until it expires; jobs it still
				// brings are handed back by serve.
				r.beginDrain()
				done = nil
			}
		}
		r.slots.release(n - used)
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			r.log.Warn("fetch jobs ended with an error", "error", err)
			pause(ctx, 500*time.Millisecond)
		}
	}
}

// beginDrain stops taking jobs and tells every bot that has not joined yet
// to stop: its job goes back to the queue.
func (r *Runtime) beginDrain() {
	r.mu.Lock()
	if r.draining {
		r.mu.Unlock()
		return
	}
	r.draining = true
	bots := r.botsLocked()
	if len(r.bots) == 0 {
		close(r.idle)
	}
	r.mu.Unlock()
	r.log.Info("worker draining", "bots", len(bots))
	for _, b := range bots {
		b.stop(ErrDraining)
	}
}

// awaitMeetings gives bots in meetings DrainTimeout to finish, then hands
// the remaining ones off.
func (r *Runtime) awaitMeetings() {
	if r.cfg.DrainTimeout > 0 {
		t := time.NewTimer(r.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-r.idle:
			return
		case <-t.C:
		}
	}
	r.mu.Lock()
	bots := r.botsLocked()
	r.mu.Unlock()
	if len(bots) > 0 {
		r.log.Info("drain timeout: handing bots off", "bots", len(bots))
	}
	for _, b := range bots {
		b.stop(ErrHandOff)
	}
}

func (r *Runtime) botsLocked() []*Bot {
	out := make([]*Bot, 0, len(r.bots))
	for _, b := range r.bots {
		out = append(out, b)
	}
	return out
}

type registration int

const (
	registered registration = iota
	regDraining
	regDuplicate
)

func (r *Runtime) register(b *Bot) registration {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.draining:
		return regDraining
	case r.bots[b.job.GetBotId()] != nil:
		return regDuplicate
	}
	r.bots[b.job.GetBotId()] = b
	return registered
}

func (r *Runtime) unregister(b *Bot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bots[b.job.GetBotId()] == b {
		delete(r.bots, b.job.GetBotId())
	}
	if r.draining && len(r.bots) == 0 {
		select {
		case <-r.idle:
		default:
			close(r.idle)
		}
	}
}

func (r *Runtime) lookup(botID string) *Bot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bots[botID]
}

// keepAlive sends InProgress for every job not acked yet, so a long join
// never reaches the consumer's AckWait.
func (r *Runtime) keepAlive(ctx context.Context) {
	every := max(r.topo.Config.JobAckWait/3, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		bots := r.botsLocked()
		r.mu.Unlock()
		for _, b := range bots {
			if !b.acked.Load() {
				if err := b.msg.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
					b.log.Warn("job keep-alive failed", "error", err)
				}
			}
		}
	}
}

// publish appends a change to a bot's events, re-reading and trying again
// when another writer moved the bot in between.
func (r *Runtime) publish(ctx context.Context, cur botevents.Cursor, ch botevents.Change) (botevents.Cursor, error) {
	for attempt := 0; ; attempt++ {
		next, _, err := r.events.Publish(ctx, cur, ch)
		if err == nil {
			r.met.events.WithLabelValues(string(ch.To)).Inc()
			return next, nil
		}
		if !errors.Is(err, botevents.ErrConflict) || attempt >= 4 {
			return cur, err
		}
		fresh, lerr := r.events.Last(ctx, cur.Project, cur.BotID, cur.State)
		if lerr != nil {
			return cur, lerr
		}
		switch {
		case fresh.State.Terminal():
			return fresh, fmt.Errorf("bot %s is %s: %w", cur.BotID, fresh.State, ErrBotFinished)
		case fresh.State == ch.To:
			// Our earlier attempt landed, or another writer made the same move.
			return fresh, nil
		case !botstate.CanTransition(fresh.State, ch.To):
			return fresh, fmt.Errorf("%w: bot %s is now %s, cannot go to %s", botevents.ErrIllegalTransition, cur.BotID, fresh.State, ch.To)
		}
		cur = fresh
	}
}

func (r *Runtime) opCtx(base context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(base, r.cfg.OpTimeout)
}

// backoff is the redelivery delay after an unexpected error on the n-th
// delivery: RetryBackoff doubling per delivery, capped, ±20% jitter.
func (r *Runtime) backoff(n uint64) time.Duration {
	d := r.cfg.RetryBackoff
	for i := uint64(1); i < n && d < r.cfg.RetryBackoffMax; i++ {
		d *= 2
	}
	d = min(d, r.cfg.RetryBackoffMax)
	jitter := time.Duration(rand.Int64N(int64(d)/5+1)) * 2
	return d - d/5 + jitter
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
