package attend_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/worker/internal/attend"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/instant"
	"github.com/usherhq/usher/services/worker/internal/jobs"
	wt "github.com/usherhq/usher/services/worker/internal/workertest"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// closedAll asserts Meeting.Close ran on every path: no meeting left open.
func closedAll(t *testing.T, r *wt.Runner, d *instant.Driver) {
	t.Helper()
	wt.Eventually(t, 5*time.Second, "bots out of the runtime", func() bool { return r.RT.Busy() == 0 })
	if st := d.Stats(); st.Open != 0 || st.InMeeting != 0 || st.Doubles != 0 {
		t.Fatalf("driver after the bot finished: %+v; want every meeting closed", st)
	}
}

func TestWaitingRoomThenJoined(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{WaitingRoom: 300 * time.Millisecond})
	h.StartAttend(wt.Config(1), d)
	job := h.Job()
	h.Publish(job)
	h.WaitStates(job, "joining waiting_room joined", 5*time.Second)
}

func TestWaitingRoomTimeoutFails(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{WaitingRoom: time.Minute})
	r := h.StartAttend(wt.Config(1), d)
	job := h.Job(func(j *usherv1.JoinJob) {
		j.AutomaticLeaveSettings = &usherv1.AutomaticLeaveSettings{WaitingRoomTimeoutSeconds: 1}
	})
	h.Publish(job)
	h.WaitStates(job, "joining waiting_room failed/waiting_room_timeout_exceeded", 5*time.Second)
	closedAll(t, r, d)
	wt.Eventually(t, 5*time.Second, "job terminated", func() bool { return h.JobsStored() == 0 })
}

func TestLeaveFromWaitingRoomEnds(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{WaitingRoom: time.Minute})
	r := h.StartAttend(wt.Config(1), d)
	job := h.Job()
	h.Publish(job)
	h.WaitStates(job, "joining waiting_room", 5*time.Second)
	if reply, err := h.Leave(job); err != nil || !reply.GetAccepted() {
		t.Fatalf("leave: %v, %v", reply, err)
	}
	h.WaitStates(job, "joining waiting_room leaving/user_requested ended/user_requested", 5*time.Second)
	closedAll(t, r, d)
	if d.Stats().Joins != 0 {
		t.Fatal("bot was admitted after it was told to leave")
	}
}

func TestMaxDurationLeaves(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	r := h.StartAttend(wt.Config(1), d)
	job := h.Job(func(j *usherv1.JoinJob) {
		j.AutomaticLeaveSettings = &usherv1.AutomaticLeaveSettings{MaxDurationSeconds: 1}
	})
	h.Publish(job)
	h.WaitStates(job, "joining joined leaving/auto_leave_max_duration_exceeded ended/auto_leave_max_duration_exceeded", 5*time.Second)
	closedAll(t, r, d)
	if d.Stats().Leaves != 1 {
		t.Fatalf("leaves = %d; want the bot to leave the meeting", d.Stats().Leaves)
	}
}

func TestMeetingEndings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		reason driver.EndReason
		want   string
		leaves int
	}{
		{driver.EndMeetingEnded, "joining joined ended/meeting_ended", 0},
		{driver.EndRemoved, "joining joined ended/removed_from_meeting", 0},
		{driver.EndAlone, "joining joined leaving/auto_leave_only_participant_in_meeting ended/auto_leave_only_participant_in_meeting", 1},
	}
	for _, tc := range cases {
		t.Run(string(tc.reason), func(t *testing.T) {
			t.Parallel()
			h := wt.New(t)
			d := instant.New(instant.Config{})
			r := h.StartAttend(wt.Config(1), d)
			job := h.Job()
			h.Publish(job)
			h.WaitStates(job, "joining joined", 5*time.Second)
			if !d.End(job.GetBotId(), tc.reason) {
				t.Fatal("bot not in its meeting")
			}
			h.WaitStates(job, tc.want, 5*time.Second)
			closedAll(t, r, d)
			if d.Stats().Leaves != tc.leaves {
				t.Fatalf("leaves = %d, want %d", d.Stats().Leaves, tc.leaves)
			}
		})
	}
}

func TestJoinErrorFailsWithSubCodeAndStep(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	r := h.StartAttend(wt.Config(1), d)
	job := h.Job()
	d.FailJoins(job.GetBotId(), driver.Fail(botstate.SubLoginRequired, "prejoin", errors.New("sign in to join")))
	h.Publish(job)
	evs := h.WaitStates(job, "joining failed/login_required", 5*time.Second)
	if evs[1].GetMetadata()["step"] != "prejoin" {
		t.Fatalf("failed event metadata = %v; want step prejoin", evs[1].GetMetadata())
	}
	closedAll(t, r, d)
	wt.Eventually(t, 5*time.Second, "job terminated", func() bool { return h.JobsStored() == 0 })
}

