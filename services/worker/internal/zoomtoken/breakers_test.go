package zoomtoken

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/usherhq/usher/shared/botstate"
)

// gaugeReader reads the open-breakers gauge from the harness's registry.
type gaugeReader struct{ h *harness }

func (g *gaugeReader) value(t *testing.T) float64 {
	t.Helper()
	mfs, err := g.h.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "usher_worker_zoom_tokens_breakers_open" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("usher_worker_zoom_tokens_breakers_open not registered")
	return 0
}

func stateChanges(h *harness, state string) float64 {
	return testutil.ToFloat64(h.client.metrics.stateChanges.WithLabelValues(state))
}

func TestBreakerOpensThenFastPathMakesNoCall(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	srv := newCallbackServer(t, true, func(w http.ResponseWriter, r *http.Request, n int) {
		if healthy.Load() {
			reply(200, `{"zak_token":"z"}`)(w, r, n)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	})
	other := newCallbackServer(t, true, reply(200, `{"zak_token":"other"}`))
	cfg := testConfig()
	cfg.Retries = 0
	cfg.BreakerFailures = 3
	cfg.BreakerOpenFor = time.Second // long enough for the fast-path checks on a busy machine
	h := newHarness(t, cfg, srv)
	gauge := &gaugeReader{h: h}

	for i := range 3 {
		_, err := fetch(t, h, request(srv.url("/")))
		asError(t, err, ErrUnavailable)
		if i < 2 && gauge.value(t) != 0 {
			t.Fatalf("breaker open after %d failures, want 3", i+1)
		}
	}
	if gauge.value(t) != 1 || stateChanges(h, "open") != 1 {
		t.Fatalf("open breakers %v, open transitions %v; want 1 and 1", gauge.value(t), stateChanges(h, "open"))
	}

	// Open: no call is made, and the caller is told to come back when it half-opens.
	start := time.Now()
	_, err := fetch(t, h, request(srv.url("/")))
	e := asError(t, err, ErrBreakerOpen)
	if !e.Transient() || e.SubCode() != botstate.SubZoomTokensUnavailable || e.Reason != ReasonBreakerOpen {
		t.Errorf("transient %v sub_code %s reason %s", e.Transient(), e.SubCode(), e.Reason)
	}
	if e.RetryAfter <= 0 || e.RetryAfter > cfg.BreakerOpenFor+cfg.BreakerOpenFor/10+time.Millisecond {
		t.Errorf("RetryAfter %s, want until half-open (≤ %s + jitter)", e.RetryAfter, cfg.BreakerOpenFor)
	}
	if n := srv.calls.Load(); n != 3 {
		t.Errorf("callback called %d times, want 3: an open breaker makes no call", n)
	}
	// Another host has its own breaker.
	if _, err := fetch(t, h, request(other.url("/"))); err != nil {
		t.Errorf("another host is affected by this host's breaker: %v", err)
	}

	// After the open period one probe goes through; success closes the breaker.
	healthy.Store(true)
	waitFor(t, "the breaker to half-open", time.Until(start.Add(5*time.Second)), func() bool { return gauge.value(t) == 0 })
	if got, err := fetch(t, h, request(srv.url("/"))); err != nil || got.ZAK.Reveal() != "z" {
		t.Fatalf("probe Fetch = %v, %v", got, err)
	}
	if stateChanges(h, "half_open") != 1 || stateChanges(h, "closed") != 1 {
		t.Errorf("transitions half_open %v closed %v, want 1 and 1", stateChanges(h, "half_open"), stateChanges(h, "closed"))
	}
	logs := h.logs.String()
	if strings.Count(logs, "zoom tokens breaker state changed") != 3 {
		t.Errorf("want 3 breaker log lines, got:\n%s", logs)
	}
}

func TestBreakerOpensMidFetchKeepsTheAnswerSeen(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, reply(502, ``))
	cfg := testConfig()
	cfg.Retries = 2
	cfg.BreakerFailures = 2
	cfg.BreakerOpenFor = 30 * time.Second
	h := newHarness(t, cfg, srv)
	_, err := fetch(t, h, request(srv.url("/")))
	e := asError(t, err, ErrUnavailable)
	if e.Status != 502 || e.Attempts != 2 {
		t.Errorf("status %d attempts %d: the breaker opened after the 2nd call, so no 3rd", e.Status, e.Attempts)
	}
	if e.RetryAfter < 29*time.Second {
		t.Errorf("RetryAfter %s, want at least until the breaker half-opens", e.RetryAfter)
	}
	if n := srv.calls.Load(); n != 2 {
		t.Errorf("callback called %d times, want 2", n)
	}
}

