// Package answer turns the outcome of a create-bot request into what the
// caller gets back, the same way for both transports: the HTTP status and
// JSON body (which is also the NATS reply to a JSON request), the protobuf
// CreateBotReply, and for a refused NATS request the Rejection published on
// usher.rejections.<project>.
package answer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
	"github.com/usherhq/usher/services/ingest/internal/bots"
	"github.com/usherhq/usher/services/ingest/internal/ratelimit"
)

// Reasons a request is refused: the closed set used as the rejected-requests
// metric label and as Rejection.reason.
const (
	ReasonInvalidSubject       = "invalid_subject"
	ReasonTooLarge             = "too_large"
	ReasonUnsupportedMediaType = "unsupported_media_type"
	ReasonBadEncoding          = "bad_encoding"
	ReasonInvalidRequest       = "invalid_request"
	ReasonDuplicate            = "duplicate"
	ReasonThrottled            = "throttled"
	ReasonUnavailable          = "unavailable"
	ReasonInternal             = "internal"
)

// Reasons lists every reason.
var Reasons = []string{
	ReasonInvalidSubject, ReasonTooLarge, ReasonUnsupportedMediaType, ReasonBadEncoding,
	ReasonInvalidRequest, ReasonDuplicate, ReasonThrottled, ReasonUnavailable, ReasonInternal,
}

// Messages of request-level refusals.
const (
	// MsgDedupInUse is Attendee's message for a deduplication_key clash.
	MsgDedupInUse = "Deduplication key already in use. A bot in a non-terminal state with this deduplication key already exists. Please use a different deduplication key or wait for that bot to terminate."
	// MsgMsgIDUsed answers a NATS request whose Nats-Msg-Id already created a bot.
	MsgMsgIDUsed = "A bot was already created for this Nats-Msg-Id."
	// MsgUnavailable answers a create that JetStream could not take.
	MsgUnavailable = "The bot could not be queued: Usher's job queue is unavailable. Nothing was created; retry later."
	// MsgInternal answers an unexpected failure.
	MsgInternal = "An internal error occurred. Nothing was created."
)

// TooLargeError refuses a body over the size limit.
type TooLargeError struct{ Limit int64 }

// Error describes the refusal.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("Request body is larger than the limit of %d bytes.", e.Limit)
}

// MediaTypeError refuses an HTTP body that is not JSON (Attendee's 415).
type MediaTypeError struct{ ContentType string }

// Error describes the refusal.
func (e *MediaTypeError) Error() string {
	return fmt.Sprintf("Unsupported media type %q in request.", e.ContentType)
}

// SubjectError refuses a NATS request on a subject that names no valid project.
type SubjectError struct{ Subject string }

// Error describes the refusal.
func (e *SubjectError) Error() string {
	return fmt.Sprintf("Requests must be sent on usher.requests.<project> (lowercase letters, digits, - and _); got subject %q.", e.Subject)
}

// Answer is what a create request gets back.
type Answer struct {
	// Status is the HTTP status (the Usher-Status header over NATS).
	Status int
	// Reason is empty for a created bot, else one of Reasons.
	Reason string
	// Body is the JSON body.
	Body any
	// Bot is the created bot, or the existing one for a duplicate (nil while
	// that one is still being created).
	Bot *botdoc.Doc
	// ExistingID is the bot that holds the key of a duplicate.
	ExistingID string
	// Errors are the field errors of an invalid request.
	Errors botrequest.Errors
	// Message is the request-level error.
	Message string
	// RetryAfter is the Retry-After in seconds (0: none).
	RetryAfter int
}

// Created answers a created bot.
func Created(doc *botdoc.Doc) Answer {
	return Answer{Status: http.StatusCreated, Body: doc.View(), Bot: doc}
}

// Refused answers a create that failed with err. Errors it does not know
// become a 500 (the caller logs them).
func Refused(err error) Answer {
	var (
		fields    botrequest.Errors
		parse     *botrequest.ParseError
		encoding  *botrequest.EncodingError
		throttled *ratelimit.ThrottledError
		dup       *bots.DuplicateError
		tooLarge  *TooLargeError
		media     *MediaTypeError
		subject   *SubjectError
	)
	detail := func(status int, reason, msg string) Answer {
		return Answer{Status: status, Reason: reason, Body: map[string]string{"detail": msg}, Message: msg}
	}
	errorBody := func(status int, reason, msg string) Answer {
		return Answer{Status: status, Reason: reason, Body: map[string]string{"error": msg}, Message: msg}
	}
	switch {
	case errors.As(err, &fields):
		return Answer{Status: http.StatusBadRequest, Reason: ReasonInvalidRequest, Body: fields.ByField(), Errors: fields}
	case errors.As(err, &parse):
		return detail(http.StatusBadRequest, ReasonBadEncoding, parse.Error())
	case errors.As(err, &encoding):
		return detail(http.StatusBadRequest, ReasonBadEncoding, encoding.Error())
	case errors.As(err, &throttled):
		a := detail(http.StatusTooManyRequests, ReasonThrottled, throttled.Error())
		a.RetryAfter = throttled.Seconds()
		return a
	case errors.As(err, &dup):
		msg := MsgDedupInUse
		if dup.Kind == bots.DuplicateMsgID {
			msg = MsgMsgIDUsed
		}
		return Answer{
			Status: http.StatusConflict, Reason: ReasonDuplicate, Message: msg, Bot: dup.Existing, ExistingID: dup.ExistingID,
			Body: map[string]string{"error": msg, "id": dup.ExistingID},
		}
	case errors.As(err, &tooLarge):
		return detail(http.StatusRequestEntityTooLarge, ReasonTooLarge, tooLarge.Error())
	case errors.As(err, &media):
		return detail(http.StatusUnsupportedMediaType, ReasonUnsupportedMediaType, media.Error())
	case errors.As(err, &subject):
		return errorBody(http.StatusBadRequest, ReasonInvalidSubject, subject.Error())
	case errors.Is(err, bots.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		a := errorBody(http.StatusServiceUnavailable, ReasonUnavailable, MsgUnavailable)
		a.RetryAfter = 1
		return a
	}
	return errorBody(http.StatusInternalServerError, ReasonInternal, MsgInternal)
}

// Proto is the answer as a protobuf CreateBotReply.
func (a Answer) Proto() *usherv1.CreateBotReply {
	r := &usherv1.CreateBotReply{Status: uint32(a.Status), Error: a.Message}
	switch {
	case a.Bot != nil:
		r.Bot = a.Bot.Proto()
	case a.ExistingID != "":
		r.Bot = &usherv1.Bot{Id: a.ExistingID}
	}
	for _, fe := range a.Errors {
		r.Errors = append(r.Errors, &usherv1.FieldError{Field: fe.Field, Message: fe.Message})
	}
	return r
}

// Rejection is the event published for a refused NATS request.
func (a Answer) Rejection(project, subject, msgID string, at time.Time) *usherv1.Rejection {
	r := &usherv1.Rejection{
		Project: project,
		Subject: subject,
		Reason:  a.Reason,
		Error:   a.Message,
		MsgId:   msgID,
		At:      timestamppb.New(at),
	}
	if a.ExistingID != "" {
		r.Error = a.Message + " Existing bot: " + a.ExistingID + "."
	}
	for _, fe := range a.Errors {
		r.Errors = append(r.Errors, &usherv1.FieldError{Field: fe.Field, Message: fe.Message})
	}
	return r
}