func TestBrowserCrashInMeetingRejoinsOnce(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	r := h.StartAttend(wt.Config(1), d)
	job := h.Job()
	h.Publish(job)
	h.WaitStates(job, "joining joined", 5*time.Second)
	d.Crash(job.GetBotId())
	evs := h.WaitStates(job, "joining joined joining joined", 5*time.Second)
	if evs[2].GetMetadata()["reason"] != botstate.SubBrowserCrashed {
		t.Fatalf("rejoin event metadata = %v", evs[2].GetMetadata())
	}
	d.Crash(job.GetBotId())
	h.WaitStates(job, "joining joined joining joined failed/browser_crashed", 5*time.Second)
	closedAll(t, r, d)
	if d.Joins(job.GetBotId()) != 2 {
		t.Fatalf("joins = %d; want exactly one rejoin", d.Joins(job.GetBotId()))
	}
}

func TestBrowserCrashWhileJoiningRetries(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	r := h.StartAttend(wt.Config(1), d)
	job := h.Job()
	d.FailJoins(job.GetBotId(), fmt.Errorf("page gone: %w", driver.ErrBrowserCrashed))
	h.Publish(job)
	h.WaitStates(job, "joining joined", 5*time.Second)
	if st := d.Stats(); st.Attempts != 2 || st.Joins != 1 {
		t.Fatalf("driver %+v; want a crashed attempt, then a join on the next delivery", st)
	}
	if got := wt.Metric(t, r.Reg, "usher_worker_job_retries_total", map[string]string{"sub_code": botstate.SubBrowserCrashed}); got != 1 {
		t.Fatalf("retries with browser_crashed = %v", got)
	}
}

func TestBrowserCrashWhileJoiningOnLastDeliveryFails(t *testing.T) {
	t.Parallel()
	topo := topology.Defaults()
	topo.LeaseTTL, topo.JobAckWait, topo.JobMaxDeliver = 3*time.Second, 5*time.Second, 2
	h := wt.New(t, topo)
	d := instant.New(instant.Config{})
	r := h.StartAttend(wt.Config(1), d)
	job := h.Job()
	crash := fmt.Errorf("page gone: %w", driver.ErrBrowserCrashed)
	d.FailJoins(job.GetBotId(), crash, crash)
	h.Publish(job)
	h.WaitStates(job, "joining failed/browser_crashed", 5*time.Second)
	closedAll(t, r, d)
	if d.Stats().Attempts != 2 {
		t.Fatalf("attempts = %d; want MaxDeliver (2)", d.Stats().Attempts)
	}
}

func TestPlatformWithoutJoinerFails(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	d := instant.New(instant.Config{})
	handler, err := attend.New(attend.Defaults(), map[usherv1.Platform]driver.Joiner{
		usherv1.Platform_PLATFORM_ZOOM: driver.Anonymous{Driver: d},
	}, logging.Discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h.Start(wt.Config(1), handler)
	job := h.Job(func(j *usherv1.JoinJob) { j.Platform = usherv1.Platform_PLATFORM_MEET })
	h.Publish(job)
	h.WaitStates(job, "joining failed/internal_error", 5*time.Second)
}

func TestLeaveRacingJoinLeavesMeeting(t *testing.T) {
	t.Parallel()
	h := wt.New(t)
	// The joiner admits the bot only after the leave command was accepted.
	gate := make(chan struct{})
	d := instant.New(instant.Config{})
	j := joinerFunc(func(ctx context.Context, job *usherv1.JoinJob, w driver.Watcher) (driver.Meeting, error) {
		<-gate
		return driver.Anonymous{Driver: d}.Join(context.WithoutCancel(ctx), job, w)
	})
	handler, err := attend.New(attend.Defaults(), map[usherv1.Platform]driver.Joiner{usherv1.Platform_PLATFORM_ZOOM: j}, logging.Discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r := h.Start(wt.Config(1), handler)
	job := h.Job()
	h.Publish(job)
	h.WaitStates(job, "joining", 5*time.Second)
	if reply, err := h.Leave(job); err != nil || !reply.GetAccepted() {
		t.Fatalf("leave: %v %v", reply, err)
	}
	close(gate)
	h.WaitStates(job, "joining leaving/user_requested ended/user_requested", 5*time.Second)
	closedAll(t, r, d)
	if d.Stats().Joins != 1 || d.Stats().Leaves != 1 {
		t.Fatalf("driver %+v; a bot admitted after the leave must leave at once", d.Stats())
	}
}

type joinerFunc func(ctx context.Context, job *usherv1.JoinJob, w driver.Watcher) (driver.Meeting, error)

func (f joinerFunc) Join(ctx context.Context, job *usherv1.JoinJob, w driver.Watcher) (driver.Meeting, error) {
	return f(ctx, job, w)
}

var _ jobs.Handler = (*attend.Handler)(nil)
