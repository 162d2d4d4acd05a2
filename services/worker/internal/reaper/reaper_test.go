package reaper_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/worker/internal/instant"
	"github.com/usherhq/usher/services/worker/internal/lease"
	"github.com/usherhq/usher/services/worker/internal/reaper"
	wt "github.com/usherhq/usher/services/worker/internal/workertest"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/ids"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// deadWorker starts a heartbeat key that nobody renews: a worker that
// took bots and then died. It expires one LeaseTTL later.
func deadWorker(t *testing.T, h *wt.Harness) string {
	t.Helper()
	beat := "dead-" + ids.NewBotID(time.Now())
	if _, err := h.Topo.Beats.Create(context.Background(), beat, []byte(`{"worker":"dead"}`)); err != nil {
		t.Fatalf("create heartbeat: %v", err)
	}
	return beat
}

// emulate writes a bot's events (as its worker did) and takes its lease
// the way a worker does, naming heartbeat beat.
func emulate(t *testing.T, h *wt.Harness, beat string, job *usherv1.JoinJob, changes ...botevents.Change) {
	t.Helper()
	ctx := context.Background()
	store := botevents.New(h.JS, h.Topo.Events)
	cur, err := store.Last(ctx, job.GetProject(), job.GetBotId(), botstate.Ready)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Topo.Leases.Create(ctx, job.GetBotId(), []byte(`{"worker":"dead","token":"t","beat":"`+beat+`"}`)); err != nil {
		t.Fatalf("create lease: %v", err)
	}
	for _, ch := range changes {
		ch.BotMetadata = job.GetMetadata()
		if cur, _, err = store.Publish(ctx, cur, ch); err != nil {
			t.Fatalf("publish %s: %v", ch.To, err)
		}
	}
}

// leaseGone reports whether the bot's lease key was removed.
func leaseGone(t *testing.T, h *wt.Harness, job *usherv1.JoinJob) bool {
	t.Helper()
	_, err := h.Topo.Leases.Get(context.Background(), job.GetBotId())
	if err != nil && !lease.Gone(err) {
		t.Fatal(err)
	}
	return err != nil
}

func runReaper(t *testing.T, h *wt.Harness) (*reaper.Reaper, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	r := reaper.New(h.JS, h.Topo, logging.Discard(), reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reaper Run: %v", err)
		}
	})
	return r, reg
}

func TestReaperFailsBotsLostInTheirMeeting(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	beat := deadWorker(t, h)
	joined, leaving, rejoining := h.Job(), h.Job(), h.Job()
	emulate(t, h, beat, joined, botevents.Change{To: botstate.Joining}, botevents.Change{To: botstate.Joined})
	emulate(t, h, beat, leaving, botevents.Change{To: botstate.Joining}, botevents.Change{To: botstate.Joined},
		botevents.Change{To: botstate.Leaving, SubCode: botstate.SubUserRequested})
	emulate(t, h, beat, rejoining, botevents.Change{To: botstate.Joining}, botevents.Change{To: botstate.Joined},
		botevents.Change{To: botstate.Joining, Meta: map[string]string{"reason": botstate.SubBrowserCrashed}})
	start := time.Now()
	runReaper(t, h)
	evs := h.WaitState(joined, "failed/worker_lost", 10*time.Second)
	t.Logf("worker_lost %s after the last heartbeat (lease TTL %s)", time.Since(start).Round(10*time.Millisecond), h.Topo.Config.LeaseTTL)
	if got := evs[len(evs)-1]; got.GetOldState() != "joined" || got.GetBotMetadata()["deal"] != "42" {
		t.Fatalf("worker_lost event = %v", got)
	}
	h.WaitStates(leaving, "joining joined leaving/user_requested failed/worker_lost", 5*time.Second)
	h.WaitStates(rejoining, "joining joined joining failed/worker_lost", 5*time.Second)
	wt.Eventually(t, 5*time.Second, "the lost worker's leases purged", func() bool {
		return leaseGone(t, h, joined) && leaseGone(t, h, leaving) && leaseGone(t, h, rejoining)
	})
}