func TestBreakerIgnores4xxAndInvalidAnswers(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, func(w http.ResponseWriter, r *http.Request, n int) {
		if n%2 == 0 {
			reply(404, ``)(w, r, n)
			return
		}
		reply(200, `{"zak_token":1}`)(w, r, n)
	})
	cfg := testConfig()
	cfg.BreakerFailures = 2
	h := newHarness(t, cfg, srv)
	for range 6 {
		_, err := fetch(t, h, request(srv.url("/")))
		if e, ok := errors.AsType[*Error](err); !ok || e.Transient() {
			t.Fatalf("err = %v, want a permanent *Error", err)
		}
	}
	if n := srv.calls.Load(); n != 6 {
		t.Errorf("callback called %d times, want 6: 4xx and invalid answers must not open the breaker", n)
	}
	if stateChanges(h, "open") != 0 {
		t.Error("breaker opened")
	}
}

func TestBreakerHalfOpenLetsOneProbeThrough(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	probeStarted := make(chan struct{})
	releaseProbe := make(chan struct{})
	srv := newCallbackServer(t, true, func(w http.ResponseWriter, r *http.Request, n int) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		close(probeStarted)
		select {
		case <-releaseProbe:
		case <-r.Context().Done():
		}
		reply(200, `{"zak_token":"z"}`)(w, r, n)
	})
	cfg := testConfig()
	cfg.Retries = 0
	cfg.BreakerFailures = 1
	cfg.BreakerOpenFor = 200 * time.Millisecond
	cfg.Timeout = 3 * time.Second
	h := newHarness(t, cfg, srv)
	gauge := &gaugeReader{h: h}

	_, _ = fetch(t, h, request(srv.url("/")))
	healthy.Store(true)
	waitFor(t, "the breaker to half-open", 5*time.Second, func() bool { return gauge.value(t) == 0 })

	probe := make(chan error, 1)
	go func() {
		_, err := fetch(t, h, request(srv.url("/")))
		probe <- err
	}()
	<-probeStarted
	_, err := fetch(t, h, request(srv.url("/")))
	e := asError(t, err, ErrBreakerOpen)
	if e.Reason != ReasonBreakerProbing || e.RetryAfter < cfg.Timeout {
		t.Errorf("reason %s RetryAfter %s: while the probe runs, wait about one call's timeout", e.Reason, e.RetryAfter)
	}
	close(releaseProbe)
	if err := <-probe; err != nil {
		t.Errorf("probe: %v", err)
	}
	if n := srv.calls.Load(); n != 2 {
		t.Errorf("callback called %d times, want 2 (the failure, then the one probe)", n)
	}
}

func TestBreakersAreBoundedPerHost(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.BreakerHosts = 2
	b := newBreakers(cfg, discard())
	b.metrics = newMetrics(nil, b.open)
	first := b.get("a:443")
	b.get("b:443")
	if b.get("a:443") != first {
		t.Error("a host's breaker was replaced while within the bound")
	}
	b.get("c:443") // evicts b, the least recently used
	if len(b.byHost) != 2 || b.byHost["b:443"] != nil || b.byHost["a:443"] == nil {
		t.Errorf("hosts kept: %v", keys(b.byHost))
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
