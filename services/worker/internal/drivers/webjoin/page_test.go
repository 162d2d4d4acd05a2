package webjoin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/logging"
)

// fixture is a page whose states the tests switch by clicking.
const fixture = `<!DOCTYPE html><html><body>
<template id="t"><p>Hidden in a template: You have been removed</p></template>
<p style="display:none">Hidden: This meeting link is invalid</p>
<p id="typo">You’ve been removed from this meeting</p>
<span class="count">11</span>
<div class="tile"></div><div class="tile"></div>
<button id="off" disabled>Join</button>
<button id="on" onclick="this.textContent='clicked'; document.getElementById('log').textContent += 'c';">Join now</button>
<div id="log"></div>
<input id="name" value="old">
<div id="lobby"></div>
<script>
let n = 0;
document.getElementById('name').addEventListener('input', (e) => { document.getElementById('log').dataset.typed = e.target.value; });
function lobby(text) { document.getElementById('lobby').textContent = text; }
</script>
</body></html>`

func openFixture(t *testing.T) *Page {
	t.Helper()
	return openHTML(t, fixture)
}

// openHTML serves html and opens it in a tab of the package's browser.
func openHTML(t *testing.T, html string) *Page {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(html))
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	tab, err := engine.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tab.Close() })
	p := NewPage(tab, Config{StepTimeout: 2 * time.Second, PollInterval: 50 * time.Millisecond, LeaveTimeout: time.Second}, logging.Discard())
	if err := p.Navigate(ctx, "open", srv.URL); err != nil {
		t.Fatal(err)
	}
	return p
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestObserveMatchesOnlyWhatAUserSees(t *testing.T) {
	t.Parallel()
	p := openFixture(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name string
		hook Hook
		want bool
	}{
		{"template content is not on the page", Hook{State: StateRemoved, Text: []string{"Hidden in a template"}}, false},
		{"hidden text is not on the page", Hook{State: StateNotFound, Text: []string{"This meeting link is invalid"}}, false},
		{"typographic apostrophe matches '", Hook{State: StateRemoved, Selector: "#typo", Text: []string{"You've been removed"}}, true},
		{"exact text", Hook{State: StateAlone, Selector: ".count", Text: []string{"1"}, Exact: true}, false},
		{"substring text", Hook{State: StateAlone, Selector: ".count", Text: []string{"1"}}, true},
		{"count equal", Hook{State: StateInMeeting, Selector: ".tile", Count: 2}, true},
		{"count different", Hook{State: StateAlone, Selector: ".tile", Count: 1}, false},
		{"disabled button is not enabled", Hook{State: StatePrejoin, Selector: "#off", Enabled: true}, false},
		{"enabled button", Hook{State: StatePrejoin, Selector: "button", Text: []string{"Join now"}, Enabled: true}, true},
		{"other host", Hook{State: StateLoginRequired, Hosts: []string{"login.microsoftonline.com"}}, false},
		{"own host", Hook{State: StateLoginRequired, Hosts: []string{"127.0.0.1"}}, true},
	} {
		got, err := p.Has(ctx, tc.hook)
		if err != nil || got != tc.want {
			t.Errorf("%s: Has = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

func TestObserveTakesTheFirstHookInOrder(t *testing.T) {
	t.Parallel()
	p := openFixture(t)
	m, err := p.Observe(testCtx(t), []Hook{
		{State: StateNotFound, Text: []string{"not on the page"}},
		{State: StateRemoved, Selector: "#typo"},
		{State: StatePrejoin, Selector: "button"},
	})
	if err != nil || m.State != StateRemoved || m.Hook != 1 {
		t.Fatalf("Observe = %+v, %v; want the removed hook", m, err)
	}
	if err := m.JoinErr("admission"); err == nil {
		t.Fatal("a removed page is not a join failure")
	} else {
		var je *driver.JoinError
		if !errors.As(err, &je) || je.SubCode != botstate.SubRequestToJoinDenied || je.Step != "admission" {
			t.Fatalf("JoinErr = %v, want request_to_join_denied at admission", err)
		}
	}
}

func TestAwaitStallsWithTheStepNamed(t *testing.T) {
	t.Parallel()
	p := openFixture(t)
	_, err := p.Await(testCtx(t), "prejoin", []Hook{{State: StatePrejoin, Selector: "#never"}})
	var je *driver.JoinError
	if !errors.As(err, &je) || je.SubCode != botstate.SubUIElementNotFound || je.Step != "prejoin" || !errors.Is(err, ErrStalled) {
		t.Fatalf("Await = %v, want ui_element_not_found at prejoin", err)
	}
}

func TestAwaitReturnsTheCallersCancellation(t *testing.T) {
	t.Parallel()
	p := openFixture(t)
	ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	_, err := p.Await(ctx, "admission", []Hook{{State: StateInMeeting, Selector: "#never"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Await = %v, want the context's error", err)
	}
	var je *driver.JoinError
	if errors.As(err, &je) {
		t.Fatalf("a cancelled wait became a join failure: %v", err)
	}
}

func TestReachFailsWithWhatThePageAnnounces(t *testing.T) {
	t.Parallel()
	p := openFixture(t)
	ctx := testCtx(t)
	err := p.Reach(ctx, "prejoin", []Hook{{State: StateRemoved, Selector: "#typo"}, {State: StatePrejoin, Selector: "button"}})
	var je *driver.JoinError
	if !errors.As(err, &je) || je.SubCode != botstate.SubRequestToJoinDenied || je.Step != "prejoin" {
		t.Fatalf("Reach on a removed page = %v, want request_to_join_denied at prejoin", err)
	}
	if err := p.Reach(ctx, "prejoin", []Hook{{State: StatePrejoin, Selector: "button"}}); err != nil {
		t.Fatalf("Reach on a pre-join page = %v, want nil", err)
	}
}

func TestClickHooksAreClickedOnceThenWaitingGoesOn(t *testing.T) {
	t.Parallel()
	p := openFixture(t)
	ctx := testCtx(t)
	m, err := p.Await(ctx, "launcher", []Hook{
		{State: StatePrompt, Selector: "#on", Text: []string{"Join now"}, Click: true},
		{State: StatePrejoin, Selector: "#on", Text: []string{"clicked"}},
	})
	if err != nil || m.State != StatePrejoin {
		t.Fatalf("Await = %+v, %v; want prejoin after the click", m, err)
	}
	if ok, _ := p.Has(ctx, Hook{State: StatePrompt, Selector: "#log", Text: []string{"c"}, Exact: true}); !ok {
		t.Fatal("the click hook was not clicked exactly once")
	}
}

func TestTypeReplacesTheInputsText(t *testing.T) {
	t.Parallel()
	p := openFixture(t)
	ctx := testCtx(t)
	if err := p.Type(ctx, "name", Hook{State: StatePrejoin, Selector: "#name"}, "Usher Bot"); err != nil {
		t.Fatal(err)
	}
	res, err := p.Tab().Page().Context(ctx).Eval(`() => [document.getElementById('name').value, document.getElementById('log').dataset.typed]`)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Value.Arr(); len(got) != 2 || got[0].Str() != "Usher Bot" || got[1].Str() != "Usher Bot" {
		t.Fatalf("input value and input event = %v, want the new name in both", got)
	}
}

func TestAdmitCallsWaitingRoomOncePerEntry(t *testing.T) {
	t.Parallel()
	p := openFixture(t)
	ctx := testCtx(t)
	calls := 0
	hooks := []Hook{
		{State: StateWaitingRoom, Selector: "#lobby", Text: []string{"waiting"}},
		{State: StatePrejoin, Selector: "#lobby", Text: []string{"back"}},
		{State: StateInMeeting, Selector: "#lobby", Text: []string{"in"}, Exact: true},
	}
	// The page moves through the states on its own, like a meeting page does:
	// lobby, back to the pre-join page, lobby again, in.
	if _, err := p.Tab().Page().Context(ctx).Eval(`() => {
	  ["waiting", "back", "waiting", "in"].forEach((t, i) => setTimeout(() => lobby(t), 500 * i));
	}`); err != nil {
		t.Fatal(err)
	}
	w := driver.WatcherFunc(func(context.Context) { calls++ })
	done := make(chan error, 1)
	go func() { done <- p.Admit(ctx, "admission", w, hooks) }()
	if err := <-done; err != nil {
		t.Fatalf("Admit = %v", err)
	}
	if calls != 2 {
		t.Fatalf("WaitingRoom called %d times, want 2 (two entries into the lobby)", calls)
	}
}

func TestConfigValidateNamesTheVariable(t *testing.T) {
	t.Parallel()
	good := Config{StepTimeout: time.Second, PollInterval: 100 * time.Millisecond, LeaveTimeout: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.StepTimeout = 0 }, "USHER_DRIVER_STEP_TIMEOUT"},
		{func(c *Config) { c.PollInterval = 2 * time.Second }, "USHER_DRIVER_POLL_INTERVAL"},
		{func(c *Config) { c.LeaveTimeout = -1 }, "USHER_DRIVER_LEAVE_TIMEOUT"},
	} {
		c := good
		tc.mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", c, err, tc.want)
		}
	}
}

func TestJoinErrMapsPageStatesToSubCodes(t *testing.T) {
	t.Parallel()
	for state, want := range map[State]string{
		StateNotFound:      botstate.SubMeetingNotFound,
		StateLoginRequired: botstate.SubLoginRequired,
		StateTokenRejected: botstate.SubLoginRequired,
		StateDenied:        botstate.SubRequestToJoinDenied,
		StateRemoved:       botstate.SubRequestToJoinDenied,
		StateEnded:         botstate.SubMeetingEndedBeforeJoin,
		StateNoAnswer:      botstate.SubWaitingRoomTimeout,
		StateCaptcha:       botstate.SubBlockedByCaptcha,
	} {
		err := Match{State: state, Detail: "x"}.JoinErr("step")
		var je *driver.JoinError
		if !errors.As(err, &je) || je.SubCode != want || je.Step != "step" || !errors.Is(err, ErrPageRefused) {
			t.Errorf("%s: JoinErr = %v, want %s at step", state, err, want)
		}
		if !botstate.KnownSubCode(je.SubCode) {
			t.Errorf("%s maps to %q, not a public sub-code", state, je.SubCode)
		}
	}
	blocked := Match{State: StateBlocked, Detail: "x"}.JoinErr("prejoin")
	var je *driver.JoinError
	if !errors.Is(blocked, ErrBlocked) || errors.As(blocked, &je) {
		t.Errorf("blocked = %v, want a retryable ErrBlocked, not a JoinError", blocked)
	}
	for _, s := range []State{StateNone, StatePrejoin, StateWaitingRoom, StateInMeeting, StateAlone, StateLeft, StatePrompt} {
		if err := (Match{State: s}).JoinErr("step"); err != nil {
			t.Errorf("%q is not a failure, JoinErr = %v", s, err)
		}
	}
}
