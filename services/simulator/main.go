// Command usher-simulator serves the offline stand-in for Zoom, Microsoft
// login, Teams and Google Meet (see README.md).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/usherhq/usher/services/simulator/app"
	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/metrics"
)

func main() { os.Exit(run()) }

func run() int {
	var cfg app.Config
	if err := config.Load(os.LookupEnv, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "usher-simulator:", err)
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "usher-simulator:", err)
		return 2
	}
	log := logging.New(os.Stderr, cfg.Log, "simulator")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.New(cfg, log, metrics.NewRegistry()).Run(ctx); err != nil {
		log.Error("simulator stopped", "err", err)
		return 1
	}
	return 0
}
