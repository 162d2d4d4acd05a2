package app

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/usherhq/usher/services/worker/internal/attend"
	"github.com/usherhq/usher/services/worker/internal/instant"
	"github.com/usherhq/usher/services/worker/internal/jobs"
	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/topology"
)

// Driver modes.
const (
	// DriverBrowser joins real meetings in Chromium through the joiners given
	// with WithJoiners / WithJoiner / WithDriver.
	DriverBrowser = "browser"
	// DriverInstant joins nothing (internal/instant): pipeline tests, benchmarks.
	DriverInstant = "instant"
)

// Config is the worker's configuration, read from the environment by
// shared/config in main.
type Config struct {
	// NATSURL is the NATS server (with JetStream). Default nats://127.0.0.1:4333.
	NATSURL string `env:"USHER_NATS_URL" default:"nats://127.0.0.1:4333"`
	// NATSCreds is a NATS credentials file (.creds: user JWT and NKey seed)
	// to authenticate with in production. Default empty: no credentials.
	NATSCreds string `env:"USHER_NATS_CREDS"`
	// MetricsAddr is where /metrics, /healthz and /readyz listen; empty (only
	// settable in code) serves nothing. Default 127.0.0.1:8081.
	MetricsAddr string `env:"USHER_METRICS_ADDR" default:"127.0.0.1:8081"`
	// Driver is instant or browser. Default browser.
	Driver string `env:"USHER_WORKER_DRIVER" default:"browser"`
	// ShutdownGrace bounds the HTTP server's and the NATS connection's
	// shutdown once the bots are drained. Default 5s.
	ShutdownGrace time.Duration `env:"USHER_SHUTDOWN_GRACE" default:"5s"`

	// Jobs holds USHER_WORKER_SLOTS, USHER_WORKER_ID (default hostname-pid),
	// USHER_WORKER_DRAIN_TIMEOUT and the runtime's other settings.
	Jobs   jobs.Config
	Attend attend.Config
	// Browser holds browser mode's settings (Chromium, drivers, Zoom and Teams identity).
	Browser  BrowserConfig
	Instant  instant.Config
	Topology topology.Config
	Log      logging.Config
}

// Defaults returns the documented defaults (WorkerID left empty: New fills
// in hostname-pid).
func Defaults() Config {
	var c Config
	// The tag defaults always parse: this cannot fail.
	_ = config.Load(config.MapLookup(nil), &c)
	return c
}

// Validate names the first bad variable. An empty USHER_WORKER_ID is
// accepted: New replaces it with hostname-pid.
func (c Config) Validate() error {
	if u, err := url.Parse(c.NATSURL); err != nil || u.Host == "" {
		return fmt.Errorf("USHER_NATS_URL must be a URL like nats://127.0.0.1:4333, got %q", secret.RedactURL(c.NATSURL))
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("USHER_METRICS_ADDR must be host:port, got %q", c.MetricsAddr)
		}
	}
	if c.Driver != DriverBrowser && c.Driver != DriverInstant {
		return fmt.Errorf("USHER_WORKER_DRIVER must be browser or instant, got %q", c.Driver)
	}
	if c.ShutdownGrace < 100*time.Millisecond {
		return fmt.Errorf("USHER_SHUTDOWN_GRACE must be ≥ 100ms, got %s", c.ShutdownGrace)
	}
	j := c.Jobs
	if j.WorkerID == "" {
		j.WorkerID = "unset"
	}
	for _, v := range []interface{ Validate() error }{j, c.Attend, c.Instant, c.Topology, c.Log} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// defaultWorkerID is hostname-pid.
func defaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}
