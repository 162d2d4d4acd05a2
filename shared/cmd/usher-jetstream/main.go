// Command usher-jetstream runs the embedded JetStream server that `make run`
// uses: nats-server/v2 as a Go module (the Debian nats-server is too old for
// message schedules), file storage under a data directory, on its own port
// (4333 by default, so it never collides with a system NATS on 4222). It
// creates Usher's topology at start-up and stops cleanly on SIGINT/SIGTERM.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/natsembed"
	"github.com/usherhq/usher/shared/topology"
)

// Config of the dev JetStream server.
type Config struct {
	// Host to listen on. Default 127.0.0.1.
	Host string `env:"USHER_JETSTREAM_HOST" default:"127.0.0.1"`
	// Port for clients. Default 4333.
	Port int `env:"USHER_JETSTREAM_PORT" default:"4333"`
	// MonitorPort serves the NATS monitoring endpoints. Default 8333; 0 disables.
	MonitorPort int `env:"USHER_JETSTREAM_MONITOR_PORT" default:"8333"`
	// StoreDir keeps JetStream's files. Default .data/jetstream.
	StoreDir string `env:"USHER_JETSTREAM_STORE_DIR" default:".data/jetstream"`
	Logging  logging.Config
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "usher-jetstream:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg Config
	if err := config.Load(os.LookupEnv, &cfg); err != nil {
		return err
	}
	if err := cfg.Logging.Validate(); err != nil {
		return err
	}
	log := logging.New(os.Stderr, cfg.Logging, "jetstream")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if err := os.MkdirAll(cfg.StoreDir, 0o750); err != nil {
		return fmt.Errorf("create store dir: %w", err)
	}
	srv, err := natsembed.Start(natsembed.Config{
		Host: cfg.Host, Port: cfg.Port, MonitorPort: cfg.MonitorPort,
		StoreDir: cfg.StoreDir, ServerName: "usher-dev",
	})
	if err != nil {
		return err
	}
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		log.Info("jetstream stopped")
	}()

	nc, err := nats.Connect(srv.ClientURL(), nats.Name("usher-jetstream"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := topology.Ensure(ectx, js, topology.Defaults()); err != nil {
		return err
	}
	log.Info("jetstream ready", "url", srv.ClientURL(), "store_dir", cfg.StoreDir)
	<-ctx.Done()
	return nil
}
