package app

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/usherhq/usher/services/ingest/internal/apiauth"
	"github.com/usherhq/usher/services/ingest/internal/ratelimit"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/topology"
)

// Config is the ingest service's configuration, read from the environment
// by shared/config in main.
type Config struct {
	// NATSURL is the NATS server (with JetStream). Default nats://127.0.0.1:4333.
	NATSURL string `env:"USHER_NATS_URL" default:"nats://127.0.0.1:4333"`
	// HTTPAddr is where the API, /metrics, /healthz and /readyz listen. Default 127.0.0.1:8080.
	HTTPAddr string `env:"USHER_HTTP_ADDR" default:"127.0.0.1:8080"`
	// APIKeys maps projects to API keys: "project:key,project2:key2". Required.
	APIKeys secret.String `env:"USHER_API_KEYS"`
	// PublicURL is the API's external base URL for list pagination links
	// (https://usher.example.com). Default empty: the request's host.
	PublicURL string `env:"USHER_PUBLIC_URL"`
	// SimulatorURL lets the simulator's meeting links through (development
	// and tests). Default empty: simulator links are refused.
	SimulatorURL string `env:"USHER_SIMULATOR_URL"`
	// RateLimit is each project's budget of create requests, HTTP and NATS
	// together, per ingest process: "<n>/<s|m|h|d>" or "off". Default 3000/min.
	RateLimit string `env:"USHER_RATE_LIMIT" default:"3000/min"`
	// MaxBodyBytes bounds a create request body. Default 65536.
	MaxBodyBytes int64 `env:"USHER_MAX_BODY_BYTES" default:"65536"`
	// JoinDeadline is how long after its join time (creation, or join_at) a
	// bot may keep trying to join. Default 10m.
	JoinDeadline time.Duration `env:"USHER_JOIN_DEADLINE" default:"10m"`
	// CallbackAllowHTTP accepts http:// zoom_tokens_url and single-label
	// hosts (development only). Default false.
	CallbackAllowHTTP bool `env:"USHER_CALLBACK_ALLOW_HTTP" default:"false"`
	// RequestTimeout bounds the work behind one API or NATS request. Default 10s.
	RequestTimeout time.Duration `env:"USHER_REQUEST_TIMEOUT" default:"10s"`
	// IntakeWorkers is how many NATS requests are handled at once. Default 64.
	IntakeWorkers int `env:"USHER_INGEST_INTAKE_WORKERS" default:"64"`
	// ProjectorShards is how many bots the projector updates at once. Default 16.
	ProjectorShards int `env:"USHER_INGEST_PROJECTOR_SHARDS" default:"16"`
	// ShutdownGrace bounds each shutdown phase (HTTP, intake, projector). Default 10s.
	ShutdownGrace time.Duration `env:"USHER_SHUTDOWN_GRACE" default:"10s"`

	Log      logging.Config
	Topology TopologyConfig
}

// TopologyConfig is the JetStream topology's sizing. Every service ensures
// the topology at start-up, so the worker must be given the same values.
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
func (c Config) Validate() error {
	if u, err := url.Parse(c.NATSURL); err != nil || u.Host == "" {
		return fmt.Errorf("USHER_NATS_URL must be a URL like nats://127.0.0.1:4333, got %q", c.NATSURL)
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("USHER_HTTP_ADDR must be host:port, got %q", c.HTTPAddr)
	}
	if c.APIKeys.Empty() {
		return errors.New("USHER_API_KEYS is required (project:key,...)")
	}
	if _, err := apiauth.ParseKeys(c.APIKeys.Reveal()); err != nil {
		return err // already names USHER_API_KEYS, never a key
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("USHER_PUBLIC_URL must be an http(s) URL, got %q", c.PublicURL)
		}
	}
	if c.SimulatorURL != "" {
		if u, err := url.Parse(c.SimulatorURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("USHER_SIMULATOR_URL must be an http(s) URL, got %q", c.SimulatorURL)
		}
	}
	if _, err := ratelimit.ParseRate(c.RateLimit); err != nil {
		return fmt.Errorf("USHER_RATE_LIMIT: %w", err)
	}
	switch {
	case c.MaxBodyBytes < 1024:
		return fmt.Errorf("USHER_MAX_BODY_BYTES must be ≥ 1024, got %d", c.MaxBodyBytes)
	case c.JoinDeadline < time.Minute:
		return fmt.Errorf("USHER_JOIN_DEADLINE must be ≥ 1m, got %s", c.JoinDeadline)
	case c.RequestTimeout < time.Second:
		return fmt.Errorf("USHER_REQUEST_TIMEOUT must be ≥ 1s, got %s", c.RequestTimeout)
	case c.IntakeWorkers < 1:
		return fmt.Errorf("USHER_INGEST_INTAKE_WORKERS must be ≥ 1, got %d", c.IntakeWorkers)
	case c.ProjectorShards < 1:
		return fmt.Errorf("USHER_INGEST_PROJECTOR_SHARDS must be ≥ 1, got %d", c.ProjectorShards)
	case c.ShutdownGrace < time.Second:
		return fmt.Errorf("USHER_SHUTDOWN_GRACE must be ≥ 1s, got %s", c.ShutdownGrace)
	}
	if err := c.Log.Validate(); err != nil {
		return err
	}
	return c.Topology.Validate()
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
