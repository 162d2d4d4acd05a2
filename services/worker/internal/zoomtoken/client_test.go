package zoomtoken

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/callbacksig"
	"github.com/usherhq/usher/shared/secret"
)

func TestFetchSignedRequestAndTokens(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, reply(200,
		`{"zak_token":"`+testZAK+`","onbehalf_token":"obf-1,obf-2","join_token":"join-1","app_privilege_token":"app-1","extra":{"ignored":true}}`))
	h := newHarness(t, testConfig(), srv, WithVersion("1.2.3"))

	got, err := fetch(t, h, request(srv.url("/zoom-tokens-callback")))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got.ZAK.Reveal() != testZAK || got.OnBehalf.Reveal() != "obf-1,obf-2" || got.Join.Reveal() != "join-1" || got.AppPrivilege.Reveal() != "app-1" {
		t.Errorf("tokens = %q %q %q %q", got.ZAK.Reveal(), got.OnBehalf.Reveal(), got.Join.Reveal(), got.AppPrivilege.Reveal())
	}

	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("callback received %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.verifyErr != nil {
		t.Errorf("the README's verifier refuses the request: %v", r.verifyErr)
	}
	// Byte for byte the contract's body, which is also Attendee's canonical JSON.
	wantBody := `{"bot_id":"bot_3hG7kPz9QwLm2XyA","bot_metadata":{"customer":"acme"},"callback_type":"zoom_tokens","meeting_url":"https://zoom.us/j/85012345678?pwd=abc123"}`
	if string(r.body) != wantBody {
		t.Errorf("body\n got %s\nwant %s", r.body, wantBody)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json",
		"User-Agent":   "Usher-Callback/1.2.3 (+https://github.com/usherhq/usher)",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if callbacksig.VerifyUsherCallback("some-other-secret-123456", r.header, r.body, time.Now()) == nil {
		t.Error("a different secret verifies the request")
	}
	if callbacksig.VerifyUsherCallback(testSecret, r.header, append([]byte(" "), r.body...), time.Now()) == nil {
		t.Error("a modified body verifies")
	}
	if callbacksig.VerifyUsherCallback(testSecret, r.header, r.body, time.Now().Add(6*time.Minute)) == nil {
		t.Error("a request older than 5 minutes verifies (replay window)")
	}
}

func TestFetchBodyWithoutMetadataSendsNull(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, reply(200, `{"zak_token":"z"}`))
	h := newHarness(t, testConfig(), srv)
	r := request(srv.url("/"))
	r.Metadata = nil
	if _, err := fetch(t, h, r); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := `{"bot_id":"bot_3hG7kPz9QwLm2XyA","bot_metadata":null,"callback_type":"zoom_tokens","meeting_url":"https://zoom.us/j/85012345678?pwd=abc123"}`
	if got := string(srv.requests()[0].body); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func TestFetchSignsWithEverySecretDuringRotation(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, reply(200, `{"zak_token":"z"}`))
	cfg := testConfig()
	const next = "acme-next-secret-abcdefghijkl"
	cfg.Secrets = secret.String("acme:" + testSecret + ", other:other-project-secret-000 ,acme:" + next)
	h := newHarness(t, cfg, srv)
	if _, err := fetch(t, h, request(srv.url("/"))); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	r := srv.requests()[0]
	if n := len(strings.Split(r.header.Get(callbacksig.HeaderSignature), ",")); n != 2 {
		t.Errorf("%d signatures, want 2 (the project's two secrets, not the other project's)", n)
	}
	for _, s := range []string{testSecret, next} {
		if err := callbacksig.VerifyUsherCallback(s, r.header, r.body, time.Now()); err != nil {
			t.Errorf("secret %s…: %v", s[:8], err)
		}
	}
	if callbacksig.VerifyUsherCallback("other-project-secret-000", r.header, r.body, time.Now()) == nil {
		t.Error("another project's secret verifies the request")
	}
}

