package bench

import (
	"context"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/usherhq/usher/e2e/fleet"
)

// pipelineTarget is issue 2's goal: the pipeline moves at least this share
// of the raw JetStream work-queue rate.
const pipelineTarget = 0.10

// pipelineRound is one round's figures.
type pipelineRound struct {
	bots    int
	created time.Duration // first request sent → last 201 reply
	joined  time.Duration // first request sent → last bot joined in KV BOTS
	cores   float64       // cores this process kept busy over joined
	others  float64       // cores other processes kept busy meanwhile (-1: unknown)
	cpu     time.Duration // this process's CPU time over joined
	raw     rawRate
}

// BenchmarkPipeline measures Usher's pipeline end to end: bot requests
// published on NATS (usher.requests.e2e, protobuf CreateBotRequest, async
// request-reply, thousands in flight) → ingest → JOBS → worker (instant
// driver) → events → projector → the bot's document in KV BOTS says
// `joined` (what GET /api/v1/bots/{id} shows). Each round runs a fresh
// fleet between two halves of the raw JetStream work-queue baseline (async
// publish, pull consume, ack of 512-byte messages, file storage, embedded
// server) in the same process. Target: the pipeline's jobs/s ≥ 10% of the
// raw msgs/s.
func BenchmarkPipeline(b *testing.B) {
	var rounds []pipelineRound
	for b.Loop() {
		rounds = append(rounds, runPipeline(b, *pipelineBots))
	}
	var bots int
	var raw rawRate
	var joined, created, cpu time.Duration
	var cores, others float64 // averaged over the rounds' durations
	lowest, highest := math.Inf(1), math.Inf(-1)
	for _, r := range rounds {
		// One round's share shows how far this machine's noise moves the figure.
		share := 100 * float64(r.bots) / r.joined.Seconds() / r.raw.perSecond()
		lowest, highest = min(lowest, share), max(highest, share)
		bots += r.bots
		joined += r.joined
		created += r.created
		cores += r.cores * r.joined.Seconds()
		others += r.others * r.joined.Seconds()
		cpu += r.cpu
		raw = raw.plus(r.raw)
	}
	rate := float64(bots) / joined.Seconds()
	cores, others = cores/joined.Seconds(), others/joined.Seconds()
	rawPerSec := raw.perSecond()
	ratio := rate / rawPerSec
	b.ReportMetric(0, "ns/op") // a round's duration says nothing
	b.ReportMetric(rate, "joined_jobs/s")
	b.ReportMetric(float64(bots)/created.Seconds(), "created_bots/s")
	b.ReportMetric(rawPerSec, "raw_msgs/s")
	b.ReportMetric(100*ratio, "pct_of_raw")
	b.ReportMetric(lowest, "min_round_pct_of_raw")
	b.ReportMetric(highest, "max_round_pct_of_raw")
	b.ReportMetric(float64(*pipelineBots), "bots/round")
	b.ReportMetric(cores, "cores_busy")
	b.ReportMetric(others, "other_cores_busy")
	perBot := float64(cpu.Microseconds()) / float64(bots)
	perMsg := float64(raw.cpu.Microseconds()) / float64(raw.msgs)
	b.ReportMetric(perBot, "cpu_µs/bot")
	b.ReportMetric(perMsg, "raw_cpu_µs/msg")
	b.Logf("pipeline: %.0f jobs/s NATS request → joined in KV BOTS; raw JetStream work queue in the same run %.0f msgs/s; "+
		"ratio %.1f%% (target ≥ %.0f%%: %s; rounds from %.1f%% to %.1f%%)", rate, rawPerSec, 100*ratio, 100*pipelineTarget,
		verdict(ratio >= pipelineTarget), lowest, highest)
	b.Logf("pipeline context: %d rounds × %d bots, instant driver, %d worker(s); ingest answered %.0f creates/s; "+
		"this process kept %.2f of %d cores busy, other processes %.2f", len(rounds), *pipelineBots, *pipelineWorkers,
		float64(bots)/created.Seconds(), cores, runtime.NumCPU(), others)
	b.Logf("pipeline CPU: %.0f µs per bot, %.1f raw messages' worth (a raw message: %.1f µs); "+
		"BenchmarkPipelineFloor gives the design's own cost", perBot, perBot/perMsg, perMsg)
}

// startProfile starts a CPU profile into path (nothing when path is empty)
// and returns what stops it (idempotent). A later round overwrites an
// earlier one's.
func startProfile(b *testing.B, path string) (stop func()) {
	b.Helper()
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatalf("cpu profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		b.Fatalf("cpu profile (not with -test.cpuprofile): %v", err)
	}
	return sync.OnceFunc(func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Errorf("cpu profile: %v", err)
		}
	})
}

// runPipeline sends n bots through a fresh fleet and times them to joined,
// between two measurements of the raw baseline (before and after, so a
// machine whose load changes during the round weighs on both sides).
func runPipeline(b *testing.B, n int) pipelineRound {
	b.Helper()
	raw := measureRaw(b, *rawMsgs/2)
	r := runFleetPipeline(b, n)
	after := measureRaw(b, *rawMsgs-*rawMsgs/2)
	r.raw = raw.plus(after)
	return r
}

// measureRaw runs the raw work-queue baseline on its own server.
func measureRaw(b *testing.B, n int) rawRate {
	b.Helper()
	q := newRawQueue(b)
	defer q.close()
	return q.throughput(b, n)
}

// runFleetPipeline is the measured part of a round.
func runFleetPipeline(b *testing.B, n int) pipelineRound {
	b.Helper()
	workers := max(*pipelineWorkers, 1)
	f := startFleet(b, fleetSpec{workers: workers, slots: n/workers + 1})
	defer f.Close()
	nc := connect(b, f.NATSURL)
	defer nc.Close()
	watch := watchBots(b, nc, fleet.Project, "joined", n)
	defer watch.stop()
	reqs := newRequester(b, nc, fleet.Project, n, *pipelineFlight)
	data := createRequest(b, time.Time{})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stopProfile := startProfile(b, *pipelineProfile)
	defer stopProfile()
	cpu0 := sampleCPU(b)
	start := time.Now()
	for range n {
		if err := reqs.send(ctx, data); err != nil {
			b.Fatal(err)
		}
	}
	created, err := reqs.wait(ctx)
	if err != nil {
		b.Fatal(err)
	}
	joined, err := watch.reached.wait(ctx, "bots joined in KV BOTS")
	if err != nil {
		b.Fatal(err)
	}
	cpu1 := sampleCPU(b)
	cores, others := cpu0.cores(cpu1)
	stopProfile()
	if bad := watch.undecodable(); bad > 0 {
		b.Fatalf("%d bot documents in KV BOTS did not decode", bad)
	}
	return pipelineRound{bots: n, created: created.Sub(start), joined: joined.Sub(start), cores: cores, others: others, cpu: cpu1.self - cpu0.self}
}
