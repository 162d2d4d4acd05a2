// Command worker claims join jobs and puts bots into their meetings. All
// logic lives in app and internal/...; main reads the environment and wires.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/usherhq/usher/services/worker/app"
	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/metrics"
)

func main() {
	os.Exit(run())
}

func run() int {
	var cfg app.Config
	if err := config.Load(os.LookupEnv, &cfg); err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("worker configuration", "error", err)
		return 2
	}
	log := logging.New(os.Stdout, cfg.Log, "worker")
	if err := cfg.Validate(); err != nil {
		log.Error("worker configuration", "error", err)
		return 2
	}
	reg := metrics.NewRegistry()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	w, err := app.New(cfg, log, reg)
	if err != nil {
		log.Error("worker configuration", "error", err)
		return 2
	}
	if err := w.Run(ctx); err != nil {
		log.Error("worker stopped", "error", err)
		return 1
	}
	return 0
}
