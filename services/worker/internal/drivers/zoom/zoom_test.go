package zoom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/services/worker/internal/browser/browsertest"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/drivers/drivertest"
	"github.com/usherhq/usher/services/worker/internal/drivers/webjoin"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/secret"
)

func newDriver(t *testing.T) (*webjoin.Driver, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return New(env.Engine, drivertest.Config(), webjoin.NewMetrics(reg), logging.Discard()), reg
}

// platform is Zoom for drivertest's shared scenarios.
func platform() drivertest.Platform {
	return drivertest.Platform{Name: "Zoom", Sim: sim.Zoom, Platform: usherv1.Platform_PLATFORM_ZOOM, New: New}
}

func request(m sim.Meeting, name string) driver.JoinRequest { return platform().Request(m.URL, name) }

// TestSharedScenarios runs the behaviours every browser driver shows the
// same way (drivertest.Env.Scenarios) against Zoom.
func TestSharedScenarios(t *testing.T) {
	t.Parallel()
	env.Scenarios(t, platform())
}

func TestJoinThenLeave(t *testing.T) {
	t.Parallel()
	d, reg := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Zoom})
	name := drivertest.BotName("Zoom")
	mt := drivertest.Join(t, drivertest.Ctx(t, 30*time.Second), d, request(m, name))

	p := env.WaitParticipant(t, m.ID, name, sim.StateInMeeting)
	if p.Identity != sim.IdentityAnonymous {
		t.Errorf("bot joined as %q, want anonymous", p.Identity)
	}
	assertInMeeting(t, reg, 1)
	// Muted: the page offers to unmute, as the other participants would see.
	drivertest.AssertShown(t, mt, "#wc-footer button[aria-label=\"unmute my microphone\"]", "#wc-footer button[aria-label=\"start my video\"]")
	if err := mt.Leave(drivertest.Ctx(t, 15*time.Second)); err != nil {
		t.Fatalf("leave: %v", err)
	}
	left := env.WaitParticipant(t, m.ID, name, sim.StateLeft)
	if left.LeftReason != sim.LeftSelf {
		t.Errorf("bot left with reason %q, want %q (clicked Leave)", left.LeftReason, sim.LeftSelf)
	}
	if err := mt.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	assertInMeeting(t, reg, 0)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP usher_worker_browser_meeting_exits_total Bots out of a meeting, by platform and reason (meeting_ended, removed_from_meeting, alone, left, browser_crashed, page_lost, closed).
# TYPE usher_worker_browser_meeting_exits_total counter
usher_worker_browser_meeting_exits_total{platform="zoom",reason="left"} 1
`), "usher_worker_browser_meeting_exits_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "usher_worker_browser_join_duration_seconds"); n != 1 {
		t.Errorf("join duration series = %d, want 1 (zoom, joined)", n)
	}
}

// assertInMeeting checks the bots-in-meeting gauge for zoom.
func assertInMeeting(t *testing.T, reg *prometheus.Registry, n int) {
	t.Helper()
	want := fmt.Sprintf(`
