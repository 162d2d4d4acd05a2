package jobs_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/instant"
	"github.com/usherhq/usher/services/worker/internal/jobs"
	wt "github.com/usherhq/usher/services/worker/internal/workertest"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/ids"
	"github.com/usherhq/usher/shared/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestHappyPathJoinsAndLeavesOnCommand(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	r := h.StartAttend(wt.Config(2), d)
	job := h.Job()
	h.Publish(job)

	evs := h.WaitStates(job, "joining joined", 10*time.Second)
	for i, ev := range evs {
		if ev.GetSeq() != uint64(i+1) || ev.GetBotMetadata()["deal"] != "42" || ev.GetProject() != wt.Project {
			t.Fatalf("event %d = %v; want seq %d with the job's bot_metadata", i, ev, i+1)
		}
	}
	if !d.InMeeting(job.GetBotId()) {
		t.Fatal("bot is not in its meeting after joined")
	}
	wt.Eventually(t, 5*time.Second, "job acked", func() bool { return h.JobsStored() == 0 })

	reply, err := h.Leave(job)
	if err != nil {
		t.Fatalf("leave: %v", err)
	}
	if !reply.GetAccepted() || reply.GetState() != "leaving" || reply.GetSeq() != 3 {
		t.Fatalf("leave reply = %v; want accepted, leaving, seq 3", reply)
	}
	evs = h.WaitStates(job, "joining joined leaving/user_requested ended/user_requested", 10*time.Second)
	if evs[3].GetOldState() != "leaving" || evs[3].GetSeq() != 4 {
		t.Fatalf("ended event = %v", evs[3])
	}
	wt.Eventually(t, 5*time.Second, "bot out of the runtime", func() bool { return r.RT.Busy() == 0 })
	if d.InMeeting(job.GetBotId()) || d.Stats().Open != 0 || d.Stats().Leaves != 1 {
		t.Fatalf("driver after leave: %+v", d.Stats())
	}
	if _, err := h.Topo.Leases.Get(context.Background(), job.GetBotId()); !errors.Is(err, jetstream.ErrKeyDeleted) && !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("lease after the bot ended: err = %v; want it released", err)
	}
	if n := testutil.CollectAndCount(r.Reg, "usher_worker_claim_latency_seconds"); n != 1 {
		t.Fatalf("claim latency histogram series = %d", n)
	}
	if n := testutil.CollectAndCount(r.Reg, "usher_worker_events_published_total"); n != 4 {
		t.Fatalf("events published series = %d; want one per state (joining, joined, leaving, ended)", n)
	}
}

func TestSlotsBoundBotsAndFetching(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	h.StartAttend(wt.Config(2), d)
	var all []*usherv1.JoinJob
	for range 5 {
		job := h.Job()
		all = append(all, job)
		h.Publish(job)
	}
	wt.Eventually(t, 10*time.Second, "two bots joined and acked", func() bool {
		info := h.Consumer()
		return d.Stats().InMeeting == 2 && info.NumAckPending == 0 && info.NumPending == 3
	})
	// No pull request is waiting: the three jobs stay the fleet's unmet demand.
	if info := h.Consumer(); info.NumPending != 3 || info.NumWaiting != 0 {
		t.Fatalf("consumer with all slots busy: pending %d, waiting pulls %d; want 3, 0", info.NumPending, info.NumWaiting)
	}
	// Free the slots one bot at a time until every bot went through.
	for done := 0; done < len(all); {
		for _, job := range all {
			if d.InMeeting(job.GetBotId()) {
				if _, err := h.Leave(job); err != nil {
					t.Fatalf("leave: %v", err)
				}
				h.WaitState(job, "ended", 10*time.Second)
				done++
			}
		}
		if st := d.Stats(); st.MaxInMeeting > 2 {
			t.Fatalf("%d bots in meetings at once with 2 slots", st.MaxInMeeting)
		}
		if done < len(all) {
			wt.Eventually(t, 10*time.Second, "next bot joined", func() bool { return d.Stats().InMeeting > 0 })
		}
	}
	if st := d.Stats(); st.Joins != 5 || st.MaxInMeeting != 2 || st.Doubles != 0 {
		t.Fatalf("driver stats %+v; want 5 joins, at most 2 at once", st)
	}
}

