// Command ingest runs Usher's ingest service: the Attendee-compatible HTTP
// bot API, the NATS request intake and the event projector.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/usherhq/usher/services/ingest/app"
	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/metrics"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg app.Config
	if err := config.Load(os.LookupEnv, &cfg); err != nil {
		return err
	}
	log := logging.New(os.Stderr, cfg.Log, "ingest")
	a, err := app.New(cfg, log, metrics.NewRegistry())
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Run(ctx)
}
