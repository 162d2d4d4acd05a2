package app

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/usherhq/usher/services/ingest/internal/apiauth"
	"github.com/usherhq/usher/services/ingest/internal/credentials"
	"github.com/usherhq/usher/services/ingest/internal/ratelimit"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/sealbox"
	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/topology"
)

// Config is the ingest service's configuration, read from the environment
// by shared/config in main.
type Config struct {
	// NATSURL is the NATS server (with JetStream). Default nats://127.0.0.1:4333.
	NATSURL string `env:"USHER_NATS_URL" default:"nats://127.0.0.1:4333"`
	// NATSCreds is a NATS credentials file (.creds: user JWT and NKey seed)
	// to authenticate with in production. Default empty: no credentials.
	NATSCreds string `env:"USHER_NATS_CREDS"`
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
	// IntakeWorkers is how many batches of NATS requests are handled at
	// once. Default 16.
	IntakeWorkers int `env:"USHER_INGEST_INTAKE_WORKERS" default:"16"`
	// IntakeBatch is the most NATS requests one intake worker takes at once
	// (those waiting; their bots are written together). Default 64.
	IntakeBatch int `env:"USHER_INGEST_INTAKE_BATCH" default:"64"`
	// ProjectorShards is how many bots the projector updates at once. Default 16.
	ProjectorShards int `env:"USHER_INGEST_PROJECTOR_SHARDS" default:"16"`
	// ProjectorLinger is how long the projector holds a bot's events back
	// after the first arrived, to apply the ones that come close together in
	// one document write. 0 holds nothing back. Default 25ms.
	ProjectorLinger time.Duration `env:"USHER_INGEST_PROJECTOR_LINGER" default:"25ms"`
	// ShutdownGrace bounds each shutdown phase (HTTP, intake, projector). Default 10s.
	ShutdownGrace time.Duration `env:"USHER_SHUTDOWN_GRACE" default:"10s"`

	// Credentials bounds the Teams bot accounts a project may store.
	Credentials credentials.Config
	// Seal holds USHER_SECRET_KEYS, the keys Teams credentials are sealed
	// with. Empty: the credentials API answers 503 (nothing can be stored).
	Seal sealbox.Config

	Log      logging.Config
	Topology topology.Config
}

// Validate names the first bad variable.
func (c Config) Validate() error {
	if u, err := url.Parse(c.NATSURL); err != nil || u.Host == "" {
		return fmt.Errorf("USHER_NATS_URL must be a URL like nats://127.0.0.1:4333, got %q", secret.RedactURL(c.NATSURL))
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
	case c.JoinDeadline < 5*time.Second:
		return fmt.Errorf("USHER_JOIN_DEADLINE must be ≥ 5s, got %s", c.JoinDeadline)
	case c.RequestTimeout < time.Second:
		return fmt.Errorf("USHER_REQUEST_TIMEOUT must be ≥ 1s, got %s", c.RequestTimeout)
	case c.IntakeWorkers < 1:
		return fmt.Errorf("USHER_INGEST_INTAKE_WORKERS must be ≥ 1, got %d", c.IntakeWorkers)
	case c.IntakeBatch < 1 || c.IntakeBatch > 1024:
		return fmt.Errorf("USHER_INGEST_INTAKE_BATCH must be in 1..1024, got %d", c.IntakeBatch)
	case c.ProjectorShards < 1:
		return fmt.Errorf("USHER_INGEST_PROJECTOR_SHARDS must be ≥ 1, got %d", c.ProjectorShards)
	case c.ProjectorLinger < 0 || c.ProjectorLinger > time.Second:
		return fmt.Errorf("USHER_INGEST_PROJECTOR_LINGER must be in 0..1s, got %s", c.ProjectorLinger)
	case c.ShutdownGrace < time.Second:
		return fmt.Errorf("USHER_SHUTDOWN_GRACE must be ≥ 1s, got %s", c.ShutdownGrace)
	}
	if err := c.Log.Validate(); err != nil {
		return err
	}
	if err := c.Credentials.Validate(); err != nil {
		return err
	}
	if !c.Seal.Keys.Empty() {
		if _, err := c.Seal.Ring(); err != nil {
			return err
		}
	}
	return c.Topology.Validate()
}
