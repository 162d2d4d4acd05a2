package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/usherhq/usher/shared/callbacksig"
)

// callbackCall is one request the customer's endpoint received.
type callbackCall struct {
	Header http.Header
	Body   []byte
	// Verified: the signature checked out with the endpoint's secret.
	Verified bool
	// Status is what the endpoint answered.
	Status int
}

// tokensEndpoint is a customer's zoom_tokens_url: it verifies each call as
// docs/zoom-tokens.md tells customers (401 when the check fails), records
// it, and answers with answer.
type tokensEndpoint struct {
	srv    *httptest.Server
	secret string
	answer func(body []byte) (int, string)

	mu    sync.Mutex
	calls []callbackCall
}

// newTokensEndpoint starts an endpoint verifying with secret; answer decides
// the reply to each verified call.
func newTokensEndpoint(t *testing.T, secret string, answer func(body []byte) (int, string)) *tokensEndpoint {
	t.Helper()
	e := &tokensEndpoint{secret: secret, answer: answer}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

// URL is the endpoint's zoom_tokens_url.
func (e *tokensEndpoint) URL() string { return e.srv.URL + "/zoom-tokens-callback" }

func (e *tokensEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	call := callbackCall{Header: r.Header.Clone(), Body: body}
	status, reply := http.StatusUnauthorized, `{"error":"bad signature"}`
	switch {
	case err != nil || r.Method != http.MethodPost || r.URL.Path != "/zoom-tokens-callback":
		status, reply = http.StatusBadRequest, `{"error":"bad request"}`
	case callbacksig.VerifyUsherCallback(e.secret, r.Header, body, time.Now()) == nil:
		call.Verified = true
		status, reply = e.answer(body)
	}
	call.Status = status
	e.mu.Lock()
	e.calls = append(e.calls, call)
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, reply)
}

// Calls returns the calls received so far.
func (e *tokensEndpoint) Calls() []callbackCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]callbackCall(nil), e.calls...)
}
