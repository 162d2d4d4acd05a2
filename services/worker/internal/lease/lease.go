package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/usherhq/usher/shared/pubacks"
)

// releaseMarkerTTL is how long a removed lease's purge marker stays (the
// bucket's markers need a TTL of at least a second; the purge only has to
// outlive writes still in flight).
const releaseMarkerTTL = time.Minute

// Gone reports whether err says a key does not exist: never written, or
// deleted, purged or expired.
func Gone(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}

// Purge removes bot botID's lease from kv if it is still at revision rev;
// its marker expires after a while, so the bucket keeps no key of a bot
// nobody serves.
func Purge(ctx context.Context, kv jetstream.KeyValue, botID string, rev uint64) error {
	return kv.Purge(ctx, botID, jetstream.LastRevision(rev), jetstream.PurgeTTL(releaseMarkerTTL))
}

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
	beat   string // the heartbeat the lease lives by
	onLost func()
	// takenOver: acquired from a worker that handed the bot off.
	takenOver bool

	mu    sync.Mutex
	state leaseState
	rev   uint64
}

// BotID is the leased bot.
func (l *Lease) BotID() string { return l.botID }

// TakenOver reports whether the lease was taken over from a worker that
// handed the bot off (a hand-off job), rather than created.
func (l *Lease) TakenOver() bool { return l.takenOver }

// Abandon lets the lease end without deleting it: it is moved to a heartbeat
// of its own that nobody renews, so it ends TTL later and the reaper settles
// the bot. For a worker that cannot record the bot's outcome itself.
func (l *Lease) Abandon() {
	if _, ok := l.stop(abandoned); ok {
		l.m.abandon(l)
	}
}

// Lost reports whether the lease was lost.
func (l *Lease) Lost() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state == lost
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

// Release purges the lease so the next worker can take the bot at once. A
// lost lease is left alone (it is not ours any more).
func (l *Lease) Release(ctx context.Context) error {
	rev, ok := l.stop(released)
	if !ok {
		return nil
	}
	err := l.casOwned(ctx, rev, func(rev uint64) error {
		return Purge(ctx, l.m.kv, l.botID, rev)
	})
	if err != nil {
		return fmt.Errorf("release lease of bot %s: %w", l.botID, err)
	}
	return nil
}

// HandOff marks the lease as handed off: the worker that picks up the
// hand-off job takes it over with a compare-and-set. Until then the lease
// is nobody's to reap.
func (l *Lease) HandOff(ctx context.Context) error {
	val, err := l.changed(func(v *Value) { v.HandOff = true })
	if err != nil {
		return err
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

// moveToOwnBeat points an abandoned lease at a new heartbeat key that is
// never renewed, so the lease ends TTL later, whatever becomes of the worker.
func (l *Lease) moveToOwnBeat(ctx context.Context) error {
	beat := nuid.Next()
	bv, err := json.Marshal(beatValue{Worker: l.m.worker, Bot: l.botID})
	if err != nil {
		return err
	}
	if _, err := l.m.beats.Create(ctx, beat, bv); err != nil {
		return fmt.Errorf("create its heartbeat: %w", err)
	}
	val, err := l.changed(func(v *Value) { v.Beat = beat })
	if err != nil {
		return err
	}
	l.mu.Lock()
	rev := l.rev
	l.mu.Unlock()
	return l.casOwned(ctx, rev, func(rev uint64) error {
		_, err := l.m.kv.Update(ctx, l.botID, val, rev)
		return err
	})
}

// changed returns the lease's value with edit applied.
func (l *Lease) changed(edit func(*Value)) ([]byte, error) {
	v, err := Decode(l.value)
	if err != nil {
		return nil, fmt.Errorf("decode own lease of bot %s: %w", l.botID, err)
	}
	edit(&v)
	val, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode lease of bot %s: %w", l.botID, err)
	}
	return val, nil
}

// stop ends the worker's hold on the lease and returns the last known
// revision; ok is false when the lease was already lost or stopped.
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

// casOwned runs op with the lease's revision. A write of ours whose
// answer was lost may have moved the revision since: then the key is read
// again and, if it still carries our value, op is retried with the new
// revision.
func (l *Lease) casOwned(ctx context.Context, rev uint64, op func(rev uint64) error) error {
	for range 3 {
		err := op(rev)
		if err == nil || !pubacks.WrongLastSequence(err) {
			return err
		}
		entry, gerr := l.m.kv.Get(ctx, l.botID)
		if gerr != nil {
			if Gone(gerr) {
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
