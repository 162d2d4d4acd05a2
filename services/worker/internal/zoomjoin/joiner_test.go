package zoomjoin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/jobs"
	"github.com/usherhq/usher/services/worker/internal/zoomtoken"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/secret"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	signingSecret = "acme-signing-secret-0123456789"
	zak           = "ZAK-known-token-7f3a9c"
	obf           = "OBF-known-token-1,OBF-known-token-2"
	joinTok       = "JOIN-known-token-55"
	appTok        = "APP-known-token-66"
	querySecret   = "QSECRET-4411"
)

// fakeDriver is the Zoom driver: it records what it was asked to join with.
type fakeDriver struct {
	err   error
	mu    sync.Mutex
	calls []driver.JoinRequest
}

func (d *fakeDriver) Join(_ context.Context, req driver.JoinRequest, _ driver.Watcher) (driver.Meeting, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, req)
	if d.err != nil {
		return nil, d.err
	}
	return meeting{}, nil
}

func (d *fakeDriver) requests() []driver.JoinRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]driver.JoinRequest(nil), d.calls...)
}

type meeting struct{}

func (meeting) Wait(ctx context.Context) (driver.End, error) {
	<-ctx.Done()
	return driver.End{}, ctx.Err()
}
func (meeting) Leave(context.Context) error { return nil }
func (meeting) Close() error                { return nil }

// fixture is a customer callback (TLS), the real client, a fake driver and
// the joiner, all logging JSON into one buffer through Usher's logger.
type fixture struct {
	callback *httptest.Server
	calls    atomic.Int32
	driver   *fakeDriver
	joiner   *Joiner
	logs     *logging.Buffer
}

func newFixture(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int), tune func(*zoomtoken.Config)) *fixture {
	t.Helper()
	f := &fixture{driver: &fakeDriver{}, logs: &logging.Buffer{}}
	f.callback = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		answer(w, r, int(f.calls.Add(1)))
	}))
	t.Cleanup(f.callback.Close)
	cfg := zoomtoken.Config{
		Timeout:         2 * time.Second,
		Retries:         2,
		Backoff:         time.Millisecond,
		RetryDelay:      3 * time.Second,
		Secrets:         secret.String("acme:" + signingSecret),
		AllowCIDRs:      []string{"127.0.0.0/8"},
		BreakerFailures: 5,
		BreakerOpenFor:  time.Minute,
		BreakerHosts:    8,
	}
	if tune != nil {
		tune(&cfg)
	}
	log := logging.New(f.logs, logging.Config{Level: "debug", Format: "json"}, "worker")
	roots := f.callback.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	client, err := zoomtoken.New(cfg, log, nil, zoomtoken.WithRootCAs(roots))
	if err != nil {
		t.Fatalf("zoomtoken.New: %v", err)
	}
	t.Cleanup(client.Close)
	f.joiner = New(client, f.driver, log)
	return f
}

func (f *fixture) job(path string) *usherv1.JoinJob {
	return &usherv1.JoinJob{
		BotId:      "bot_3hG7kPz9QwLm2XyA",
		Project:    "acme",
		Platform:   usherv1.Platform_PLATFORM_ZOOM,
		MeetingUrl: "https://zoom.us/j/85012345678?pwd=abc123",
		BotName:    "Notetaker",
		Metadata:   map[string]string{"customer": "acme"},
		CallbackSettings: &usherv1.CallbackSettings{
			ZoomTokensUrl: f.callback.URL + path + "?key=" + querySecret,
		},
	}
}

func (f *fixture) join(t *testing.T, job *usherv1.JoinJob) (driver.Meeting, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return f.joiner.Join(ctx, job, driver.WatcherFunc(func(context.Context) {}))
}

func tokensAnswer(w http.ResponseWriter, _ *http.Request, _ int) {
	fmt.Fprintf(w, `{"zak_token":%q,"onbehalf_token":%q,"join_token":%q,"app_privilege_token":%q}`, zak, obf, joinTok, appTok)
}

// assertNoSecret fails when text holds a token, the URL's query secret or the signing secret.
func assertNoSecret(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range []string{zak, "OBF-known", joinTok, appTok, querySecret, signingSecret} {
		if strings.Contains(text, s) {
			t.Errorf("%s contains the secret %q:\n%s", where, s, text)
		}
	}
}

