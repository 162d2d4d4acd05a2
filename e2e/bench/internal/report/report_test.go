package report

import (
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/usherhq/usher/e2e/bench
cpu: Intel(R) Xeon(R) Processor
BenchmarkPipeline-2   	       1	      10000 bots/round	         1.078 cpu_cores_busy	      3497 created_bots/s	      4000 joined_jobs/s	         4.000 pct_of_raw	     100000 raw_msgs/s
--- BENCH: BenchmarkPipeline-2
    pipeline_test.go:59: pipeline: 2291 jobs/s NATS request → joined in KV BOTS
BenchmarkClaimLatency-2     	       1	        19.14 claim_max_ms	         0.2722 claim_p50_ms	         7.489 claim_p99_ms	       999.9 offered_jobs/s	         0.08207 raw_p50_ms	         0.2901 raw_p99_ms
PASS
ok  	github.com/usherhq/usher/e2e/bench	12.3s
pkg: github.com/usherhq/usher/services/worker/internal/zoomtoken
BenchmarkCallbackOverhead-2   	    5000	    210000 ns/op	  120.0 bare-p50-µs	  300.0 bare-p99-µs	  150.0 client-p50-µs	  450.0 client-p99-µs	  30.00 overhead-p50-µs	  150.0 overhead-p99-µs	    9000 B/op	  100 allocs/op
BenchmarkBreakerOpenDecision-2	 1000000	      1200 ns/op	  1.100 p50-µs	  80.00 p99-µs
pkg: github.com/usherhq/usher/services/worker/app
BenchmarkClaimLatency-2   	    1000	   1000000 ns/op	  9.0 claim_p99_ms
`

func parsed(t *testing.T) Results {
	t.Helper()
	res := Results{}
	if err := res.Parse(strings.NewReader(sample)); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestParseKeysBenchmarksByPackage(t *testing.T) {
	t.Parallel()
	res := parsed(t)
	if len(res) != 5 {
		t.Fatalf("parsed %d benchmarks, want 5: %v", len(res), res)
	}
	e2e := res[Key{PkgE2E, "BenchmarkClaimLatency"}]
	worker := res[Key{PkgWorkerApp, "BenchmarkClaimLatency"}]
	if e2e["claim_p99_ms"] != 7.489 || worker["claim_p99_ms"] != 9 {
		t.Fatalf("claim p99: e2e %v, worker %v; want 7.489 and 9 (same name, two packages)", e2e, worker)
	}
	if got := res[Key{PkgZoomToken, "BenchmarkCallbackOverhead"}]["overhead-p99-µs"]; got != 150 {
		t.Fatalf("overhead-p99-µs = %v, want 150", got)
	}
}

func TestParseRefusesABrokenResultLine(t *testing.T) {
	t.Parallel()
	err := Results{}.Parse(strings.NewReader("BenchmarkX-2 10 12 ns/op 3\n"))
	if err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("err = %v, want an error naming line 1", err)
	}
}

func TestRowsSayMetMissedAndNotMeasured(t *testing.T) {
	t.Parallel()
	rows := parsed(t).Rows(Figures())
	status := map[string]Row{}
	for _, r := range rows {
		status[r.Figure] = r
	}
	for name, want := range map[string]string{
		"pipeline: NATS request → joined in KV BOTS (instant driver)": StatusMissed,  // 4% < 10%
		"claim latency p99 at 1,000 jobs/s (stored → lease held)":     StatusMet,     // 7.5 ms < 10 ms
		"claim latency p50 at 1,000 jobs/s":                           StatusNoGoal,  // informational
		"zoom callback client overhead p99":                           StatusMet,     // 150 µs ≤ 1 ms
		"zoom breaker-open decision p99":                              StatusMissed,  // 80 µs > 50 µs
		"density: bots per GiB, one browser (context per bot)":        StatusMissing, // not run
	} {
		if got := status[name].Status; got != want {
			t.Errorf("%s: status %q, want %q (row %+v)", name, got, want, status[name])
		}
	}
	p := status["pipeline: NATS request → joined in KV BOTS (instant driver)"]
	if p.Value != "4000 jobs/s" || p.Baseline != "100000 msgs/s raw JetStream work queue" || p.Ratio != "4.0%" {
		t.Errorf("pipeline row = %+v", p)
	}
	if c := status["zoom callback client overhead p99"]; c.Ratio != "1.50×" {
		t.Errorf("callback ratio = %q, want client/bare p99 1.50×", c.Ratio)
	}
}

func TestPrintNamesMissedAndMissingFigures(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	if err := Print(&out, parsed(t).Rows(Figures())); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"| baseline (same run)",
		"Targets MISSED (2): pipeline: NATS request → joined in KV BOTS (instant driver); zoom breaker-open decision p99",
		"NOT MEASURED (",
		"density: bots per GiB",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}
