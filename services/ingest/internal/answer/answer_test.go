package answer_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/usherhq/usher/services/ingest/internal/answer"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
	"github.com/usherhq/usher/services/ingest/internal/bots"
	"github.com/usherhq/usher/services/ingest/internal/ratelimit"
)

func TestRefusedMapsEveryErrorToAStatusAndReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		status int
		reason string
		retry  int
	}{
		{botrequest.Errors{{Field: "bot_name", Message: "This field is required."}}, 400, answer.ReasonInvalidRequest, 0},
		{fmt.Errorf("wrapped: %w", &botrequest.ParseError{Reason: "x"}), 400, answer.ReasonBadEncoding, 0},
		{&botrequest.EncodingError{Reason: "x"}, 400, answer.ReasonBadEncoding, 0},
		{&ratelimit.ThrottledError{RetryAfter: 1500 * time.Millisecond}, 429, answer.ReasonThrottled, 2},
		{&bots.DuplicateError{Kind: bots.DuplicateDedupKey, ExistingID: "bot_x"}, 409, answer.ReasonDuplicate, 0},
		{&answer.TooLargeError{Limit: 10}, 413, answer.ReasonTooLarge, 0},
		{&answer.MediaTypeError{ContentType: "text/plain"}, 415, answer.ReasonUnsupportedMediaType, 0},
		{&answer.SubjectError{Subject: "usher.requests.A"}, 400, answer.ReasonInvalidSubject, 0},
		{fmt.Errorf("publish: %w", bots.ErrUnavailable), 503, answer.ReasonUnavailable, 1},
		{context.DeadlineExceeded, 503, answer.ReasonUnavailable, 1},
		{errors.New("boom"), 500, answer.ReasonInternal, 0},
	} {
		a := answer.Refused(tc.err)
		if a.Status != tc.status || a.Reason != tc.reason || a.RetryAfter != tc.retry {
			t.Errorf("%v: %d %s retry %d; want %d %s retry %d", tc.err, a.Status, a.Reason, a.RetryAfter, tc.status, tc.reason, tc.retry)
		}
		if p := a.Proto(); p.GetStatus() != uint32(tc.status) {
			t.Errorf("%v: proto status %d", tc.err, p.GetStatus())
		}
		if r := a.Rejection("acme", "usher.requests.acme", "m", time.Now()); r.GetReason() != tc.reason {
			t.Errorf("%v: rejection reason %q", tc.err, r.GetReason())
		}
	}
	dup := answer.Refused(&bots.DuplicateError{Kind: bots.DuplicateMsgID, ExistingID: "bot_x"})
	if dup.Proto().GetBot().GetId() != "bot_x" || dup.Body.(map[string]string)["id"] != "bot_x" || dup.Status != http.StatusConflict {
		t.Fatalf("duplicate without a document: %+v", dup)
	}
}
