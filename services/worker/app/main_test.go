package app_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	wt "github.com/usherhq/usher/services/worker/internal/workertest"
	"github.com/usherhq/usher/shared/logging"
)

// binDir holds the worker binary the process tests build once.
var binDir string //nolint:gochecknoglobals // one build per test binary

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "usher-worker-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once //nolint:gochecknoglobals // one build per test binary
	buildErr  error     //nolint:gochecknoglobals // one build per test binary
)

// workerBinary builds the worker command once per test binary.
func workerBinary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(binDir, "worker")
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", path, "github.com/usherhq/usher/services/worker")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return path
}

// process is a worker running as a real OS process.
type process struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *logging.Buffer
	done chan struct{}
	err  error
}

// startWorker runs the worker binary against the harness's JetStream with
// the instant driver and the harness's topology timings.
func startWorker(t *testing.T, h *wt.Harness, id string, extra ...string) *process {
	t.Helper()
	topo := h.Topo.Config
	cmd := exec.Command(workerBinary(t))
	cmd.Env = append(os.Environ(),
		"USHER_NATS_URL="+h.Srv.URL,
		"USHER_WORKER_ID="+id,
		"USHER_WORKER_DRIVER=instant",
		"USHER_WORKER_SLOTS=2",
		"USHER_METRICS_ADDR=127.0.0.1:0",
		"USHER_LOG_LEVEL=debug",
		"USHER_WORKER_FETCH_WAIT=200ms",
		fmt.Sprintf("USHER_LEASE_TTL=%s", topo.LeaseTTL),
		fmt.Sprintf("USHER_JOB_ACK_WAIT=%s", topo.JobAckWait),
		fmt.Sprintf("USHER_JOB_MAX_DELIVER=%d", topo.JobMaxDeliver),
	)
	cmd.Env = append(cmd.Env, extra...)
	p := &process{t: t, cmd: cmd, out: &logging.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("worker %s output:\n%s", id, p.out.String())
		}
	})
	return p
}

func (p *process) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// kill9 kills the process the hard way and waits for it.
func (p *process) kill9() {
	p.t.Helper()
	p.signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop(timeout time.Duration) {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			p.t.Fatalf("worker exited with %v after SIGTERM", p.err)
		}
	case <-time.After(timeout):
		p.t.Fatalf("worker still running %s after SIGTERM", timeout)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