func TestJoinSignedInHandsEveryTokenToTheDriver(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tokensAnswer, nil)
	m, err := f.join(t, f.job("/zoom-tokens-callback"))
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	if m == nil {
		t.Fatal("Join returned no meeting")
	}
	reqs := f.driver.requests()
	if len(reqs) != 1 {
		t.Fatalf("driver called %d times", len(reqs))
	}
	req := reqs[0]
	if req.Zoom == nil {
		t.Fatal("JoinRequest.Zoom is nil: the bot would join anonymously")
	}
	if req.Zoom.ZAK.Reveal() != zak || req.Zoom.OnBehalfToken.Reveal() != obf ||
		req.Zoom.JoinToken.Reveal() != joinTok || req.Zoom.AppPrivilegeToken.Reveal() != appTok {
		t.Error("the driver did not get the tokens the callback answered")
	}
	if req.BotID != "bot_3hG7kPz9QwLm2XyA" || req.MeetingURL != "https://zoom.us/j/85012345678?pwd=abc123" ||
		req.BotName != "Notetaker" || req.Platform != usherv1.Platform_PLATFORM_ZOOM {
		t.Errorf("JoinRequest = %+v", req)
	}

	// Nothing secret anywhere a user or operator could see it.
	assertNoSecret(t, "logs", f.logs.String())
	assertNoSecret(t, "JoinRequest %+v", fmt.Sprintf("%+v %v", req, *req.Zoom))
	assertNoSecret(t, "JoinRequest %#v", fmt.Sprintf("%#v", *req.Zoom))
	b, _ := json.Marshal(req)
	assertNoSecret(t, "JoinRequest JSON", string(b))
	if !strings.Contains(f.logs.String(), `"identity":"zak,onbehalf,join,app_privilege"`) {
		t.Errorf("logs do not say which tokens were obtained:\n%s", f.logs.String())
	}
}

func TestJoinFetchesFreshTokensForEveryAttempt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		fmt.Fprintf(w, `{"zak_token":"zak-attempt-%d"}`, n)
	}, nil)
	for range 2 {
		if _, err := f.join(t, f.job("/")); err != nil {
			t.Fatalf("Join: %v", err)
		}
	}
	reqs := f.driver.requests()
	if len(reqs) != 2 || reqs[0].Zoom.ZAK.Reveal() != "zak-attempt-1" || reqs[1].Zoom.ZAK.Reveal() != "zak-attempt-2" {
		t.Errorf("each join attempt must call the callback afresh; calls %d", f.calls.Load())
	}
}

func TestJoinWithoutTokensURLIsAnonymous(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tokensAnswer, nil)
	job := f.job("/")
	job.CallbackSettings = nil
	if _, err := f.join(t, job); err != nil {
		t.Fatalf("Join: %v", err)
	}
	reqs := f.driver.requests()
	if len(reqs) != 1 || reqs[0].Zoom != nil {
		t.Fatalf("driver requests %+v: want one anonymous join", reqs)
	}
	if n := f.calls.Load(); n != 0 {
		t.Errorf("callback called %d times for a bot without zoom_tokens_url", n)
	}
}

func TestJoinMapsCallbackOutcomes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		answer   func(w http.ResponseWriter, r *http.Request, n int)
		tune     func(*zoomtoken.Config)
		project  string
		retry    bool
		subCode  string
		meta     map[string]string
		minAfter time.Duration
	}{
		{
			name:    "4xx fails with the status",
			answer:  status(403, `{"detail":"`+zak+`"}`),
			subCode: botstate.SubZoomTokensFailed, meta: map[string]string{"reason": "rejected", "status": "403"},
		},
		{
			name:   "5xx after retries is retried later",
			answer: status(500, zak),
			retry:  true, subCode: botstate.SubZoomTokensFailed, minAfter: 3 * time.Second,
		},
		{
			name:   "timeout after retries is retried later",
			answer: hang,
			tune:   func(c *zoomtoken.Config) { c.Timeout = 100 * time.Millisecond },
			retry:  true, subCode: botstate.SubZoomTokensFailed, minAfter: 3 * time.Second,
		},
		{
			name:    "trailing comma is an invalid response",
			answer:  status(200, `{"zak_token":"`+zak+`",}`),
			subCode: botstate.SubZoomTokensInvalid, meta: map[string]string{"reason": "invalid_json", "status": "200"},
		},
		{
			name:    "non-string token is an invalid response",
			answer:  status(200, `{"zak_token":["`+zak+`"]}`),
			subCode: botstate.SubZoomTokensInvalid, meta: map[string]string{"reason": "token_not_a_string", "field": "zak_token", "status": "200"},
		},
		{
			name:    "over 64 KiB is an invalid response",
			answer:  status(200, `{"zak_token":"`+zak+strings.Repeat("a", 70<<10)+`"}`),
			subCode: botstate.SubZoomTokensInvalid, meta: map[string]string{"reason": "too_large", "status": "200"},
		},
		{
			name: "redirect is refused",
			answer: func(w http.ResponseWriter, r *http.Request, _ int) {
				http.Redirect(w, r, "https://elsewhere.example/tokens?"+querySecret, http.StatusFound)
			},
			subCode: botstate.SubZoomTokensURLForbidden, meta: map[string]string{"reason": "redirect", "status": "302"},
		},
		{
			name:    "private address is forbidden",
			answer:  tokensAnswer,
			tune:    func(c *zoomtoken.Config) { c.AllowCIDRs = nil },
			subCode: botstate.SubZoomTokensURLForbidden, meta: map[string]string{"reason": "address_forbidden"},
		},
		{
			name:    "project without signing secret",
			answer:  tokensAnswer,
			project: "nosecret",
			subCode: botstate.SubZoomTokensFailed, meta: map[string]string{"reason": "signing_secret_missing"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.answer, tc.tune)
			job := f.job("/")
			if tc.project != "" {
				job.Project = tc.project
			}
			_, err := f.join(t, job)
			if err == nil {
				t.Fatal("Join succeeded")
			}
			if n := len(f.driver.requests()); n != 0 {
				t.Errorf("driver called %d times after the callback failed", n)
			}
			assertNoSecret(t, "error", err.Error())
			assertNoSecret(t, "logs", f.logs.String())
			if tc.retry {
				r, ok := jobs.AsRetry(err)
				if !ok {
					t.Fatalf("err = %v, want jobs.Retry", err)
				}
				if r.SubCode != tc.subCode || r.After < tc.minAfter {
					t.Errorf("Retry sub_code %s after %s; want %s after ≥ %s", r.SubCode, r.After, tc.subCode, tc.minAfter)
				}
				if _, ok := jobs.AsFailure(err); ok {
					t.Error("a transient failure is also a permanent one")
				}
				return
			}
			fail, ok := jobs.AsFailure(err)
			if !ok {
				t.Fatalf("err = %v, want jobs.Permanent", err)
			}
			if fail.SubCode != tc.subCode {
				t.Errorf("sub_code %s, want %s", fail.SubCode, tc.subCode)
			}
			if fmt.Sprint(fail.Meta) != fmt.Sprint(tc.meta) {
				t.Errorf("event metadata %v, want %v", fail.Meta, tc.meta)
			}
			assertNoSecret(t, "event metadata", fmt.Sprint(fail.Meta))
		})
	}
}