func TestStoppedWorkerHandsJoiningJobBack(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{JoinDelay: 1500 * time.Millisecond})
	a := h.StartAttend(wt.Config(1), d)
	job := h.Job()
	h.Publish(job)
	h.WaitStates(job, "joining", 5*time.Second)
	a.Stop() // mid-join: the job goes back to the queue at once
	if got := wt.Metric(t, a.Reg, "usher_worker_job_dispositions_total", map[string]string{"disposition": "handed_back"}); got != 1 {
		t.Fatalf("handed back jobs = %v; want 1", got)
	}

	h.StartAttend(wt.Config(1), d)
	h.WaitStates(job, "joining joined", 10*time.Second)
	st := d.Stats()
	if d.Joins(job.GetBotId()) != 1 || st.Doubles != 0 || st.Attempts != 2 {
		t.Fatalf("driver stats %+v, joins of the bot %d; want 2 attempts, 1 join, no double", st, d.Joins(job.GetBotId()))
	}
}

func TestDrainHandsMeetingBotOff(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	a := h.StartAttend(wt.Config(1), d)
	job := h.Job()
	h.Publish(job)
	h.WaitStates(job, "joining joined", 10*time.Second)

	h.StartAttend(wt.Config(1), d)
	a.Stop() // drain timeout 200ms, then hand-off
	evs := h.WaitStates(job, "joining joined joining joined", 15*time.Second)
	if evs[2].GetMetadata()["reason"] != botstate.SubWorkerShutdown || evs[2].GetOldState() != "joined" {
		t.Fatalf("hand-off event = %v; want joined → joining with reason worker_shutdown", evs[2])
	}
	st := d.Stats()
	if d.Joins(job.GetBotId()) != 2 || st.Doubles != 0 || st.Leaves != 1 || st.InMeeting != 1 {
		t.Fatalf("driver stats %+v; want the bot to leave once and rejoin once, never twice in", st)
	}
	wt.Eventually(t, 5*time.Second, "hand-off job acked", func() bool { return h.JobsStored() == 0 })
}

func TestDrainLetsMeetingFinishWithinTimeout(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	cfg := wt.Config(1)
	cfg.DrainTimeout = 20 * time.Second
	a := h.StartAttend(cfg, d)
	job := h.Job()
	h.Publish(job)
	h.WaitStates(job, "joining joined", 10*time.Second)
	stopped := make(chan struct{})
	go func() { a.Stop(); close(stopped) }()
	wt.Eventually(t, 5*time.Second, "runtime draining", a.RT.Draining)
	d.End(job.GetBotId(), driver.EndMeetingEnded)
	h.WaitStates(job, "joining joined ended/meeting_ended", 5*time.Second)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not finish once the last meeting ended")
	}
	if h.JobsStored() != 0 {
		t.Fatal("a hand-off job was published for a bot that finished")
	}
}

func TestPermanentFailureTerminatesJob(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	var calls atomic.Int32
	h.Start(wt.Config(1), jobs.HandlerFunc(func(context.Context, *jobs.Bot) error {
		calls.Add(1)
		return jobs.PermanentMeta(botstate.SubMeetingNotFound, map[string]string{"step": "prejoin"}, errors.New("no such meeting"))
	}))
	job := h.Job()
	h.Publish(job)
	evs := h.WaitStates(job, "joining failed/meeting_not_found", 10*time.Second)
	if evs[1].GetMetadata()["step"] != "prejoin" {
		t.Fatalf("failed event metadata = %v", evs[1].GetMetadata())
	}
	wt.Eventually(t, 5*time.Second, "job terminated", func() bool { return h.JobsStored() == 0 })
	if info := h.Consumer(); info.NumAckPending != 0 || info.NumRedelivered != 0 || calls.Load() != 1 {
		t.Fatalf("after term: ack pending %d, redelivered %d, handler calls %d", info.NumAckPending, info.NumRedelivered, calls.Load())
	}
}

