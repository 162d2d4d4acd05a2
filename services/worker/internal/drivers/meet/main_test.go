package meet

import (
	"os"
	"testing"

	"github.com/usherhq/usher/services/worker/internal/browser/browsertest"
	"github.com/usherhq/usher/services/worker/internal/drivers/drivertest"
)

// env is the package's simulator and browser.
var env *drivertest.Env //nolint:gochecknoglobals // one browser per test package

func TestMain(m *testing.M) {
	os.Exit(browsertest.Main(m, &env, func() (*drivertest.Env, error) { return drivertest.Start(8) }))
}
