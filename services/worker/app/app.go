// Package app is the worker's composition root: it connects to NATS, ensures
// the topology, builds the platform joiners, the bot lifecycle, the jobs
// runtime and the reapers, serves /metrics, /healthz and /readyz, and runs
// them until its context is done, then drains. main wires it from the
// environment; e2e tests and benchmarks run it in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/worker/internal/attend"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/instant"
	"github.com/usherhq/usher/services/worker/internal/jobs"
	"github.com/usherhq/usher/services/worker/internal/reaper"
	"github.com/usherhq/usher/shared/httpserve"
	"github.com/usherhq/usher/shared/metrics"
	"github.com/usherhq/usher/shared/pubacks"
	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/topology"
)

// ErrNoJoiners is returned by Run in browser mode when no platform joiner
// was wired (WithJoiners, WithJoiner or WithDriver).
var ErrNoJoiners = errors.New("no platform joiners: USHER_WORKER_DRIVER=browser builds them from Config.Browser; tests may inject their own")

// Env is what a JoinerFactory may build on: the worker's NATS connection and
// topology, its logger and metrics registry.
type Env struct {
	Conn      *nats.Conn
	JetStream jetstream.JetStream
	Topology  *topology.Topology
	Log       *slog.Logger
	Registry  prometheus.Registerer
}

// JoinerFactory builds joiners (browser engine, Zoom and Teams identity)
// once NATS is up. The returned close runs after every bot is gone.
type JoinerFactory func(ctx context.Context, env Env) (joiners map[usherv1.Platform]driver.Joiner, close func() error, err error)

// Option configures an App.
type Option func(*App)

// WithJoiners adds a factory of platform joiners (the browser drivers).
func WithJoiners(f JoinerFactory) Option {
	return func(a *App) { a.factories = append(a.factories, f) }
}

// WithJoiner serves platform p through j (over any factory or instant driver).
func WithJoiner(p usherv1.Platform, j driver.Joiner) Option {
	return func(a *App) { a.joiners[p] = j }
}

// WithDriver serves platform p through d, joining anonymously.
func WithDriver(p usherv1.Platform, d driver.Driver) Option {
	return WithJoiner(p, driver.Anonymous{Driver: d})
}

// WithInstantDriver makes instant mode use d (so several in-process workers
// share one, and a test can see every join); otherwise New makes one from
// Config.Instant.
func WithInstantDriver(d *instant.Driver) Option {
	return func(a *App) { a.instant = d }
}

// WithClaimObserver calls f with each job's claim latency (first storage on
// JOBS → lease held), for benchmarks.
func WithClaimObserver(f func(time.Duration)) Option {
	return func(a *App) { a.onClaim = f }
}

// WithMetricsListener serves /metrics, /healthz and /readyz on ln instead
// of listening on Config.MetricsAddr.
func WithMetricsListener(ln net.Listener) Option {
	return func(a *App) { a.listener = ln }
}

// App is one worker process.
type App struct {
	cfg       Config
	log       *slog.Logger
	reg       *prometheus.Registry
	factories []JoinerFactory
	joiners   map[usherv1.Platform]driver.Joiner
	instant   *instant.Driver
	onClaim   func(time.Duration)
	listener  net.Listener
	ready     chan struct{}

	mu sync.Mutex
	rt *jobs.Runtime
}

