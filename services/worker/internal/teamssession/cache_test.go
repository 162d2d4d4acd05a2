package teamssession_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/teamssession"
	"github.com/usherhq/usher/services/worker/internal/teamssession/redistest"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/sealbox"
	"github.com/usherhq/usher/shared/secret"
)

func TestMain(m *testing.M) {
	redis.SetLogger(teamssession.RedisLogger(logging.Discard()))
	goleak.VerifyTestMain(m)
}

// worker is one worker's cache, with its own registry and logs.
type worker struct {
	cache *teamssession.Cache
	reg   *prometheus.Registry
	logs  *logging.Buffer
}

func testConfig(url, prefix string) teamssession.Config {
	return teamssession.Config{
		RedisURL: url, KeyPrefix: prefix, MaxTTL: time.Hour, ExpiryMargin: time.Minute,
		LockTTL: 2 * time.Second, WaitTimeout: 20 * time.Second, FailureTTL: 10 * time.Second,
		RedisTimeout: 300 * time.Millisecond,
	}
}

func newRing(t *testing.T) *sealbox.Ring {
	t.Helper()
	spec, _ := sealbox.NewKeySpec("k1")
	r, err := sealbox.ParseKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newWorker(t *testing.T, cfg teamssession.Config, ring *sealbox.Ring) *worker {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logging.Buffer{}
	reg := prometheus.NewRegistry()
	c, err := teamssession.New(cfg, ring, logging.New(logs, logging.Config{Level: "debug", Format: "json"}, "worker"), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &worker{cache: c, reg: reg, logs: logs}
}

// fakeLogin counts logins and hands out distinct cookies.
type fakeLogin struct {
	calls   atomic.Int32
	delay   time.Duration
	expires time.Duration
	err     error
}

func (f *fakeLogin) login(ctx context.Context) ([]driver.Cookie, error) {
	n := f.calls.Add(1)
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	exp := time.Now().Add(f.expires)
	return []driver.Cookie{
		{Name: "ESTSAUTH", Value: secret.String(fmt.Sprintf("cookie-value-%d-estsauth", n)), Domain: "127.0.0.1", Path: "/", Expires: exp, HTTPOnly: true},
		{Name: "ESTSAUTHPERSISTENT", Value: secret.String(fmt.Sprintf("cookie-value-%d-persistent", n)), Domain: "127.0.0.1", Path: "/", Expires: exp, HTTPOnly: true},
	}, nil
}

func key() teamssession.Key {
	return teamssession.Key{Project: "acme", AccountID: "acct_0123456789abcdef", CredentialsVersion: "v1"}
}

func rawClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestMissLogsInThenHitsAndTTLFollowsCookies(t *testing.T) {
	t.Parallel()
	url := redistest.URL()
	prefix := redistest.Prefix(t, url)
	w := newWorker(t, testConfig(url, prefix), newRing(t))
	login := &fakeLogin{expires: 30 * time.Minute}
	ctx := context.Background()

	s1, err := w.cache.Get(ctx, key(), login.login)
	if err != nil || s1.Source != teamssession.FromLogin {
		t.Fatalf("first Get = %+v, %v", s1, err)
	}
	s2, err := w.cache.Get(ctx, key(), login.login)
	if err != nil || s2.Source != teamssession.FromCache || login.calls.Load() != 1 {
		t.Fatalf("second Get = %v, %v after %d logins", s2.Source, err, login.calls.Load())
	}
	if s2.Cookies[0].Value.Reveal() != "cookie-value-1-estsauth" || !s2.Cookies[0].HTTPOnly || s2.Cookies[0].Domain != "127.0.0.1" {
		t.Fatalf("cached cookies = %+v", s2.Cookies)
	}

	rdb := rawClient(t, url)
	k := prefix + "teams:session:acme:acct_0123456789abcdef"
	ttl, err := rdb.PTTL(ctx, k).Result()
	if err != nil || ttl <= 0 || ttl > 29*time.Minute {
		t.Fatalf("session TTL = %s, %v; want ≤ cookie expiry (30m) less the margin (1m)", ttl, err)
	}
	raw, _ := rdb.Get(ctx, k).Result()
	if strings.Contains(raw, "cookie-value") || !strings.HasPrefix(raw, "usb1.k1.") {
		t.Fatalf("the stored session is not sealed: %.60s...", raw)
	}
	if got := testutil.ToFloat64(counter(t, w.reg, "usher_worker_teams_session_cache_hits_total")); got != 1 {
		t.Errorf("hits = %v", got)
	}
	if got := testutil.ToFloat64(counter(t, w.reg, "usher_worker_teams_session_cache_misses_total")); got != 1 {
		t.Errorf("misses = %v", got)
	}
}

func TestFiftyConcurrentRequestsAcrossWorkersLogInOnce(t *testing.T) {
	t.Parallel()
	url := redistest.URL()
	prefix := redistest.Prefix(t, url)
	ring := newRing(t)
	workers := make([]*worker, 5)
	for i := range workers {
		workers[i] = newWorker(t, testConfig(url, prefix), ring)
	}
	login := &fakeLogin{delay: 300 * time.Millisecond, expires: time.Hour}
	var wg sync.WaitGroup
	sources := make([]teamssession.Source, 50)
	for i := range 50 {
		wg.Go(func() {
			s, err := workers[i%len(workers)].cache.Get(context.Background(), key(), login.login)
			if err != nil {
				t.Errorf("Get %d: %v", i, err)
				return
			}
			if s.Cookies[0].Value.Reveal() != "cookie-value-1-estsauth" {
				t.Errorf("Get %d got another login's cookies", i)
			}
			sources[i] = s.Source
		})
	}
	wg.Wait()
	if n := login.calls.Load(); n != 1 {
		t.Fatalf("%d logins for 50 concurrent requests, want 1", n)
	}
	counts := map[teamssession.Source]int{}
	for _, s := range sources {
		counts[s]++
	}
	if counts[teamssession.FromLogin] != 1 || counts[teamssession.FromPeer]+counts[teamssession.FromCache] != 49 {
		t.Fatalf("sources = %v", counts)
	}
	var waited float64
	for _, w := range workers {
		waited += histogramCount(t, w.reg, "usher_worker_teams_session_lock_wait_seconds", "session")
	}
	if waited == 0 {
		t.Fatal("no lock wait was recorded for workers that waited for the login")
	}
}

func TestRefusedLoginIsSharedNotRepeated(t *testing.T) {
	t.Parallel()
	url := redistest.URL()
	prefix := redistest.Prefix(t, url)
	ring := newRing(t)
	a, b := newWorker(t, testConfig(url, prefix), ring), newWorker(t, testConfig(url, prefix), ring)
	login := &fakeLogin{delay: 200 * time.Millisecond, err: refused{}}

	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() {
			w := a
			if i%2 == 1 {
				w = b
			}
			_, errs[i] = w.cache.Get(context.Background(), key(), login.login)
		})
	}
	wg.Wait()
	if n := login.calls.Load(); n != 1 {
		t.Fatalf("the wrong password was tried %d times, want once", n)
	}
	var own, peers int
	for _, err := range errs {
		var pf *teamssession.PeerFailure
		switch {
		case errors.As(err, &pf) && pf.Code == "teams_login_invalid_credentials":
			peers++
		case errors.Is(err, refused{}):
			own++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if own != 1 || peers != 9 {
		t.Fatalf("own=%d peers=%d", own, peers)
	}
	// A later request within FailureTTL gets the verdict too, without a login.
	var pf *teamssession.PeerFailure
	if _, err := a.cache.Get(context.Background(), key(), login.login); !errors.As(err, &pf) || login.calls.Load() != 1 {
		t.Fatalf("Get after a shared refusal: %v after %d logins", err, login.calls.Load())
	}
	// New credentials (another version) are not blocked by the old verdict.
	k2 := key()
	k2.CredentialsVersion = "v2"
	login.err = nil
	if s, err := a.cache.Get(context.Background(), k2, login.login); err != nil || s.Source != teamssession.FromLogin {
		t.Fatalf("Get with new credentials = %v", err)
	}
}

type refused struct{}

func (refused) Error() string         { return "wrong password" }
func (refused) SharedFailure() string { return "teams_login_invalid_credentials" }

func TestDeadLockHolderExpiresAndAnotherWorkerLogsIn(t *testing.T) {
	t.Parallel()
	url := redistest.URL()
	prefix := redistest.Prefix(t, url)
	cfg := testConfig(url, prefix)
	w := newWorker(t, cfg, newRing(t))
	ctx := context.Background()

	// A worker took the lock and died: no renewal, no release.
	rdb := rawClient(t, url)
	if ok, err := rdb.SetNX(ctx, prefix+"teams:lock:acme:acct_0123456789abcdef", "dead-worker-token", cfg.LockTTL).Result(); !ok || err != nil {
		t.Fatalf("seed lock: %v %v", ok, err)
	}
	start := time.Now()
	login := &fakeLogin{expires: time.Hour}
	s, err := w.cache.Get(ctx, key(), login.login)
	if err != nil || s.Source != teamssession.FromLogin || login.calls.Load() != 1 {
		t.Fatalf("Get = %v after %d logins", err, login.calls.Load())
	}
	if waited := time.Since(start); waited < cfg.LockTTL-200*time.Millisecond {
		t.Fatalf("logged in after %s, before the dead holder's lock expired (%s)", waited, cfg.LockTTL)
	}
	if got := histogramCount(t, w.reg, "usher_worker_teams_session_lock_wait_seconds", "acquired"); got != 1 {
		t.Fatalf("lock wait observations = %v", got)
	}
}

func TestSlowLoginKeepsItsLock(t *testing.T) {
	t.Parallel()
	url := redistest.URL()
	prefix := redistest.Prefix(t, url)
	cfg := testConfig(url, prefix)
	ring := newRing(t)
	a, b := newWorker(t, cfg, ring), newWorker(t, cfg, ring)
	// The login takes twice the lock's TTL: the renewal must keep others waiting.
	login := &fakeLogin{delay: 2 * cfg.LockTTL, expires: time.Hour}
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := a.cache.Get(context.Background(), key(), login.login); err != nil {
			t.Errorf("holder: %v", err)
		}
	})
	waitFor(t, 5*time.Second, func() bool { return login.calls.Load() == 1 })
	s, err := b.cache.Get(context.Background(), key(), login.login)
	wg.Wait()
	if err != nil || s.Source != teamssession.FromPeer || login.calls.Load() != 1 {
		t.Fatalf("waiter: %v, source %v, %d logins", err, s, login.calls.Load())
	}
}

