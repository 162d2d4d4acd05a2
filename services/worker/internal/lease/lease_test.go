package lease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/usherhq/usher/services/worker/internal/lease"
	wt "github.com/usherhq/usher/services/worker/internal/workertest"
	"github.com/usherhq/usher/shared/botcontrol"
	"github.com/usherhq/usher/shared/ids"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func manager(t testing.TB, h *wt.Harness, worker string) (*lease.Manager, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	js, err := jetstream.New(h.Srv.Conn())
	if err != nil {
		t.Fatal(err)
	}
	return lease.New(js, h.Topo.Leases, h.Topo.Beats, h.Topo.Config.LeaseTTL, lease.Holder{Worker: worker, Control: botcontrol.NewPrefix()}, logging.Discard(), reg), reg
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// shortTTL is a harness whose heartbeats live one second, for tests that
// wait for one to expire or outlive it.
func shortTTL(t *testing.T) *wt.Harness {
	t.Helper()
	topo := topology.Defaults()
	topo.LeaseTTL, topo.JobAckWait = time.Second, 5*time.Second
	return wt.New(t, topo)
}

func TestAcquireIsExclusiveAndReleaseFreesIt(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	m1, _ := manager(t, h, "w1")
	m2, _ := manager(t, h, "w2")
	bot := ids.NewBotID(time.Now())
	l, err := m1.Acquire(ctx(t), bot, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Acquire(ctx(t), bot, nil); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("second acquire: %v; want ErrHeld", err)
	}
	if err := l.Release(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Topo.Leases.Get(ctx(t), bot); !lease.Gone(err) {
		t.Fatalf("after release: %v", err)
	}
	l2, err := m2.Acquire(ctx(t), bot, nil)
	if err != nil || l2.TakenOver() {
		t.Fatalf("acquire after release: %v (taken over %v)", err, l2 != nil && l2.TakenOver())
	}
}

// run runs m's heartbeat until the test ends.
func run(t *testing.T, m *lease.Manager) {
	t.Helper()
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestHeartbeatKeepsLeasesPastTheTTL(t *testing.T) {
	t.Parallel()
	h := shortTTL(t)
	m, reg := manager(t, h, "w1")
	other, _ := manager(t, h, "w2")
	bots := []string{ids.NewBotID(time.Now()), ids.NewBotID(time.Now()), ids.NewBotID(time.Now())}
	lost := make(chan string, len(bots))
	for _, bot := range bots {
		if _, err := m.Acquire(ctx(t), bot, func() { lost <- bot }); err != nil {
			t.Fatal(err)
		}
	}
	run(t, m)
	// Six beats at TTL/3 span two TTLs; one write per beat for all three leases.
	wt.Eventually(t, 10*time.Second, "six heartbeats", func() bool {
		return wt.Metric(t, reg, "usher_worker_lease_renewals_total", map[string]string{"result": "ok"}) >= 6
	})
	for _, bot := range bots {
		if _, err := other.Acquire(ctx(t), bot, nil); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("another worker's acquire after two TTLs of heartbeats: %v; want ErrHeld", err)
		}
	}
	select {
	case bot := <-lost:
		t.Fatalf("lease of %s reported lost while the heartbeat ran", bot)
	default:
	}
}

func TestLostHeartbeatLosesEveryLease(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	m, reg := manager(t, h, "w1")
	a, b := ids.NewBotID(time.Now()), ids.NewBotID(time.Now())
	lost := make(chan string, 2)
	la, err := m.Acquire(ctx(t), a, func() { lost <- a })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Acquire(ctx(t), b, func() { lost <- b }); err != nil {
		t.Fatal(err)
	}
	beat := m.Beat()
	// The key is gone, as when it expired while the worker stalled: the next
	// heartbeat finds its revision moved.
	if err := h.Topo.Beats.Purge(ctx(t), beat); err != nil {
		t.Fatal(err)
	}
	m.Renew(ctx(t))
	for range 2 {
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Fatal("onLost not called for both leases")
		}
	}
	if !la.Lost() || m.Held() != 0 || wt.Metric(t, reg, "usher_worker_lease_losses_total", nil) != 2 {
		t.Fatalf("lost %v, held %d", la.Lost(), m.Held())
	}
	// Another worker takes over a lease of the lost heartbeat at once.
	other, _ := manager(t, h, "w2")
	lb, err := other.Acquire(ctx(t), b, nil)
	if err != nil || lb.TakenOver() {
		t.Fatalf("acquire of a lost worker's lease: %v (taken over %v); want a fresh lease", err, lb != nil && lb.TakenOver())
	}
	// A lost lease is not ours to delete.
	if err := la.Release(ctx(t)); err != nil {
		t.Fatal(err)
	}
	e, err := h.Topo.Leases.Get(ctx(t), a)
	if err != nil {
		t.Fatalf("lost lease after our release: %v", err)
	}
	// The worker goes on with a new heartbeat.
	if _, err := m.Acquire(ctx(t), ids.NewBotID(time.Now()), nil); err != nil {
		t.Fatal(err)
	}
	if m.Beat() == "" || m.Beat() == beat {
		t.Fatalf("heartbeat after the loss = %q (lost %q); want a new one", m.Beat(), beat)
	}
	if v, err := lease.Decode(e.Value()); err != nil || v.Beat != beat {
		t.Fatalf("lost lease value %s: %v", e.Value(), err)
	}
}

func TestLeaseOfALiveWorkerIsHeldAndOfAStoppedOneEnds(t *testing.T) {
	t.Parallel()
	h := shortTTL(t)
	m1, _ := manager(t, h, "w1")
	m2, _ := manager(t, h, "w2")
	bot := ids.NewBotID(time.Now())
	if _, err := m1.Acquire(ctx(t), bot, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Acquire(ctx(t), bot, nil); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("acquire while w1's heartbeat lives: %v; want ErrHeld", err)
	}
	// w1 never renews (no Run): its heartbeat expires after the TTL.
	start := time.Now()
	var l *lease.Lease
	wt.Eventually(t, 10*time.Second, "lease free once w1's heartbeat expired", func() bool {
		var err error
		l, err = m2.Acquire(ctx(t), bot, nil)
		return err == nil
	})
	if waited := time.Since(start); waited < h.Topo.Config.LeaseTTL/2 {
		t.Fatalf("lease taken over %s after w1's last heartbeat; the TTL is %s", waited, h.Topo.Config.LeaseTTL)
	}
	if l.TakenOver() {
		t.Fatal("a lost worker's lease counts as a hand-off")
	}
}

func TestHandOffIsTakenOver(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	m1, _ := manager(t, h, "w1")
	m2, _ := manager(t, h, "w2")
	bot := ids.NewBotID(time.Now())
	l1, err := m1.Acquire(ctx(t), bot, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l1.HandOff(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if m1.Held() != 0 {
		t.Fatal("a handed-off lease is still renewed")
	}
	l2, err := m2.Acquire(ctx(t), bot, nil)
	if err != nil || !l2.TakenOver() {
		t.Fatalf("take over: %v", err)
	}
	if _, err := m1.Acquire(ctx(t), bot, nil); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("acquire of a taken-over lease: %v; want ErrHeld", err)
	}
}

func TestAbandonedLeaseEndsAfterTheTTLWhileTheWorkerLives(t *testing.T) {
	t.Parallel()
	h := shortTTL(t)
	m, _ := manager(t, h, "w1")
	other, _ := manager(t, h, "w2")
	kept, dropped := ids.NewBotID(time.Now()), ids.NewBotID(time.Now())
	if _, err := m.Acquire(ctx(t), kept, nil); err != nil {
		t.Fatal(err)
	}
	l, err := m.Acquire(ctx(t), dropped, nil)
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	l.Abandon()
	if m.Held() != 1 {
		t.Fatalf("held %d after abandoning one of two", m.Held())
	}
	wt.Eventually(t, 10*time.Second, "the abandoned lease free", func() bool {
		_, err := other.Acquire(ctx(t), dropped, nil)
		return err == nil
	})
	// Its own heartbeat expired, the worker's did not.
	if _, err := other.Acquire(ctx(t), kept, nil); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("the lease still kept: %v; want ErrHeld", err)
	}
}

// TestAcquireManyIsAcquireForEachBot: one burst for a free bot, a bot
// another worker holds, a bot another worker handed off and a bot whose
// lease was released (its key deleted): each gets what Acquire gives.
func TestAcquireManyIsAcquireForEachBot(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	m1, _ := manager(t, h, "w1")
	m2, _ := manager(t, h, "w2")
	free, held, handed, released := ids.NewBotID(time.Now()), ids.NewBotID(time.Now()), ids.NewBotID(time.Now()), ids.NewBotID(time.Now())
	if _, err := m1.Acquire(ctx(t), held, nil); err != nil {
		t.Fatal(err)
	}
	l, err := m1.Acquire(ctx(t), handed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.HandOff(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if l, err = m1.Acquire(ctx(t), released, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx(t)); err != nil {
		t.Fatal(err)
	}
	got := m2.AcquireMany(ctx(t), []lease.Want{{BotID: free}, {BotID: held}, {BotID: handed}, {BotID: released}})
	if got[0].Err != nil || got[0].Lease.BotID() != free || got[0].Lease.TakenOver() {
		t.Fatalf("free bot: %+v", got[0])
	}
	if !errors.Is(got[1].Err, lease.ErrHeld) {
		t.Fatalf("held bot: %+v, want ErrHeld", got[1])
	}
	if got[2].Err != nil || !got[2].Lease.TakenOver() {
		t.Fatalf("handed-off bot: %+v, want taken over", got[2])
	}
	if got[3].Err != nil || got[3].Lease.TakenOver() {
		t.Fatalf("released bot: %+v", got[3])
	}
	if n := m2.Held(); n != 3 {
		t.Fatalf("w2 holds %d leases, want 3", n)
	}
	// The burst's leases are real: another worker cannot take them.
	if _, err := m1.Acquire(ctx(t), free, nil); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("acquire of a lease AcquireMany took: %v; want ErrHeld", err)
	}
}
