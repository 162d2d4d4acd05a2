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
	"github.com/usherhq/usher/shared/logging"
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
	Jobs     jobs.Config
	Attend   attend.Config
	Instant  instant.Config
	Topology TopologyConfig
	Log      logging.Config
}

// TopologyConfig is the JetStream topology's sizing. Every service ensures
// the topology at start-up, so all must be given the same values (the
// variables are the ingest service's).
type TopologyConfig struct {
	// Replicas of every stream and bucket. Default 1 (3 in a cluster).
	Replicas int `env:"USHER_NATS_REPLICAS" default:"1"`
	// EventsMaxAge is how long events are kept. Default 720h.
	EventsMaxAge time.Duration `env:"USHER_EVENTS_MAX_AGE" default:"720h"`
	// JobAckWait is how long a claimed job may go without an ack. Default 30s.
	JobAckWait time.Duration `env:"USHER_JOB_ACK_WAIT" default:"30s"`
	// JobMaxDeliver bounds deliveries of one job. Default 20.
	JobMaxDeliver int `env:"USHER_JOB_MAX_DELIVER" default:"20"`
	// LeaseTTL is how long a bot lease lives without a heartbeat. Default 15s.
	LeaseTTL time.Duration `env:"USHER_LEASE_TTL" default:"15s"`
	// Duplicates is JetStream's Nats-Msg-Id window. Default 2m.
	Duplicates time.Duration `env:"USHER_NATS_DUPLICATES" default:"2m"`
	// MemoryStorage keeps streams in memory (benchmarks only). Default false.
	MemoryStorage bool `env:"USHER_NATS_MEMORY_STORAGE" default:"false"`
}

// TopologyFrom is the TopologyConfig of a topology.Config (tests and
// benchmarks running against a natstest server pass its Topo).
func TopologyFrom(c topology.Config) TopologyConfig {
	return TopologyConfig{
		Replicas:      c.Replicas,
		EventsMaxAge:  c.EventsMaxAge,
		JobAckWait:    c.JobAckWait,
		JobMaxDeliver: c.JobMaxDeliver,
		LeaseTTL:      c.LeaseTTL,
		Duplicates:    c.Duplicates,
		MemoryStorage: c.MemoryStorage,
	}
}

// Topology returns the topology.Config, other fields at their defaults.
func (t TopologyConfig) Topology() topology.Config {
	c := topology.Defaults()
	c.Replicas = t.Replicas
	c.EventsMaxAge = t.EventsMaxAge
	c.JobAckWait = t.JobAckWait
	c.JobMaxDeliver = t.JobMaxDeliver
	c.LeaseTTL = t.LeaseTTL
	c.Duplicates = t.Duplicates
	c.MemoryStorage = t.MemoryStorage
	return c
}

// Validate names the first bad variable.
func (t TopologyConfig) Validate() error {
	switch {
	case t.Replicas < 1 || t.Replicas > 5:
		return fmt.Errorf("USHER_NATS_REPLICAS must be 1-5, got %d", t.Replicas)
	case t.EventsMaxAge < time.Hour:
		return fmt.Errorf("USHER_EVENTS_MAX_AGE must be ≥ 1h, got %s", t.EventsMaxAge)
	case t.JobAckWait < time.Second:
		return fmt.Errorf("USHER_JOB_ACK_WAIT must be ≥ 1s, got %s", t.JobAckWait)
	case t.JobMaxDeliver < 2:
		return fmt.Errorf("USHER_JOB_MAX_DELIVER must be ≥ 2, got %d", t.JobMaxDeliver)
	case t.LeaseTTL < time.Second:
		return fmt.Errorf("USHER_LEASE_TTL must be ≥ 1s, got %s", t.LeaseTTL)
	case t.Duplicates <= 0:
		return fmt.Errorf("USHER_NATS_DUPLICATES must be > 0, got %s", t.Duplicates)
	}
	return nil
}

// Defaults returns the documented defaults (WorkerID left empty: New fills
// in hostname-pid).
func Defaults() Config {
	return Config{
		NATSURL:       "nats://127.0.0.1:4333",
		MetricsAddr:   "127.0.0.1:8081",
		Driver:        DriverBrowser,
		ShutdownGrace: 5 * time.Second,
		Jobs:          jobs.Defaults(),
		Attend:        attend.Defaults(),
		Topology:      TopologyFrom(topology.Defaults()),
		Log:           logging.Config{Level: "info", Format: "json"},
	}
}

// Validate names the first bad variable. An empty USHER_WORKER_ID is
// accepted: New replaces it with hostname-pid.
func (c Config) Validate() error {
	if u, err := url.Parse(c.NATSURL); err != nil || u.Host == "" {
		return fmt.Errorf("USHER_NATS_URL must be a URL like nats://127.0.0.1:4333, got %q", c.NATSURL)
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
