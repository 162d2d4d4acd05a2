package browser

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/shared/logging"
)

// shared is the package's one long-lived browser; tests that kill or close
// a browser start their own.
var shared *Engine //nolint:gochecknoglobals // one browser per test package

const sharedContexts = 3

func chromiumBin() string {
	if b := os.Getenv("USHER_CHROMIUM_BIN"); b != "" {
		return b
	}
	return "/usr/bin/chromium"
}

func testConfig(maxContexts int) Config {
	return Config{Bin: chromiumBin(), Headless: true, MaxContexts: maxContexts, LaunchTimeout: 30 * time.Second}
}

func TestMain(m *testing.M) {
	shared = New(testConfig(sharedContexts), logging.Discard(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := shared.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start chromium:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = shared.Close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
