package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/worker/internal/lease"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
)

// Bot is a handler's handle on the bot it serves: the job, the bot's state,
// its events and the leave command. Every state change goes through it, so
// the runtime knows the state the handler left the bot in.
type Bot struct {
	rt       *Runtime
	job      *usherv1.JoinJob
	msg      jetstream.Msg
	log      *slog.Logger
	delivery uint64
	last     bool
	leave    chan struct{}
	acked    atomic.Bool
	cancel   context.CancelCauseFunc
	lease    *lease.Lease

	mu         sync.Mutex
	cur        botevents.Cursor
	sub        string         // sub-code of the last event this worker published
	joined     *pendingJoined // joined handed to the join writer, not settled yet
	broken     error          // joined could not be recorded: the bot must stop
	stopping   error          // ErrDraining or ErrHandOff once the runtime asked the bot to stop
	lost       bool
	leaveAsked bool
	leaveSub   string
	onLeave    map[int]func()
	nextFn     int
}

// Job is the bot's join job. Handlers must not modify it.
func (b *Bot) Job() *usherv1.JoinJob { return b.job }

// Log is a logger tagged with the bot's id and project.
func (b *Bot) Log() *slog.Logger { return b.log }

// State is the bot's current state.
func (b *Bot) State() botstate.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settleLocked()
	return b.cur.State
}

// Seq is the per-bot seq of the bot's last event.
func (b *Bot) Seq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settleLocked()
	return b.cur.Seq
}

// Delivery is how many times the job was delivered, this time included.
func (b *Bot) Delivery() uint64 { return b.delivery }

// LastDelivery reports whether this is the job's last allowed delivery: a
// RetryError or unexpected error now fails the bot instead of retrying.
func (b *Bot) LastDelivery() bool { return b.last }

// Acked reports whether the job was acknowledged (the bot joined once).
func (b *Bot) Acked() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settleLocked()
	return b.acked.Load()
}

// CanRetry reports whether returning a RetryError would retry the job rather
// than fail the bot (a delivery remains and the bot never joined).
func (b *Bot) CanRetry() bool { return !b.last && !b.Acked() }

// LeaveRequested is closed once a leave command was accepted; the bot is
// then in leaving (sub_code in LeaveSubCode) and must leave and end.
func (b *Bot) LeaveRequested() <-chan struct{} { return b.leave }

// LeaveSubCode is the sub-code of the accepted leave command (user_requested).
func (b *Bot) LeaveSubCode() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.leaveSub
}

// OnLeave registers f to run once when a leave command is accepted (at once
// if one already was), typically a context's cancel function, so a handler
// can wait on a driver and on the leave command without a goroutine. stop
// unregisters f.
func (b *Bot) OnLeave(f func()) (stop func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.leaveAsked {
		f()
		return func() {}
	}
	id := b.nextFn
	b.nextFn++
	b.onLeave[id] = f
	return func() {
		b.mu.Lock()
		delete(b.onLeave, id)
		b.mu.Unlock()
	}
}

// Transition publishes the bot's move to state `to` with subCode and meta.
// When another writer moved the bot in between, it re-reads the bot's last
// event and tries again if the move is still legal; a bot another writer
// finished gives ErrBotFinished, a lost lease ErrLeaseLost. It works while
// the worker drains (a bot may finish leaving), so give it a context that
// outlives the handler's.
func (b *Bot) Transition(ctx context.Context, to botstate.State, subCode string, meta map[string]string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settleLocked()
	switch {
	case b.lost:
		// Another worker may own the bot now.
		return ErrLeaseLost
	case b.broken != nil:
		return b.broken
	}
	return b.publishLocked(ctx, to, subCode, meta)
}

