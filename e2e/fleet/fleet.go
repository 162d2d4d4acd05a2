// Package fleet runs the whole of Usher in one process for end-to-end tests
// and benchmarks: an embedded JetStream server, the simulator, ingest and
// one or more workers — the same app packages the binaries run — wired the
// way `make run` wires them. Every service logs into one buffer, so a test
// can scan all of it for secrets.
package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	ingestapp "github.com/usherhq/usher/services/ingest/app"
	"github.com/usherhq/usher/services/simulator/sim"
	workerapp "github.com/usherhq/usher/services/worker/app"
	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/metrics"
	"github.com/usherhq/usher/shared/natsembed"
	"github.com/usherhq/usher/shared/topology"
)

// Project is the project every fleet serves.
const Project = "e2e"

// Options shape a fleet.
type Options struct {
	// Driver is "browser" (Chromium against the simulator) or "instant". Default browser.
	Driver string
	// Workers is how many workers run. Default 1.
	Workers int
	// Slots per worker. Default 4.
	Slots int
	// Env overrides any USHER_* variable of ingest and the workers (for
	// example short timeouts in tests, or instant-driver settings).
	Env map[string]string
	// Topology sizes JetStream. Default: production values with a 3 s lease
	// TTL and a 10 s ack wait, so faults show quickly in tests.
	Topology *topology.Config
	// LogLevel of every service. Default info.
	LogLevel string
	// Quiet discards logs instead of keeping them (benchmarks).
	Quiet bool
	// Projects are served besides Project, each with its own API key and
	// callback secret (see As): tests that need a project to themselves —
	// its own Teams accounts, none at all — share the fleet without seeing
	// each other.
	Projects []string
	// WorkerEnv overrides USHER_* variables of the workers only, after Env
	// (for example a worker with production callback settings behind an
	// ingest that accepts http:// URLs).
	WorkerEnv map[string]string
}

// Fleet is a running Usher.
type Fleet struct {
	// API is ingest's base URL; APIKey its key for Project.
	API    string
	APIKey string
	// Sim is the simulator; SimURL its base URL.
	Sim    *sim.Simulator
	SimURL string
	// NATSURL reaches the embedded JetStream server.
	NATSURL string
	// CallbackSecret is Project's zoom_tokens_url signing secret.
	CallbackSecret string
	// Logs holds every line every service logged (JSON).
	Logs *Buffer

	Topology topology.Config
	opts     Options
	dir      string
	srv      *server.Server
	simSrv   *httptest.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	topo     *topology.Topology
	env      map[string]string
	ingest   *service
	workers  []*Worker
	projects map[string]*Client
	tap      *simTap
}

// service is one running app with its cancel and exit.
type service struct {
	name    string
	cancel  context.CancelFunc
	done    chan error
	reg     *prometheus.Registry
	metrics string // base URL of /metrics (workers)
	once    sync.Once
	err     error
}

// Start runs a fleet; Close stops it. dir holds JetStream's files.
func Start(ctx context.Context, dir string, opts Options) (*Fleet, error) {
	if opts.Driver == "" {
		opts.Driver = workerapp.DriverBrowser
	}
	if opts.Workers == 0 {
		opts.Workers = 1
	}
	if opts.Slots == 0 {
		opts.Slots = 4
	}
	topo := topology.Defaults()
	topo.LeaseTTL = 3 * time.Second
	topo.JobAckWait = 10 * time.Second
	if opts.Topology != nil {
		topo = *opts.Topology
	}
	f := &Fleet{opts: opts, dir: dir, Logs: &Buffer{}, Topology: topo}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	srv, err := natsembed.Start(natsembed.Config{StoreDir: dir, ServerName: "usher-e2e"})
	if err != nil {
		return nil, err
	}
	f.srv, f.NATSURL = srv, srv.ClientURL()
	if f.nc, err = nats.Connect(f.NATSURL, nats.MaxReconnects(-1)); err != nil {
		return nil, err
	}
	if f.js, err = jetstream.New(f.nc); err != nil {
		return nil, err
	}
	if f.topo, err = topology.Ensure(ctx, f.js, topo); err != nil {
		return nil, err
	}

	f.Sim = sim.New(sim.Config{}, sim.WithLogger(f.logger("simulator")), sim.WithRegistry(prometheus.NewRegistry()))
	f.tap = &simTap{}
	f.simSrv = httptest.NewServer(f.tap.wrap(f.Sim))
	f.SimURL = f.simSrv.URL
	if err := f.Sim.SetPublicURL(f.SimURL); err != nil {
		return nil, err
	}

	f.APIKey = "e2e-" + randomString(24)
	f.CallbackSecret = "e2e-callback-" + randomString(20)
	apiKeys, callbackSecrets, err := f.addProjects(opts.Projects)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	f.env = map[string]string{
		"USHER_NATS_URL":             f.NATSURL,
		"USHER_API_KEYS":             apiKeys,
		"USHER_SIMULATOR_URL":        f.SimURL,
		"USHER_SECRET_KEYS":          "k1:" + base64.StdEncoding.EncodeToString(key),
		"USHER_CALLBACK_SECRETS":     callbackSecrets,
		"USHER_CALLBACK_ALLOW_HTTP":  "true",
		"USHER_CALLBACK_ALLOW_CIDRS": "127.0.0.0/8,::1/128",
		"USHER_CALLBACK_BACKOFF":     "20ms",
		"USHER_WORKER_DRIVER":        opts.Driver,
		"USHER_WORKER_SLOTS":         fmt.Sprint(opts.Slots),
		"USHER_WORKER_DRAIN_TIMEOUT": "2s",
		"USHER_RATE_LIMIT":           "off",
		"USHER_REDIS_KEY_PREFIX":     "usher-e2e-" + randomString(8) + ":",
		"USHER_DRIVER_STEP_TIMEOUT":  "15s",
		"USHER_LOG_LEVEL":            opts.LogLevel,
	}
	if v := os.Getenv("REDIS_URL"); v != "" {
		f.env["REDIS_URL"] = v
	}
	if v := os.Getenv("USHER_CHROMIUM_BIN"); v != "" {
		f.env["USHER_CHROMIUM_BIN"] = v
	}
	for k, v := range opts.Env {
		f.env[k] = v
	}
	if err := f.startIngest(); err != nil {
		return nil, err
	}
	for range opts.Workers {
		if _, err := f.StartWorker(); err != nil {
			return nil, err
		}
	}
	ok = true
	return f, nil
}

