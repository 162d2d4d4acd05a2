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
	return lease.New(js, h.Topo.Leases, h.Topo.Config.LeaseTTL, worker, logging.Discard(), reg), reg
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func gone(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
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
	if _, err := h.Topo.Leases.Get(ctx(t), bot); !gone(err) {
		t.Fatalf("after release: %v", err)
	}
	l2, err := m2.Acquire(ctx(t), bot, nil)
	if err != nil || l2.TakenOver() {
		t.Fatalf("acquire after release: %v (taken over %v)", err, l2 != nil && l2.TakenOver())
	}
}

func TestRenewalsOutliveTTL(t *testing.T) {
	t.Parallel()
	topo := topology.Defaults()
	topo.LeaseTTL, topo.JobAckWait = time.Second, 5*time.Second
	h := wt.New(t, topo)
	m, reg := manager(t, h, "w1")
	bot := ids.NewBotID(time.Now())
	lost := make(chan struct{})
	if _, err := m.Acquire(ctx(t), bot, func() { close(lost) }); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	// Six renewals at TTL/3 span two TTLs.
	wt.Eventually(t, 10*time.Second, "six renewals", func() bool {
		return wt.Metric(t, reg, "usher_worker_lease_renewals_total", map[string]string{"result": "ok"}) >= 6
	})
	if _, err := h.Topo.Leases.Get(ctx(t), bot); err != nil {
		t.Fatalf("lease after two TTLs of heartbeats: %v", err)
	}
	select {
	case <-lost:
		t.Fatal("lease reported lost while renewed")
	default:
	}
}

func TestMovedRevisionIsLost(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	m, reg := manager(t, h, "w1")
	bot := ids.NewBotID(time.Now())
	lost := make(chan struct{})
	l, err := m.Acquire(ctx(t), bot, func() { close(lost) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Topo.Leases.Put(ctx(t), bot, []byte(`{"worker":"w2","token":"other"}`)); err != nil {
		t.Fatal(err)
	}
	m.RenewAll(ctx(t))
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("onLost not called")
	}
	if !l.Lost() || m.Held() != 0 || wt.Metric(t, reg, "usher_worker_lease_losses_total", nil) != 1 {
		t.Fatalf("lost %v, held %d", l.Lost(), m.Held())
	}
	// A lost lease is not ours to delete.
	if err := l.Release(ctx(t)); err != nil {
		t.Fatal(err)
	}
	e, err := h.Topo.Leases.Get(ctx(t), bot)
	if err != nil || string(e.Value()) != `{"worker":"w2","token":"other"}` {
		t.Fatalf("other worker's lease after our release: %v, %v", e, err)
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

func TestReleaseAfterUnseenRenewal(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	m, _ := manager(t, h, "w1")
	bot := ids.NewBotID(time.Now())
	l, err := m.Acquire(ctx(t), bot, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A heartbeat that landed but whose ack we never saw: same value, new revision.
	e, err := h.Topo.Leases.Get(ctx(t), bot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Topo.Leases.Update(ctx(t), bot, e.Value(), e.Revision()); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx(t)); err != nil {
		t.Fatalf("release: %v", err)
	}
	if _, err := h.Topo.Leases.Get(ctx(t), bot); !gone(err) {
		t.Fatalf("after release: %v", err)
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
