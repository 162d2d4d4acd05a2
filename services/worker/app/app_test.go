package app_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usherhq/usher/services/worker/app"
	"github.com/usherhq/usher/services/worker/internal/instant"
	wt "github.com/usherhq/usher/services/worker/internal/workertest"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/logging"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	var cfg app.Config
	if err := config.Load(config.MapLookup(nil), &cfg); err != nil {
		t.Fatal(err)
	}
	want := app.Defaults()
	if cfg.NATSURL != want.NATSURL || cfg.MetricsAddr != "127.0.0.1:8081" || cfg.Driver != app.DriverBrowser ||
		cfg.Jobs.Slots != 4 || cfg.Jobs.DrainTimeout != 30*time.Second || cfg.Topology != want.Topology ||
		cfg.Attend.LeaveTimeout != want.Attend.LeaveTimeout || cfg.Jobs != want.Jobs {
		t.Fatalf("defaults from the environment = %+v\nwant %+v", cfg, want)
	}
	bad := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"USHER_WORKER_SLOTS": "0"}, "USHER_WORKER_SLOTS"},
		{map[string]string{"USHER_WORKER_DRIVER": "selenium"}, "USHER_WORKER_DRIVER"},
		{map[string]string{"USHER_NATS_URL": "::"}, "USHER_NATS_URL"},
		{map[string]string{"USHER_METRICS_ADDR": "8081"}, "USHER_METRICS_ADDR"},
		{map[string]string{"USHER_LEASE_TTL": "10ms"}, "USHER_LEASE_TTL"},
		{map[string]string{"USHER_INSTANT_JOIN_DELAY": "-1s"}, "USHER_INSTANT_JOIN_DELAY"},
		{map[string]string{"USHER_WORKER_LEAVE_TIMEOUT": "0s"}, "USHER_WORKER_LEAVE_TIMEOUT"},
	}
	for _, tc := range bad {
		var c app.Config
		err := config.Load(config.MapLookup(tc.env), &c)
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: error %v; want one naming %s", tc.env, err, tc.want)
		}
	}
	// Browser mode seals Teams credentials and sessions: it refuses to start without keys.
	if _, err := app.New(cfg, logging.Discard(), prometheus.NewRegistry()); err == nil || !strings.Contains(err.Error(), "USHER_SECRET_KEYS") {
		t.Fatalf("browser mode without USHER_SECRET_KEYS: %v; want an error naming it", err)
	}
}