func (f *Fleet) logger(service string) *slog.Logger {
	if f.opts.Quiet {
		return logging.Discard()
	}
	level := f.opts.LogLevel
	if level == "" {
		level = "info"
	}
	return logging.New(f.Logs, logging.Config{Level: level, Format: "json"}, service)
}

func (f *Fleet) startIngest() error {
	var cfg ingestapp.Config
	if err := config.Load(config.MapLookup(f.env), &cfg); err != nil {
		return err
	}
	cfg.Topology = f.Topology
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	reg := metrics.NewRegistry()
	a, err := ingestapp.New(cfg, f.logger("ingest"), reg, ingestapp.WithListener(ln), ingestapp.WithTopology(f.Topology))
	if err != nil {
		_ = ln.Close()
		return err
	}
	s := run("ingest", func(ctx context.Context) error { return a.Run(ctx) })
	s.reg = reg
	if err := waitReady(a.Ready(), s.done, 30*time.Second); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	f.ingest = s
	f.API = "http://" + ln.Addr().String()
	return nil
}

// StartWorker starts one more worker and waits until it takes jobs.
func (f *Fleet) StartWorker(opts ...workerapp.Option) (*Worker, error) {
	var cfg workerapp.Config
	if err := config.Load(config.MapLookup(f.workerEnv()), &cfg); err != nil {
		return nil, err
	}
	cfg.Topology = f.Topology
	cfg.Jobs.WorkerID = fmt.Sprintf("e2e-worker-%d", len(f.workers)+1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	reg := metrics.NewRegistry()
	a, err := workerapp.New(cfg, f.logger("worker"), reg, append([]workerapp.Option{workerapp.WithMetricsListener(ln)}, opts...)...)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	s := run(cfg.Jobs.WorkerID, func(ctx context.Context) error { return a.Run(ctx) })
	s.reg = reg
	s.metrics = "http://" + ln.Addr().String()
	if err := waitReady(a.Ready(), s.done, 60*time.Second); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	w := &Worker{App: a, svc: s}
	f.workers = append(f.workers, w)
	return w, nil
}

// Worker is a running worker.
type Worker struct {
	App *workerapp.App
	svc *service
}

// MetricsURL is the worker's /metrics.
func (w *Worker) MetricsURL() string { return w.svc.metrics + "/metrics" }

// Registry is the worker's metrics registry.
func (w *Worker) Registry() *prometheus.Registry { return w.svc.reg }

// Stop stops the worker (SIGTERM-like: it drains) and returns its exit error.
func (w *Worker) Stop() error { return w.svc.stop(30 * time.Second) }

// Workers are the workers started so far, first started first.
func (f *Fleet) Workers() []*Worker { return f.workers }

// IngestRegistry is ingest's metrics registry.
func (f *Fleet) IngestRegistry() *prometheus.Registry { return f.ingest.reg }

// JetStream is a JetStream context on the fleet's server (for reading streams).
func (f *Fleet) JetStream() jetstream.JetStream { return f.js }

// Conn is a NATS connection to the fleet's server.
func (f *Fleet) Conn() *nats.Conn { return f.nc }

// Topo is the ensured topology.
func (f *Fleet) Topo() *topology.Topology { return f.topo }

// Close stops the workers, ingest, the simulator and JetStream.
func (f *Fleet) Close() {
	for i := len(f.workers) - 1; i >= 0; i-- {
		_ = f.workers[i].svc.stop(30 * time.Second)
	}
	if f.ingest != nil {
		_ = f.ingest.stop(15 * time.Second)
	}
	if f.simSrv != nil {
		f.simSrv.Close()
	}
	if f.nc != nil {
		f.nc.Close()
	}
	if f.srv != nil {
		f.srv.Shutdown()
		f.srv.WaitForShutdown()
	}
}

func run(name string, f func(context.Context) error) *service {
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{name: name, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- f(ctx) }()
	return s
}

var errStopTimeout = errors.New("did not stop in time")

// stop cancels the service and waits for it; it is idempotent.
func (s *service) stop(timeout time.Duration) error {
	s.cancel()
	s.once.Do(func() {
		select {
		case s.err = <-s.done:
		case <-time.After(timeout):
			s.err = fmt.Errorf("%s: %w", s.name, errStopTimeout)
		}
	})
	return s.err
}

func waitReady(ready <-chan struct{}, done chan error, timeout time.Duration) error {
	select {
	case <-ready:
		return nil
	case err := <-done:
		done <- err
		return fmt.Errorf("exited before ready: %w", err)
	case <-time.After(timeout):
		return errors.New("not ready in time")
	}
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Buffer is a concurrency-safe log sink.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*Buffer)(nil)

// get is a small helper for metrics scrapes.
func get(url string) (string, error) {
	resp, err := http.Get(url) //nolint:noctx // test helper against a local server
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Scrape returns a worker's /metrics text.
func (w *Worker) Scrape() (string, error) { return get(w.MetricsURL()) }
