// Package app is the ingest service's composition root: it builds the HTTP
// API, the NATS intake and the projector from a Config and runs them until
// its context ends. main wires it from the environment; e2e tests and
// benchmarks run it in-process.
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

	"github.com/usherhq/usher/services/ingest/internal/answer"
	"github.com/usherhq/usher/services/ingest/internal/api"
	"github.com/usherhq/usher/services/ingest/internal/apiauth"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
	"github.com/usherhq/usher/services/ingest/internal/bots"
	"github.com/usherhq/usher/services/ingest/internal/credentials"
	"github.com/usherhq/usher/services/ingest/internal/httpjson"
	"github.com/usherhq/usher/services/ingest/internal/intake"
	"github.com/usherhq/usher/services/ingest/internal/projector"
	"github.com/usherhq/usher/services/ingest/internal/ratelimit"
	"github.com/usherhq/usher/shared/httpserve"
	"github.com/usherhq/usher/shared/metrics"
	"github.com/usherhq/usher/shared/pubacks"
	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/topology"
)

// App is the ingest service.
type App struct {
	cfg       Config
	topo      topology.Config
	log       *slog.Logger
	reg       *prometheus.Registry
	keys      *apiauth.Keys
	limiter   *ratelimit.Limiter
	validator *botrequest.Validator
	answers   *answer.Metrics
	ln        net.Listener

	mu     sync.Mutex
	mounts []mount
	ran    bool

	ready chan struct{}
	addr  string
}

type mount struct {
	pattern string
	h       http.Handler
}

// Option adjusts an App.
type Option func(*App)

// WithListener serves HTTP on ln instead of listening on Config.HTTPAddr
// (tests listen on 127.0.0.1:0).
func WithListener(ln net.Listener) Option { return func(a *App) { a.ln = ln } }

// WithTopology replaces the topology sizing from Config.Topology (tests
// pass their embedded server's, so that Ensure changes nothing).
func WithTopology(t topology.Config) Option { return func(a *App) { a.topo = t } }

// New validates cfg and builds the service. It does no I/O: Run connects.
// Metrics are registered on reg, which /metrics serves.
func New(cfg Config, log *slog.Logger, reg *prometheus.Registry, opts ...Option) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keys, err := apiauth.ParseKeys(cfg.APIKeys.Reveal())
	if err != nil {
		return nil, err
	}
	rate, err := ratelimit.ParseRate(cfg.RateLimit)
	if err != nil {
		return nil, fmt.Errorf("USHER_RATE_LIMIT: %w", err)
	}
	a := &App{
		cfg:     cfg,
		topo:    cfg.Topology,
		log:     log,
		reg:     reg,
		keys:    keys,
		limiter: ratelimit.New(rate, nil),
		validator: botrequest.New(botrequest.Options{
			SimulatorURL:      cfg.SimulatorURL,
			AllowHTTPCallback: cfg.CallbackAllowHTTP,
		}),
		answers: answer.NewMetrics(reg),
		ready:   make(chan struct{}),
	}
	for _, o := range opts {
		o(a)
	}
	return a, nil
}

// Mount serves h on pattern (a net/http ServeMux pattern such as
// "/api/v1/teams/"), behind the same API-key authentication as the bot API:
// h finds the project with apiauth.Project(r.Context()). Call it before Run.
func (a *App) Mount(pattern string, h http.Handler) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mounts = append(a.mounts, mount{pattern, h})
}

// Ready is closed once Run serves HTTP and NATS requests.
func (a *App) Ready() <-chan struct{} { return a.ready }

// Addr is the HTTP listener's address, valid once Ready is closed.
func (a *App) Addr() string { return a.addr }

