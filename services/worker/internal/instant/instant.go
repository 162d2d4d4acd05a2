// Package instant is a driver.Driver that joins no real meeting: it "joins"
// after a configurable delay, optionally passing through a waiting room, and
// stays until told to leave (or for a configured time). Pipeline tests and
// benchmarks use it to exercise the worker runtime without a browser.
//
// It counts what a meeting platform would see — joins, meetings open at once,
// a second join of a bot already in its meeting — so tests can assert that a
// bot is never in its meeting twice. Tests can also end, crash or fail a
// bot's meeting on demand. It starts no goroutine: every wait happens in the
// caller's.
package instant

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/usherhq/usher/services/worker/internal/driver"
)

// Config of the instant driver.
type Config struct {
	// JoinDelay is how long a join takes. Default 0.
	JoinDelay time.Duration `env:"USHER_INSTANT_JOIN_DELAY" default:"0s"`
	// WaitingRoom, when > 0, puts every bot in a waiting room for this long
	// before admitting it. Default 0 (no waiting room).
	WaitingRoom time.Duration `env:"USHER_INSTANT_WAITING_ROOM" default:"0s"`
	// Stay, when > 0, ends every meeting (meeting_ended) after this long in
	// it; 0 stays until the bot is told to leave. Default 0.
	Stay time.Duration `env:"USHER_INSTANT_STAY" default:"0s"`
}

// Validate names the bad field.
func (c Config) Validate() error {
	switch {
	case c.JoinDelay < 0:
		return fmt.Errorf("USHER_INSTANT_JOIN_DELAY must be ≥ 0, got %s", c.JoinDelay)
	case c.WaitingRoom < 0:
		return fmt.Errorf("USHER_INSTANT_WAITING_ROOM must be ≥ 0, got %s", c.WaitingRoom)
	case c.Stay < 0:
		return fmt.Errorf("USHER_INSTANT_STAY must be ≥ 0, got %s", c.Stay)
	}
	return nil
}

// Stats is what the driver saw.
type Stats struct {
	// Attempts counts calls to Join.
	Attempts int
	// Joins counts successful joins.
	Joins int
	// InMeeting is how many bots are in their meeting now.
	InMeeting int
	// MaxInMeeting is the most bots in meetings at once.
	MaxInMeeting int
	// Open is how many meetings were joined and not closed yet.
	Open int
	// Leaves counts Meeting.Leave calls.
	Leaves int
	// Doubles counts joins of a bot that was already in its meeting: a
	// second bot in one meeting. It must stay 0.
	Doubles int
}

// Driver is the instant driver. It is safe for concurrent use by many bots
// and many worker runtimes in one process.
type Driver struct {
	cfg Config

	mu       sync.Mutex
	stats    Stats
	joins    map[string]int
	meetings map[string]*meeting
	failures map[string][]error
}

// New returns an instant driver.
func New(cfg Config) *Driver {
	return &Driver{
		cfg:      cfg,
		joins:    make(map[string]int),
		meetings: make(map[string]*meeting),
		failures: make(map[string][]error),
	}
}

// Stats returns the counters.
func (d *Driver) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Joins returns how many times the bot joined its meeting.
func (d *Driver) Joins(botID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.joins[botID]
}

// InMeeting reports whether the bot is in its meeting now.
func (d *Driver) InMeeting(botID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.meetings[botID] != nil
}

// FailJoins makes the bot's next joins fail with errs, one per attempt (for
// example a *driver.JoinError, or an error wrapping driver.ErrBrowserCrashed).
func (d *Driver) FailJoins(botID string, errs ...error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failures[botID] = append(d.failures[botID], errs...)
}

// End ends the bot's meeting as the platform would (Wait returns reason).
// It reports whether the bot was in its meeting.
func (d *Driver) End(botID string, reason driver.EndReason) bool {
	return d.signal(botID, outcome{end: driver.End{Reason: reason, Detail: "instant: " + string(reason)}})
}

// Crash makes the bot's Wait fail as if its browser died.
func (d *Driver) Crash(botID string) bool {
	return d.signal(botID, outcome{err: fmt.Errorf("instant: %w", driver.ErrBrowserCrashed)})
}

func (d *Driver) signal(botID string, o outcome) bool {
	d.mu.Lock()
	m := d.meetings[botID]
	d.mu.Unlock()
	if m == nil {
		return false
	}
	select {
	case m.done <- o:
	default:
	}
	return true
}

// Join waits JoinDelay (and the waiting room), then puts the bot in its meeting.
func (d *Driver) Join(ctx context.Context, req driver.JoinRequest, w driver.Watcher) (driver.Meeting, error) {
	d.mu.Lock()
	d.stats.Attempts++
	var fail error
	if errs := d.failures[req.BotID]; len(errs) > 0 {
		fail, d.failures[req.BotID] = errs[0], errs[1:]
	}
	d.mu.Unlock()
	if err := wait(ctx, d.cfg.JoinDelay); err != nil {
		return nil, err
	}
	if fail != nil {
		return nil, fail
	}
	if d.cfg.WaitingRoom > 0 {
		w.WaitingRoom(ctx)
		if err := wait(ctx, d.cfg.WaitingRoom); err != nil {
			return nil, err
		}
	}
	m := &meeting{d: d, botID: req.BotID, done: make(chan outcome, 1)}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.meetings[req.BotID] != nil {
		d.stats.Doubles++
	}
	d.meetings[req.BotID] = m
	d.joins[req.BotID]++
	d.stats.Joins++
	d.stats.Open++
	d.stats.InMeeting = len(d.meetings)
	d.stats.MaxInMeeting = max(d.stats.MaxInMeeting, d.stats.InMeeting)
	return m, nil
}

func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type outcome struct {
	end driver.End
	err error
}

// meeting is one bot in its instant meeting.
type meeting struct {
	d     *Driver
	botID string
	done  chan outcome

	once sync.Once
}

// Wait blocks until ctx is done, the configured stay passed (meeting_ended)
// or a test ended or crashed the meeting.
func (m *meeting) Wait(ctx context.Context) (driver.End, error) {
	var stay <-chan time.Time
	if m.d.cfg.Stay > 0 {
		t := time.NewTimer(m.d.cfg.Stay)
		defer t.Stop()
		stay = t.C
	}
	select {
	case <-ctx.Done():
		return driver.End{}, ctx.Err()
	case <-stay:
		m.out()
		return driver.End{Reason: driver.EndMeetingEnded, Detail: "instant: stay over"}, nil
	case o := <-m.done:
		m.out()
		return o.end, o.err
	}
}

// Leave leaves the meeting.
func (m *meeting) Leave(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.d.mu.Lock()
	m.d.stats.Leaves++
	m.d.mu.Unlock()
	m.out()
	return nil
}

// Close releases the meeting; safe to call more than once.
func (m *meeting) Close() error {
	m.out()
	m.once.Do(func() {
		m.d.mu.Lock()
		m.d.stats.Open--
		m.d.mu.Unlock()
	})
	return nil
}

// out takes the bot out of its meeting (idempotent).
func (m *meeting) out() {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	if m.d.meetings[m.botID] == m {
		delete(m.d.meetings, m.botID)
		m.d.stats.InMeeting = len(m.d.meetings)
	}
}
