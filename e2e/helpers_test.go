package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/e2e/fleet"
	"github.com/usherhq/usher/services/simulator/sim"
)

// platforms are the three the drivers serve; most behaviour is checked on each.
var platforms = []string{sim.Zoom, sim.Teams, sim.Meet}

// Bounds of the waits. Joining goes through Chromium on a busy 2-core
// machine, so they are generous; a passing run is far quicker.
const (
	joinTimeout  = 60 * time.Second
	endTimeout   = 40 * time.Second
	testDeadline = 2 * time.Minute
)

// testCtx is the test's context, bounded so a stuck fleet fails the test.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

// uniqueName is a bot or participant name no other test uses, so the
// simulator's participant list can be searched by it.
func uniqueName(prefix string) string {
	return prefix + " " + strings.ToLower(rand.Text()[:6])
}

// newMeeting creates a simulator meeting and ends it when the test is over,
// which sends any bot still in it out and frees its slot for other tests.
func newMeeting(t *testing.T, spec sim.MeetingSpec) sim.Meeting {
	t.Helper()
	m, err := fl.Sim.CreateMeeting(spec)
	if err != nil {
		t.Fatalf("create %s meeting: %v", spec.Platform, err)
	}
	t.Cleanup(func() { _, _ = fl.Sim.End(m.ID) })
	return m
}

// createBot creates a bot through the API as project c.
func createBot(t *testing.T, ctx context.Context, c *fleet.Client, req map[string]any) fleet.Bot {
	t.Helper()
	b, err := c.CreateBot(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitState waits until the bot reaches state, failing the test otherwise.
func waitState(t *testing.T, ctx context.Context, c *fleet.Client, id, state string, timeout time.Duration) fleet.Bot {
	t.Helper()
	b, err := c.WaitState(ctx, id, state, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFinished waits until the bot is ended or failed.
func waitFinished(t *testing.T, ctx context.Context, c *fleet.Client, id string, timeout time.Duration) fleet.Bot {
	t.Helper()
	b, err := c.WaitBot(ctx, id, timeout, func(b fleet.Bot) bool { return b.State == "ended" || b.State == "failed" })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantOutcome checks the bot's final state, sub_code and state history.
func wantOutcome(t *testing.T, b fleet.Bot, state, subCode string, states ...string) {
	t.Helper()
	if b.State != state || b.Sub() != subCode {
		t.Fatalf("bot %s is %s/%s, want %s/%s (events %v)", b.ID, b.State, b.Sub(), state, subCode, describe(b.Events))
	}
	if states != nil && !slices.Equal(b.States(), states) {
		t.Fatalf("bot %s went through %v, want %v", b.ID, describe(b.Events), states)
	}
}

// lastEvent is the bot's newest event.
func lastEvent(t *testing.T, b fleet.Bot) fleet.Event {
	t.Helper()
	if len(b.Events) == 0 {
		t.Fatalf("bot %s has no events", b.ID)
	}
	return b.Events[len(b.Events)-1]
}

// describe renders events as state/sub_code{metadata}, for failure messages.
func describe(evs []fleet.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.NewState
		if e.SubCode != "" {
			out[i] += "/" + e.SubCode
		}
		if len(e.Metadata) > 0 {
			out[i] += " " + fmt.Sprint(e.Metadata)
		}
	}
	return out
}

// waitParticipant waits until the simulator lists the newest participant
// named name in state.
func waitParticipant(t *testing.T, ctx context.Context, meetingID, name, state string) sim.Participant {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	p, err := fl.Sim.WaitParticipant(wctx, meetingID, name, state)
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	return p
}

// leave asks the bot to leave and returns the status and body.
func leave(t *testing.T, ctx context.Context, c *fleet.Client, id string) (int, map[string]any) {
	t.Helper()
	status, body, err := c.Do(ctx, http.MethodPost, "/api/v1/bots/"+id+"/leave", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("leave answered %d with a body that is not a JSON object: %s", status, body)
	}
	return status, out
}

// wantLeaveConflict checks that leaving a finished bot is a clear 409 that
// names its state.
func wantLeaveConflict(t *testing.T, ctx context.Context, c *fleet.Client, b fleet.Bot) {
	t.Helper()
	status, body := leave(t, ctx, c, b.ID)
	if status != http.StatusConflict || body["error"] != "Bot has already ended" || body["state"] != b.State {
		t.Fatalf("leave of a %s bot: %d %v, want 409 {error: Bot has already ended, state: %s}", b.State, status, body, b.State)
	}
}

// wantTypes checks the Attendee event types of the bot's events (the
// mapping ingest documents), and that a sub-code shows as the sub_type.
func wantTypes(t *testing.T, b fleet.Bot, types ...string) {
	t.Helper()
	got := make([]string, len(b.Events))
	for i, e := range b.Events {
		got[i] = e.Type
		if e.SubType != e.SubCode {
			t.Fatalf("event %d of bot %s: sub_type %q, sub_code %q", i+1, b.ID, e.SubType, e.SubCode)
		}
	}
	if !slices.Equal(got, types) {
		t.Fatalf("bot %s event types %v, want %v", b.ID, got, types)
	}
}
