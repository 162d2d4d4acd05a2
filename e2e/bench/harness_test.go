package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/usherhq/usher/e2e/fleet"
	workerapp "github.com/usherhq/usher/services/worker/app"
	"github.com/usherhq/usher/shared/topology"
)

// fleetSpec shapes the fleet of one benchmark round.
type fleetSpec struct {
	// workers and slots per worker.
	workers, slots int
	// env overrides USHER_* variables (instant-driver settings).
	env map[string]string
	// claims, when set, records every worker's claim latencies.
	claims *claimLog
}

// startFleet runs a quiet instant-driver fleet with production topology
// settings (file storage, 15 s lease TTL). It is closed by the caller
// (rounds close their fleet before the next one starts).
func startFleet(b *testing.B, spec fleetSpec) *fleet.Fleet {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := envOverrides(spec.env)
	if err != nil {
		b.Fatal(err)
	}
	topo := topology.Defaults()
	f, err := fleet.Start(ctx, b.TempDir(), fleet.Options{
		Driver:   workerapp.DriverInstant,
		Workers:  spec.workers,
		Slots:    spec.slots,
		Env:      env,
		Topology: &topo,
		Quiet:    true,
	})
	if err != nil {
		b.Fatalf("start fleet: %v", err)
	}
	if spec.claims == nil {
		return f
	}
	// The claim observer is a worker option: replace the workers Start made
	// (idle, nothing claimed yet) with observed ones.
	for _, w := range f.Workers() {
		// A worker stopped right after start-up may report its reaper's
		// consumer creation as cancelled; it served nothing, so no figure
		// changes.
		if err := w.Stop(); err != nil {
			b.Logf("idle worker replaced by an observed one stopped with: %v", err)
		}
	}
	for range spec.workers {
		if _, err := f.StartWorker(workerapp.WithClaimObserver(spec.claims.observe)); err != nil {
			f.Close()
			b.Fatalf("start observed worker: %v", err)
		}
	}
	return f
}

// connect opens a client connection to the fleet's server; the caller
// closes it before the fleet.
func connect(b *testing.B, url string) *nats.Conn {
	b.Helper()
	nc, err := nats.Connect(url, nats.Name("usher-bench"))
	if err != nil {
		b.Fatalf("connect %s: %v", url, err)
	}
	return nc
}

// milestone is reached after n steps: Done is closed then, and At says when.
type milestone struct {
	left atomic.Int64
	done chan struct{}
	at   time.Time // written once, before done is closed
}

func newMilestone(n int) *milestone {
	m := &milestone{done: make(chan struct{})}
	m.left.Store(int64(n))
	if n <= 0 {
		m.at = time.Now()
		close(m.done)
	}
	return m
}

// step counts one step; the n-th closes done.
func (m *milestone) step() {
	if m.left.Add(-1) == 0 {
		m.at = time.Now()
		close(m.done)
	}
}

// errNotReached is returned by wait when the deadline came first.
var errNotReached = errors.New("not reached before the deadline")

// wait blocks until the milestone is reached or ctx ends, and returns when
// it was reached.
func (m *milestone) wait(ctx context.Context, what string) (time.Time, error) {
	select {
	case <-m.done:
		return m.at, nil
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("%s: %w (%d steps left)", what, errNotReached, m.left.Load())
	}
}

// claim is one claim the workers observed: its latency (job stored on JOBS
// → lease held) and when the lease was held.
type claim struct {
	latency time.Duration
	at      time.Time
}

// stored is when JetStream stored the job.
func (c claim) stored() time.Time { return c.at.Add(-c.latency) }

// claimLog collects the claims of observed workers.
type claimLog struct {
	mu     sync.Mutex
	claims []claim
	all    *milestone
}

func newClaimLog(want int) *claimLog {
	return &claimLog{claims: make([]claim, 0, want), all: newMilestone(want)}
}

// observe is the workers' claim observer; it must be quick.
func (l *claimLog) observe(d time.Duration) {
	now := time.Now()
	l.mu.Lock()
	l.claims = append(l.claims, claim{latency: d, at: now})
	l.mu.Unlock()
	l.all.step()
}

func (l *claimLog) snapshot() []claim {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.claims)
}

// cpuSample is the CPU time this process and the whole machine had used
// at one instant.
type cpuSample struct {
	at            time.Time
	self, machine time.Duration
	machineKnown  bool // /proc/stat was readable
}

// sampleCPU reads the process's CPU time (getrusage) and the machine's busy
// time (/proc/stat: every state but idle and iowait; steal counts as busy,
// the hypervisor gave it to someone else).
func sampleCPU(b *testing.B) cpuSample {
	b.Helper()
	s := cpuSample{at: time.Now()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return s
	}
	var ticks int64
	for i, f := range fields[1:9] { // user nice system idle iowait irq softirq steal
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return s
		}
		if i != 3 && i != 4 {
			ticks += v
		}
	}
	const userHZ = 100 // USER_HZ: 100 on every Linux architecture Go supports
	s.machine, s.machineKnown = time.Duration(ticks)*time.Second/userHZ, true
	return s
}

// cores returns how many cores this process and every other process kept
// busy on average between s and a later sample (others is -1 when the
// machine's figure is unknown).
func (s cpuSample) cores(later cpuSample) (self, others float64) {
	wall := later.at.Sub(s.at).Seconds()
	if wall <= 0 {
		return 0, -1
	}
	self = (later.self - s.self).Seconds() / wall
	if !s.machineKnown || !later.machineKnown {
		return self, -1
	}
	return self, max((later.machine-s.machine).Seconds()/wall-self, 0)
}

// quantile returns the q-quantile (nearest rank) of ds; it sorts ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// verdict says whether a target was met, for the printed lines.
func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}
