package zoomtoken

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/usherhq/usher/shared/botstate"
)

// The kinds of failure, one per public sub-code decision. Every error Fetch
// returns (other than the caller's context ending) is an *Error whose chain
// holds exactly one of them.
var (
	// ErrNotConfigured: the bot's project has no signing secret, so no call is made.
	ErrNotConfigured = errors.New("no callback signing secret for the project")
	// ErrForbidden: the URL is not allowed (not https, redirects, resolves to
	// a private, loopback or link-local address, unparsable).
	ErrForbidden = errors.New("callback url forbidden")
	// ErrRejected: the endpoint answered 4xx.
	ErrRejected = errors.New("callback refused the request")
	// ErrUnavailable: the endpoint timed out, could not be reached or answered
	// 5xx, retries included. Transient.
	ErrUnavailable = errors.New("callback unavailable")
	// ErrBreakerOpen: the host's circuit breaker is open; no call was made. Transient.
	ErrBreakerOpen = errors.New("callback circuit breaker open")
	// ErrInvalidResponse: a 2xx answer that is not a JSON object with a
	// non-empty string zak_token (or is over 64 KiB).
	ErrInvalidResponse = errors.New("invalid callback response")
)

// Reasons detail a kind; they are constants, safe for event metadata.
const (
	ReasonInvalidURL      = "invalid_url"
	ReasonNotHTTPS        = "not_https"
	ReasonAddress         = "address_forbidden"
	ReasonRedirect        = "redirect"
	ReasonSecretMissing   = "signing_secret_missing"
	ReasonRejected        = "rejected"
	ReasonServerError     = "server_error"
	ReasonTimeout         = "timeout"
	ReasonConnection      = "connection_error"
	ReasonBreakerOpen     = "breaker_open"
	ReasonBreakerProbing  = "breaker_half_open"
	ReasonTooLarge        = "too_large"
	ReasonNotJSON         = "invalid_json"
	ReasonNotObject       = "not_an_object"
	ReasonDuplicateKey    = "duplicate_key"
	ReasonZAKMissing      = "zak_token_missing"
	ReasonTokenNotAString = "token_not_a_string"
)

// Error is a failed callback. Its message names the host and what went wrong,
// never the URL's path or query, the response body or a token.
type Error struct {
	// Kind is one of the Err* values above.
	Kind error
	// Reason details Kind (Reason* constants).
	Reason string
	// Field names the response field at fault, for invalid responses.
	Field string
	// Status is the HTTP status when the endpoint answered, else 0.
	Status int
	// Host is the callback URL's host (and port).
	Host string
	// Attempts is how many calls were made.
	Attempts int
	// RetryAfter is how long to wait before trying again, for transient kinds.
	RetryAfter time.Duration
	// Err is the cause, when there is one worth keeping.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("zoom tokens callback")
	if e.Host != "" {
		b.WriteString(" to ")
		b.WriteString(e.Host)
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.Reason != "" {
		b.WriteString(" (")
		b.WriteString(e.Reason)
		if e.Field != "" {
			b.WriteString(" ")
			b.WriteString(e.Field)
		}
		if e.Status != 0 {
			b.WriteString(", status ")
			b.WriteString(strconv.Itoa(e.Status))
		}
		b.WriteString(")")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes both the kind and the cause to errors.Is/As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Transient reports whether trying again later may succeed.
func (e *Error) Transient() bool {
	return errors.Is(e.Kind, ErrUnavailable) || errors.Is(e.Kind, ErrBreakerOpen)
}

// SubCode is the public sub-code a bot fails with because of e (for a
// transient error: once its join deadline passes).
func (e *Error) SubCode() string {
	switch {
	case errors.Is(e.Kind, ErrForbidden):
		return botstate.SubZoomTokensURLForbidden
	case errors.Is(e.Kind, ErrInvalidResponse):
		return botstate.SubZoomTokensInvalid
	case errors.Is(e.Kind, ErrBreakerOpen):
		return botstate.SubZoomTokensUnavailable
	default:
		return botstate.SubZoomTokensFailed
	}
}

// Meta is the failed event's metadata for e: constants and the status code,
// never secrets.
func (e *Error) Meta() map[string]string {
	m := map[string]string{}
	if e.Reason != "" {
		m["reason"] = e.Reason
	}
	if e.Field != "" {
		m["field"] = e.Field
	}
	if e.Status != 0 {
		m["status"] = strconv.Itoa(e.Status)
	}
	return m
}