// Joined records that the bot is in its meeting: it publishes joined and, on
// the first join, acknowledges the job once the event is stored (from there
// the lease, not the job, guards the meeting). It refuses once the runtime
// asked the bot to stop or a leave command was accepted.
//
// Joined does not wait for JetStream to store the event: the bot is in its
// meeting either way. The worker's join writer publishes it (with every
// other bot's joined waiting then) and settles the answer in the
// background, within OpTimeout, so ctx bounds nothing; the bot's state is
// settled before it is next read or written. Should joined turn out
// not to be stored, it is published again; if that fails too, the bot's
// context is cancelled with the reason (ErrBotFinished when another writer
// finished the bot), as a lost lease does, and the job is decided as if
// Joined had returned that error.
func (b *Bot) Joined(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settleLocked()
	if err := b.usableLocked(); err != nil {
		return err
	}
	if b.leaveAsked {
		return ErrLeaveRequested
	}
	change := botevents.Change{To: botstate.Joined, BotMetadata: b.job.GetMetadata()}
	if err := botevents.Check(b.cur, change); err != nil {
		return err
	}
	b.joined = &pendingJoined{
		b:        b,
		cur:      b.cur,
		change:   change,
		deadline: time.Now().Add(b.rt.cfg.OpTimeout),
		done:     make(chan struct{}),
	}
	b.rt.joins.add(b.joined)
	return nil
}

// joinAnswered runs on the join writer once s has its answer. A stored
// event is settled there when the bot's lock is free at once; anything else
// (the lock is busy, or the event must be published again) on its own
// goroutine, so the writer never waits for a bot. (Only s is settled: a
// later joined of the same bot, after a rejoin, waits for this very writer.)
func (b *Bot) joinAnswered(s *pendingJoined) {
	settle := func() {
		defer b.mu.Unlock()
		if b.joined == s {
			b.settleLocked()
		}
	}
	if s.err == nil && !s.ack.Duplicate && b.mu.TryLock() {
		settle()
		return
	}
	b.rt.settling.Go(func() {
		b.mu.Lock()
		settle()
	})
}

// settleLocked settles the joined event Joined queued, if any: it waits for
// the writer's answer (which comes within OpTimeout), then records the
// event and acks the job, or publishes joined again the careful way and, if
// that fails, breaks the bot (see Joined).
func (b *Bot) settleLocked() {
	s := b.joined
	if s == nil {
		return
	}
	<-s.done
	b.joined = nil
	cur, err := b.storedJoined(s)
	if err != nil && !b.lost {
		b.log.Warn("joined not stored; publishing it again", "error", err)
		ctx, cancel := b.rt.opCtx(context.Background())
		cur, err = b.rt.publish(ctx, s.cur, s.change)
		cancel()
	}
	switch {
	case err == nil:
		b.cur, b.sub = cur, ""
		b.rt.met.events.WithLabelValues(string(botstate.Joined)).Inc()
		b.ackJoinedLocked()
	case b.lost:
		// Another worker may own the bot now: nothing more is written.
	default:
		b.log.Error("joined not recorded; the bot stops", "error", err)
		b.cur = cur
		b.broken = fmt.Errorf("record joined: %w", err)
		b.cancel(b.broken)
	}
}

// storedJoined is the cursor after s's joined when the server stored it.
func (b *Bot) storedJoined(s *pendingJoined) (botevents.Cursor, error) {
	if s.err != nil {
		return botevents.Cursor{}, s.err
	}
	cur, _, err := s.sent.Settle(s.ack, nil)
	return cur, err
}

// ackJoinedLocked acks the job once the bot's first joined is stored.
func (b *Bot) ackJoinedLocked() {
	if b.acked.Load() {
		return
	}
	b.acked.Store(true)
	b.rt.met.disps.WithLabelValues(dispAcked).Inc()
	b.rt.met.outcomes.WithLabelValues(string(botstate.Joined), subLabel("")).Inc()
	// The ack is confirmed in the background. Should it be lost, a
	// redelivery finds the lease held and, on its last delivery, acks a bot
	// that is in its meeting.
	b.rt.acks.ack(b.msg.Reply(), b.log)
}

func (b *Bot) usableLocked() error {
	switch {
	case b.lost:
		return ErrLeaseLost
	case b.broken != nil:
		return b.broken
	case b.stopping != nil:
		return b.stopping
	}
	return nil
}

