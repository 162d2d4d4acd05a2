// Package browsertest gives a test package its one Chromium: the system's
// binary (never a downloaded one) started as a browser.Engine, and a TestMain
// runner that closes it and then fails the run if a goroutine leaked.
//
//	var engine *browser.Engine
//
//	func TestMain(m *testing.M) {
//		os.Exit(browsertest.Main(m, &engine, func() (*browser.Engine, error) { return browsertest.Start(4) }))
//	}
package browsertest

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/natstest"
)

// startTimeout bounds launching Chromium on a busy machine.
const startTimeout = 60 * time.Second

// Bin is USHER_CHROMIUM_BIN or /usr/bin/chromium.
func Bin() string {
	if b := os.Getenv("USHER_CHROMIUM_BIN"); b != "" {
		return b
	}
	return "/usr/bin/chromium"
}

// Config is a headless engine configuration for tests, bounded to maxContexts
// incognito contexts.
func Config(maxContexts int) browser.Config {
	return browser.Config{Bin: Bin(), Headless: true, MaxContexts: maxContexts, LaunchTimeout: 30 * time.Second}
}

// Start launches an engine with Config(maxContexts), its logs discarded and
// no metrics registered; the caller closes it.
func Start(maxContexts int) (*browser.Engine, error) {
	eng := browser.New(Config(maxContexts), logging.Discard(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := eng.Start(ctx); err != nil {
		return nil, fmt.Errorf("start chromium (set USHER_CHROMIUM_BIN): %w", err)
	}
	return eng, nil
}

// Main runs a test package's tests with *shared set to what start returns
// (the package's browser, usually), closes it once they have all run, and
// then fails the run if a goroutine leaked. A failed start fails the package
// without running its tests. Main returns the exit code for os.Exit.
func Main[T io.Closer](m *testing.M, shared *T, start func() (T, error)) int {
	v, err := start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*shared = v
	code := m.Run()
	_ = v.Close()
	if code == 0 {
		// The teams packages store failed-login screenshots, and nats.go
		// can leak a goroutine from an ObjectStore.Put (natstest.ObjectPutLeak).
		if err := goleak.Find(goleak.IgnoreTopFunction(natstest.ObjectPutLeak)); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	return code
}
