// Package api is Usher's HTTP bot API, compatible with Attendee's
// /api/v1/bots endpoints: create, get, list, leave and delete, with
// Attendee's error shapes. Authentication (apiauth) wraps every route,
// including the 404 and 405 answers, as in Attendee.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/usherhq/usher/services/ingest/internal/answer"
	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
	"github.com/usherhq/usher/services/ingest/internal/bots"
	"github.com/usherhq/usher/services/ingest/internal/httpjson"
)

// botService is what the API needs of the bot service.
type botService interface {
	Create(ctx context.Context, project string, spec botrequest.Spec, msgID string) (*botdoc.Doc, error)
	Get(ctx context.Context, project, id string) (*botdoc.Doc, error)
	List(ctx context.Context, project string, f bots.Filter, cur *bots.Cursor) (bots.Page, error)
	Leave(ctx context.Context, project, id string) (*botdoc.Doc, error)
	Delete(ctx context.Context, project, id string) error
}

// limiter is the per-project create budget.
type limiter interface {
	Allow(project string) error
}

// Config of the API.
type Config struct {
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes int64
	// PublicURL is the base of the absolute next/previous links of a list
	// (https://usher.example.com). Empty: taken from the request.
	PublicURL string
	// RequestTimeout bounds the work behind one request.
	RequestTimeout time.Duration
}

// API serves the bot endpoints.
type API struct {
	cfg       Config
	svc       botService
	validator *botrequest.Validator
	limiter   limiter
	answers   *answer.Metrics
	log       *slog.Logger
}

// New returns the API.
func New(cfg Config, svc botService, v *botrequest.Validator, lim limiter, answers *answer.Metrics, log *slog.Logger) *API {
	return &API{cfg: cfg, svc: svc, validator: v, limiter: lim, answers: answers, log: log}
}

// Register adds the routes to mux, each wrapped by auth. Patterns without a
// method answer 405 for the methods the path lacks; "/api/v1/" answers 404
// for every other path under the API.
func (a *API) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	handle := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, auth(h)) }
	handle("POST /api/v1/bots", a.create)
	handle("GET /api/v1/bots", a.list)
	handle("/api/v1/bots", methodNotAllowed("GET, POST"))
	handle("GET /api/v1/bots/{id}", a.get)
	handle("DELETE /api/v1/bots/{id}", a.delete)
	handle("/api/v1/bots/{id}", methodNotAllowed("GET, DELETE"))
	handle("POST /api/v1/bots/{id}/leave", a.leave)
	handle("/api/v1/bots/{id}/leave", methodNotAllowed("POST"))
	handle("/api/v1/", notFound)
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	httpjson.Error(w, http.StatusNotFound, "Not found")
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		httpjson.Detail(w, http.StatusMethodNotAllowed, "Method "+strconv.Quote(r.Method)+" not allowed.")
	}
}

func (a *API) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
}
