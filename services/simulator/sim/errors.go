package sim

import (
	"errors"
	"fmt"
)

// Error kinds returned by the Go accessors; the admin API maps them to 400, 404 and 409.
var (
	// ErrInvalid: a request field is missing or wrong; the message names it.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: no such meeting, participant or account.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the meeting or participant is not in a state that allows the action.
	ErrConflict = errors.New("conflict")
)

// simError carries a user-facing message and one of the kinds above.
type simError struct {
	kind error
	msg  string
}

func (e *simError) Error() string { return e.msg }
func (e *simError) Unwrap() error { return e.kind }

func invalidf(format string, args ...any) error {
	return &simError{kind: ErrInvalid, msg: fmt.Sprintf(format, args...)}
}

func notFoundf(format string, args ...any) error {
	return &simError{kind: ErrNotFound, msg: fmt.Sprintf(format, args...)}
}

func conflictf(format string, args ...any) error {
	return &simError{kind: ErrConflict, msg: fmt.Sprintf(format, args...)}
}
