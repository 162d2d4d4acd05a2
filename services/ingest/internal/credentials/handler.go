// Package credentials is the API and the store of the projects' Microsoft
// Teams bot accounts: PUT /api/v1/credentials/teams stores an account's
// email and password (sealed with sealbox under the current key of
// USHER_SECRET_KEYS) in the TEAMS_ACCOUNTS bucket; GET lists accounts with
// their status and never a password; DELETE removes one; the screenshot
// endpoint serves the page of the account's last failed login.
//
// The stored record itself (its JSON, ids, sealing context, statuses) is
// package teamsaccount in shared, the contract with the workers.
//
// The lead mounts Handler under /api/v1/credentials/ behind the API-key
// middleware (apiauth), which puts the caller's project in the context.
package credentials

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/usherhq/usher/services/ingest/internal/apiauth"
	"github.com/usherhq/usher/services/ingest/internal/httpjson"
	"github.com/usherhq/usher/shared/sealbox"
	"github.com/usherhq/usher/shared/teamsaccount"
)

// Config of the credentials API.
type Config struct {
	// MaxAccounts bounds the Teams accounts one project can store. Default 100.
	MaxAccounts int `env:"USHER_TEAMS_MAX_ACCOUNTS_PER_PROJECT" default:"100"`
}

// Validate names the bad variable.
func (c Config) Validate() error {
	if c.MaxAccounts < 1 || c.MaxAccounts > 10_000 {
		return fmt.Errorf("USHER_TEAMS_MAX_ACCOUNTS_PER_PROJECT must be 1-10000, got %d", c.MaxAccounts)
	}
	return nil
}

// Paths served by Handler.
const (
	// PathPrefix is where the lead mounts Handler.
	PathPrefix = "/api/v1/credentials/"
	// PathTeams lists (GET) and stores (PUT) accounts.
	PathTeams = "/api/v1/credentials/teams"
)

// Messages of business-rule errors.
const (
	MsgNotFound           = "Teams account not found"
	MsgScreenshotNotFound = "No screenshot of a failed login for this account"
	MsgUnavailable        = "The credentials store is unavailable, try again"
)

// Handler serves the Teams credentials API.
type Handler struct {
	store *Store
	log   *slog.Logger
	mux   *http.ServeMux
}

