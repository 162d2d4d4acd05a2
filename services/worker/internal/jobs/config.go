package jobs

import (
	"errors"
	"fmt"
	"time"
)

// Config of the jobs runtime.
type Config struct {
	// Slots is how many bots the worker serves at once; it fetches a job only
	// when one is free. Default 4.
	Slots int `env:"USHER_WORKER_SLOTS" default:"4"`
	// WorkerID names the worker in leases and logs. Default hostname-pid (set by app).
	WorkerID string `env:"USHER_WORKER_ID"`
	// DrainTimeout is how long bots in meetings may go on after SIGTERM before
	// they are handed off to another worker. Default 30s.
	DrainTimeout time.Duration `env:"USHER_WORKER_DRAIN_TIMEOUT" default:"30s"`
	// FetchWait is how long one pull request waits for jobs. A draining worker
	// waits for the last one to end, so keep it short. Default 1s.
	FetchWait time.Duration `env:"USHER_WORKER_FETCH_WAIT" default:"1s"`
	// FetchBatch caps the jobs asked for in one pull (never more than the
	// free slots). Default 256.
	FetchBatch int `env:"USHER_WORKER_FETCH_BATCH" default:"256"`
	// RetryBackoff is the redelivery delay after an unexpected error on the
	// first delivery; it doubles with each delivery. Default 2s.
	RetryBackoff time.Duration `env:"USHER_WORKER_RETRY_BACKOFF" default:"2s"`
	// RetryBackoffMax caps RetryBackoff's growth. Default 1m.
	RetryBackoffMax time.Duration `env:"USHER_WORKER_RETRY_BACKOFF_MAX" default:"1m"`
	// OpTimeout bounds each NATS operation the runtime makes for a bot. Default 5s.
	OpTimeout time.Duration `env:"USHER_WORKER_OP_TIMEOUT" default:"5s"`
	// HandOffWindow is the join window of a hand-off job when the original
	// job had none. Default 10m.
	HandOffWindow time.Duration `env:"USHER_WORKER_HANDOFF_WINDOW" default:"10m"`
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Slots < 1:
		return fmt.Errorf("USHER_WORKER_SLOTS must be ≥ 1, got %d", c.Slots)
	case c.WorkerID == "":
		return errors.New("USHER_WORKER_ID must not be empty")
	case c.DrainTimeout < 0:
		return fmt.Errorf("USHER_WORKER_DRAIN_TIMEOUT must be ≥ 0, got %s", c.DrainTimeout)
	case c.FetchWait < 10*time.Millisecond:
		return fmt.Errorf("USHER_WORKER_FETCH_WAIT must be ≥ 10ms, got %s", c.FetchWait)
	case c.FetchBatch < 1:
		return fmt.Errorf("USHER_WORKER_FETCH_BATCH must be ≥ 1, got %d", c.FetchBatch)
	case c.RetryBackoff <= 0:
		return fmt.Errorf("USHER_WORKER_RETRY_BACKOFF must be > 0, got %s", c.RetryBackoff)
	case c.RetryBackoffMax < c.RetryBackoff:
		return fmt.Errorf("USHER_WORKER_RETRY_BACKOFF_MAX must be ≥ USHER_WORKER_RETRY_BACKOFF, got %s", c.RetryBackoffMax)
	case c.OpTimeout < 100*time.Millisecond:
		return fmt.Errorf("USHER_WORKER_OP_TIMEOUT must be ≥ 100ms, got %s", c.OpTimeout)
	case c.HandOffWindow < time.Second:
		return fmt.Errorf("USHER_WORKER_HANDOFF_WINDOW must be ≥ 1s, got %s", c.HandOffWindow)
	}
	return nil
}

// Defaults returns the documented defaults (WorkerID is left empty).
func Defaults() Config {
	return Config{
		Slots:           4,
		DrainTimeout:    30 * time.Second,
		FetchWait:       time.Second,
		FetchBatch:      256,
		RetryBackoff:    2 * time.Second,
		RetryBackoffMax: time.Minute,
		OpTimeout:       5 * time.Second,
		HandOffWindow:   10 * time.Minute,
	}
}
