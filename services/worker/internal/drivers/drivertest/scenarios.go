package drivertest

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/drivers/webjoin"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/logging"
)

// Platform is a browser driver under test, as the scenarios every platform
// shares need it.
type Platform struct {
	// Name prefixes the bots' display names ("Zoom").
	Name string
	// Sim is the simulator's platform (sim.Zoom, sim.Teams, sim.Meet).
	Sim string
	// Platform is the join request's platform.
	Platform usherv1.Platform
	// New is the platform package's constructor.
	New func(webjoin.Opener, webjoin.Config, *webjoin.Metrics, *slog.Logger) *webjoin.Driver
}

// Request is an anonymous join request for the meeting at url under the bot
// name name, alone for a minute before it leaves.
func (p Platform) Request(url, name string) driver.JoinRequest {
	return driver.JoinRequest{
		BotID: "bot_" + strings.ReplaceAll(name, " ", ""), Project: "test", BotName: name,
		Platform: p.Platform, MeetingURL: url, Simulated: true,
		AloneTimeout: time.Minute,
	}
}

// scenario is one behaviour every browser driver shows the same way on its
// platform's simulator pages.
type scenario struct {
	name string
	run  func(t *testing.T, e *Env, p Platform)
}

func scenarios() []scenario {
	return []scenario{
		{"waiting room then admitted", waitingRoomThenAdmitted},
		{"denied from the waiting room", deniedFromWaitingRoom},
		{"meeting ended while joining", endedWhileJoining},
		{"no join button fails at prejoin within the step timeout", noJoinButton},
		{"host ends the meeting", hostEndsTheMeeting},
		{"removed by the host", removedByTheHost},
	}
}

// Scenarios runs the shared scenarios against p's driver, each as a parallel
// subtest of t: let in from the waiting room or denied there, a meeting that
// ends during the join, a pre-join page without a join button, and a meeting
// the host ends or removes the bot from.
func (e *Env) Scenarios(t *testing.T, p Platform) {
	t.Helper()
	for _, s := range scenarios() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.run(t, e, p)
		})
	}
}

// Driver is p's driver with the tests' configuration and a registry of its own.
func (e *Env) Driver(p Platform) *webjoin.Driver {
	return p.New(e.Engine, Config(), webjoin.NewMetrics(prometheus.NewRegistry()), logging.Discard())
}

// joinWaiting starts p's bot joining a meeting with a waiting room and
// returns once the driver reports the waiting room.
func (e *Env) joinWaiting(t *testing.T, p Platform) (m sim.Meeting, name string, w *Watcher, res <-chan JoinResult) {
	t.Helper()
	m = e.Meeting(t, sim.MeetingSpec{Platform: p.Sim, WaitingRoom: true})
	name = BotName(p.Name)
	w = NewWatcher()
	res = JoinAsync(t, Ctx(t, 30*time.Second), e.Driver(p), p.Request(m.URL, name), w)
	w.Await(t)
	return m, name, w, res
}

// joined joins p's bot to a meeting and returns once the simulator sees it in.
func (e *Env) joined(t *testing.T, p Platform) (m sim.Meeting, name string, mt driver.Meeting) {
	t.Helper()
	m = e.Meeting(t, sim.MeetingSpec{Platform: p.Sim})
	name = BotName(p.Name)
	mt = Join(t, Ctx(t, 30*time.Second), e.Driver(p), p.Request(m.URL, name))
	e.WaitParticipant(t, m.ID, name, sim.StateInMeeting)
	return m, name, mt
}

func waitingRoomThenAdmitted(t *testing.T, e *Env, p Platform) {
	m, name, w, res := e.joinWaiting(t, p)
	e.WaitParticipant(t, m.ID, name, sim.StateWaiting)
	if _, err := e.Sim.Admit(m.ID, name); err != nil {
		t.Fatal(err)
	}
	r := Result(t, res, 20*time.Second)
	if r.Err != nil {
		t.Fatalf("join after admission: %v", r.Err)
	}
	defer r.Meeting.Close()
	e.WaitParticipant(t, m.ID, name, sim.StateInMeeting)
	if w.Calls() != 1 {
		t.Errorf("WaitingRoom called %d times, want 1", w.Calls())
	}
}

func deniedFromWaitingRoom(t *testing.T, e *Env, p Platform) {
	m, name, _, res := e.joinWaiting(t, p)
	if _, err := e.Sim.Deny(m.ID, name); err != nil {
		t.Fatal(err)
	}
	JoinFailure(t, Result(t, res, 20*time.Second).Err, botstate.SubRequestToJoinDenied, "admission")
}

func endedWhileJoining(t *testing.T, e *Env, p Platform) {
	m := e.Meeting(t, sim.MeetingSpec{Platform: p.Sim, Fault: sim.FaultEndWhileJoining})
	_, err := e.Driver(p).Join(Ctx(t, 30*time.Second), p.Request(m.URL, BotName(p.Name)), NewWatcher())
	JoinFailure(t, err, botstate.SubMeetingEndedBeforeJoin, "admission")
}

func noJoinButton(t *testing.T, e *Env, p Platform) {
	cfg := Config()
	cfg.StepTimeout = 2 * time.Second
	d := p.New(e.Engine, cfg, webjoin.NewMetrics(nil), logging.Discard())
	m := e.Meeting(t, sim.MeetingSpec{Platform: p.Sim, Fault: sim.FaultNoJoinButton})
	ctx := Ctx(t, 20*time.Second)
	_, err := d.Join(ctx, p.Request(m.URL, BotName(p.Name)), NewWatcher())
	je := JoinFailure(t, err, botstate.SubUIElementNotFound, "prejoin")
	if !errors.Is(je, webjoin.ErrStalled) {
		t.Errorf("error %v does not say the step stalled", je)
	}
	if ctx.Err() != nil {
		t.Fatal("the join only stopped at the test's deadline, not at the step timeout")
	}
}

func hostEndsTheMeeting(t *testing.T, e *Env, p Platform) {
	m, _, mt := e.joined(t, p)
	if _, err := e.Sim.End(m.ID); err != nil {
		t.Fatal(err)
	}
	end, err := WaitEnd(t, mt, 15*time.Second)
	if err != nil || end.Reason != driver.EndMeetingEnded {
		t.Fatalf("Wait = %+v, %v; want %s", end, err, driver.EndMeetingEnded)
	}
	if err := mt.Leave(Ctx(t, 10*time.Second)); err != nil {
		t.Fatalf("leave after the meeting ended: %v", err)
	}
}

func removedByTheHost(t *testing.T, e *Env, p Platform) {
	m, name, mt := e.joined(t, p)
	if _, err := e.Sim.Remove(m.ID, name); err != nil {
		t.Fatal(err)
	}
	end, err := WaitEnd(t, mt, 15*time.Second)
	if err != nil || end.Reason != driver.EndRemoved {
		t.Fatalf("Wait = %+v, %v; want %s", end, err, driver.EndRemoved)
	}
}