// NewHandler returns the API over store.
func NewHandler(store *Store, log *slog.Logger) *Handler {
	h := &Handler{store: store, log: log, mux: http.NewServeMux()}
	h.mux.HandleFunc(PathTeams, h.collection)
	h.mux.HandleFunc(PathTeams+"/{id}", h.item)
	h.mux.HandleFunc(PathTeams+"/{id}/screenshot", h.screenshot)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		httpjson.Error(w, http.StatusNotFound, "Not found")
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// AccountView is an account as the API shows it: never the password.
type AccountView struct {
	ID     string `json:"id"`
	Email  string `json:"email"`
	Status string `json:"status"`
	// LastUsedAt is when a bot last took the account.
	LastUsedAt *time.Time `json:"last_used_at"`
	// LastLoginAt is when a worker last signed the account in.
	LastLoginAt *time.Time `json:"last_login_at"`
	// LastLoginError is the sub_code of the last failed login.
	LastLoginError   *string    `json:"last_login_error"`
	LastLoginErrorAt *time.Time `json:"last_login_error_at"`
	// ScreenshotURL downloads the page of the last failed login.
	ScreenshotURL *string   `json:"screenshot_url"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// View returns rec as the API shows it.
func View(rec teamsaccount.Record) AccountView {
	v := AccountView{
		ID: rec.ID, Email: rec.Email, Status: rec.Status,
		LastUsedAt: timePtr(rec.LastUsedAt), LastLoginAt: timePtr(rec.LastLoginAt),
		LastLoginErrorAt: timePtr(rec.LastFailureAt),
		CreatedAt:        rec.CreatedAt, UpdatedAt: rec.UpdatedAt,
	}
	if rec.LastFailureCode != "" {
		code := rec.LastFailureCode
		v.LastLoginError = &code
	}
	if rec.Screenshot != "" {
		u := PathTeams + "/" + rec.ID + "/screenshot"
		v.ScreenshotURL = &u
	}
	return v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ListView is the body of GET /api/v1/credentials/teams.
type ListView struct {
	Results []AccountView `json:"results"`
}

func (h *Handler) collection(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.list(w, r)
	case http.MethodPut:
		h.put(w, r)
	default:
		methodNotAllowed(w, r, "GET, PUT")
	}
}

func (h *Handler) item(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		rec, err := h.store.Get(r.Context(), apiauth.Project(r.Context()), r.PathValue("id"))
		if err != nil {
			h.fail(w, "get", err)
			return
		}
		httpjson.Write(w, http.StatusOK, View(rec))
	case http.MethodDelete:
		project, id := apiauth.Project(r.Context()), r.PathValue("id")
		if err := h.store.Delete(r.Context(), project, id); err != nil {
			h.fail(w, "delete", err)
			return
		}
		h.log.Info("teams account deleted", "project", project, "account_id", id)
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w, r, "GET, DELETE")
	}
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	recs, err := h.store.List(r.Context(), apiauth.Project(r.Context()))
	if err != nil {
		h.fail(w, "list", err)
		return
	}
	out := ListView{Results: make([]AccountView, 0, len(recs))}
	for _, rec := range recs {
		out.Results = append(out.Results, View(rec))
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (h *Handler) put(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			httpjson.Detail(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Unsupported media type %q in request.", ct))
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			httpjson.Detail(w, http.StatusRequestEntityTooLarge, "Request body is larger than "+strconv.Itoa(MaxBodyBytes>>10)+" KiB.")
			return
		}
		httpjson.Detail(w, http.StatusBadRequest, "Could not read the request body.")
		return
	}
	in, fieldErrs, err := parsePut(body)
	if err != nil {
		httpjson.Detail(w, http.StatusBadRequest, err.Error())
		return
	}
	if fieldErrs != nil {
		httpjson.Write(w, http.StatusBadRequest, fieldErrs)
		return
	}
	project := apiauth.Project(r.Context())
	rec, created, err := h.store.Put(r.Context(), project, in.Email, in.Password)
	if err != nil {
		h.fail(w, "put", err)
		return
	}
	h.log.Info("teams account stored", "project", project, "account_id", rec.ID, "created", created, "key_id", keyIDOf(rec))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpjson.Write(w, status, View(rec))
}

func (h *Handler) screenshot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "GET")
		return
	}
	shot, err := h.store.Screenshot(r.Context(), apiauth.Project(r.Context()), r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		// Distinguish "no such account" from "no screenshot" only for the owner.
		if _, gerr := h.store.Get(r.Context(), apiauth.Project(r.Context()), r.PathValue("id")); gerr == nil {
			httpjson.Error(w, http.StatusNotFound, MsgScreenshotNotFound)
			return
		}
	}
	if err != nil {
		h.fail(w, "screenshot", err)
		return
	}
	w.Header().Set("Content-Type", shot.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(shot.Data)))
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !shot.TakenAt.IsZero() {
		w.Header().Set("Last-Modified", shot.TakenAt.UTC().Format(http.TimeFormat))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(shot.Data)
}

func (h *Handler) fail(w http.ResponseWriter, op string, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		httpjson.Error(w, http.StatusNotFound, MsgNotFound)
	case errors.Is(err, ErrTooManyAccounts):
		httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("This project already holds the maximum of %d Teams accounts. Delete one first.", h.store.maxAccounts))
	default:
		// Store errors name account ids and keys, never a password.
		h.log.Error("teams credentials store failed", "op", op, "err", err)
		httpjson.Error(w, http.StatusServiceUnavailable, MsgUnavailable)
	}
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	httpjson.Detail(w, http.StatusMethodNotAllowed, fmt.Sprintf("Method %q not allowed.", r.Method))
}

func keyIDOf(rec teamsaccount.Record) string {
	kid, _ := sealbox.KeyID(rec.SealedPassword)
	return kid
}