func TestReaperLeavesOtherBotsAlone(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	ctx := context.Background()
	beat := deadWorker(t, h)
	ended, joining, handed, marker, elsewhere := h.Job(), h.Job(), h.Job(), h.Job(), h.Job()
	// Ended normally and released its lease.
	emulate(t, h, beat, ended, botevents.Change{To: botstate.Joining}, botevents.Change{To: botstate.Joined},
		botevents.Change{To: botstate.Ended, SubCode: botstate.SubMeetingEnded})
	if err := h.Topo.Leases.Purge(ctx, ended.GetBotId()); err != nil {
		t.Fatal(err)
	}
	// Still joining: its job is redelivered, the next worker takes over.
	emulate(t, h, beat, joining, botevents.Change{To: botstate.Joining})
	// Handed off by a draining worker: its hand-off job brings it back.
	emulate(t, h, beat, handed, botevents.Change{To: botstate.Joining}, botevents.Change{To: botstate.Joined})
	e, err := h.Topo.Leases.Get(ctx, handed.GetBotId())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Topo.Leases.Update(ctx, handed.GetBotId(), []byte(`{"worker":"dead","token":"t","beat":"`+beat+`","hand_off":true}`), e.Revision()); err != nil {
		t.Fatal(err)
	}
	// A bot in its meeting: the dead worker's heartbeat marker reached the reaper.
	emulate(t, h, beat, marker, botevents.Change{To: botstate.Joining}, botevents.Change{To: botstate.Joined})
	// In a meeting, held by a worker whose heartbeat is alive.
	live := "live-" + ids.NewBotID(time.Now())
	emulate(t, h, live, elsewhere, botevents.Change{To: botstate.Joining}, botevents.Change{To: botstate.Joined})
	_, reg := runReaper(t, h)
	h.WaitState(marker, "failed/worker_lost", 10*time.Second)
	wt.Eventually(t, 5*time.Second, "three leases handled", func() bool {
		return wt.Metric(t, reg, "usher_worker_reaper_markers_total", nil) == 3
	})
	for job, want := range map[*usherv1.JoinJob]string{
		ended:     "joining joined ended/meeting_ended",
		joining:   "joining",
		handed:    "joining joined",
		elsewhere: "joining joined",
	} {
		if got := wt.States(h.Events(job)); got != want {
			t.Fatalf("bot %s events = %q; want %q", job.GetBotId(), got, want)
		}
	}
	for result, want := range map[string]float64{"settled": 1, "handed_off": 1, "worker_lost": 1} {
		if got := wt.Metric(t, reg, "usher_worker_reaper_markers_total", map[string]string{"result": result}); got != want {
			t.Fatalf("%s leases = %v; want %v", result, got, want)
		}
	}
	if !leaseGone(t, h, joining) || leaseGone(t, h, handed) || leaseGone(t, h, elsewhere) {
		t.Fatalf("leases gone: joining %v (want true), handed off %v, elsewhere %v (want false)",
			leaseGone(t, h, joining), leaseGone(t, h, handed), leaseGone(t, h, elsewhere))
	}
}

func TestReapSkipsBotTakenOver(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	ctx := context.Background()
	job := h.Job()
	emulate(t, h, deadWorker(t, h), job, botevents.Change{To: botstate.Joining}, botevents.Change{To: botstate.Joined})
	lost, err := h.Topo.Leases.Get(ctx, job.GetBotId())
	if err != nil {
		t.Fatal(err)
	}
	// Another worker took the bot over before the reaper came to it.
	if _, err := h.Topo.Leases.Update(ctx, job.GetBotId(), []byte(`{"worker":"next","token":"n","beat":"alive"}`), lost.Revision()); err != nil {
		t.Fatal(err)
	}
	r := reaper.New(h.JS, h.Topo, logging.Discard(), prometheus.NewRegistry())
	got, err := r.Reap(ctx, lost)
	if err != nil || got != "taken_over" {
		t.Fatalf("Reap of a lease taken over = %q, %v; want taken_over", got, err)
	}
	if st := wt.States(h.Events(job)); st != "joining joined" {
		t.Fatalf("events = %q", st)
	}
	if leaseGone(t, h, job) {
		t.Fatal("the new holder's lease was purged")
	}
}

func TestMaxDeliveriesAdvisoryFailsBotOnce(t *testing.T) {
	t.Parallel()
	topo := topology.Defaults()
	topo.LeaseTTL, topo.JobAckWait, topo.JobMaxDeliver = 3*time.Second, time.Second, 2
	h := wt.New(t, topo)
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	for _, reg := range regs {
		m := reaper.NewMaxDeliveries(h.Srv.Conn(), h.JS, h.Topo, logging.Discard(), reg)
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx, ready) }()
		t.Cleanup(func() { cancel(); <-done })
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("max-deliveries handler stopped: %v", err)
		}
	}
	job := h.Job()
	h.Publish(job)
	// Two workers killed on the job: delivered MaxDeliver times, never acked.
	for i := 1; i <= 2; i++ {
		batch, err := h.Topo.Workers.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			md, _ := msg.Metadata()
			if md.NumDelivered != uint64(i) {
				t.Fatalf("delivery %d of the job", md.NumDelivered)
			}
			n++
		}
		if n != 1 {
			t.Fatalf("fetch %d got %d jobs", i, n)
		}
	}
	// A live worker with a free slot keeps a pull waiting: the server then
	// notices the exhausted job and sends the advisory.
	h.StartAttend(wt.Config(1), instant.New(instant.Config{}))
	h.WaitStates(job, "failed/max_deliveries_exceeded", 10*time.Second)
	wt.Eventually(t, 5*time.Second, "exhausted job deleted", func() bool { return h.JobsStored() == 0 })
	total := 0.0
	for _, reg := range regs {
		total += wt.Metric(t, reg, "usher_worker_max_deliveries_advisories_total", nil)
	}
	if total != 1 {
		t.Fatalf("advisories handled across the fleet = %v; want exactly 1", total)
	}
}

// A worker stopped during start-up cancels the handlers before their
// consumer or subscription is in place: that is a clean stop, not an error
// (app.Run would otherwise fail a worker that was only asked to stop).
func TestHandlersStoppedBeforeStartReturnNil(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := reaper.New(h.JS, h.Topo, logging.Discard(), prometheus.NewRegistry()).Run(ctx); err != nil {
		t.Fatalf("reaper Run with a cancelled context = %v; want nil", err)
	}
	m := reaper.NewMaxDeliveries(h.Srv.Conn(), h.JS, h.Topo, logging.Discard(), prometheus.NewRegistry())
	if err := m.Run(ctx, make(chan struct{})); err != nil {
		t.Fatalf("max-deliveries Run with a cancelled context = %v; want nil", err)
	}
}
