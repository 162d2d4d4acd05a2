package lease_test

import (
	"context"
	"testing"
	"time"

	wt "github.com/usherhq/usher/services/worker/internal/workertest"
	"github.com/usherhq/usher/shared/ids"
)

// BenchmarkRenewAll renews 2,000 leases per op, pipelined: one heartbeat
// round of a worker with 2,000 bots in meetings.
func BenchmarkRenewAll(b *testing.B) {
	const leases = 2000
	h := wt.New(b)
	m, reg := manager(b, h, "bench")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for range leases {
		if _, err := m.Acquire(ctx, ids.NewBotID(time.Now()), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		m.RenewAll(ctx)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	ok := wt.Metric(b, reg, "usher_worker_lease_renewals_total", map[string]string{"result": "ok"})
	if ok != float64(leases*b.N) {
		b.Fatalf("renewed %v of %d", ok, leases*b.N)
	}
	b.ReportMetric(float64(leases*b.N)/elapsed.Seconds(), "renewals/s")
	b.ReportMetric(float64(elapsed.Milliseconds())/float64(b.N), "ms/round_of_2000")
}
