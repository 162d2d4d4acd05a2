package jobs

import (
	"errors"
	"fmt"
	"time"
)

// A handler's error decides what happens to its job. Failure ends the bot
// (a failed event with a sub-code, TermWithReason); RetryError hands the job
// back for later (NakWithDelay), holding no bot slot while it waits; any
// other error is retried with the runtime's backoff.

// Failure is a permanent failure of a bot.
type Failure struct {
	// SubCode is from botstate's public list.
	SubCode string
	// Meta is put in the failed event's metadata (never secrets).
	Meta map[string]string
	Err  error
}

// Permanent returns a *Failure: the bot fails with subCode and the job is terminated.
func Permanent(subCode string, err error) error { return &Failure{SubCode: subCode, Err: err} }

// PermanentMeta is Permanent with event metadata.
func PermanentMeta(subCode string, meta map[string]string, err error) error {
	return &Failure{SubCode: subCode, Meta: meta, Err: err}
}

func (f *Failure) Error() string { return fmt.Sprintf("%s: %v", f.SubCode, f.Err) }

func (f *Failure) Unwrap() error { return f.Err }

// RetryError asks for the job to be retried after a delay.
type RetryError struct {
	// After is the delay before redelivery.
	After time.Duration
	// SubCode is the failure reported when the join deadline (or the maximum
	// number of deliveries) is reached before the retry could succeed.
	SubCode string
	Err     error
}

// Retry returns a *RetryError: the job is redelivered after `after`, unless
// that is past its join deadline, in which case the bot fails with subCode.
func Retry(after time.Duration, subCode string, err error) error {
	return &RetryError{After: after, SubCode: subCode, Err: err}
}

func (r *RetryError) Error() string {
	return fmt.Sprintf("retry in %s (%s): %v", r.After, r.SubCode, r.Err)
}

func (r *RetryError) Unwrap() error { return r.Err }

// AsFailure returns the *Failure in err's chain, if any.
func AsFailure(err error) (*Failure, bool) {
	var f *Failure
	ok := errors.As(err, &f)
	return f, ok
}

// AsRetry returns the *RetryError in err's chain, if any.
func AsRetry(err error) (*RetryError, bool) {
	var r *RetryError
	ok := errors.As(err, &r)
	return r, ok
}

// Causes the runtime gives a bot's context (context.Cause) and that handlers
// return to say why they stopped.
var (
	// ErrLeaveRequested: a leave command was accepted (the bot is leaving).
	ErrLeaveRequested = errors.New("leave requested")
	// ErrLeaseLost: the bot's lease moved to another worker or expired; stop
	// at once and write nothing more for the bot.
	ErrLeaseLost = errors.New("bot lease lost")
	// ErrDraining: the worker is shutting down before the bot joined; stop
	// joining, the job is handed back to the queue.
	ErrDraining = errors.New("worker draining: job handed back")
	// ErrHandOff: the worker is shutting down and the drain timeout passed
	// with the bot in its meeting; leave the meeting and return, the bot is
	// handed off to another worker.
	ErrHandOff = errors.New("worker draining: bot handed off")
	// ErrBotFinished: another writer ended or failed the bot (for example the
	// max-deliveries handler); nothing more to do.
	ErrBotFinished = errors.New("bot finished by another writer")
)