func TestInvalidateDropsOnlyTheBadSession(t *testing.T) {
	t.Parallel()
	url := redistest.URL()
	prefix := redistest.Prefix(t, url)
	ring := newRing(t)
	a, b := newWorker(t, testConfig(url, prefix), ring), newWorker(t, testConfig(url, prefix), ring)
	login := &fakeLogin{expires: time.Hour}
	ctx := context.Background()

	bad, _ := a.cache.Get(ctx, key(), login.login)
	badToo, _ := b.cache.Get(ctx, key(), login.login) // b holds the same (soon bad) session
	a.cache.Invalidate(ctx, key(), bad)
	fresh, err := a.cache.Get(ctx, key(), login.login)
	if err != nil || fresh.Source != teamssession.FromLogin || login.calls.Load() != 2 {
		t.Fatalf("after invalidation: %v, %d logins", err, login.calls.Load())
	}
	// b bounces with the old session a moment later: the fresh one stays.
	b.cache.Invalidate(ctx, key(), badToo)
	s, err := b.cache.Get(ctx, key(), login.login)
	if err != nil || s.Source != teamssession.FromCache || s.Cookies[0].Value.Reveal() != "cookie-value-2-estsauth" {
		t.Fatalf("fresh session was dropped by a stale invalidation: %v %v", s, err)
	}
	if got := testutil.ToFloat64(counter(t, a.reg, "usher_worker_teams_session_cache_invalidations_total")); got != 1 {
		t.Fatalf("invalidations = %v", got)
	}
}

