package meet

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/drivers/drivertest"
	"github.com/usherhq/usher/services/worker/internal/drivers/webjoin"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/logging"
)

func newDriver(t *testing.T) *webjoin.Driver {
	t.Helper()
	return New(env.Engine, drivertest.Config(), webjoin.NewMetrics(prometheus.NewRegistry()), logging.Discard())
}

func request(url, name string) driver.JoinRequest {
	return driver.JoinRequest{
		BotID: "bot_" + strings.ReplaceAll(name, " ", ""), Project: "test", BotName: name,
		Platform: usherv1.Platform_PLATFORM_MEET, MeetingURL: url, Simulated: true,
		AloneTimeout: time.Minute,
	}
}

func TestJoinThenLeave(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Meet})
	name := drivertest.BotName("Meet")
	mt := drivertest.Join(t, drivertest.Ctx(t, 30*time.Second), d, request(m.URL, name))
	p := env.WaitParticipant(t, m.ID, name, sim.StateInMeeting)
	if p.Identity != sim.IdentityAnonymous {
		t.Errorf("bot joined as %q, want anonymous", p.Identity)
	}
	// Muted: the page offers to unmute, as the other participants would see.
	drivertest.AssertShown(t, mt, "button[aria-label=\"Turn on microphone\"]", "button[aria-label=\"Turn on camera\"]")
	if err := mt.Leave(drivertest.Ctx(t, 15*time.Second)); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if left := env.WaitParticipant(t, m.ID, name, sim.StateLeft); left.LeftReason != sim.LeftSelf {
		t.Errorf("bot left with reason %q, want %q", left.LeftReason, sim.LeftSelf)
	}
}

func TestAskToJoinThenAdmitted(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Meet, WaitingRoom: true})
	name := drivertest.BotName("Meet")
	w := drivertest.NewWatcher()
	res := drivertest.JoinAsync(t, drivertest.Ctx(t, 30*time.Second), d, request(m.URL, name), w)
	w.Await(t)
	env.WaitParticipant(t, m.ID, name, sim.StateWaiting)
	if _, err := env.Sim.Admit(m.ID, name); err != nil {
		t.Fatal(err)
	}
	r := drivertest.Result(t, res, 20*time.Second)
	if r.Err != nil {
		t.Fatalf("join after admission: %v", r.Err)
	}
	defer r.Meeting.Close()
	env.WaitParticipant(t, m.ID, name, sim.StateInMeeting)
	if w.Calls() != 1 {
		t.Errorf("WaitingRoom called %d times, want 1", w.Calls())
	}
}

func TestDeniedWhenAsking(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Meet, WaitingRoom: true})
	name := drivertest.BotName("Meet")
	w := drivertest.NewWatcher()
	res := drivertest.JoinAsync(t, drivertest.Ctx(t, 30*time.Second), d, request(m.URL, name), w)
	w.Await(t)
	if _, err := env.Sim.Deny(m.ID, name); err != nil {
		t.Fatal(err)
	}
	drivertest.JoinFailure(t, drivertest.Result(t, res, 20*time.Second).Err, botstate.SubRequestToJoinDenied, "admission")
}

func TestNobodyAnswersIsAWaitingRoomTimeout(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Meet, WaitingRoom: true, NoAnswerAfterSeconds: sim.Seconds(1)})
	_, err := d.Join(drivertest.Ctx(t, 30*time.Second), request(m.URL, drivertest.BotName("Meet")), drivertest.NewWatcher())
	drivertest.JoinFailure(t, err, botstate.SubWaitingRoomTimeout, "admission")
}

func TestUnknownMeetingIsNotFound(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	_, err := d.Join(drivertest.Ctx(t, 30*time.Second), request(env.Server.URL+"/meet/zzz-zzzz-zzz", drivertest.BotName("Meet")), drivertest.NewWatcher())
	drivertest.JoinFailure(t, err, botstate.SubMeetingNotFound, "prejoin")
}

func TestMeetingEndedWhileJoining(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Meet, Fault: sim.FaultEndWhileJoining})
	_, err := d.Join(drivertest.Ctx(t, 30*time.Second), request(m.URL, drivertest.BotName("Meet")), drivertest.NewWatcher())
	drivertest.JoinFailure(t, err, botstate.SubMeetingEndedBeforeJoin, "admission")
}

func TestNoJoinButtonFailsAtPrejoinWithinTheStepTimeout(t *testing.T) {
	t.Parallel()
	cfg := drivertest.Config()
	cfg.StepTimeout = 2 * time.Second
	d := New(env.Engine, cfg, webjoin.NewMetrics(nil), logging.Discard())
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Meet, Fault: sim.FaultNoJoinButton})
	ctx := drivertest.Ctx(t, 20*time.Second)
	_, err := d.Join(ctx, request(m.URL, drivertest.BotName("Meet")), drivertest.NewWatcher())
	drivertest.JoinFailure(t, err, botstate.SubUIElementNotFound, "prejoin")
	if ctx.Err() != nil {
		t.Fatal("the join only stopped at the test's deadline, not at the step timeout")
	}
}

func TestHostEndsTheMeeting(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Meet})
	name := drivertest.BotName("Meet")
	mt := drivertest.Join(t, drivertest.Ctx(t, 30*time.Second), d, request(m.URL, name))
	env.WaitParticipant(t, m.ID, name, sim.StateInMeeting)
	if _, err := env.Sim.End(m.ID); err != nil {
		t.Fatal(err)
	}
	end, err := drivertest.WaitEnd(t, mt, 15*time.Second)
	if err != nil || end.Reason != driver.EndMeetingEnded {
		t.Fatalf("Wait = %+v, %v; want %s", end, err, driver.EndMeetingEnded)
	}
}

func TestRemovedFromTheCall(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Meet})
	name := drivertest.BotName("Meet")
	mt := drivertest.Join(t, drivertest.Ctx(t, 30*time.Second), d, request(m.URL, name))
	env.WaitParticipant(t, m.ID, name, sim.StateInMeeting)
	if _, err := env.Sim.Remove(m.ID, name); err != nil {
		t.Fatal(err)
	}
	end, err := drivertest.WaitEnd(t, mt, 15*time.Second)
	if err != nil || end.Reason != driver.EndRemoved {
		t.Fatalf("Wait = %+v, %v; want %s", end, err, driver.EndRemoved)
	}
}

func TestAloneAfterEveryoneLeft(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Meet})
	name := drivertest.BotName("Meet")
	req := request(m.URL, name)
	req.AloneTimeout = time.Second
	mt := drivertest.Join(t, drivertest.Ctx(t, 30*time.Second), d, req)
	env.WaitParticipant(t, m.ID, name, sim.StateInMeeting)
	if _, err := env.Sim.ParticipantLeaves(m.ID, "Host"); err != nil {
		t.Fatal(err)
	}
	end, err := drivertest.WaitEnd(t, mt, 15*time.Second)
	if err != nil || end.Reason != driver.EndAlone {
		t.Fatalf("Wait = %+v, %v; want %s", end, err, driver.EndAlone)
	}
	if err := mt.Leave(drivertest.Ctx(t, 15*time.Second)); err != nil {
		t.Fatalf("leave when alone: %v", err)
	}
	env.WaitParticipant(t, m.ID, name, sim.StateLeft)
}