// Run connects to NATS, ensures the topology (retrying until NATS answers),
// then serves the HTTP API, the NATS intake and the projector until ctx is
// done. Shutdown is two-phase: each component stops taking work and drains
// for up to ShutdownGrace; the NATS connection drains last.
func (a *App) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.ran {
		a.mu.Unlock()
		return errors.New("ingest app: Run called twice")
	}
	a.ran = true
	mounts := a.mounts
	a.mu.Unlock()

	ln := a.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", a.cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen %s: %w", a.cfg.HTTPAddr, err)
		}
	}
	nc, err := nats.Connect(a.cfg.NATSURL, natsAuth(a.cfg.NATSCreds),
		nats.Name("usher-ingest"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		// No reconnect buffer: a write made while disconnected fails at once
		// instead of reaching JetStream later, after its request was answered
		// 503 (a bot created or a job queued behind the caller's back).
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				a.log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { a.log.Info("nats reconnected") }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			a.log.Warn("nats async error", "error", err)
		}),
	)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("connect %s: %w", secret.RedactURL(a.cfg.NATSURL), err)
	}
	defer a.closeConn(nc)
	// Async writes come in bursts (intake batches, projector batches): room
	// for all of them at once, and no acknowledgement awaited forever.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192), jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	topo, err := a.ensure(ctx, js)
	if err != nil {
		_ = ln.Close()
		return err
	}

	// The hot writes (documents, jobs) go through Usher's lean async
	// publisher; the rest of JetStream is js's.
	pub, err := pubacks.NewPublisher(js, nc, pubacks.PublisherConfig{Timeout: 10 * time.Second, MaxPending: 8192})
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("jetstream publisher: %w", err)
	}
	defer pub.Close()

	creds, gauge, err := a.credentials(topo)
	if err != nil {
		_ = ln.Close()
		return err
	}
	mounts = append(mounts, mount{credentials.PathPrefix, creds})

	proj := projector.New(projector.Config{Shards: a.cfg.ProjectorShards, Linger: a.cfg.ProjectorLinger, DrainTimeout: a.cfg.ShutdownGrace, Connected: nc.IsConnected}, pub, topo, a.log, a.reg)
	// The projector learns each new document from here, not from a read.
	svc := bots.New(bots.Config{JoinDeadline: a.cfg.JoinDeadline, OnCreated: proj.Seed}, nc, pub, topo, a.log, a.reg)
	in := intake.New(intake.Config{
		Workers:        a.cfg.IntakeWorkers,
		MaxBatch:       a.cfg.IntakeBatch,
		MaxBodyBytes:   a.cfg.MaxBodyBytes,
		RequestTimeout: a.cfg.RequestTimeout,
		DrainTimeout:   a.cfg.ShutdownGrace,
	}, nc, pub, svc, a.validator, a.limiter, a.answers, a.log, a.reg)
	handler := a.handler(api.New(api.Config{
		MaxBodyBytes:   a.cfg.MaxBodyBytes,
		PublicURL:      a.cfg.PublicURL,
		RequestTimeout: a.cfg.RequestTimeout,
	}, svc, a.validator, a.limiter, a.answers, a.log), js, mounts)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpserve.Serve(gctx, ln, handler, a.cfg.ShutdownGrace, a.log) })
	g.Go(func() error { return in.Run(gctx) })
	g.Go(func() error { return proj.Run(gctx) })
	if gauge != nil {
		g.Go(func() error { return gauge.Run(gctx) })
	}
	// The service's background rollbacks outlive the intake and the API,
	// whose last requests may still need one.
	sctx, stopService := context.WithCancel(context.WithoutCancel(ctx))
	serviceDone := make(chan error, 1)
	go func() { serviceDone <- svc.Run(sctx) }()
	a.addr = ln.Addr().String()
	select {
	case <-in.Started():
		close(a.ready)
		a.log.Info("ingest running", "http_addr", a.addr, "nats_url", secret.RedactURL(a.cfg.NATSURL))
	case <-gctx.Done():
	}
	err = g.Wait()
	stopService()
	<-serviceDone
	a.log.Info("ingest stopped")
	return err
}

// credentials builds the Teams credentials API (and the accounts-by-status
// gauge) on the topology; without USHER_SECRET_KEYS it answers 503 saying so.
func (a *App) credentials(topo *topology.Topology) (http.Handler, *credentials.StatusGauge, error) {
	if a.cfg.Seal.Keys.Empty() {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			httpjson.Error(w, http.StatusServiceUnavailable, "Teams credentials are disabled on this server: USHER_SECRET_KEYS is not set")
		}), nil, nil
	}
	ring, err := a.cfg.Seal.Ring()
	if err != nil {
		return nil, nil, err
	}
	store := credentials.NewStore(topo.TeamsAccounts, topo.Screenshots, ring, a.cfg.Credentials.MaxAccounts)
	return credentials.NewHandler(store, a.log), credentials.NewStatusGauge(topo.TeamsAccounts, a.log, a.reg), nil
}

// ensure creates or updates the topology, retrying while NATS is unreachable.
func (a *App) ensure(ctx context.Context, js jetstream.JetStream) (*topology.Topology, error) {
	backoff := 250 * time.Millisecond
	for {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		topo, err := topology.Ensure(ectx, js, a.topo)
		cancel()
		if err == nil {
			return topo, nil
		}
		a.log.Warn("ensure jetstream topology, retrying", "error", err, "retry_in", backoff.String())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("ensure topology: %w", err)
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// handler routes the bot API, the mounted handlers (both behind API-key
// authentication), and the unauthenticated /metrics, /healthz and /readyz.
func (a *App) handler(botAPI *api.API, js jetstream.JetStream, mounts []mount) http.Handler {
	mux := http.NewServeMux()
	botAPI.Register(mux, a.keys.Middleware)
	for _, m := range mounts {
		mux.Handle(m.pattern, a.keys.Middleware(m.h))
	}
	mux.Handle("GET /metrics", metrics.Handler(a.reg))
	mux.Handle("GET /healthz", httpserve.Healthz())
	mux.Handle("GET /readyz", httpserve.Readyz(httpserve.Check{
		Name: "jetstream",
		Func: func(ctx context.Context) error { return topology.Check(ctx, js) },
	}))
	return metrics.NewHTTP(a.reg, "ingest").Wrap(mux)
}

// closeConn drains the connection (flushing replies and acks) and waits for
// it to close.
func (a *App) closeConn(nc *nats.Conn) {
	if !nc.IsConnected() {
		nc.Close() // nothing to flush
		return
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(a.cfg.ShutdownGrace):
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
