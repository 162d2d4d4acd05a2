package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream, bucket and consumer names.
const (
	// StreamJobs is the work-queue stream of join jobs (immediate and scheduled).
	StreamJobs = "JOBS"
	// StreamEvents keeps every bot event (limits retention) for the projector and upstream consumers.
	StreamEvents = "EVENTS"
	// BucketBots holds one JSON document per bot: its request, state and events.
	BucketBots = "BOTS"
	// BotsKeyPrefix is the subject prefix of BOTS keys: a key's writes are
	// messages on BotsKeyPrefix+key.
	BotsKeyPrefix = "$KV." + BucketBots + "."
	// BucketLeases holds one lease per bot being served, so a redelivered job never joins twice.
	BucketLeases = "BOT_LEASES"
	// BucketBeats holds one heartbeat key per running worker; the bot
	// leases a worker holds live as long as its heartbeat.
	BucketBeats = "WORKER_BEATS"
	// BucketTeamsAccounts holds the projects' sealed Teams bot-account credentials.
	BucketTeamsAccounts = "TEAMS_ACCOUNTS"
	// BucketAccountLeases holds fleet-wide claims on Teams accounts (per meeting and per slot).
	BucketAccountLeases = "ACCOUNT_LEASES"
	// ObjectScreenshots keeps screenshots of failed logins for the project to download.
	ObjectScreenshots = "SCREENSHOTS"
	// ConsumerWorkers is the durable pull consumer all workers share.
	ConsumerWorkers = "workers"
	// ConsumerProjector is the durable consumer the ingest projector shares.
	ConsumerProjector = "projector"
	// ConsumerReaper is the workers' durable consumer on the heartbeats
	// bucket's stream: it sees a worker's heartbeat expire and fails the bots
	// lost with it.
	ConsumerReaper = "reaper"
	// StreamLeases is the stream behind the BOT_LEASES bucket.
	StreamLeases = "KV_" + BucketLeases
	// StreamBeats is the stream behind the WORKER_BEATS bucket.
	StreamBeats = "KV_" + BucketBeats
)

// Config sizes the topology. Every service ensures the topology at start-up,
// so every service reads the same variables (main loads them with
// shared/config); Defaults returns the same values as the tags.
type Config struct {
	// Replicas of every stream and bucket. Default 1; 3 in a cluster.
	Replicas int `env:"USHER_NATS_REPLICAS" default:"1"`
	// EventsMaxAge is how long events are kept. Default 720h (30 days).
	EventsMaxAge time.Duration `env:"USHER_EVENTS_MAX_AGE" default:"720h"`
	// JobAckWait is how long a claimed job may go without an ack or InProgress. Default 30s.
	JobAckWait time.Duration `env:"USHER_JOB_ACK_WAIT" default:"30s"`
	// JobMaxDeliver bounds deliveries of one job (crash loops, transient retries). Default 20.
	JobMaxDeliver int `env:"USHER_JOB_MAX_DELIVER" default:"20"`
	// LeaseTTL is how long a worker's heartbeat, and with it every bot lease
	// the worker holds, lives without being renewed. Default 15s.
	LeaseTTL time.Duration `env:"USHER_LEASE_TTL" default:"15s"`
	// Duplicates is the window in which a repeated Nats-Msg-Id is dropped. Default 2m.
	Duplicates time.Duration `env:"USHER_NATS_DUPLICATES" default:"2m"`
	// ScreenshotMaxAge bounds how long login screenshots are kept. Default 168h (7 days).
	ScreenshotMaxAge time.Duration `env:"USHER_SCREENSHOT_MAX_AGE" default:"168h"`
	// ScreenshotMaxBytes bounds the screenshot store. Default 268435456 (256 MiB).
	ScreenshotMaxBytes int64 `env:"USHER_SCREENSHOT_MAX_BYTES" default:"268435456"`
	// MemoryStorage keeps streams and buckets in memory (benchmarks only). Default false: file storage.
	MemoryStorage bool `env:"USHER_NATS_MEMORY_STORAGE" default:"false"`
}

// Defaults returns the production defaults (the same as the env tags).
func Defaults() Config {
	return Config{
		Replicas:           1,
		EventsMaxAge:       30 * 24 * time.Hour,
		JobAckWait:         30 * time.Second,
		JobMaxDeliver:      20,
		LeaseTTL:           15 * time.Second,
		Duplicates:         2 * time.Minute,
		ScreenshotMaxAge:   7 * 24 * time.Hour,
		ScreenshotMaxBytes: 256 << 20,
	}
}

