// Command reseal re-seals every stored Teams bot account under the current
// key of USHER_SECRET_KEYS (the first one), after a key rotation:
//
//  1. put the new key first and keep the old one: USHER_SECRET_KEYS=new:...,old:...
//  2. roll the fleet (ingest and workers) so everything reads both keys;
//  3. run this command with the same USHER_SECRET_KEYS;
//  4. drop the old key from USHER_SECRET_KEYS and roll the fleet again.
//
// Teams sessions cached in Redis are sealed too; they are short-lived and a
// session that no longer opens is treated as a cache miss, so flushing them
// is optional. The command prints how to do it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/services/ingest/internal/credentials"
	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/sealbox"
	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/topology"
)

// Config of the command.
type Config struct {
	// NATSURL is the JetStream server holding TEAMS_ACCOUNTS. Default nats://127.0.0.1:4333.
	NATSURL string `env:"USHER_NATS_URL" default:"nats://127.0.0.1:4333"`
	// Timeout bounds the whole run. Default 5m.
	Timeout time.Duration `env:"USHER_RESEAL_TIMEOUT" default:"5m"`
	// SessionKeyPrefix is the workers' Redis key prefix, for the flush hint. Default usher:.
	SessionKeyPrefix string `env:"USHER_REDIS_KEY_PREFIX" default:"usher:"`
	Seal             sealbox.Config
}

func main() {
	var cfg Config
	if err := config.Load(os.LookupEnv, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "reseal:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "reseal:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg Config, out io.Writer) error {
	ring, err := cfg.Seal.Ring()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("usher-reseal"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", secret.RedactURL(cfg.NATSURL), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	kv, err := js.KeyValue(ctx, topology.BucketTeamsAccounts)
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", topology.BucketTeamsAccounts, err)
	}
	shots, err := js.ObjectStore(ctx, topology.ObjectScreenshots)
	if err != nil {
		return fmt.Errorf("open object store %s: %w", topology.ObjectScreenshots, err)
	}
	res, err := credentials.NewStore(kv, shots, ring, 0).Reseal(ctx)
	if err != nil {
		return fmt.Errorf("after %d accounts (%d resealed): %w", res.Checked, res.Resealed, err)
	}
	fmt.Fprintf(out, "checked %d Teams accounts, resealed %d under key %q\n", res.Checked, res.Resealed, ring.Current())
	fmt.Fprintf(out, "every stored password now opens with key %q alone; you may drop the other keys from USHER_SECRET_KEYS\n", ring.Current())
	fmt.Fprintf(out, "cached Teams sessions (Redis) still sealed under an old key are dropped as cache misses once that key is gone;\n"+
		"to flush them now: redis-cli -u \"$REDIS_URL\" --scan --pattern '%steams:session:*' | xargs -r redis-cli -u \"$REDIS_URL\" unlink\n", cfg.SessionKeyPrefix)
	return nil
}