func TestRetryFreesSlotUntilRedelivered(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	slow, quick := h.Job(), h.Job()
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	h.Start(wt.Config(1), jobs.HandlerFunc(func(ctx context.Context, bot *jobs.Bot) error {
		name := "quick"
		if bot.Job().GetBotId() == slow.GetBotId() {
			name = "slow"
			if bot.Delivery() == 1 {
				note("slow retry")
				return jobs.Retry(time.Second, botstate.SubZoomTokensUnavailable, errors.New("breaker open"))
			}
		}
		note(name + " served")
		if err := bot.Joined(ctx); err != nil {
			return err
		}
		return bot.Transition(ctx, botstate.Ended, botstate.SubMeetingEnded, nil)
	}))
	h.Publish(slow)
	h.WaitStates(slow, "joining", 5*time.Second)
	h.Publish(quick)
	h.WaitStates(quick, "joining joined ended/meeting_ended", 5*time.Second)
	h.WaitStates(slow, "joining joined ended/meeting_ended", 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 3 || order[0] != "slow retry" || order[1] != "quick served" || order[2] != "slow served" {
		t.Fatalf("order = %v; the quick bot must be served in the one slot while the slow one waits", order)
	}
}

func TestRetryPastDeadlineFailsWithSubCode(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	h.Start(wt.Config(1), jobs.HandlerFunc(func(context.Context, *jobs.Bot) error {
		return jobs.Retry(5*time.Second, botstate.SubZoomTokensUnavailable, errors.New("breaker open"))
	}))
	job := h.Job(func(j *usherv1.JoinJob) { j.JoinDeadline = timestamppb.New(time.Now().Add(2 * time.Second)) })
	h.Publish(job)
	h.WaitStates(job, "joining failed/zoom_tokens_callback_unavailable", 5*time.Second)
	wt.Eventually(t, 5*time.Second, "job terminated", func() bool { return h.JobsStored() == 0 })
}

func TestLastDeliveryFailsInsteadOfNak(t *testing.T) {
	t.Parallel()
	topo := topology.Defaults()
	topo.LeaseTTL, topo.JobAckWait, topo.JobMaxDeliver = 3*time.Second, 5*time.Second, 3
	h := wt.New(t, topo)
	var plain, retry atomic.Int32
	plainJob, retryJob := h.Job(), h.Job()
	h.Start(wt.Config(2), jobs.HandlerFunc(func(_ context.Context, bot *jobs.Bot) error {
		if bot.Job().GetBotId() == retryJob.GetBotId() {
			retry.Add(1)
			return jobs.Retry(50*time.Millisecond, botstate.SubTeamsLoginFailed, errors.New("login page timed out"))
		}
		plain.Add(1)
		return errors.New("something unexpected")
	}))
	h.Publish(plainJob)
	h.Publish(retryJob)
	h.WaitStates(plainJob, "joining failed/max_deliveries_exceeded", 15*time.Second)
	h.WaitStates(retryJob, "joining failed/teams_login_failed", 15*time.Second)
	wt.Eventually(t, 5*time.Second, "jobs terminated", func() bool { return h.JobsStored() == 0 })
	if plain.Load() != 3 || retry.Load() != 3 {
		t.Fatalf("handler calls: plain %d, retry %d; want 3 each (MaxDeliver)", plain.Load(), retry.Load())
	}
}

func TestInvalidJobsAreTerminated(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	var calls atomic.Int32
	h.Start(wt.Config(2), jobs.HandlerFunc(func(context.Context, *jobs.Bot) error {
		calls.Add(1)
		return nil
	}))
	// Garbage: nothing readable, terminated silently.
	h.PublishRaw("usher.jobs.zoom", []byte{0xff, 0xff, 0xff}, "garbage")
	// Readable bot id and project, then a broken field.
	broken := ids.NewBotID(time.Now())
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, broken)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, wt.Project)
	b = append(b, 0x1a, 0xff) // field 3 claiming more bytes than there are
	h.PublishRaw("usher.jobs.zoom", b, "broken")
	// Decodes, but names no platform.
	noPlatform := h.Job(func(j *usherv1.JoinJob) { j.Platform = usherv1.Platform_PLATFORM_UNSPECIFIED })
	h.PublishRaw("usher.jobs.zoom", mustMarshal(t, noPlatform), "no-platform")

	h.WaitStates(&usherv1.JoinJob{BotId: broken, Project: wt.Project}, "failed/invalid_job", 5*time.Second)
	h.WaitStates(noPlatform, "failed/invalid_job", 5*time.Second)
	wt.Eventually(t, 5*time.Second, "invalid jobs terminated", func() bool { return h.JobsStored() == 0 })
	if calls.Load() != 0 {
		t.Fatalf("handler ran %d times for invalid jobs", calls.Load())
	}
}