func TestJoinWaitsForAnOpenBreakerWithoutCalling(t *testing.T) {
	t.Parallel()
	f := newFixture(t, status(503, ``), func(c *zoomtoken.Config) {
		c.Retries = 0
		c.BreakerFailures = 2
		c.BreakerOpenFor = 45 * time.Second
	})
	for range 2 {
		_, _ = f.join(t, f.job("/"))
	}
	_, err := f.join(t, f.job("/"))
	r, ok := jobs.AsRetry(err)
	if !ok {
		t.Fatalf("err = %v, want jobs.Retry", err)
	}
	if r.SubCode != botstate.SubZoomTokensUnavailable || r.After < 40*time.Second || r.After > 47*time.Second {
		t.Errorf("Retry sub_code %s after %s; want %s after about 45s (until half-open)", r.SubCode, r.After, botstate.SubZoomTokensUnavailable)
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("callback called %d times, want 2: the open breaker makes no call", n)
	}
}

func TestJoinDriverErrorsPassThrough(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tokensAnswer, nil)
	f.driver.err = driver.Fail(botstate.SubLoginRequired, "prejoin", errors.New("sign in to join"))
	_, err := f.join(t, f.job("/"))
	var je *driver.JoinError
	if !errors.As(err, &je) || je.SubCode != botstate.SubLoginRequired {
		t.Fatalf("err = %v, want the driver's *JoinError", err)
	}
	assertNoSecret(t, "error", err.Error())
}

func TestJoinCanceledContextIsLeftToTheLifecycle(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int) {
		started <- struct{}{}
		hang(w, r, n)
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	_, err := f.joiner.Join(ctx, f.job("/"), driver.WatcherFunc(func(context.Context) {}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, ok := jobs.AsFailure(err); ok {
		t.Error("a canceled join fails the bot")
	}
	if _, ok := jobs.AsRetry(err); ok {
		t.Error("a canceled join asks for a retry")
	}
}

func TestJoinRefusesOtherPlatforms(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tokensAnswer, nil)
	job := f.job("/")
	job.Platform = usherv1.Platform_PLATFORM_TEAMS
	_, err := f.join(t, job)
	if fail, ok := jobs.AsFailure(err); !ok || fail.SubCode != botstate.SubInvalidJob {
		t.Fatalf("err = %v, want failed/invalid_job", err)
	}
	if f.calls.Load() != 0 || len(f.driver.requests()) != 0 {
		t.Error("a non-Zoom job reached the callback or the driver")
	}
}

func status(code int, body string) func(w http.ResponseWriter, r *http.Request, n int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// hang never answers: it waits for the client to give up, then drops the
// connection without writing anything (returning would send an empty 200
// that can race the client's timeout).
func hang(_ http.ResponseWriter, r *http.Request, _ int) {
	<-r.Context().Done()
	panic(http.ErrAbortHandler)
}