func TestFetchEveryCallIsFresh(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, func(w http.ResponseWriter, _ *http.Request, n int) {
		fmt.Fprintf(w, `{"zak_token":"zak-%d"}`, n)
	})
	h := newHarness(t, testConfig(), srv)
	for want := 1; want <= 3; want++ {
		got, err := fetch(t, h, request(srv.url("/")))
		if err != nil {
			t.Fatalf("Fetch %d: %v", want, err)
		}
		if got.ZAK.Reveal() != fmt.Sprintf("zak-%d", want) {
			t.Errorf("Fetch %d returned %q: tokens must never be cached", want, got.ZAK.Reveal())
		}
	}
	if n := srv.calls.Load(); n != 3 {
		t.Errorf("callback called %d times, want 3", n)
	}
}

func TestFetch4xxFailsWithoutRetry(t *testing.T) {
	t.Parallel()
	for _, status := range []int{400, 401, 403, 404, 410, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			srv := newCallbackServer(t, true, reply(status, `{"error":"no such user"}`))
			h := newHarness(t, testConfig(), srv)
			_, err := fetch(t, h, request(srv.url("/")))
			e := asError(t, err, ErrRejected)
			if e.Status != status || e.Transient() || e.SubCode() != botstate.SubZoomTokensFailed {
				t.Errorf("status %d transient %v sub_code %s", e.Status, e.Transient(), e.SubCode())
			}
			if got := e.Meta()["status"]; got != fmt.Sprint(status) {
				t.Errorf("event metadata status = %q", got)
			}
			if n := srv.calls.Load(); n != 1 {
				t.Errorf("callback called %d times, want 1 (4xx is never retried)", n)
			}
		})
	}
}

func TestFetch5xxRetriedTwiceThenTransient(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, reply(503, `busy`))
	cfg := testConfig()
	h := newHarness(t, cfg, srv)
	_, err := fetch(t, h, request(srv.url("/")))
	e := asError(t, err, ErrUnavailable)
	if !e.Transient() || e.Status != 503 || e.Reason != ReasonServerError || e.Attempts != 3 {
		t.Errorf("transient %v status %d reason %s attempts %d", e.Transient(), e.Status, e.Reason, e.Attempts)
	}
	if e.SubCode() != botstate.SubZoomTokensFailed {
		t.Errorf("sub_code %s", e.SubCode())
	}
	if e.RetryAfter < cfg.RetryDelay || e.RetryAfter > cfg.RetryDelay*6/5 {
		t.Errorf("RetryAfter %s, want %s + up to 20%%", e.RetryAfter, cfg.RetryDelay)
	}
	if n := srv.calls.Load(); n != 3 {
		t.Errorf("callback called %d times, want 3 (1 + 2 retries)", n)
	}
	if got := testutil.ToFloat64(h.client.metrics.retries); got != 2 {
		t.Errorf("retries metric = %v, want 2", got)
	}
}

func TestFetch5xxThenSuccess(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, func(w http.ResponseWriter, r *http.Request, n int) {
		if n < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		reply(200, `{"zak_token":"z"}`)(w, r, n)
	})
	h := newHarness(t, testConfig(), srv)
	got, err := fetch(t, h, request(srv.url("/")))
	if err != nil || got.ZAK.Reveal() != "z" {
		t.Fatalf("Fetch = %v, %v; want the third call's token", got, err)
	}
	for i, r := range srv.requests() {
		if r.verifyErr != nil {
			t.Errorf("call %d is not verifiable: %v", i+1, r.verifyErr)
		}
	}
}