// publishLocked publishes a change after b.cur, re-reading on conflicts.
func (b *Bot) publishLocked(ctx context.Context, to botstate.State, subCode string, meta map[string]string) error {
	b.settleLocked()
	cur, err := b.rt.publish(ctx, b.cur, botevents.Change{To: to, SubCode: subCode, Meta: meta, BotMetadata: b.job.GetMetadata()})
	b.cur = cur
	if err == nil {
		b.sub = subCode
	}
	return err
}

// publishFirstLocked publishes joining as the bot's first event (b.cur is
// the initial cursor), once: a conflict means another writer got there
// first, and returns errNotFirst for the caller to read the bot and decide.
func (b *Bot) publishFirstLocked(ctx context.Context) (bool, error) {
	cur, _, err := b.rt.events.Publish(ctx, b.cur, b.firstChange())
	return b.firstPublishedLocked(cur, err)
}

// firstChange is joining as the bot's first event.
func (b *Bot) firstChange() botevents.Change {
	return botevents.Change{To: botstate.Joining, BotMetadata: b.job.GetMetadata()}
}

// firstPublishedLocked records how publishing firstChange went: started,
// errNotFirst when the bot had events already, or the error.
func (b *Bot) firstPublishedLocked(cur botevents.Cursor, err error) (bool, error) {
	if errors.Is(err, botevents.ErrConflict) {
		return false, errNotFirst
	}
	if err != nil {
		return false, err
	}
	b.cur, b.sub = cur, ""
	b.rt.met.events.WithLabelValues(string(botstate.Joining)).Inc()
	return true, nil
}

func (b *Bot) lastSub() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settleLocked()
	return b.sub
}

// setCursor records the bot's state as read at claim time.
func (b *Bot) setCursor(cur botevents.Cursor) {
	b.mu.Lock()
	b.cur = cur
	b.mu.Unlock()
}

// onLeaseLost runs on the heartbeat goroutine: stop the bot now.
func (b *Bot) onLeaseLost() {
	b.mu.Lock()
	b.lost = true
	b.mu.Unlock()
	b.cancel(ErrLeaseLost)
}

// stop asks the bot to stop with cause (ErrDraining only before the job was
// acked, ErrHandOff only after). It reports whether the bot was told.
func (b *Bot) stop(cause error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settleLocked()
	if b.stopping != nil {
		return false
	}
	// Before the ack the job can go back to the queue; after it only a
	// hand-off moves the bot.
	if inMeeting := b.acked.Load(); inMeeting != errors.Is(cause, ErrHandOff) {
		return false
	}
	b.stopping = cause
	b.cancel(cause)
	return true
}

// requestLeave handles a leave command: publish leaving (unless the bot is
// already leaving), then tell the handler. It returns the reply to send.
func (b *Bot) requestLeave(ctx context.Context, subCode string) *usherv1.ControlReply {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settleLocked()
	reply := &usherv1.ControlReply{State: string(b.cur.State), Seq: b.cur.Seq}
	switch {
	case b.lost:
		reply.Error = "bot lease lost"
		return reply
	case b.cur.State.Terminal():
		reply.Error = "bot has already ended"
		return reply
	case b.cur.State == botstate.Leaving:
		reply.Accepted = true
	default:
		err := b.publishLocked(ctx, botstate.Leaving, subCode, nil)
		reply.State, reply.Seq = string(b.cur.State), b.cur.Seq
		if err != nil {
			b.log.Error("leave command not recorded", "error", err)
			reply.Error = "leave not recorded: " + err.Error()
			return reply
		}
		reply.Accepted = true
	}
	if !b.leaveAsked {
		b.leaveAsked = true
		b.leaveSub = subCode
		close(b.leave)
		for id, f := range b.onLeave {
			f()
			delete(b.onLeave, id)
		}
	}
	return reply
}

func (b *Bot) snapshot() (cur botevents.Cursor, lost bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settleLocked()
	return b.cur, b.lost
}