func TestLostLeaseStopsBotAtOnce(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	r := h.StartAttend(wt.Config(1), d)
	job := h.Job()
	h.Publish(job)
	h.WaitStates(job, "joining joined", 10*time.Second)
	// The worker's heartbeat key is gone, as when it expired while the worker
	// stalled (other workers may take its bots now): the next heartbeat finds
	// its revision moved, and every lease it kept is lost.
	beats, err := h.Topo.Beats.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for beat := range beats.Keys() {
		if err := h.Topo.Beats.Purge(context.Background(), beat); err != nil {
			t.Fatalf("purge heartbeat: %v", err)
		}
	}
	wt.Eventually(t, 5*time.Second, "bot out of its meeting", func() bool { return !d.InMeeting(job.GetBotId()) })
	wt.Eventually(t, 5*time.Second, "bot out of the runtime", func() bool { return r.RT.Busy() == 0 })
	if got := wt.States(h.Events(job)); got != "joining joined" {
		t.Fatalf("events after losing the lease = %q; the worker must write nothing more", got)
	}
	if d.Stats().Leaves != 0 || d.Stats().Open != 0 {
		t.Fatalf("driver %+v; want the meeting closed at once, without a leave", d.Stats())
	}
}

func TestLeaseHeldElsewhereDelaysJob(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	job := h.Job()
	rev, err := h.Topo.Leases.Create(context.Background(), job.GetBotId(), []byte(`{"worker":"other","token":"y"}`))
	if err != nil {
		t.Fatalf("create lease: %v", err)
	}
	r := h.StartAttend(wt.Config(1), d)
	h.Publish(job)
	wt.Eventually(t, 5*time.Second, "job delayed as held", func() bool {
		return wt.Metric(t, r.Reg, "usher_worker_job_dispositions_total", map[string]string{"disposition": "lease_held"}) == 1
	})
	if d.Stats().Attempts != 0 || len(h.Events(job)) != 0 {
		t.Fatal("bot joined while another worker held its lease")
	}
	if err := h.Topo.Leases.Delete(context.Background(), job.GetBotId(), jetstream.LastRevision(rev)); err != nil {
		t.Fatalf("release lease: %v", err)
	}
	h.WaitStates(job, "joining joined", 10*time.Second)
	if d.Joins(job.GetBotId()) != 1 {
		t.Fatalf("joins = %d", d.Joins(job.GetBotId()))
	}
}

func TestFinishedBotJobIsAckedUnjoined(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	store := botevents.New(h.JS, h.Topo.Events)
	ended, leaving := h.Job(), h.Job()
	ctx := context.Background()
	// Ended by ingest before any worker held it.
	cur, _ := store.Last(ctx, wt.Project, ended.GetBotId(), botstate.Ready)
	if _, _, err := store.Publish(ctx, cur, botevents.Change{To: botstate.Ended, SubCode: botstate.SubUserRequested}); err != nil {
		t.Fatal(err)
	}
	// Its worker died while leaving after max duration.
	cur, _ = store.Last(ctx, wt.Project, leaving.GetBotId(), botstate.Ready)
	for _, ch := range []botevents.Change{{To: botstate.Joining}, {To: botstate.Joined}, {To: botstate.Leaving, SubCode: botstate.SubAutoLeaveMaxDuration}} {
		var err error
		if cur, _, err = store.Publish(ctx, cur, ch); err != nil {
			t.Fatal(err)
		}
	}
	h.StartAttend(wt.Config(2), d)
	h.Publish(ended)
	h.Publish(leaving)
	h.WaitStates(leaving, "joining joined leaving/auto_leave_max_duration_exceeded ended/auto_leave_max_duration_exceeded", 5*time.Second)
	wt.Eventually(t, 5*time.Second, "both jobs acked", func() bool { return h.JobsStored() == 0 })
	if got := wt.States(h.Events(ended)); got != "ended/user_requested" || d.Stats().Attempts != 0 {
		t.Fatalf("ended bot: events %q, join attempts %d", got, d.Stats().Attempts)
	}
}