func TestFetchTimeoutRetriedThenTransient(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := newCallbackServer(t, true, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
		// Drop the connection without an answer: returning would send an
		// empty 200 that can race the client's timeout.
		panic(http.ErrAbortHandler)
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	cfg := testConfig()
	cfg.Timeout = 150 * time.Millisecond
	h := newHarness(t, cfg, srv)
	_, err := fetch(t, h, request(srv.url("/")))
	e := asError(t, err, ErrUnavailable)
	if e.Reason != ReasonTimeout || e.Attempts != 3 || !e.Transient() {
		t.Errorf("reason %s attempts %d transient %v", e.Reason, e.Attempts, e.Transient())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Error("a call's timeout must not look like the caller's deadline")
	}
	// Each timed-out call closed its connection, so every call opened one.
	waitFor(t, "3 connections", 5*time.Second, func() bool { return srv.conns.Load() >= 3 })
	if n := srv.conns.Load(); n != 3 {
		t.Errorf("callback received %d connections, want 3 (1 + 2 retries)", n)
	}
}

func TestFetchConnectionErrorRetried(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, func(w http.ResponseWriter, _ *http.Request, _ int) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close() // hang up without an answer
		}
	})
	h := newHarness(t, testConfig(), srv)
	_, err := fetch(t, h, request(srv.url("/")))
	e := asError(t, err, ErrUnavailable)
	if e.Reason != ReasonConnection || !e.Transient() {
		t.Errorf("reason %s transient %v", e.Reason, e.Transient())
	}
	if n := srv.calls.Load(); n != 3 {
		t.Errorf("callback called %d times, want 3", n)
	}
}

func TestFetchInvalidResponses(t *testing.T) {
	t.Parallel()
	big := `{"zak_token":"z","pad":"` + strings.Repeat("x", MaxResponseBytes) + `"}`
	cases := []struct {
		name, body string
		chunked    bool
		reason     string
		field      string
	}{
		{"not json", `zak_token=` + testZAK, false, ReasonNotJSON, ""},
		{"trailing comma", `{"zak_token":"` + testZAK + `",}`, false, ReasonNotJSON, ""},
		{"two values", `{"zak_token":"` + testZAK + `"} {}`, false, ReasonNotJSON, ""},
		{"empty body", ``, false, ReasonNotJSON, ""},
		{"array", `["` + testZAK + `"]`, false, ReasonNotObject, ""},
		{"string", `"` + testZAK + `"`, false, ReasonNotObject, ""},
		{"null", `null`, false, ReasonNotObject, ""},
		{"no zak", `{"join_token":"j"}`, false, ReasonZAKMissing, fieldZAK},
		{"empty zak", `{"zak_token":""}`, false, ReasonZAKMissing, fieldZAK},
		{"blank zak", `{"zak_token":"  "}`, false, ReasonZAKMissing, fieldZAK},
		{"null zak", `{"zak_token":null}`, false, ReasonZAKMissing, fieldZAK},
		{"number zak", `{"zak_token":123}`, false, ReasonTokenNotAString, fieldZAK},
		{"object zak", `{"zak_token":{"v":"` + testZAK + `"}}`, false, ReasonTokenNotAString, fieldZAK},
		{"number join token", `{"zak_token":"` + testZAK + `","join_token":5}`, false, ReasonTokenNotAString, fieldJoin},
		{"duplicate zak", `{"zak_token":"a","zak_token":"` + testZAK + `"}`, false, ReasonDuplicateKey, fieldZAK},
		{"over the cap", big, false, ReasonTooLarge, ""},
		{"over the cap, chunked", big, true, ReasonTooLarge, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newCallbackServer(t, true, func(w http.ResponseWriter, _ *http.Request, _ int) {
				if !tc.chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(tc.body)))
				}
				_, _ = io.WriteString(w, tc.body)
			})
			h := newHarness(t, testConfig(), srv)
			_, err := fetch(t, h, request(srv.url("/")))
			e := asError(t, err, ErrInvalidResponse)
			if e.Reason != tc.reason || e.Field != tc.field || e.Transient() || e.SubCode() != botstate.SubZoomTokensInvalid {
				t.Errorf("reason %q field %q transient %v sub_code %s; want %q %q", e.Reason, e.Field, e.Transient(), e.SubCode(), tc.reason, tc.field)
			}
			if n := srv.calls.Load(); n != 1 {
				t.Errorf("callback called %d times, want 1", n)
			}
			assertNoSecret(t, "error", err.Error(), testZAK, "xxxxxxxx")
			assertNoSecret(t, "logs", h.logs.String(), testZAK, "xxxxxxxx")
		})
	}
}