func TestAppRunsInProcessWithProbes(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	cfg := app.Defaults()
	cfg.NATSURL = h.Srv.URL
	cfg.Driver = app.DriverInstant
	cfg.Topology = h.Topo.Config
	cfg.Jobs.FetchWait = 200 * time.Millisecond
	cfg.Jobs.DrainTimeout = 200 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a, err := app.New(cfg, logging.Discard(), reg, app.WithMetricsListener(ln))
	if err != nil {
		t.Fatal(err)
	}
	stop := runApp(t, a)
	<-a.Ready()

	base := "http://" + ln.Addr().String()
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	wt.Eventually(t, 5*time.Second, "/readyz 200", func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusOK })

	job := h.Job()
	h.Publish(job)
	h.WaitStates(job, "joining joined", 5*time.Second)
	if a.Instant().Joins(job.GetBotId()) != 1 {
		t.Fatal("instant driver did not see the join")
	}
	_, body := get(t, base+"/metrics")
	for _, name := range []string{"usher_worker_bot_slots 4", "usher_worker_bot_slots_busy 1", "usher_worker_claim_latency_seconds_count 1",
		`usher_worker_job_outcomes_total{state="joined",sub_code="none"} 1`, "usher_worker_leases_held 1"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
	if strings.Contains(body, job.GetBotId()) {
		t.Fatal("/metrics carries a bot id")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The bot in its meeting was handed off, not dropped.
	evs := h.WaitStates(job, "joining joined joining", 5*time.Second)
	if evs[2].GetMetadata()["reason"] != botstate.SubWorkerShutdown {
		t.Fatalf("hand-off event %v", evs[2])
	}
	if h.JobsStored() != 1 {
		t.Fatal("no hand-off job waiting for the next worker")
	}
}

// TestAppStoppedRightAfterReadyReturnsNil stops workers the moment they are
// ready, while their reaper may still be creating its consumer: a stop is
// never reported as an error (benchmarks stop workers this way).
func TestAppStoppedRightAfterReadyReturnsNil(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	for i := range 5 {
		cfg := app.Defaults()
		cfg.NATSURL = h.Srv.URL
		cfg.Driver = app.DriverInstant
		cfg.MetricsAddr = ""
		cfg.Topology = h.Topo.Config
		cfg.Jobs.FetchWait = 100 * time.Millisecond
		cfg.Jobs.DrainTimeout = 100 * time.Millisecond
		a, err := app.New(cfg, logging.Discard(), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		stop := runApp(t, a)
		select {
		case <-a.Ready():
		case <-time.After(30 * time.Second):
			t.Fatalf("run %d: not ready within 30s", i)
		}
		if err := stop(); err != nil {
			t.Fatalf("run %d: Run after a stop right after Ready = %v; want nil", i, err)
		}
	}
}

// TestKilledWorkerProcessNeverJoinsTwice kills a real worker process with
// SIGKILL in the middle of a join and starts another: the bot joins once.
func TestKilledWorkerProcessNeverJoinsTwice(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	first := startWorker(t, h, "proc-1", "USHER_INSTANT_JOIN_DELAY=4s")
	job := h.Job()
	h.Publish(job)
	h.WaitStates(job, "joining", 20*time.Second)
	first.kill9()

	second := startWorker(t, h, "proc-2", "USHER_INSTANT_JOIN_DELAY=1s", "USHER_WORKER_DRAIN_TIMEOUT=300ms")
	h.WaitStates(job, "joining joined", 30*time.Second)
	// Nothing left that could deliver the job again: no second joined, ever.
	wt.Eventually(t, 5*time.Second, "job acked", func() bool {
		info := h.Consumer()
		return h.JobsStored() == 0 && info.NumPending == 0 && info.NumAckPending == 0
	})
	if got := wt.States(h.Events(job)); got != "joining joined" {
		t.Fatalf("events = %q; want exactly one joined", got)
	}
	// SIGTERM: the bot in its meeting is handed off, the process exits cleanly.
	second.stop(20 * time.Second)
	evs := h.WaitStates(job, "joining joined joining", 5*time.Second)
	if evs[2].GetMetadata()["reason"] != botstate.SubWorkerShutdown {
		t.Fatalf("hand-off event %v", evs[2])
	}
}

// TestReaperFailsBotOfKilledWorker kills a real worker process after its
// bot joined; another worker's reaper fails the bot with worker_lost.
func TestReaperFailsBotOfKilledWorker(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	p := startWorker(t, h, "proc-dead")
	job := h.Job()
	h.Publish(job)
	h.WaitStates(job, "joining joined", 20*time.Second)
	p.kill9()
	killed := time.Now()

	cfg := app.Defaults()
	cfg.NATSURL = h.Srv.URL
	cfg.Driver = app.DriverInstant
	cfg.MetricsAddr = ""
	cfg.Topology = h.Topo.Config
	a, err := app.New(cfg, logging.Discard(), prometheus.NewRegistry(), app.WithInstantDriver(instant.New(instant.Config{})))
	if err != nil {
		t.Fatal(err)
	}
	runApp(t, a)
	h.WaitStates(job, "joining joined failed/worker_lost", 15*time.Second)
	t.Logf("worker_lost %s after SIGKILL (lease TTL %s)", time.Since(killed).Round(10*time.Millisecond), h.Topo.Config.LeaseTTL)
}

// runApp runs a in the background; stop cancels it and returns Run's
// result (failing the test if it takes over 30 s). t.Cleanup stops it too.
func runApp(t *testing.T, a *app.App) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var err error
	go func() { err = a.Run(ctx); close(done) }()
	stop = func() error {
		cancel()
		select {
		case <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("app did not stop within 30s")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxTimeout(t, 5*time.Second), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