func TestSessionUnderARemovedKeyIsAMiss(t *testing.T) {
	t.Parallel()
	url := redistest.URL()
	prefix := redistest.Prefix(t, url)
	old := newWorker(t, testConfig(url, prefix), newRing(t))
	login := &fakeLogin{expires: time.Hour}
	if _, err := old.cache.Get(context.Background(), key(), login.login); err != nil {
		t.Fatal(err)
	}
	spec, _ := sealbox.NewKeySpec("k2")
	rotated, _ := sealbox.ParseKeys(spec)
	w := newWorker(t, testConfig(url, prefix), rotated)
	s, err := w.cache.Get(context.Background(), key(), login.login)
	if err != nil || s.Source != teamssession.FromLogin || login.calls.Load() != 2 {
		t.Fatalf("Get under a ring without the session's key: %v, %d logins", err, login.calls.Load())
	}
	if !strings.Contains(w.logs.String(), "cached teams session does not open") {
		t.Fatalf("logs = %s", w.logs.String())
	}
}

func TestRedisStoppedDuringARunAndStartedAgain(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	w := newWorker(t, testConfig(srv.URL, "usher:"), newRing(t))
	login := &fakeLogin{expires: time.Hour}
	ctx := context.Background()

	if s, err := w.cache.Get(ctx, key(), login.login); err != nil || s.Source != teamssession.FromLogin {
		t.Fatalf("Get with Redis up: %v", err)
	}
	srv.Stop()
	for i := range 3 {
		s, err := w.cache.Get(ctx, key(), login.login)
		if err != nil || s.Source != teamssession.FromLogin {
			t.Fatalf("Get %d with Redis down: %v", i, err)
		}
		w.cache.Invalidate(ctx, key(), s) // must not fail or block either
	}
	if n := login.calls.Load(); n != 4 {
		t.Fatalf("%d logins, want one per request while Redis is down (4)", n)
	}
	if got := testutil.ToFloat64(counter(t, w.reg, "usher_worker_teams_session_cache_up")); got != 0 {
		t.Fatalf("up gauge = %v with Redis down", got)
	}
	if got := testutil.ToFloat64(counter(t, w.reg, "usher_worker_teams_session_cache_bypassed_total")); got != 3 {
		t.Fatalf("bypassed = %v", got)
	}
	if !strings.Contains(w.logs.String(), "teams session cache unavailable, logging in without it") {
		t.Fatalf("logs do not say the cache is down: %s", w.logs.String())
	}

	srv.Restart()
	var s *teamssession.Session
	waitFor(t, 10*time.Second, func() bool {
		var err error
		s, err = w.cache.Get(ctx, key(), login.login)
		return err == nil && s.Source == teamssession.FromLogin && testutil.ToFloat64(counter(t, w.reg, "usher_worker_teams_session_cache_up")) == 1
	})
	s, err := w.cache.Get(ctx, key(), login.login)
	if err != nil || s.Source != teamssession.FromCache {
		t.Fatalf("after Redis came back: %v, source %v", err, s)
	}
	if !strings.Contains(w.logs.String(), "teams session cache reachable again") {
		t.Fatal("no log line when Redis came back")
	}
}

