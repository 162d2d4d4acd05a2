package bots

import (
	"errors"
	"fmt"

	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/shared/botstate"
)

// Sentinels of the bot service.
var (
	// ErrNotFound: no such bot in the project.
	ErrNotFound = errors.New("bot not found")
	// ErrUnavailable: JetStream did not answer in time; nothing was changed
	// (or the change was rolled back). Retry later.
	ErrUnavailable = errors.New("bot store unavailable")
	// ErrInvalidCursor: a list cursor that this service did not issue.
	ErrInvalidCursor = errors.New("invalid cursor")
	// ErrWorkerTimeout: a worker holds the bot but did not answer the leave
	// command in time.
	ErrWorkerTimeout = errors.New("the worker holding the bot did not answer")
)

func unavailable(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
}

// DuplicateKind says which index refused a create.
type DuplicateKind string

// Duplicate kinds.
const (
	// DuplicateDedupKey: an unfinished bot has the same deduplication_key.
	DuplicateDedupKey DuplicateKind = "deduplication_key"
	// DuplicateMsgID: a bot was already created for the NATS request's Nats-Msg-Id.
	DuplicateMsgID DuplicateKind = "nats_msg_id"
)

// DuplicateError refuses a create that would repeat an existing bot.
type DuplicateError struct {
	Kind DuplicateKind
	// ExistingID is the bot that holds the key.
	ExistingID string
	// Existing is that bot's document, or nil while it is still being created.
	Existing *botdoc.Doc
}

// Error describes the refusal.
func (e *DuplicateError) Error() string {
	return fmt.Sprintf("duplicate %s: bot %s already has it", e.Kind, e.ExistingID)
}

// StateError refuses an operation the bot's state does not allow.
type StateError struct {
	// Op is "leave" or "delete".
	Op    string
	State botstate.State
}

// Error describes the refusal.
func (e *StateError) Error() string {
	return fmt.Sprintf("cannot %s a bot in state %s", e.Op, e.State)
}

// LeaveRefusedError is a worker's repeated refusal of a leave command
// (for example while it hands the bot over): the caller should retry.
type LeaveRefusedError struct {
	State  botstate.State
	Reason string
}

// Error describes the refusal.
func (e *LeaveRefusedError) Error() string {
	return fmt.Sprintf("the worker refused to leave (state %s): %s", e.State, e.Reason)
}
