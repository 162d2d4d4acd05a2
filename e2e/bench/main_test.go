package bench

import (
	"flag"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// Sizes of the benchmarks (flags after -args).
var (
	pipelineBots    = flag.Int("pipeline.bots", 10_000, "bots per BenchmarkPipeline round")
	pipelineWorkers = flag.Int("pipeline.workers", 1, "workers in BenchmarkPipeline's fleet")
	pipelineFlight  = flag.Int("pipeline.inflight", 4096, "requests in flight at most in BenchmarkPipeline")
	rawMsgs         = flag.Int("raw.msgs", 100_000, "messages of the raw JetStream work-queue baseline")
	claimJobs       = flag.Int("claim.jobs", 10_000, "requests offered by BenchmarkClaimLatency")
	claimRate       = flag.Int("claim.rate", 1_000, "requests per second offered by BenchmarkClaimLatency")
	burstBots       = flag.Int("burst.bots", 5_000, "bots sharing one join_at in BenchmarkScheduledBurst")
	burstWorkers    = flag.Int("burst.workers", 2, "workers in BenchmarkScheduledBurst's fleet")
	pipelineProfile = flag.String("pipeline.cpuprofile", "", "write a CPU profile of BenchmarkPipeline's measured phase (request sent → joined) to this file")
	fleetEnv        = flag.String("fleet.env", "", "USHER_* overrides for every fleet, as K=V,K=V (tuning experiments)")
)

// envOverrides parses -fleet.env into env (which it returns, allocated if nil).
func envOverrides(env map[string]string) (map[string]string, error) {
	if env == nil {
		env = make(map[string]string)
	}
	if *fleetEnv == "" {
		return env, nil
	}
	for kv := range strings.SplitSeq(*fleetEnv, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "USHER_") {
			return nil, fmt.Errorf("-fleet.env: %q is not USHER_NAME=value", kv)
		}
		env[k] = v
	}
	return env, nil
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