// Validate names the first bad variable.
func (c Config) Validate() error {
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("USHER_NATS_REPLICAS must be 1-5, got %d", c.Replicas)
	case c.EventsMaxAge < time.Hour:
		return fmt.Errorf("USHER_EVENTS_MAX_AGE must be ≥ 1h, got %s", c.EventsMaxAge)
	case c.JobAckWait < time.Second:
		return fmt.Errorf("USHER_JOB_ACK_WAIT must be ≥ 1s, got %s", c.JobAckWait)
	case c.JobMaxDeliver < 2:
		return fmt.Errorf("USHER_JOB_MAX_DELIVER must be ≥ 2, got %d", c.JobMaxDeliver)
	case c.LeaseTTL < time.Second:
		return fmt.Errorf("USHER_LEASE_TTL must be ≥ 1s, got %s", c.LeaseTTL)
	case c.Duplicates <= 0:
		return fmt.Errorf("USHER_NATS_DUPLICATES must be > 0, got %s", c.Duplicates)
	case c.ScreenshotMaxAge < time.Minute:
		return fmt.Errorf("USHER_SCREENSHOT_MAX_AGE must be ≥ 1m, got %s", c.ScreenshotMaxAge)
	case c.ScreenshotMaxBytes < 1<<20:
		return fmt.Errorf("USHER_SCREENSHOT_MAX_BYTES must be ≥ 1048576, got %d", c.ScreenshotMaxBytes)
	}
	return nil
}

func (c Config) storage() jetstream.StorageType {
	if c.MemoryStorage {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// JobsStream is the JOBS stream: a work queue that also holds message
// schedules, so a scheduled bot is stored durably and fired by the server.
func (c Config) JobsStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              StreamJobs,
		Description:       "Usher join jobs; usher.schedules.* hold scheduled jobs until they fire",
		Subjects:          []string{JobsPrefix + ".>", SchedulesPrefix + ".>"},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           c.storage(),
		Replicas:          c.Replicas,
		Duplicates:        c.Duplicates,
		AllowMsgSchedules: true,
		AllowDirect:       true,
		Discard:           jetstream.DiscardOld,
	}
}

// EventsStream is the EVENTS stream: every bot event and every rejected
// request, kept for EventsMaxAge.
func (c Config) EventsStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "Usher bot events and rejected requests",
		Subjects:    []string{EventsPrefix + ".>", RejectionsPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     c.storage(),
		Replicas:    c.Replicas,
		MaxAge:      c.EventsMaxAge,
		Duplicates:  c.Duplicates,
		AllowDirect: true,
	}
}

// WorkersConsumer is the pull consumer every worker fetches from. Its
// pending count is the fleet's unmet demand, the signal KEDA scales on.
func (c Config) WorkersConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerWorkers,
		Description:   "Usher workers: one job per free bot slot",
		FilterSubject: JobsPrefix + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.JobAckWait,
		MaxDeliver:    c.JobMaxDeliver,
		MaxAckPending: 100_000,
		MaxWaiting:    4096,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// ProjectorConsumer is the consumer the ingest projector shares.
func (c Config) ProjectorConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerProjector,
		Description:   "Usher ingest projector: events into BOTS documents",
		FilterSubject: EventsPrefix + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 20_000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// ReaperConsumer is the reaper's durable consumer. Only expiry markers
// matter, but a consumer cannot filter on headers: every heartbeat is
// delivered (headers only) and acked at once — one per worker every
// LeaseTTL/3, whatever the number of bots.
func (c Config) ReaperConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerReaper,
		Description:   "Usher workers: fail the bots of a worker whose heartbeat expired",
		FilterSubject: "$KV." + BucketBeats + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 20_000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		HeadersOnly:   true,
	}
}

// BotsBucket is the BOTS key-value bucket.
func (c Config) BotsBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      BucketBots,
		Description: "Usher bot documents: <project>.<bot_id>; dedup.<project>.<sha256> indexes",
		History:     1,
		Storage:     c.storage(),
		Replicas:    c.Replicas,
	}
}

// LeasesBucket is the BOT_LEASES bucket. A key is written when a worker
// takes the bot and removed when it lets go; it does not expire: it names
// the holder's heartbeat (BeatsBucket), and lives as long as that does.
// Releases are purges whose markers expire (LimitMarkerTTL), so the bucket
// holds about one key per bot being served.
func (c Config) LeasesBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         BucketLeases,
		Description:    "Usher bot leases: <bot_id> -> worker, its heartbeat key and its control prefix",
		History:        1,
		LimitMarkerTTL: time.Minute,
		Storage:        c.storage(),
		Replicas:       c.Replicas,
	}
}

