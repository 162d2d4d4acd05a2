package webjoin

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/shared/logging"
)

// engine is the package's one browser.
var engine *browser.Engine //nolint:gochecknoglobals // one browser per test package

func TestMain(m *testing.M) {
	bin := os.Getenv("USHER_CHROMIUM_BIN")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	engine = browser.New(browser.Config{Bin: bin, Headless: true, MaxContexts: 4, LaunchTimeout: 30 * time.Second}, logging.Discard(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := engine.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start chromium:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = engine.Close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
