package teams

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/services/worker/internal/drivers/drivertest"
)

// env is the package's simulator and browser.
var env *drivertest.Env //nolint:gochecknoglobals // one browser per test package

func TestMain(m *testing.M) {
	var err error
	env, err = drivertest.Start(8)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	env.Close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
