// Package app is the simulator's composition root: its Config, and an App
// that serves the simulator with /metrics, /healthz and /readyz. main.go only
// loads the Config and runs it; e2e tests may run it in-process.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/shared/httpserve"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/metrics"
)

// Config of the simulator binary.
type Config struct {
	// Addr is the listen address. Default 127.0.0.1:8090.
	Addr string `env:"USHER_SIMULATOR_ADDR" default:"127.0.0.1:8090"`
	// ShutdownGrace is how long in-flight requests get at shutdown. Default 5s.
	ShutdownGrace time.Duration `env:"USHER_SIMULATOR_SHUTDOWN_GRACE" default:"5s"`
	// Sim configures the simulated platforms; Sim.PublicURL
	// (USHER_SIMULATOR_PUBLIC_URL) defaults to http://<Addr>, or to each
	// request's own Host when Addr listens on every interface (0.0.0.0, [::], :port).
	Sim sim.Config
	// Log configures logging.
	Log logging.Config
}

// Validate names the bad field.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("USHER_SIMULATOR_ADDR must be host:port, got %q", c.Addr)
	}
	if c.ShutdownGrace <= 0 {
		return fmt.Errorf("USHER_SIMULATOR_SHUTDOWN_GRACE must be > 0, got %s", c.ShutdownGrace)
	}
	if err := c.Log.Validate(); err != nil {
		return err
	}
	return c.WithDefaults().Sim.Validate()
}

// WithDefaults fills Sim.PublicURL from Addr when it is unset and Addr names one host.
func (c Config) WithDefaults() Config {
	if c.Sim.PublicURL != "" {
		return c
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return c
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return c // listening everywhere: each request's Host is the best guess
	}
	c.Sim.PublicURL = "http://" + c.Addr
	return c
}

// App serves the simulator.
type App struct {
	cfg     Config
	log     *slog.Logger
	sim     *sim.Simulator
	handler http.Handler
}

// New builds the simulator and its HTTP handler. reg receives the
// simulator's metrics and is served on /metrics.
func New(cfg Config, log *slog.Logger, reg *prometheus.Registry) *App {
	cfg = cfg.WithDefaults()
	s := sim.New(cfg.Sim, sim.WithLogger(log), sim.WithRegistry(reg))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg))
	mux.Handle("GET /healthz", httpserve.Healthz())
	mux.Handle("GET /readyz", httpserve.Readyz())
	mux.Handle("/", s)
	return &App{cfg: cfg, log: log, sim: s, handler: metrics.NewHTTP(reg, "simulator").Wrap(mux)}
}

// Simulator is the simulated world, for in-process tests.
func (a *App) Simulator() *sim.Simulator { return a.sim }

// Handler is the whole HTTP surface: pages, APIs, /metrics, /healthz, /readyz.
func (a *App) Handler() http.Handler { return a.handler }

// Run serves on Config.Addr until ctx is done.
func (a *App) Run(ctx context.Context) error {
	a.log.Info("simulator starting", "addr", a.cfg.Addr, "public_url", a.cfg.Sim.PublicURL)
	if err := httpserve.Run(ctx, a.cfg.Addr, a.handler, a.cfg.ShutdownGrace, a.log); err != nil {
		return fmt.Errorf("serve simulator: %w", err)
	}
	return nil
}
