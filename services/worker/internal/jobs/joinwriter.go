package jobs

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/shared/botevents"
)

// errUnconfirmed: the server did not answer a sent event in time. Whether
// it landed is unknown; the event is published again, which its Nats-Msg-Id
// makes land once.
var errUnconfirmed = errors.New("event not confirmed in time")

// errStopped: the runtime stopped before the event was written.
var errStopped = errors.New("worker runtime stopped")

// pendingJoined is a bot's joined event handed to the join writer: the
// handler carries on in the meeting while the writer publishes it and waits
// for the server's answer. The bot settles it (Bot.settleLocked) before
// anything else reads or writes its state.
type pendingJoined struct {
	b        *Bot
	cur      botevents.Cursor
	change   botevents.Change
	deadline time.Time

	sent *botevents.Sent // nil until published
	done chan struct{}   // closed once ack or err is set
	ack  *jetstream.PubAck
	err  error
}

// joinWriter publishes the joined events of all of a worker's bots on one
// goroutine, every one waiting at the time in one burst, then takes the
// answers in the order they were sent, which is the order JetStream gives
// them. Bots do not wait for it: publishing and awaiting every bot's joined
// on the bot's own goroutine is among the costliest things a busy worker
// does. The writer never takes a bot's lock while waiting, so a bot that
// waits for its answer under the lock cannot hold it up.
type joinWriter struct {
	events *botevents.Store

	mu    sync.Mutex
	queue []*pendingJoined
	wake  chan struct{}
}

func newJoinWriter(events *botevents.Store) *joinWriter {
	return &joinWriter{events: events, wake: make(chan struct{}, 1)}
}

// add queues a joined event to write.
func (w *joinWriter) add(p *pendingJoined) {
	w.mu.Lock()
	w.queue = append(w.queue, p)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes queued events until ctx is done. Bots are gone by then (the
// runtime stops it last); anything still queued is settled as errStopped
// so no waiter is left behind.
func (w *joinWriter) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []*pendingJoined
	for {
		w.mu.Lock()
		batch, w.queue = w.queue, batch[:0]
		w.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				w.mu.Lock()
				rest := w.queue
				w.queue = nil
				w.mu.Unlock()
				for _, p := range rest {
					p.err = errStopped
					close(p.done)
				}
				return
			case <-w.wake:
			}
			continue
		}
		for _, p := range batch {
			p.sent, p.err = w.events.Send(p.cur, p.change)
		}
		for i, p := range batch {
			if p.err == nil {
				w.await(ctx, p, timer)
			}
			close(p.done)
			p.b.joinAnswered(p)
			batch[i] = nil
		}
	}
}

// await records the server's answer to p, errUnconfirmed once its deadline
// passed, or errStopped.
func (w *joinWriter) await(ctx context.Context, p *pendingJoined, timer *time.Timer) {
	select {
	case p.ack = <-p.sent.Ack.Ok():
		return
	case p.err = <-p.sent.Ack.Err():
		return
	default:
	}
	timer.Reset(time.Until(p.deadline))
	defer timer.Stop()
	select {
	case p.ack = <-p.sent.Ack.Ok():
	case p.err = <-p.sent.Ack.Err():
	case <-timer.C:
		p.err = errUnconfirmed
	case <-ctx.Done():
		p.err = errStopped
	}
}
