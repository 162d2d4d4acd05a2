package meet

import (
	"testing"
	"time"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/drivers/drivertest"
	"github.com/usherhq/usher/services/worker/internal/drivers/webjoin"
	"github.com/usherhq/usher/shared/botstate"
)

func newDriver(t *testing.T) *webjoin.Driver {
	t.Helper()
	return env.Driver(platform())
}

// platform is Google Meet for drivertest's shared scenarios.
func platform() drivertest.Platform {
	return drivertest.Platform{Name: "Meet", Sim: sim.Meet, Platform: usherv1.Platform_PLATFORM_MEET, New: New}
}

func request(url, name string) driver.JoinRequest { return platform().Request(url, name) }

// TestSharedScenarios runs the behaviours every browser driver shows the
// same way (drivertest.Env.Scenarios) against Google Meet.
func TestSharedScenarios(t *testing.T) {
	t.Parallel()
	env.Scenarios(t, platform())
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
