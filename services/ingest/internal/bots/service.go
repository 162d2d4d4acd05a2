// Package bots is ingest's bot service: it creates bots (indexes, document,
// join job), reads and lists them, asks the worker holding a bot to leave,
// and deletes scheduled bots. The HTTP API and the NATS intake both call it.
package bots

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/ids"
	"github.com/usherhq/usher/shared/topology"
)

// Config tunes the service. Zero fields take the defaults in their comments.
type Config struct {
	// JoinDeadline is how long after its join time a bot may keep trying to
	// join (the job's join_deadline). Default 10m.
	JoinDeadline time.Duration
	// PublishRetryFor bounds the retries of a job publish (same Nats-Msg-Id,
	// so a retry never duplicates). Default 3s.
	PublishRetryFor time.Duration
	// PublishAttemptTimeout bounds one publish attempt. Default 2s.
	PublishAttemptTimeout time.Duration
	// LeaveTimeout bounds the leave command to the worker. Default 2s.
	LeaveTimeout time.Duration
	// ProjectionWait bounds the wait for the projector to show a leave. Default 2s.
	ProjectionWait time.Duration
	// InFlightGrace is how long an index key that points at a bot without a
	// document is taken for a create in progress. Default 30s.
	InFlightGrace time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// OnCreated, when set, is given every document Create stored and its KV
	// revision, before the job is published (the projector seeds its cache
	// with it). It must be quick and must not modify doc. Default: none.
	OnCreated func(doc *botdoc.Doc, rev uint64)
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.JoinDeadline, 10*time.Minute)
	def(&c.PublishRetryFor, 3*time.Second)
	def(&c.PublishAttemptTimeout, 2*time.Second)
	def(&c.LeaveTimeout, 2*time.Second)
	def(&c.ProjectionWait, 2*time.Second)
	def(&c.InFlightGrace, 30*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service is the bot service.
type Service struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	leases  jetstream.KeyValue // read to reach the worker holding a bot
	jobs    jetstream.Stream
	events  *botevents.Store
	log     *slog.Logger
	metrics *serviceMetrics
	// undos are rollbacks waiting for JetStream; Run retries them.
	undos chan undo
}

// New returns a Service on the topology's BOTS and BOT_LEASES buckets, JOBS
// and EVENTS streams.
func New(cfg Config, nc *nats.Conn, js jetstream.JetStream, topo *topology.Topology, log *slog.Logger, reg prometheus.Registerer) *Service {
	cfg.defaults()
	return &Service{
		cfg:     cfg,
		nc:      nc,
		js:      js,
		kv:      topo.Bots,
		leases:  topo.Leases,
		jobs:    topo.Jobs,
		events:  botevents.New(js, topo.Events),
		log:     log,
		metrics: newMetrics(reg),
		undos:   make(chan undo, 1024),
	}
}

// Get returns a bot of the project.
func (s *Service) Get(ctx context.Context, project, id string) (*botdoc.Doc, error) {
	// The id becomes part of a KV key: anything but a bot id (dots,
	// wildcards) must not reach the bucket.
	if !ids.ValidBotID(id) {
		return nil, ErrNotFound
	}
	entry, err := s.kv.Get(ctx, topology.BotKey(project, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, unavailable(fmt.Sprintf("read bot %s", id), err)
	}
	return botdoc.Unmarshal(entry.Value())
}
