package teams

import (
	"context"
	"strings"
	"testing"
	"time"

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
	return env.Driver(platform())
}

// platform is Teams for drivertest's shared scenarios.
func platform() drivertest.Platform {
	return drivertest.Platform{Name: "Teams", Sim: sim.Teams, Platform: usherv1.Platform_PLATFORM_TEAMS, New: New}
}

func request(url, name string) driver.JoinRequest { return platform().Request(url, name) }

// TestSharedScenarios runs the behaviours every browser driver shows the
// same way (drivertest.Env.Scenarios) against Teams.
func TestSharedScenarios(t *testing.T) {
	t.Parallel()
	env.Scenarios(t, platform())
}

func TestJoinThenLeave(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Teams})
	name := drivertest.BotName("Teams")
	mt := drivertest.Join(t, drivertest.Ctx(t, 30*time.Second), d, request(m.URL, name))
	p := env.WaitParticipant(t, m.ID, name, sim.StateInMeeting)
	if p.Identity != sim.IdentityAnonymous {
		t.Errorf("bot joined as %q, want anonymous", p.Identity)
	}
	// Muted: the page offers to unmute, as the other participants would see.
	drivertest.AssertShown(t, mt, "button[aria-label=\"Unmute mic\"]", "button[aria-label=\"Turn camera on\"]")
	if err := mt.Leave(drivertest.Ctx(t, 15*time.Second)); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if left := env.WaitParticipant(t, m.ID, name, sim.StateLeft); left.LeftReason != sim.LeftSelf {
		t.Errorf("bot left with reason %q, want %q", left.LeftReason, sim.LeftSelf)
	}
}

func TestShortLinkJoins(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Teams})
	if m.AltURL == "" {
		t.Fatal("the simulator gave no /meet/ link")
	}
	name := drivertest.BotName("Teams")
	drivertest.Join(t, drivertest.Ctx(t, 30*time.Second), d, request(m.AltURL, name))
	env.WaitParticipant(t, m.ID, name, sim.StateInMeeting)
}

func TestUnknownMeetingIsNotFound(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	url := env.Server.URL + "/teams/l/meetup-join/19%3ameeting_doesnotexist%40thread.v2/0?context=%7B%7D"
	_, err := d.Join(drivertest.Ctx(t, 30*time.Second), request(url, drivertest.BotName("Teams")), drivertest.NewWatcher())
	drivertest.JoinFailure(t, err, botstate.SubMeetingNotFound, "launcher")
}

func TestOrgOnlyAnonymousNeedsLogin(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Teams, AuthRequired: true})
	_, err := d.Join(drivertest.Ctx(t, 30*time.Second), request(m.URL, drivertest.BotName("Teams")), drivertest.NewWatcher())
	drivertest.JoinFailure(t, err, botstate.SubLoginRequired, "")
	if m, _ := env.Sim.Meeting(m.ID); len(m.Participants) != 1 {
		t.Errorf("participants = %+v, want only the host (the bot never got in)", m.Participants)
	}
}

// signIn logs an account in through the simulator's Microsoft pages in a tab
// of its own and returns the session's cookies, as the Teams login would.
func signIn(t *testing.T, email, display string) []driver.Cookie {
	t.Helper()
	const password = "correct horse battery staple"
	if _, err := env.Sim.PutMicrosoftAccount(sim.MicrosoftAccount{Email: email, Password: password, DisplayName: display}); err != nil {
		t.Fatal(err)
	}
	ctx := drivertest.Ctx(t, 30*time.Second)
	tab, err := env.Engine.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	p := webjoin.NewPage(tab, drivertest.Config(), logging.Discard())
	hook := func(sel string) webjoin.Hook { return webjoin.Hook{State: webjoin.StatePrompt, Selector: sel} }
	for _, step := range []func() error{
		func() error { return p.Navigate(ctx, "open", env.Server.URL+"/microsoft/login?ru="+env.Server.URL+"/") },
		func() error { return p.Type(ctx, "email", hook("#i0116"), email) },
		func() error { return p.Click(ctx, "next", hook("input#idSIButton9[value=Next]")) },
		func() error { return p.Type(ctx, "password", hook("#i0118"), password) },
		func() error { return p.Click(ctx, "sign in", hook("input#idSIButton9[value='Sign in']")) },
		func() error { return p.Click(ctx, "stay signed in", hook("input#idSIButton9[value=Yes]")) },
		func() error { _, err := p.Await(ctx, "signed in", []webjoin.Hook{hook("#sim-signed-in")}); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("sign in: %v", err)
		}
	}
	cookies, err := tab.Cookies(ctx)
	if err != nil {
		t.Fatalf("read cookies: %v", err)
	}
	return cookies
}

func TestSignedInJoinsOrgOnlyAsTheAccount(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	email := strings.ReplaceAll(strings.ToLower(drivertest.BotName("notetaker")), " ", ".") + "@contoso.example"
	cookies := signIn(t, email, "Contoso Notetaker")
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Teams, AuthRequired: true})
	req := request(m.URL, drivertest.BotName("Teams"))
	req.Teams = &driver.TeamsIdentity{Account: email, Cookies: cookies}
	mt := drivertest.Join(t, drivertest.Ctx(t, 30*time.Second), d, req)
	p := env.WaitParticipant(t, m.ID, "Contoso Notetaker", sim.StateInMeeting)
	if p.Identity != email {
		t.Errorf("bot joined as identity %q, want the account %q", p.Identity, email)
	}
	if err := mt.Leave(drivertest.Ctx(t, 15*time.Second)); err != nil {
		t.Fatalf("leave: %v", err)
	}
}

func TestExpiredSessionBouncesToLogin(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	email := strings.ReplaceAll(strings.ToLower(drivertest.BotName("expired")), " ", ".") + "@contoso.example"
	cookies := signIn(t, email, "Expired Notetaker")
	if _, err := env.Sim.ExpireMicrosoftSessions(email); err != nil {
		t.Fatal(err)
	}
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Teams})
	req := request(m.URL, drivertest.BotName("Teams"))
	req.Teams = &driver.TeamsIdentity{Account: email, Cookies: cookies}
	_, err := d.Join(drivertest.Ctx(t, 30*time.Second), req, drivertest.NewWatcher())
	drivertest.JoinFailure(t, err, botstate.SubLoginRequired, "")
}

func TestAloneAfterEveryoneLeft(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Teams})
	name := drivertest.BotName("Teams")
	req := request(m.URL, name)
	req.AloneTimeout = time.Second
	mt := drivertest.Join(t, drivertest.Ctx(t, 30*time.Second), d, req)
	env.WaitParticipant(t, m.ID, name, sim.StateInMeeting)
	// With the host still there, Wait keeps waiting.
	short, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if end, err := mt.Wait(short); err == nil {
		t.Fatalf("Wait ended (%+v) while the host was still in the meeting", end)
	}
	if _, err := env.Sim.ParticipantLeaves(m.ID, "Host"); err != nil {
		t.Fatal(err)
	}
	end, err := drivertest.WaitEnd(t, mt, 15*time.Second)
	if err != nil || end.Reason != driver.EndAlone {
		t.Fatalf("Wait = %+v, %v; want %s", end, err, driver.EndAlone)
	}
}