func TestConcurrentLoginsCollapseInOneWorkerWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	w := newWorker(t, testConfig(srv.URL, "usher:"), newRing(t))
	srv.Stop()
	login := &fakeLogin{delay: 300 * time.Millisecond, expires: time.Hour}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := w.cache.Get(context.Background(), key(), login.login); err != nil {
				t.Errorf("Get: %v", err)
			}
		})
	}
	wg.Wait()
	if n := login.calls.Load(); n < 1 || n > 3 {
		t.Fatalf("%d logins for 10 concurrent requests in one worker without Redis", n)
	}
}

func TestWaitTimeoutWhenTheHolderNeverFinishes(t *testing.T) {
	t.Parallel()
	url := redistest.URL()
	prefix := redistest.Prefix(t, url)
	cfg := testConfig(url, prefix)
	cfg.LockTTL, cfg.WaitTimeout = 5*time.Second, 5*time.Second
	ring := newRing(t)
	holder, waiter := newWorker(t, cfg, ring), newWorker(t, cfg, ring)

	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = holder.cache.Get(ctx, key(), func(ctx context.Context) ([]driver.Cookie, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
	})
	<-started
	wctx, wcancel := context.WithTimeout(context.Background(), time.Second)
	_, err := waiter.cache.Get(wctx, key(), (&fakeLogin{}).login)
	wcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter with a 1s context: %v", err)
	}
	_, err = waiter.cache.Get(context.Background(), key(), (&fakeLogin{}).login)
	cancel()
	wg.Wait()
	if !errors.Is(err, teamssession.ErrWaitTimeout) {
		t.Fatalf("waiter past WaitTimeout: %v", err)
	}
}