// BeatsBucket is the WORKER_BEATS bucket: a key per running worker,
// renewed every LeaseTTL/3. A key not renewed expires LeaseTTL after its
// last write and leaves a marker, so the reaper learns a worker was lost.
func (c Config) BeatsBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         BucketBeats,
		Description:    "Usher worker heartbeats: <beat> -> worker; a worker's bot leases end with its beat",
		History:        1,
		TTL:            c.LeaseTTL,
		LimitMarkerTTL: time.Minute,
		Storage:        c.storage(),
		Replicas:       c.Replicas,
	}
}

// TeamsAccountsBucket holds sealed Teams credentials; never in memory storage.
func (c Config) TeamsAccountsBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      BucketTeamsAccounts,
		Description: "Usher Teams bot accounts: <project>.<account_id> -> sealed credentials and status",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}

// AccountLeasesBucket holds fleet-wide claims on Teams accounts.
func (c Config) AccountLeasesBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         BucketAccountLeases,
		Description:    "Usher Teams account claims: per meeting and per concurrent slot",
		History:        1,
		TTL:            c.LeaseTTL,
		LimitMarkerTTL: time.Minute,
		Storage:        c.storage(),
		Replicas:       c.Replicas,
	}
}

// ScreenshotsStore keeps failed-login screenshots, bounded in size and age.
func (c Config) ScreenshotsStore() jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{
		Bucket:      ObjectScreenshots,
		Description: "Usher failed-login screenshots (password field blanked)",
		TTL:         c.ScreenshotMaxAge,
		MaxBytes:    c.ScreenshotMaxBytes,
		Storage:     c.storage(),
		Replicas:    c.Replicas,
	}
}

// Topology holds handles on everything Ensure created.
type Topology struct {
	Config        Config
	Jobs          jetstream.Stream
	Events        jetstream.Stream
	Workers       jetstream.Consumer
	Projector     jetstream.Consumer
	Reaper        jetstream.Consumer
	Bots          jetstream.KeyValue
	Leases        jetstream.KeyValue
	Beats         jetstream.KeyValue
	TeamsAccounts jetstream.KeyValue
	AccountLeases jetstream.KeyValue
	Screenshots   jetstream.ObjectStore
}

// Ensure creates or updates every stream, consumer and bucket so that it
// matches cfg. It is idempotent: every service calls it at start-up and the
// first one to run creates the topology.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (*Topology, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Topology{Config: cfg}
	var err error
	if t.Jobs, err = js.CreateOrUpdateStream(ctx, cfg.JobsStream()); err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", StreamJobs, err)
	}
	if t.Events, err = js.CreateOrUpdateStream(ctx, cfg.EventsStream()); err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", StreamEvents, err)
	}
	if t.Workers, err = js.CreateOrUpdateConsumer(ctx, StreamJobs, cfg.WorkersConsumer()); err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", ConsumerWorkers, err)
	}
	if t.Projector, err = js.CreateOrUpdateConsumer(ctx, StreamEvents, cfg.ProjectorConsumer()); err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", ConsumerProjector, err)
	}
	buckets := []struct {
		dst *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
	}{
		{&t.Bots, cfg.BotsBucket()},
		{&t.Leases, cfg.LeasesBucket()},
		{&t.Beats, cfg.BeatsBucket()},
		{&t.TeamsAccounts, cfg.TeamsAccountsBucket()},
		{&t.AccountLeases, cfg.AccountLeasesBucket()},
	}
	for _, b := range buckets {
		if *b.dst, err = js.CreateOrUpdateKeyValue(ctx, b.cfg); err != nil {
			return nil, fmt.Errorf("ensure bucket %s: %w", b.cfg.Bucket, err)
		}
	}
	if t.Reaper, err = js.CreateOrUpdateConsumer(ctx, StreamBeats, cfg.ReaperConsumer()); err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", ConsumerReaper, err)
	}
	// Before heartbeats, the reaper read every lease write.
	if err := js.DeleteConsumer(ctx, StreamLeases, ConsumerReaper); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("remove the old %s consumer on %s: %w", ConsumerReaper, StreamLeases, err)
	}
	if t.Screenshots, err = js.CreateOrUpdateObjectStore(ctx, cfg.ScreenshotsStore()); err != nil {
		return nil, fmt.Errorf("ensure object store %s: %w", ObjectScreenshots, err)
	}
	return t, nil
}

// ErrNotReady is returned by Check when the topology is missing.
var ErrNotReady = errors.New("jetstream topology not ready")

// Check is a readiness probe: it answers nil when the JOBS and EVENTS streams
// can be reached.
func Check(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{StreamJobs, StreamEvents} {
		if _, err := js.Stream(ctx, name); err != nil {
			return fmt.Errorf("%w: stream %s: %w", ErrNotReady, name, err)
		}
	}
	return nil
}
