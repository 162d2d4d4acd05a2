// Package e2e runs Usher end to end in one process — HTTP request → ingest →
// JetStream → worker → Chromium → simulator meeting → events → API — against
// one shared fleet (one Chromium for the package).
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/e2e/fleet"
	"github.com/usherhq/usher/shared/natstest"
)

// fl is the fleet every test in the package shares: one browser worker with
// enough slots for the tests that run in parallel.
var fl *fleet.Fleet

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "usher-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fl, err = fleet.Start(ctx, dir, fleet.Options{
		Slots: 8,
		// Debug lines are scanned for secrets too.
		LogLevel: "debug",
		Env: map[string]string{
			"USHER_DRIVER_STEP_TIMEOUT": "8s",
		},
		// Teams accounts are per project: each Teams login test has a
		// project to itself (one good account, one wrong password, none).
		Projects: []string{projectTeamsSignedIn, projectTeamsWrongPassword, projectTeamsNoAccount},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start fleet:", err)
		return 1
	}
	code := m.Run()
	fl.Close()
	if code == 0 {
		// Every service the fleet ran must have stopped all it started
		// (but for the goroutine nats.go itself can leak from an
		// ObjectStore.Put: natstest.ObjectPutLeak).
		if err := goleak.Find(goleak.IgnoreTopFunction(natstest.ObjectPutLeak)); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left after the fleet closed:", err)
			return 1
		}
	}
	return code
}
