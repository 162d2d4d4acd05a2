package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/usherhq/usher/services/ingest/internal/apiauth"
	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
	"github.com/usherhq/usher/services/ingest/internal/bots"
	"github.com/usherhq/usher/services/ingest/internal/httpjson"
	"github.com/usherhq/usher/shared/botstate"
)

// get is GET /api/v1/bots/{id}.
func (a *API) get(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.requestContext(r)
	defer cancel()
	doc, err := a.svc.Get(ctx, apiauth.Project(r.Context()), r.PathValue("id"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, doc.View())
}

// leave is POST /api/v1/bots/{id}/leave. Not throttled, as in Attendee.
func (a *API) leave(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.requestContext(r)
	defer cancel()
	project, id := apiauth.Project(r.Context()), r.PathValue("id")
	doc, err := a.svc.Leave(ctx, project, id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.log.Info("bot leave requested", "project", project, "bot_id", id, "state", doc.State)
	httpjson.Write(w, http.StatusOK, doc.View())
}

// delete is DELETE /api/v1/bots/{id}: 200 with an empty body, as in Attendee.
func (a *API) delete(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.requestContext(r)
	defer cancel()
	project, id := apiauth.Project(r.Context()), r.PathValue("id")
	if err := a.svc.Delete(ctx, project, id); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.log.Info("scheduled bot deleted", "project", project, "bot_id", id)
	w.WriteHeader(http.StatusOK)
}

// listBody is the list answer.
type listBody struct {
	Next     *string       `json:"next"`
	Previous *string       `json:"previous"`
	Results  []botdoc.View `json:"results"`
}

// list is GET /api/v1/bots: newest first, 25 per page, cursor pagination,
// Attendee's filters.
func (a *API) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f bots.Filter
	for _, s := range q["states"] {
		st := botstate.State(s)
		if !st.Valid() {
			valid := make([]string, len(botstate.All))
			for i, v := range botstate.All {
				valid[i] = string(v)
			}
			httpjson.Error(w, http.StatusBadRequest, "Invalid state: "+s+". Valid states are: "+strings.Join(valid, ", "))
			return
		}
		if !slices.Contains(f.States, st) {
			f.States = append(f.States, st)
		}
	}
	f.MeetingURL = q.Get("meeting_url")
	f.DeduplicationKey = q.Get("deduplication_key")
	for _, p := range []struct {
		name string
		dst  **time.Time
	}{{"join_at_after", &f.JoinAtAfter}, {"join_at_before", &f.JoinAtBefore}} {
		raw := q.Get(p.name)
		if raw == "" {
			continue
		}
		t, err := botrequest.ParseDatetime(raw)
		if err != nil {
			httpjson.Error(w, http.StatusBadRequest, "Invalid "+p.name+" format. Use ISO 8601 format (e.g., 2024-01-18T12:34:56Z)")
			return
		}
		*p.dst = &t
	}
	var cur *bots.Cursor
	if raw := q.Get("cursor"); raw != "" {
		c, err := bots.DecodeCursor(raw)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		cur = &c
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	page, err := a.svc.List(ctx, apiauth.Project(r.Context()), f, cur)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	body := listBody{Results: make([]botdoc.View, 0, len(page.Bots))}
	for _, d := range page.Bots {
		body.Results = append(body.Results, d.View())
	}
	body.Next = a.pageURL(r, page.Next)
	body.Previous = a.pageURL(r, page.Previous)
	httpjson.Write(w, http.StatusOK, body)
}

// pageURL is the request's absolute URL with its cursor replaced, query
// parameters sorted (as DRF renders them).
func (a *API) pageURL(r *http.Request, c *bots.Cursor) *string {
	if c == nil {
		return nil
	}
	base := strings.TrimSuffix(a.cfg.PublicURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
			scheme = p
		}
		base = scheme + "://" + r.Host
	}
	q := r.URL.Query()
	q.Set("cursor", c.Encode())
	u := base + r.URL.EscapedPath() + "?" + q.Encode()
	return &u
}

// writeError answers a failed get, list, leave or delete.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		state   *bots.StateError
		refused *bots.LeaveRefusedError
	)
	switch {
	case errors.Is(err, bots.ErrNotFound):
		httpjson.Error(w, http.StatusNotFound, "Bot not found")
	case errors.Is(err, bots.ErrInvalidCursor):
		httpjson.Detail(w, http.StatusNotFound, "Invalid cursor")
	case errors.As(err, &state) && state.Op == "leave":
		httpjson.Write(w, http.StatusConflict, map[string]string{"error": "Bot has already ended", "state": string(state.State)})
	case errors.As(err, &state):
		httpjson.Error(w, http.StatusBadRequest, "Bot is in state "+string(state.State)+" but can only be deleted when in scheduled state")
	case errors.As(err, &refused):
		w.Header().Set("Retry-After", "1")
		httpjson.Write(w, http.StatusServiceUnavailable, map[string]string{
			"error": "The worker serving the bot could not take the leave request (" + refused.Reason + "); retry.",
			"state": string(refused.State),
		})
	case errors.Is(err, bots.ErrWorkerTimeout):
		w.Header().Set("Retry-After", "1")
		httpjson.Error(w, http.StatusServiceUnavailable, "The worker serving the bot did not answer in time; retry.")
	case errors.Is(err, bots.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", "1")
		httpjson.Error(w, http.StatusServiceUnavailable, "Usher's bot store is unavailable; retry later.")
	default:
		a.log.Error("bot request", "route", r.Pattern, "error", err)
		httpjson.Error(w, http.StatusInternalServerError, "An internal error occurred.")
	}
}