func TestFetchAcceptsOptionalNullsAndAnySuccessStatus(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, reply(201, ` {"zak_token":" z ","join_token":null,"onbehalf_token":""} `))
	h := newHarness(t, testConfig(), srv)
	got, err := fetch(t, h, request(srv.url("/")))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got.ZAK.Reveal() != " z " || !got.Join.Empty() || !got.OnBehalf.Empty() {
		t.Errorf("tokens %q %q %q: the ZAK is kept untrimmed, null and empty mean absent", got.ZAK.Reveal(), got.Join.Reveal(), got.OnBehalf.Reveal())
	}
}

func TestFetchRefusesRedirects(t *testing.T) {
	t.Parallel()
	target := newCallbackServer(t, true, reply(200, `{"zak_token":"z"}`))
	for _, status := range []int{301, 302, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			srv := newCallbackServer(t, true, func(w http.ResponseWriter, r *http.Request, _ int) {
				http.Redirect(w, r, target.url("/moved"), status)
			})
			h := newHarness(t, testConfig(), srv)
			_, err := fetch(t, h, request(srv.url("/")))
			e := asError(t, err, ErrForbidden)
			if e.Reason != ReasonRedirect || e.Status != status || e.SubCode() != botstate.SubZoomTokensURLForbidden {
				t.Errorf("reason %s status %d sub_code %s", e.Reason, e.Status, e.SubCode())
			}
			if n := srv.calls.Load(); n != 1 {
				t.Errorf("redirecting endpoint called %d times, want 1", n)
			}
		})
	}
	t.Cleanup(func() {
		if n := target.calls.Load(); n != 0 {
			t.Errorf("the redirect target was called %d times: redirects must not be followed", n)
		}
	})
}

func TestFetchRequiresHTTPSAndAValidURL(t *testing.T) {
	t.Parallel()
	plain := newCallbackServer(t, false, reply(200, `{"zak_token":"z"}`))
	cases := []struct {
		name, url string
		allowHTTP bool
		reason    string
	}{
		{"http refused by default", plain.url("/"), false, ReasonNotHTTPS},
		{"other scheme", "ftp://tokens.example.com/x", true, ReasonNotHTTPS},
		{"no scheme", "tokens.example.com/x", true, ReasonInvalidURL},
		{"empty", "", true, ReasonInvalidURL},
		{"no host", "https:///path", true, ReasonInvalidURL},
		{"opaque", "https:tokens.example.com", true, ReasonInvalidURL},
		{"unparsable", "https://tokens.example.com:port/", true, ReasonInvalidURL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.AllowHTTP = tc.allowHTTP
			h := newHarness(t, cfg, nil)
			_, err := fetch(t, h, request(tc.url))
			e := asError(t, err, ErrForbidden)
			if e.Reason != tc.reason || e.SubCode() != botstate.SubZoomTokensURLForbidden {
				t.Errorf("reason %s sub_code %s, want %s", e.Reason, e.SubCode(), tc.reason)
			}
		})
	}
	if n := plain.calls.Load(); n != 0 {
		t.Errorf("http endpoint called %d times without USHER_CALLBACK_ALLOW_HTTP", n)
	}

	t.Run("http allowed by config", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig()
		cfg.AllowHTTP = true
		h := newHarness(t, cfg, nil)
		if _, err := fetch(t, h, request(plain.url("/"))); err != nil {
			t.Fatalf("Fetch over http with USHER_CALLBACK_ALLOW_HTTP: %v", err)
		}
	})
}

