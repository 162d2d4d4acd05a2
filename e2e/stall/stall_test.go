// Package stall checks that a join whose page never shows what the driver
// waits for fails in bounded time, names the step, and gives its bot slot
// and browser context back. It runs a one-slot fleet of its own, so the next
// bot can only join if the stalled one let go.
package stall

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/e2e/fleet"
	"github.com/usherhq/usher/services/simulator/sim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestJoinButtonNeverShows: on each platform, a pre-join page that never
// shows its join button (fault no_join_button) fails the bot after
// USHER_DRIVER_STEP_TIMEOUT with failed/ui_element_not_found and event
// metadata step=prejoin; the bot queued behind it on the worker's only slot
// then joins, with one browser context open (the stalled bot's was closed).
func TestJoinButtonNeverShows(t *testing.T) {
	const stepTimeout = 3 * time.Second
	f := fleet.StartTest(t, fleet.Options{Slots: 1, Env: map[string]string{
		"USHER_DRIVER_STEP_TIMEOUT": stepTimeout.String(),
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := f.As(fleet.Project)

	for _, platform := range []string{sim.Zoom, sim.Teams, sim.Meet} {
		stuck, err := f.Sim.CreateMeeting(sim.MeetingSpec{Platform: platform, Fault: sim.FaultNoJoinButton})
		if err != nil {
			t.Fatal(err)
		}
		ok, err := f.Sim.CreateMeeting(sim.MeetingSpec{Platform: platform})
		if err != nil {
			t.Fatal(err)
		}
		stalled, err := c.CreateBot(ctx, map[string]any{"meeting_url": stuck.URL, "bot_name": "Stalled " + platform})
		if err != nil {
			t.Fatal(err)
		}
		next, err := c.CreateBot(ctx, map[string]any{"meeting_url": ok.URL, "bot_name": "Next " + platform})
		if err != nil {
			t.Fatal(err)
		}

		failed, err := c.WaitBot(ctx, stalled.ID, 30*time.Second, func(b fleet.Bot) bool { return b.State == "failed" || b.State == "ended" })
		if err != nil {
			t.Fatal(err)
		}
		if failed.State != "failed" || failed.Sub() != "ui_element_not_found" {
			t.Fatalf("%s: stalled bot %s/%s, want failed/ui_element_not_found", platform, failed.State, failed.Sub())
		}
		last := failed.Events[len(failed.Events)-1]
		if last.Metadata["step"] != "prejoin" {
			t.Fatalf("%s: failed event metadata %v, want step prejoin", platform, last.Metadata)
		}

		if _, err := c.WaitState(ctx, next.ID, "joined", 60*time.Second); err != nil {
			t.Fatalf("%s: the bot after the stalled one never joined (slot not freed?): %v", platform, err)
		}
		if _, err := f.Sim.WaitParticipant(ctx, ok.ID, "Next "+platform, sim.StateInMeeting); err != nil {
			t.Fatal(err)
		}
		text, err := f.Workers()[0].Scrape()
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := fleet.MetricValue(text, "usher_worker_browser_contexts_open"); !ok || v != 1 {
			t.Fatalf("%s: %v browser contexts open with one bot in a meeting (found %v), want 1", platform, v, ok)
		}
		status, body, err := c.Do(ctx, http.MethodPost, "/api/v1/bots/"+next.ID+"/leave", nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("leave: %d %s %v", status, body, err)
		}
		if _, err := c.WaitState(ctx, next.ID, "ended", 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}
