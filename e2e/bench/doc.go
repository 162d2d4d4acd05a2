// Package bench holds the cross-service benchmarks behind `make bench`: the
// figures of issue 2 that need the whole of Usher running (e2e/fleet, the
// instant driver), each printed next to its baseline measured in the same
// run on the same machine, and its target.
//
//   - BenchmarkPipeline: bot requests over NATS → bot joined in KV BOTS,
//     jobs/s, against the raw JetStream work-queue rate (target ≥ 10%).
//   - BenchmarkClaimLatency: job stored on JOBS → bot lease held, p50/p99 at
//     1,000 requests/s, against JetStream's own delivery latency at that
//     rate (target p99 < 10 ms).
//   - BenchmarkScheduledBurst: 5,000 bots sharing one join_at second →
//     lateness of each `joining` event, p50/p99, against the lateness of
//     JetStream's scheduler firing the jobs (target p99 < 2 s).
//
// Benchmarks measure; they never fail because the machine is slow. Sizes can
// be changed with flags, for example
//
//	go test -run '^$' -bench Pipeline -benchtime 1x ./bench -args -pipeline.bots=20000
package bench
