package zoomtoken

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/usherhq/usher/shared/callbacksig"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/secret"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testProject = "acme"
	testSecret  = "acme-signing-secret-0123456789"
	// testZAK is the token the callback hands out; tests scan for it.
	testZAK = "ZAK-eyJhbGciOiJIUzI1NiJ9.secret-zak-value"
)

// recorded is one request the callback server received.
type recorded struct {
	header http.Header
	body   []byte
	// verifyErr is VerifyUsherCallback's verdict with testSecret.
	verifyErr error
}

// callbackServer is a customer's zoom_tokens_url: it records and verifies
// every request, then answers with its handler.
type callbackServer struct {
	*httptest.Server
	calls atomic.Int32
	// conns counts accepted connections: a call that times out before its
	// request reaches the handler (a slow TLS handshake on a busy machine)
	// still opened one.
	conns atomic.Int32

	mu   sync.Mutex
	reqs []recorded
}

type answer func(w http.ResponseWriter, r *http.Request, call int)

func newCallbackServer(t *testing.T, tls bool, h answer) *callbackServer {
	t.Helper()
	s := &callbackServer{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := int(s.calls.Add(1))
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{header: r.Header.Clone(), body: body, verifyErr: callbacksig.VerifyUsherCallback(testSecret, r.Header, body, time.Now())})
		s.mu.Unlock()
		h(w, r, n)
	})
	s.Server = httptest.NewUnstartedServer(handler)
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.conns.Add(1)
		}
	}
	if tls {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func (s *callbackServer) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

func (s *callbackServer) url(path string) string { return s.URL + path }

// reply answers status with body.
func reply(status int, body string) answer {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// testConfig is a fast config trusting loopback (httptest servers listen there).
func testConfig() Config {
	return Config{
		Timeout:         2 * time.Second,
		Retries:         2,
		Backoff:         time.Millisecond,
		RetryDelay:      time.Second,
		Secrets:         secret.String(testProject + ":" + testSecret),
		AllowCIDRs:      []string{"127.0.0.0/8", "::1/128"},
		BreakerFailures: 100,
		BreakerOpenFor:  time.Minute,
		BreakerHosts:    16,
	}
}

type harness struct {
	client *Client
	reg    *prometheus.Registry
	logs   *logging.Buffer
}

// newHarness builds a client trusting srv's TLS certificate (when srv is a
// TLS server), logging JSON into a buffer through Usher's logger.
func newHarness(t *testing.T, cfg Config, srv *callbackServer, opts ...Option) *harness {
	t.Helper()
	logs := &logging.Buffer{}
	log := logging.New(logs, logging.Config{Level: "debug", Format: "json"}, "worker")
	reg := prometheus.NewRegistry()
	if srv != nil && srv.TLS != nil {
		opts = append([]Option{WithRootCAs(srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs)}, opts...)
	}
	c, err := New(cfg, log, reg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return &harness{client: c, reg: reg, logs: logs}
}

func request(url string) Request {
	return Request{
		URL:        url,
		BotID:      "bot_3hG7kPz9QwLm2XyA",
		Project:    testProject,
		MeetingURL: "https://zoom.us/j/85012345678?pwd=abc123",
		Metadata:   map[string]string{"customer": "acme"},
	}
}

func fetch(t *testing.T, h *harness, r Request) (Tokens, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return h.client.Fetch(ctx, r)
}

// asError asserts err is an *Error of kind.
func asError(t *testing.T, err error, kind error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *zoomtoken.Error", err, err)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q: want kind %q, got %q", err, kind, e.Kind)
	}
	return e
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// resolveTo is a Resolver answering addr for every name.
func resolveTo(addr string) Resolver {
	return func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr(addr)}, nil
	}
}

// assertNoSecret fails when any of the secrets appears in text.
func assertNoSecret(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains the secret %q:\n%s", where, s, text)
		}
	}
}

// discard is a logger for tests that do not read logs.
func discard() *slog.Logger { return logging.Discard() }