# HELP usher_worker_browser_bots_in_meeting Bots currently in a meeting through a browser, by platform.
# TYPE usher_worker_browser_bots_in_meeting gauge
usher_worker_browser_bots_in_meeting{platform="zoom"} %d
`, n)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "usher_worker_browser_bots_in_meeting"); err != nil {
		t.Error(err)
	}
}

func TestUnknownMeetingIsNotFound(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	req := request(sim.Meeting{URL: env.Server.URL + "/zoom/j/98765432109?pwd=x"}, drivertest.BotName("Zoom"))
	_, err := d.Join(drivertest.Ctx(t, 30*time.Second), req, drivertest.NewWatcher())
	drivertest.JoinFailure(t, err, botstate.SubMeetingNotFound, "prejoin")
}

func TestAuthenticatedOnlyWithoutZAKNeedsLogin(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Zoom, AuthRequired: true})
	_, err := d.Join(drivertest.Ctx(t, 30*time.Second), request(m, drivertest.BotName("Zoom")), drivertest.NewWatcher())
	drivertest.JoinFailure(t, err, botstate.SubLoginRequired, "prejoin")
}

func TestSignedInWithZAKJoinsAsTheUser(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Zoom, AuthRequired: true})
	user := sim.ZoomUser{ID: "zu_" + strings.ReplaceAll(drivertest.BotName("u"), " ", ""), DisplayName: "Usher Notetaker"}
	if _, err := env.Sim.PutZoomUser(user); err != nil {
		t.Fatal(err)
	}
	zak, err := env.Sim.MintZoomToken(user.ID, sim.TokenZAK)
	if err != nil {
		t.Fatal(err)
	}
	req := request(m, drivertest.BotName("Zoom"))
	req.Zoom = &driver.ZoomIdentity{ZAK: secret.String(zak)}
	drivertest.Join(t, drivertest.Ctx(t, 30*time.Second), d, req)
	p := env.WaitParticipant(t, m.ID, user.DisplayName, sim.StateInMeeting)
	if p.Identity != user.ID {
		t.Errorf("bot joined as identity %q, want the ZAK's user %q", p.Identity, user.ID)
	}
}

func TestInvalidZAKNeedsLoginAndIsNeverLogged(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	d := New(env.Engine, drivertest.Config(), webjoin.NewMetrics(nil),
		slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Zoom, AuthRequired: true})
	const zak = "expired-zak-0123456789abcdef"
	req := request(m, drivertest.BotName("Zoom"))
	req.Zoom = &driver.ZoomIdentity{ZAK: zak, OnBehalfToken: "obf-0123456789abcdef"}
	before := env.Sim.Stats().ZAKRejections
	_, err := d.Join(drivertest.Ctx(t, 30*time.Second), req, drivertest.NewWatcher())
	drivertest.JoinFailure(t, err, botstate.SubLoginRequired, "prejoin")
	if env.Sim.Stats().ZAKRejections <= before {
		t.Error("the simulator never saw the ZAK (zak_rejections did not grow)")
	}
	for _, s := range []string{zak, "obf-0123456789abcdef"} {
		if strings.Contains(logs.String(), s) || strings.Contains(err.Error(), s) {
			t.Fatalf("a token reached the logs or the error: %s / %v", logs.String(), err)
		}
	}
	if !strings.Contains(logs.String(), "browser join failed") {
		t.Fatalf("the failure was not logged: %s", logs.String())
	}
}

func TestAloneAfterEveryoneLeft(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Zoom, Participants: []string{"Host", "Guest"}})
	name := drivertest.BotName("Zoom")
	req := request(m, name)
	req.AloneTimeout = time.Second
	mt := drivertest.Join(t, drivertest.Ctx(t, 30*time.Second), d, req)
	env.WaitParticipant(t, m.ID, name, sim.StateInMeeting)

	waited := make(chan struct{})
	var end driver.End
	var werr error
	go func() {
		defer close(waited)
		end, werr = drivertest.WaitEnd(t, mt, 20*time.Second)
	}()
	for _, human := range []string{"Host", "Guest"} {
		if _, err := env.Sim.ParticipantLeaves(m.ID, human); err != nil {
			t.Fatal(err)
		}
	}
	<-waited
	if werr != nil || end.Reason != driver.EndAlone {
		t.Fatalf("Wait = %+v, %v; want %s", end, werr, driver.EndAlone)
	}
	if err := mt.Leave(drivertest.Ctx(t, 15*time.Second)); err != nil {
		t.Fatalf("leave when alone: %v", err)
	}
	env.WaitParticipant(t, m.ID, name, sim.StateLeft)
}

func TestWebClientURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		req  driver.JoinRequest
		want string
		pwd  string
	}{
		{"real link goes to app.zoom.us", driver.JoinRequest{MeetingURL: "https://us02web.zoom.us/j/123456789?pwd=abc"}, "https://app.zoom.us/wc/123456789/join?pwd=abc", "abc"},
		{"simulator keeps its prefix", driver.JoinRequest{MeetingURL: "http://127.0.0.1:8090/zoom/j/123456789?pwd=abc", Simulated: true}, "http://127.0.0.1:8090/zoom/wc/123456789/join?pwd=abc", "abc"},
		{"zak and obf appended", driver.JoinRequest{MeetingURL: "https://zoom.us/j/123456789", Zoom: &driver.ZoomIdentity{ZAK: "Z", OnBehalfToken: "O"}}, "https://app.zoom.us/wc/123456789/join?obf=O&zak=Z", ""},
		{"personal link left to the launcher", driver.JoinRequest{MeetingURL: "https://zoom.us/my/acme"}, "https://zoom.us/my/acme", ""},
	} {
		got, pwd, err := WebClientURL(tc.req)
		if err != nil || got != tc.want || pwd != tc.pwd {
			t.Errorf("%s: WebClientURL = %q, %q, %v; want %q, %q", tc.name, got, pwd, err, tc.want, tc.pwd)
		}
	}
	if _, _, err := WebClientURL(driver.JoinRequest{MeetingURL: "::"}); err == nil {
		t.Error("a non-URL was accepted")
	}
}

func TestCancelledInWaitingRoomClosesTheTab(t *testing.T) {
	t.Parallel()
	eng := browser.New(browsertest.Config(1), logging.Discard(), nil)
	if err := eng.Start(drivertest.Ctx(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	d := New(eng, drivertest.Config(), webjoin.NewMetrics(nil), logging.Discard())
	m := env.Meeting(t, sim.MeetingSpec{Platform: sim.Zoom, WaitingRoom: true})
	name := drivertest.BotName("Zoom")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := drivertest.NewWatcher()
	res := drivertest.JoinAsync(t, ctx, d, request(m, name), w)
	w.Await(t)
	cancel() // the lifecycle gives up: leave requested, waiting-room timeout
	r := drivertest.Result(t, res, 10*time.Second)
	if !errors.Is(r.Err, context.Canceled) || r.Meeting != nil {
		t.Fatalf("Join = %v, %v; want context.Canceled and no meeting", r.Meeting, r.Err)
	}
	if p := env.WaitParticipant(t, m.ID, name, sim.StateLeft); p.LeftReason != sim.LeftDisconnected {
		t.Errorf("bot left the waiting room with reason %q, want %q (its tab closed)", p.LeftReason, sim.LeftDisconnected)
	}
	// The only context was given back.
	tab, err := eng.Open(drivertest.Ctx(t, 5*time.Second))
	if err != nil {
		t.Fatalf("open after a cancelled join: %v", err)
	}
	_ = tab.Close()
}