func TestFetchWithoutProjectSecretMakesNoCall(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, reply(200, `{"zak_token":"z"}`))
	h := newHarness(t, testConfig(), srv)
	r := request(srv.url("/"))
	r.Project = "unsigned"
	_, err := fetch(t, h, r)
	e := asError(t, err, ErrNotConfigured)
	if e.Transient() || e.SubCode() != botstate.SubZoomTokensFailed || e.Meta()["reason"] != ReasonSecretMissing {
		t.Errorf("transient %v sub_code %s meta %v", e.Transient(), e.SubCode(), e.Meta())
	}
	if n := srv.calls.Load(); n != 0 {
		t.Errorf("callback called %d times for a project without a signing secret", n)
	}
}

func TestFetchCallerCancelIsNotAFailure(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	srv := newCallbackServer(t, true, func(w http.ResponseWriter, r *http.Request, _ int) {
		started <- struct{}{}
		<-r.Context().Done()
		panic(http.ErrAbortHandler)
	})
	cfg := testConfig()
	cfg.BreakerFailures = 1
	h := newHarness(t, cfg, srv)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	_, err := h.client.Fetch(ctx, request(srv.url("/")))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("a canceled fetch is a *Error (%v): the joiner would fail the bot", e)
	}
	if got := testutil.ToFloat64(h.client.metrics.stateChanges.WithLabelValues("open")); got != 0 {
		t.Error("the caller's cancel tripped the breaker")
	}
}

func TestFetchErrorsAndLogsCarryNoSecret(t *testing.T) {
	t.Parallel()
	const querySecret = "QUERY-SECRET-abc123"
	srv := newCallbackServer(t, true, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Path {
		case "/ok":
			reply(200, `{"zak_token":"`+testZAK+`","join_token":"`+testZAK+`-join"}`)(w, r, n)
		case "/4xx":
			reply(403, `{"detail":"`+testZAK+`"}`)(w, r, n)
		case "/5xx":
			reply(500, testZAK)(w, r, n)
		default:
			reply(200, `{"zak_token":`+testZAK+`}`)(w, r, n)
		}
	})
	cfg := testConfig()
	cfg.Retries = 0
	h := newHarness(t, cfg, srv)
	for _, path := range []string{"/ok", "/4xx", "/5xx", "/invalid"} {
		_, err := fetch(t, h, request(srv.url(path+"?key="+querySecret)))
		if err != nil {
			assertNoSecret(t, "error of "+path, err.Error(), testZAK, querySecret, testSecret)
		}
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "zoom tokens obtained") || !strings.Contains(logs, "zoom tokens callback failed") {
		t.Fatalf("expected success and failure log lines, got:\n%s", logs)
	}
	assertNoSecret(t, "logs", logs, testZAK, querySecret, testSecret, "abc123")
}

func TestMetricsCountOutcomesBySubCode(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Path {
		case "/ok":
			reply(200, `{"zak_token":"z"}`)(w, r, n)
		case "/4xx":
			reply(404, ``)(w, r, n)
		default:
			reply(200, `[]`)(w, r, n)
		}
	})
	h := newHarness(t, testConfig(), srv)
	for _, p := range []string{"/ok", "/ok", "/4xx", "/bad"} {
		_, _ = fetch(t, h, request(srv.url(p)))
	}
	for code, want := range map[string]float64{
		"none":                            2,
		botstate.SubZoomTokensFailed:      1,
		botstate.SubZoomTokensInvalid:     1,
		botstate.SubZoomTokensUnavailable: 0,
	} {
		if got := testutil.ToFloat64(h.client.metrics.outcomes.WithLabelValues(code)); got != want {
			t.Errorf("callbacks_total{sub_code=%q} = %v, want %v", code, got, want)
		}
	}
	if n := testutil.CollectAndCount(h.reg, "usher_worker_zoom_tokens_callback_duration_seconds"); n != len(allOutcomes()) {
		t.Errorf("duration histogram has %d series, want one per outcome (%d)", n, len(allOutcomes()))
	}
	problems, err := testutil.GatherAndLint(h.reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", err, problems)
	}
}