func TestConfigValidateNamesVariables(t *testing.T) {
	t.Parallel()
	good := testConfig("redis://127.0.0.1:6379/0", "usher:")
	cases := map[string]func(*teamssession.Config){
		"REDIS_URL":                      func(c *teamssession.Config) { c.RedisURL = "http://user:hunter2@host" },
		"USHER_TEAMS_LOGIN_LOCK_TTL":     func(c *teamssession.Config) { c.LockTTL = 0 },
		"USHER_TEAMS_LOGIN_WAIT_TIMEOUT": func(c *teamssession.Config) { c.WaitTimeout = time.Second },
		"USHER_TEAMS_SESSION_MAX_TTL":    func(c *teamssession.Config) { c.MaxTTL = time.Second },
	}
	for name, mutate := range cases {
		c := good
		mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}

// counter finds a metric without labels (or the gauge) by name.
func counter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return gathered{reg: reg, name: name}
}

type gathered struct {
	reg  *prometheus.Registry
	name string
}

func (g gathered) Describe(chan<- *prometheus.Desc) {}
func (g gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := g.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != g.name {
			continue
		}
		var v float64
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "x", nil, nil), prometheus.UntypedValue, v)
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return 0
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisHiccupDoesNotSendTheFleetToTheLoginPage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := testConfig(srv.URL, "usher:")
	ring := newRing(t)
	a, b := newWorker(t, cfg, ring), newWorker(t, cfg, ring)
	login := &fakeLogin{delay: 200 * time.Millisecond, expires: time.Hour}

	// Redis stops answering for longer than one command's timeout (300 ms).
	pause := rawClient(t, srv.URL)
	if err := pause.Do(context.Background(), "CLIENT", "PAUSE", 450, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			w := a
			if i%2 == 1 {
				w = b
			}
			if _, err := w.cache.Get(context.Background(), key(), login.login); err != nil {
				t.Errorf("Get: %v", err)
			}
		})
	}
	wg.Wait()
	if n := login.calls.Load(); n != 1 {
		t.Fatalf("%d logins across a 450 ms Redis pause, want 1", n)
	}
	for _, w := range []*worker{a, b} {
		if got := testutil.ToFloat64(counter(t, w.reg, "usher_worker_teams_session_cache_bypassed_total")); got != 0 {
			t.Fatalf("bypassed = %v: a hiccup was taken for an outage", got)
		}
	}
}