func TestLeaveBeforeJoinedEndsBot(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{JoinDelay: 10 * time.Second})
	h.StartAttend(wt.Config(1), d)
	job := h.Job()
	h.Publish(job)
	h.WaitStates(job, "joining", 5*time.Second)
	reply, err := h.Leave(job)
	if err != nil || !reply.GetAccepted() || reply.GetState() != "leaving" {
		t.Fatalf("leave while joining: %v, %v", reply, err)
	}
	h.WaitStates(job, "joining leaving/user_requested ended/user_requested", 5*time.Second)
	wt.Eventually(t, 5*time.Second, "job acked", func() bool { return h.JobsStored() == 0 })
	if d.Stats().Joins != 0 {
		t.Fatal("bot joined after it was told to leave")
	}
}

func TestNoResponderForBotNobodyHolds(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	job := h.Job()
	if _, err := h.Leave(job); err == nil {
		t.Fatal("leave of a bot no worker holds got an answer; ingest relies on no responders")
	}
}

func mustMarshal(t *testing.T, job *usherv1.JoinJob) []byte {
	t.Helper()
	b, err := proto.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandlerPanicOrSilentReturnFailsBot(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	panics, silent := h.Job(), h.Job()
	h.Start(wt.Config(2), jobs.HandlerFunc(func(ctx context.Context, bot *jobs.Bot) error {
		if bot.Job().GetBotId() == panics.GetBotId() {
			panic("driver bug")
		}
		return bot.Joined(ctx) // and then returns nil with the bot still joined
	}))
	h.Publish(panics)
	h.Publish(silent)
	h.WaitStates(panics, "joining failed/internal_error", 5*time.Second)
	h.WaitStates(silent, "joining joined failed/internal_error", 5*time.Second)
	wt.Eventually(t, 5*time.Second, "jobs settled", func() bool { return h.JobsStored() == 0 })
}

func TestJobOfJoinedBotWithoutLeaseRejoins(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	job := h.Job()
	// Its worker died between publishing joined and acking the job; the
	// lease has expired since.
	store := botevents.New(h.JS, h.Topo.Events)
	cur, _ := store.Last(context.Background(), wt.Project, job.GetBotId(), botstate.Ready)
	for _, to := range []botstate.State{botstate.Joining, botstate.Joined} {
		var err error
		if cur, _, err = store.Publish(context.Background(), cur, botevents.Change{To: to}); err != nil {
			t.Fatal(err)
		}
	}
	h.StartAttend(wt.Config(1), d)
	h.Publish(job)
	evs := h.WaitStates(job, "joining joined joining joined", 5*time.Second)
	if evs[2].GetMetadata()["reason"] != "redelivered" {
		t.Fatalf("rejoin event = %v", evs[2])
	}
}

// TestFirstDeliveryPublishesJoiningWithoutReadingUnlessIngestWroteFirst:
// a job delivered for the first time publishes joining as event 1 without
// reading the bot's events; when ingest wrote first (a leave of a bot no
// worker held, a rolled-back create), that publish is refused and the
// worker reads the bot and settles the job as before: acked, never joined.
func TestFirstDeliveryPublishesJoiningWithoutReadingUnlessIngestWroteFirst(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	store := botevents.New(h.JS, h.Topo.Events)
	ctx := context.Background()
	fresh, ended, aborted, racing := h.Job(), h.Job(), h.Job(), h.Job()
	writeFirst := func(job *usherv1.JoinJob, ch botevents.Change) {
		t.Helper()
		cur, err := store.Last(ctx, wt.Project, job.GetBotId(), botstate.Ready)
		if err == nil {
			_, _, err = store.Publish(ctx, cur, ch)
		}
		if err != nil {
			t.Errorf("ingest's event for %s: %v", job.GetBotId(), err)
		}
	}
	// Written before the jobs are even published.
	writeFirst(ended, botevents.Change{To: botstate.Ended, SubCode: botstate.SubUserRequested})
	writeFirst(aborted, botevents.Change{To: botstate.Failed, SubCode: botstate.SubInternalError, Meta: map[string]string{"reason": "create_aborted"}})
	// Written while the worker holds the lease and is about to publish
	// joining: the claim observer runs right there.
	var claims atomic.Int32
	r := h.StartAttend(wt.Config(2), d, jobs.WithClaimObserver(func(time.Duration) {
		if claims.Add(1) == 4 {
			writeFirst(racing, botevents.Change{To: botstate.Ended, SubCode: botstate.SubUserRequested})
		}
	}))
	for _, job := range []*usherv1.JoinJob{fresh, ended, aborted} {
		h.Publish(job)
	}
	h.WaitStates(fresh, "joining joined", 10*time.Second)
	settled := func() bool { return h.JobsStored() == 0 && r.RT.Busy() == 1 }
	wt.Eventually(t, 10*time.Second, "the first three jobs settled", settled)
	h.Publish(racing) // the fourth claim
	wt.Eventually(t, 10*time.Second, "the racing job settled", func() bool { return claims.Load() == 4 && settled() })
	for job, want := range map[*usherv1.JoinJob]string{
		ended: "ended/user_requested", aborted: "failed/internal_error", racing: "ended/user_requested",
	} {
		if got := wt.States(h.Events(job)); got != want {
			t.Errorf("bot whose first event ingest wrote: events %q; want %q only", got, want)
		}
	}
	if st := d.Stats(); st.Attempts != 1 || st.Joins != 1 {
		t.Fatalf("driver saw %d join attempts, %d joins; want only the fresh bot's", st.Attempts, st.Joins)
	}
	if got := wt.Metric(t, r.Reg, "usher_worker_first_event_conflicts_total", nil); got != 3 {
		t.Fatalf("first-event conflicts = %v; want 3 (the fresh bot needs no read)", got)
	}
}

// TestJobsOfOneFetchAreClaimedTogether: jobs waiting before the worker
// starts come in one fetch and are claimed in one batch (leases, then
// first events): fresh bots join once each, a bot another worker holds is
// delayed, and a bot ingest finished first is acked without joining.
func TestJobsOfOneFetchAreClaimedTogether(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	store := botevents.New(h.JS, h.Topo.Events)
	ctx := context.Background()
	var fresh []*usherv1.JoinJob
	for range 20 {
		fresh = append(fresh, h.Job())
	}
	held, ended := h.Job(), h.Job()
	if _, err := h.Topo.Leases.Create(ctx, held.GetBotId(), []byte(`{"worker":"other","token":"y"}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Publish(ctx, botevents.Cursor{Project: wt.Project, BotID: ended.GetBotId(), State: botstate.Ready},
		botevents.Change{To: botstate.Ended, SubCode: botstate.SubUserRequested}); err != nil {
		t.Fatal(err)
	}
	for _, job := range append(fresh, held, ended) {
		h.Publish(job)
	}
	r := h.StartAttend(wt.Config(32), d)
	for _, job := range fresh {
		evs := h.WaitStates(job, "joining joined", 10*time.Second)
		if evs[0].GetSeq() != 1 || evs[1].GetSeq() != 2 {
			t.Fatalf("bot %s events %v", job.GetBotId(), evs)
		}
	}
	wt.Eventually(t, 5*time.Second, "the held bot's job delayed and the ended bot's acked", func() bool {
		return wt.Metric(t, r.Reg, "usher_worker_job_dispositions_total", map[string]string{"disposition": "lease_held"}) == 1 &&
			h.JobsStored() == 1
	})
	if got := wt.States(h.Events(ended)); got != "ended/user_requested" {
		t.Fatalf("bot ingest ended first: events %q", got)
	}
	if len(h.Events(held)) != 0 {
		t.Fatal("the bot another worker holds has events")
	}
	if st := d.Stats(); st.Joins != len(fresh) || st.Attempts != len(fresh) || st.Doubles != 0 {
		t.Fatalf("driver %+v; want %d joins, one per fresh bot", st, len(fresh))
	}
	if got := wt.Metric(t, r.Reg, "usher_worker_first_event_conflicts_total", nil); got != 1 {
		t.Fatalf("first-event conflicts = %v; want 1 (the ended bot)", got)
	}
	// Every first delivery went through a claim batch, and not one by one.
	count, sum := histogram(t, r.Reg, "usher_worker_claim_batch_size")
	if sum != 22 || count >= 22 {
		t.Fatalf("claim batches: %d holding %v jobs; want the 22 jobs in fewer batches", count, sum)
	}
}

// histogram returns the sample count and sum of a histogram without labels.
func histogram(t *testing.T, reg prometheus.Gatherer, name string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no histogram %s", name)
	return 0, 0
}

// TestJoinedSettlesBeforeTheBotIsReadAndStopsABotFinishedMeanwhile: Joined
// does not wait for the event, yet whatever reads the bot next sees joined
// stored and the job acked; and a joined that loses to another writer who
// finished the bot in between is not recorded: the bot is stopped
// (ErrBotFinished) and its job acked, with no event after the other
// writer's.
func TestJoinedSettlesBeforeTheBotIsReadAndStopsABotFinishedMeanwhile(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	store := botevents.New(h.JS, h.Topo.Events)
	joins, overtaken := h.Job(), h.Job()
	type seen struct {
		state botstate.State
		acked bool
		cause error
	}
	got := make(map[string]seen)
	var mu sync.Mutex
	handler := jobs.HandlerFunc(func(ctx context.Context, bot *jobs.Bot) error {
		id := bot.Job().GetBotId()
		if id == overtaken.GetBotId() {
			// Ingest ends the bot while it joins.
			cur, err := store.Last(ctx, wt.Project, id, botstate.Ready)
			if err == nil {
				_, _, err = store.Publish(ctx, cur, botevents.Change{To: botstate.Ended, SubCode: botstate.SubUserRequested})
			}
			if err != nil {
				t.Errorf("ingest's ended: %v", err)
			}
		}
		if err := bot.Joined(ctx); err != nil {
			t.Errorf("Joined of %s: %v", id, err)
			return err
		}
		s := seen{state: bot.State(), acked: bot.Acked()}
		if id == joins.GetBotId() {
			ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			err := bot.Transition(ectx, botstate.Ended, botstate.SubMeetingEnded, nil)
			mu.Lock()
			got[id] = s
			mu.Unlock()
			return err
		}
		<-ctx.Done()
		s.cause = context.Cause(ctx)
		mu.Lock()
		got[id] = s
		mu.Unlock()
		return s.cause
	})
	r := h.Start(wt.Config(2), handler)
	h.Publish(joins)
	h.Publish(overtaken)
	h.WaitStates(joins, "joining joined ended/meeting_ended", 10*time.Second)
	wt.Eventually(t, 10*time.Second, "both jobs settled", func() bool { return h.JobsStored() == 0 && r.RT.Busy() == 0 })

	mu.Lock()
	defer mu.Unlock()
	if s := got[joins.GetBotId()]; s.state != botstate.Joined || !s.acked {
		t.Errorf("right after Joined the bot read %s, acked %v; want joined, acked", s.state, s.acked)
	}
	if s := got[overtaken.GetBotId()]; !errors.Is(s.cause, jobs.ErrBotFinished) || s.state != botstate.Ended || s.acked {
		t.Errorf("overtaken bot: state %s, acked %v, stopped with %v; want ended, not acked by a join, ErrBotFinished", s.state, s.acked, s.cause)
	}
	if states := wt.States(h.Events(overtaken)); states != "joining ended/user_requested" {
		t.Errorf("overtaken bot's events %q; want joining then ingest's ended, no joined", states)
	}
}
