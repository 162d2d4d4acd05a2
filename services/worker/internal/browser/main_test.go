package browser_test

import (
	"os"
	"testing"

	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/services/worker/internal/browser/browsertest"
)

// shared is the package's one long-lived browser; tests that kill or close
// a browser start their own.
var shared *browser.Engine //nolint:gochecknoglobals // one browser per test package

const sharedContexts = 3

func TestMain(m *testing.M) {
	os.Exit(browsertest.Main(m, &shared, func() (*browser.Engine, error) { return browsertest.Start(sharedContexts) }))
}