// New validates cfg and returns the worker; Run starts it. An empty
// Jobs.WorkerID becomes hostname-pid.
func New(cfg Config, log *slog.Logger, reg *prometheus.Registry, opts ...Option) (*App, error) {
	if cfg.Jobs.WorkerID == "" {
		cfg.Jobs.WorkerID = defaultWorkerID()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{
		cfg:     cfg,
		log:     log.With("worker_id", cfg.Jobs.WorkerID),
		reg:     reg,
		joiners: make(map[usherv1.Platform]driver.Joiner),
		ready:   make(chan struct{}),
	}
	for _, o := range opts {
		o(a)
	}
	if cfg.Driver == DriverInstant && a.instant == nil {
		a.instant = instant.New(cfg.Instant)
	}
	if cfg.Driver == DriverBrowser && len(a.factories) == 0 && len(a.joiners) == 0 {
		if err := cfg.Browser.Validate(); err != nil {
			return nil, err
		}
		a.factories = append(a.factories, BrowserJoiners(cfg.Browser, cfg.Jobs.Slots))
	}
	return a, nil
}

// Instant is the instant driver in instant mode (nil otherwise).
func (a *App) Instant() *instant.Driver { return a.instant }

// WorkerID is the worker's id.
func (a *App) WorkerID() string { return a.cfg.Jobs.WorkerID }

// Ready is closed once the worker is connected and taking jobs.
func (a *App) Ready() <-chan struct{} { return a.ready }

// Run runs the worker until ctx is done, then drains (see jobs.Runtime.Run)
// and closes everything it opened.
func (a *App) Run(ctx context.Context) error {
	nc, err := nats.Connect(a.cfg.NATSURL, natsAuth(a.cfg.NATSCreds),
		nats.Name("usher-worker "+a.cfg.Jobs.WorkerID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			a.log.Warn("nats async error", "subject", subject, "error", err)
		}))
	if err != nil {
		return fmt.Errorf("connect %s: %w", secret.RedactURL(a.cfg.NATSURL), err)
	}
	defer a.closeConn(nc)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	topo, err := topology.Ensure(ctx, js, a.cfg.Topology)
	if err != nil {
		return err
	}
	joiners, closeJoiners, err := a.buildJoiners(ctx, Env{Conn: nc, JetStream: js, Topology: topo, Log: a.log, Registry: a.reg})
	if err != nil {
		return err
	}
	defer closeJoiners()

	handler, err := attend.New(a.cfg.Attend, joiners, a.log, a.reg)
	if err != nil {
		return err
	}
	var ropts []jobs.Option
	if a.onClaim != nil {
		ropts = append(ropts, jobs.WithClaimObserver(a.onClaim))
	}
	// The bots' hot writes (leases, events) go through Usher's lean async
	// publisher; the rest of JetStream is js's.
	pub, err := pubacks.NewPublisher(js, nc, pubacks.PublisherConfig{Timeout: 10 * time.Second, MaxPending: 4096})
	if err != nil {
		return fmt.Errorf("jetstream publisher: %w", err)
	}
	defer pub.Close()
	rt, err := jobs.New(a.cfg.Jobs, nc, pub, topo, handler, a.log, a.reg, ropts...)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.rt = rt
	a.mu.Unlock()
	leases := reaper.New(js, topo, a.log, a.reg)
	exhausted := reaper.NewMaxDeliveries(nc, js, topo, a.log, a.reg)

	ln, err := a.listen()
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	// The HTTP server outlives the drain, so /readyz says "draining" and
	// /metrics shows the hand-offs.
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHTTP()
	if ln != nil {
		g.Go(func() error {
			return httpserve.Serve(httpCtx, ln, a.mux(js), a.cfg.ShutdownGrace, a.log)
		})
	}
	advisories := make(chan struct{})
	g.Go(func() error { return exhausted.Run(gctx, advisories) })
	g.Go(func() error { return leases.Run(gctx) })
	g.Go(func() error {
		defer stopHTTP()
		select {
		case <-advisories:
		case <-gctx.Done():
			return nil
		}
		close(a.ready)
		return rt.Run(gctx)
	})
	err = g.Wait()
	a.log.Info("worker stopped")
	return err
}

func (a *App) listen() (net.Listener, error) {
	if a.listener != nil {
		return a.listener, nil
	}
	if a.cfg.MetricsAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("listen USHER_METRICS_ADDR %s: %w", a.cfg.MetricsAddr, err)
	}
	return ln, nil
}

func (a *App) mux(js jetstream.JetStream) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(a.reg))
	mux.Handle("GET /healthz", httpserve.Healthz())
	mux.Handle("GET /readyz", httpserve.Readyz(
		httpserve.Check{Name: "jetstream", Func: func(ctx context.Context) error { return topology.Check(ctx, js) }},
		httpserve.Check{Name: "runtime", Func: a.runtimeReady},
	))
	return mux
}

var errDraining = errors.New("draining: not taking jobs")

func (a *App) runtimeReady(context.Context) error {
	a.mu.Lock()
	rt := a.rt
	a.mu.Unlock()
	select {
	case <-a.ready:
	default:
		return errors.New("starting")
	}
	if rt.Draining() {
		return errDraining
	}
	return nil
}

// buildJoiners assembles one joiner per platform: the instant driver in
// instant mode, else the factories' joiners; WithJoiner overrides both.
func (a *App) buildJoiners(ctx context.Context, env Env) (map[usherv1.Platform]driver.Joiner, func(), error) {
	out := make(map[usherv1.Platform]driver.Joiner)
	var closers []func() error
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil {
				a.log.Warn("close joiners", "error", err)
			}
		}
	}
	if a.instant != nil {
		for _, p := range []usherv1.Platform{usherv1.Platform_PLATFORM_ZOOM, usherv1.Platform_PLATFORM_TEAMS, usherv1.Platform_PLATFORM_MEET} {
			out[p] = driver.Anonymous{Driver: a.instant}
		}
	}
	if a.cfg.Driver == DriverBrowser {
		for _, f := range a.factories {
			js, closeF, err := f(ctx, env)
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("build joiners: %w", err)
			}
			if closeF != nil {
				closers = append(closers, closeF)
			}
			for p, j := range js {
				out[p] = j
			}
		}
	}
	for p, j := range a.joiners {
		out[p] = j
	}
	if len(out) == 0 {
		return nil, nil, ErrNoJoiners
	}
	return out, closeAll, nil
}

// closeConn drains the connection (flushing acks and replies) and waits for
// it to close, bounded by ShutdownGrace.
func (a *App) closeConn(nc *nats.Conn) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	t := time.NewTimer(a.cfg.ShutdownGrace)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		nc.Close()
	}
}

// natsAuth authenticates with a credentials file when one is configured.
func natsAuth(creds string) nats.Option {
	if creds == "" {
		return func(*nats.Options) error { return nil }
	}
	return nats.UserCredentials(creds)
}
