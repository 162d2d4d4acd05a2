package webjoin

import (
	"os"
	"testing"

	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/services/worker/internal/browser/browsertest"
)

// engine is the package's one browser.
var engine *browser.Engine //nolint:gochecknoglobals // one browser per test package

func TestMain(m *testing.M) {
	os.Exit(browsertest.Main(m, &engine, func() (*browser.Engine, error) { return browsertest.Start(4) }))
}
