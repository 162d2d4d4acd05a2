// Package zoomcallback checks the zoom_tokens_url outcomes that need a fleet
// configured unlike the shared one: a worker with production SSRF settings,
// and a short join deadline with a callback that keeps failing.
package zoomcallback

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/e2e/fleet"
	"github.com/usherhq/usher/services/simulator/sim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// countingEndpoint answers every call with status and counts the calls.
func countingEndpoint(t *testing.T, tls bool, status int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"zak_token":"never-used-token"}`))
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv, &calls
}

// failZoomBot creates a bot for an authenticated-only Zoom meeting with
// tokensURL and waits until it has failed; it returns the bot.
func failZoomBot(t *testing.T, ctx context.Context, f *fleet.Fleet, tokensURL string, timeout time.Duration) fleet.Bot {
	t.Helper()
	m, err := f.Sim.CreateMeeting(sim.MeetingSpec{Platform: sim.Zoom, AuthRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	c := f.As(fleet.Project)
	bot, err := c.CreateBot(ctx, map[string]any{
		"meeting_url":       m.URL,
		"bot_name":          "Signed-in bot",
		"callback_settings": map[string]any{"zoom_tokens_url": tokensURL},
	})
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitBot(ctx, bot.ID, timeout, func(b fleet.Bot) bool { return b.State == "failed" || b.State == "ended" })
	if err != nil {
		t.Fatal(err)
	}
	mt, err := f.Sim.Meeting(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(mt.Participants); n != 1 {
		t.Fatalf("the meeting has %d participants, want only its host", n)
	}
	return done
}

// TestZoomTokensURLForbidden: a worker with the production callback settings
// (https only, no private address) refuses zoom_tokens_url values that
// ingest let through → failed/zoom_tokens_url_forbidden with the reason in
// the event metadata, and no call reaches the endpoint.
func TestZoomTokensURLForbidden(t *testing.T) {
	t.Parallel()
	f := fleet.StartTest(t, fleet.Options{
		Slots: 2,
		// Ingest (dev setting) accepts http:// URLs; the worker does not.
		Env: map[string]string{"USHER_CALLBACK_ALLOW_HTTP": "true"},
		WorkerEnv: map[string]string{
			"USHER_CALLBACK_ALLOW_HTTP":  "false",
			"USHER_CALLBACK_ALLOW_CIDRS": "",
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	plain, plainCalls := countingEndpoint(t, false, http.StatusOK)
	secure, secureCalls := countingEndpoint(t, true, http.StatusOK)
	for _, tc := range []struct {
		name, url, reason string
		calls             *atomic.Int64
	}{
		{"http", plain.URL + "/zoom-tokens", "not_https", plainCalls},
		{"https loopback", secure.URL + "/zoom-tokens", "address_forbidden", secureCalls},
		{"https link-local metadata service", "https://169.254.169.254/latest/meta-data", "address_forbidden", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed := failZoomBot(t, ctx, f, tc.url, 60*time.Second)
			last := failed.Events[len(failed.Events)-1]
			if failed.State != "failed" || failed.Sub() != "zoom_tokens_url_forbidden" || last.Metadata["reason"] != tc.reason {
				t.Fatalf("bot %s/%s (metadata %v), want failed/zoom_tokens_url_forbidden with reason %s", failed.State, failed.Sub(), last.Metadata, tc.reason)
			}
			if tc.calls != nil && tc.calls.Load() != 0 {
				t.Fatalf("the endpoint got %d calls, want none", tc.calls.Load())
			}
		})
	}
}

// TestZoomTokensCallbackDownUntilDeadline: an endpoint that answers 5xx is
// retried — within each join attempt, and by later join attempts that hold
// no slot while they wait — until the bot's join deadline, then the bot fails
// with zoom_tokens_callback_failed.
func TestZoomTokensCallbackDownUntilDeadline(t *testing.T) {
	t.Parallel()
	// A short join deadline: the job comes back every retry delay (+0–20%)
	// until a retry would start past it.
	const (
		deadline   = 12 * time.Second
		retryDelay = 2 * time.Second
	)
	f := fleet.StartTest(t, fleet.Options{
		Slots: 1,
		Env: map[string]string{
			"USHER_JOIN_DEADLINE":        deadline.String(),
			"USHER_CALLBACK_RETRY_DELAY": retryDelay.String(),
			"USHER_CALLBACK_RETRIES":     "2",
			// This test is about retries; the breaker has a test of its own in zoomtoken.
			"USHER_CALLBACK_BREAKER_FAILURES": "1000",
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), deadline+time.Minute)
	defer cancel()
	srv, calls := countingEndpoint(t, false, http.StatusServiceUnavailable)

	start := time.Now()
	failed := failZoomBot(t, ctx, f, srv.URL+"/zoom-tokens", deadline+30*time.Second)
	if failed.State != "failed" || failed.Sub() != "zoom_tokens_callback_failed" {
		t.Fatalf("bot %s/%s (events %v), want failed/zoom_tokens_callback_failed", failed.State, failed.Sub(), failed.States())
	}
	if want := []string{"joining", "failed"}; !slices.Equal(failed.States(), want) {
		t.Fatalf("states %v, want %v", failed.States(), want)
	}
	// One join attempt makes 1 + USHER_CALLBACK_RETRIES calls; more than
	// that proves the job came back for more attempts before the deadline.
	if n := calls.Load(); n <= 3 {
		t.Fatalf("%d calls to the endpoint, want several join attempts of 3 calls each", n)
	}
	// It gave up only when a further attempt would start past the deadline.
	if took := time.Since(start); took < deadline-retryDelay*6/5-time.Second {
		t.Fatalf("the bot failed after %s, before its %s join deadline was near", took, deadline)
	}
	text, err := f.Workers()[0].Scrape()
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := fleet.MetricValue(text, "usher_worker_job_retries_total", "sub_code=zoom_tokens_callback_failed"); !ok || v < 1 {
		t.Fatalf("usher_worker_job_retries_total{sub_code=zoom_tokens_callback_failed} = %v (found %v), want ≥ 1", v, ok)
	}
}
