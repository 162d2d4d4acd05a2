package api

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/usherhq/usher/services/ingest/internal/answer"
	"github.com/usherhq/usher/services/ingest/internal/apiauth"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
	"github.com/usherhq/usher/services/ingest/internal/httpjson"
)

// create is POST /api/v1/bots. As in Attendee the project's budget is
// spent before the body is read, so invalid requests count too.
func (a *API) create(w http.ResponseWriter, r *http.Request) {
	ans := a.createAnswer(r)
	a.answers.Record(answer.SourceHTTP, ans)
	if ans.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ans.RetryAfter))
	}
	httpjson.Write(w, ans.Status, ans.Body)
}

func (a *API) createAnswer(r *http.Request) answer.Answer {
	project := apiauth.Project(r.Context())
	if err := a.limiter.Allow(project); err != nil {
		return answer.Refused(err)
	}
	body, err := a.readJSON(r)
	if err != nil {
		return answer.Refused(err)
	}
	spec, err := a.validator.FromJSON(body)
	if err != nil {
		return answer.Refused(err)
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	doc, err := a.svc.Create(ctx, project, spec, "")
	if err != nil {
		ans := answer.Refused(err)
		if ans.Status >= http.StatusInternalServerError {
			a.log.Error("create bot", "project", project, "error", err)
		}
		return ans
	}
	a.log.Info("bot created", "project", project, "bot_id", doc.ID, "platform", doc.Platform, "state", doc.State)
	return answer.Created(doc)
}

// readJSON reads a JSON body of at most MaxBodyBytes. An empty body is
// accepted whatever its content type (Attendee parses it as {}).
func (a *API) readJSON(r *http.Request) ([]byte, error) {
	limit := a.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, &answer.TooLargeError{Limit: limit}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, &botrequest.ParseError{Reason: "the request body could not be read"}
	}
	if int64(len(body)) > limit {
		return nil, &answer.TooLargeError{Limit: limit}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, &answer.MediaTypeError{ContentType: ct}
	}
	return body, nil
}
