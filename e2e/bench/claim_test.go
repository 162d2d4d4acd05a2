package bench

import (
	"context"
	"testing"
	"time"

	"github.com/usherhq/usher/e2e/fleet"
)

// claimTargetP99 is issue 2's goal for the claim latency at 1,000 jobs/s.
const claimTargetP99 = 10 * time.Millisecond

// BenchmarkClaimLatency offers bot requests on NATS at a steady 1,000/s to a
// fleet (ingest, one worker with 4,096 slots, instant driver, bots staying
// 1 s) and reports the claim latency of every job: stored on JOBS by ingest
// → bot lease held by the worker (the worker's claim observer). The
// baseline, measured first in the same process, is JetStream's own floor:
// 512-byte messages offered at the same rate to a bare work queue, pulled
// like a worker pulls (batches of up to 256, waiting up to 1 s), latency
// from storage to receipt. Target: claim p99 < 10 ms.
func BenchmarkClaimLatency(b *testing.B) {
	var claims, raw []time.Duration
	var offered, others float64
	for b.Loop() {
		r := runClaimLatency(b, *claimJobs, *claimRate)
		claims, raw = append(claims, r.claims...), append(raw, r.raw...)
		offered, others = r.offered, r.others
	}
	p50, p99, worst := quantile(claims, 0.50), quantile(claims, 0.99), quantile(claims, 1)
	r50, r99 := quantile(raw, 0.50), quantile(raw, 0.99)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(p50), "claim_p50_ms")
	b.ReportMetric(ms(p99), "claim_p99_ms")
	b.ReportMetric(ms(worst), "claim_max_ms")
	b.ReportMetric(ms(r50), "raw_p50_ms")
	b.ReportMetric(ms(r99), "raw_p99_ms")
	b.ReportMetric(offered, "offered_jobs/s")
	b.ReportMetric(others, "other_cores_busy")
	b.Logf("claim latency (e2e: NATS request → ingest → job stored on JOBS → lease held, %d jobs at %.0f jobs/s offered): "+
		"p50 %.2f ms, p99 %.2f ms, max %.2f ms; raw JetStream delivery at the same rate in the same run: p50 %.2f ms, p99 %.2f ms; "+
		"target p99 < %s: %s; other processes kept %.2f cores busy",
		len(claims), offered, ms(p50), ms(p99), ms(worst), ms(r50), ms(r99), claimTargetP99, verdict(p99 < claimTargetP99), others)
}

// claimRound is one round's figures.
type claimRound struct {
	claims, raw []time.Duration
	offered     float64 // jobs stored per second
	others      float64 // cores other processes kept busy while offering
}

// runClaimLatency measures the raw delivery floor, then offers n requests
// at rate per second to a fresh fleet.
func runClaimLatency(b *testing.B, n, rate int) claimRound {
	b.Helper()
	q := newRawQueue(b)
	r := claimRound{raw: q.deliveryLatency(b, n, rate)}
	q.close()

	log := newClaimLog(n)
	f := startFleet(b, fleetSpec{workers: 1, slots: 4096, env: map[string]string{"USHER_INSTANT_STAY": "1s"}, claims: log})
	defer f.Close()
	nc := connect(b, f.NATSURL)
	defer nc.Close()
	reqs := newRequester(b, nc, fleet.Project, n, n)
	data := createRequest(b, time.Time{})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	every := time.Second / time.Duration(rate)
	cpu0 := sampleCPU(b)
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * every)); wait > 0 {
			time.Sleep(wait) // pacing the offered rate
		}
		if err := reqs.send(ctx, data); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := reqs.wait(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := log.all.wait(ctx, "every job claimed"); err != nil {
		b.Fatal(err)
	}
	_, r.others = cpu0.cores(sampleCPU(b))
	all := log.snapshot()
	first, last := all[0].stored(), all[0].stored()
	for _, c := range all {
		r.claims = append(r.claims, c.latency)
		if s := c.stored(); s.Before(first) {
			first = s
		} else if s.After(last) {
			last = s
		}
	}
	if span := last.Sub(first); span > 0 {
		r.offered = float64(len(all)-1) / span.Seconds()
	}
	return r
}
