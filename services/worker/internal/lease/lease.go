package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/shared/pubacks"
)

type leaseState int

const (
	held leaseState = iota
	lost
	released
	handedOff
	abandoned
)

// Lease is one bot's lease, held by this worker until Release or HandOff.
type Lease struct {
	m      *Manager
	botID  string
	value  []byte
	onLost func()
	// takenOver: acquired from a worker that handed the bot off.
	takenOver bool

	mu        sync.Mutex
	state     leaseState
	rev       uint64
	renewedAt time.Time
}

// BotID is the leased bot.
func (l *Lease) BotID() string { return l.botID }

// TakenOver reports whether the lease was taken over from a worker that
// handed the bot off (a hand-off job), rather than created.
func (l *Lease) TakenOver() bool { return l.takenOver }

// Abandon stops renewing the lease without deleting it: it expires after the
// TTL and the reaper settles the bot. For a worker that cannot record the
// bot's outcome itself.
func (l *Lease) Abandon() { l.stop(abandoned) }

// Lost reports whether the lease was lost.
func (l *Lease) Lost() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state == lost
}

// renewed records a successful heartbeat that moved the key from rev to next.
func (l *Lease) renewed(rev, next uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == held && l.rev == rev {
		l.rev = next
		l.renewedAt = time.Now()
	}
}

func (l *Lease) lose(why string) {
	l.mu.Lock()
	if l.state != held {
		l.mu.Unlock()
		return
	}
	l.state = lost
	l.mu.Unlock()
	l.m.forget(l)
	l.m.met.losses.Inc()
	l.m.log.Warn("bot lease lost", "bot_id", l.botID, "reason", why)
	if l.onLost != nil {
		l.onLost()
	}
}

// Release deletes the lease so the next worker can take the bot at once. A
// lost lease is left alone (it is not ours any more).
func (l *Lease) Release(ctx context.Context) error {
	rev, ok := l.stop(released)
	if !ok {
		return nil
	}
	err := l.casOwned(ctx, rev, func(rev uint64) error {
		return l.m.kv.Delete(ctx, l.botID, jetstream.LastRevision(rev))
	})
	if err != nil {
		return fmt.Errorf("release lease of bot %s: %w", l.botID, err)
	}
	return nil
}

// HandOff marks the lease as handed off and stops renewing it: the worker
// that picks up the hand-off job takes it over with a compare-and-set; if
// none does, it expires after the TTL.
func (l *Lease) HandOff(ctx context.Context) error {
	var v Value
	if err := json.Unmarshal(l.value, &v); err != nil {
		return fmt.Errorf("decode own lease of bot %s: %w", l.botID, err)
	}
	v.HandOff = true
	val, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode lease of bot %s: %w", l.botID, err)
	}
	rev, ok := l.stop(handedOff)
	if !ok {
		return fmt.Errorf("hand off lease of bot %s: %w", l.botID, ErrLost)
	}
	err = l.casOwned(ctx, rev, func(rev uint64) error {
		_, err := l.m.kv.Update(ctx, l.botID, val, rev)
		return err
	})
	if err != nil {
		return fmt.Errorf("hand off lease of bot %s: %w", l.botID, err)
	}
	return nil
}

// stop ends renewals and returns the last known revision; ok is false when
// the lease was already lost or stopped.
func (l *Lease) stop(to leaseState) (rev uint64, ok bool) {
	l.mu.Lock()
	if l.state != held {
		l.mu.Unlock()
		return 0, false
	}
	l.state = to
	rev = l.rev
	l.mu.Unlock()
	l.m.forget(l)
	return rev, true
}

// casOwned runs op with the lease's revision. A heartbeat in flight may have
// moved the revision since: then the key is read again and, if it still
// carries our token, op is retried with the new revision.
func (l *Lease) casOwned(ctx context.Context, rev uint64, op func(rev uint64) error) error {
	for range 3 {
		err := op(rev)
		if err == nil || !pubacks.WrongLastSequence(err) {
			return err
		}
		entry, gerr := l.m.kv.Get(ctx, l.botID)
		if gerr != nil {
			if errors.Is(gerr, jetstream.ErrKeyNotFound) || errors.Is(gerr, jetstream.ErrKeyDeleted) {
				return ErrLost
			}
			return gerr
		}
		if string(entry.Value()) != string(l.value) {
			return ErrLost
		}
		rev = entry.Revision()
	}
	return ErrLost
}
