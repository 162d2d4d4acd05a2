package drivers

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/drivers/drivertest"
	"github.com/usherhq/usher/shared/logging"
)

func TestNewServesEveryPlatform(t *testing.T) {
	byPlatform := New(env.Engine, drivertest.Config(), logging.Discard(), prometheus.NewRegistry())
	for _, p := range []usherv1.Platform{usherv1.Platform_PLATFORM_ZOOM, usherv1.Platform_PLATFORM_TEAMS, usherv1.Platform_PLATFORM_MEET} {
		if byPlatform[p] == nil {
			t.Errorf("no driver for %s", p)
		}
	}
	if len(byPlatform) != 3 {
		t.Errorf("%d drivers, want 3", len(byPlatform))
	}
}

// TestBrowserKilledWhileBotsAreInMeetings kills Chromium under three bots (one
// per platform): each Wait reports the crash, the simulator sees the bots
// go, the engine restarts and a bot joins again.
func TestBrowserKilledWhileBotsAreInMeetings(t *testing.T) {
	reg := prometheus.NewRegistry()
	byPlatform := New(env.Engine, drivertest.Config(), logging.Discard(), reg)
	ctx := drivertest.Ctx(t, 90*time.Second)

	type bot struct {
		meeting sim.Meeting
		name    string
		req     driver.JoinRequest
		in      driver.Meeting
	}
	var bots []*bot
	for _, pl := range []struct {
		platform usherv1.Platform
		sim      string
	}{
		{usherv1.Platform_PLATFORM_ZOOM, sim.Zoom},
		{usherv1.Platform_PLATFORM_TEAMS, sim.Teams},
		{usherv1.Platform_PLATFORM_MEET, sim.Meet},
	} {
		m := env.Meeting(t, sim.MeetingSpec{Platform: pl.sim})
		name := drivertest.BotName(pl.sim)
		req := driver.JoinRequest{
			BotID: "bot_" + strings.ReplaceAll(name, " ", ""), Project: "test", BotName: name,
			Platform: pl.platform, MeetingURL: m.URL, Simulated: true, AloneTimeout: time.Minute,
		}
		b := &bot{meeting: m, name: name, req: req}
		b.in = drivertest.Join(t, ctx, byPlatform[pl.platform], req)
		env.WaitParticipant(t, m.ID, name, sim.StateInMeeting)
		bots = append(bots, b)
	}

	// A fourth bot is still joining, in a waiting room, when the browser dies.
	lobby := env.Meeting(t, sim.MeetingSpec{Platform: sim.Zoom, WaitingRoom: true})
	lobbyName := drivertest.BotName("Lobby")
	w := drivertest.NewWatcher()
	joining := drivertest.JoinAsync(t, ctx, byPlatform[usherv1.Platform_PLATFORM_ZOOM], driver.JoinRequest{
		BotID: "bot_lobby", Project: "test", BotName: lobbyName, Platform: usherv1.Platform_PLATFORM_ZOOM,
		MeetingURL: lobby.URL, Simulated: true,
	}, w)
	w.Await(t)

	waits := make(chan error, len(bots))
	for _, b := range bots {
		go func() {
			_, err := b.in.Wait(ctx)
			waits <- err
		}()
	}
	oldPID := env.Engine.PID()
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the browser: %v", err)
	}
	for range bots {
		select {
		case err := <-waits:
			if !errors.Is(err, driver.ErrBrowserCrashed) {
				t.Errorf("Wait returned %v, want an error wrapping ErrBrowserCrashed", err)
			}
		case <-ctx.Done():
			t.Fatal("a Wait did not return after the browser died")
		}
	}
	if r := drivertest.Result(t, joining, 20*time.Second); !errors.Is(r.Err, driver.ErrBrowserCrashed) || r.Meeting != nil {
		t.Errorf("Join interrupted by the crash = %v, %v; want an error wrapping ErrBrowserCrashed", r.Meeting, r.Err)
	}
	for _, b := range bots {
		p := env.WaitParticipant(t, b.meeting.ID, b.name, sim.StateLeft)
		if p.LeftReason != sim.LeftDisconnected {
			t.Errorf("%s left with reason %q, want %q", b.name, p.LeftReason, sim.LeftDisconnected)
		}
		if err := b.in.Leave(ctx); !errors.Is(err, driver.ErrBrowserCrashed) {
			t.Errorf("Leave after the crash = %v, want ErrBrowserCrashed", err)
		}
		if err := b.in.Close(); err != nil {
			t.Errorf("close a crashed meeting: %v", err)
		}
	}
	if err := testutil.CollectAndCompare(reg, strings.NewReader(`
# HELP usher_worker_browser_bots_in_meeting Bots currently in a meeting through a browser, by platform.
# TYPE usher_worker_browser_bots_in_meeting gauge
usher_worker_browser_bots_in_meeting{platform="meet"} 0
usher_worker_browser_bots_in_meeting{platform="teams"} 0
usher_worker_browser_bots_in_meeting{platform="zoom"} 0
# HELP usher_worker_browser_meeting_exits_total Bots out of a meeting, by platform and reason (meeting_ended, removed_from_meeting, alone, left, browser_crashed, page_lost, closed).
# TYPE usher_worker_browser_meeting_exits_total counter
usher_worker_browser_meeting_exits_total{platform="meet",reason="browser_crashed"} 1
usher_worker_browser_meeting_exits_total{platform="teams",reason="browser_crashed"} 1
usher_worker_browser_meeting_exits_total{platform="zoom",reason="browser_crashed"} 1
`), "usher_worker_browser_bots_in_meeting", "usher_worker_browser_meeting_exits_total"); err != nil {
		t.Error(err)
	}

	// The lifecycle rejoins once: a join on the restarted browser works.
	rejoin := bots[0]
	again := drivertest.Join(t, ctx, byPlatform[rejoin.req.Platform], rejoin.req)
	env.WaitParticipant(t, rejoin.meeting.ID, rejoin.name, sim.StateInMeeting)
	if pid := env.Engine.PID(); pid == 0 || pid == oldPID {
		t.Fatalf("browser pid after the rejoin = %d (was %d): not restarted", pid, oldPID)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := again.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on the rejoined meeting = %v, want it still running", err)
	}
}
