// Package handoff stops a worker that has a bot in a meeting and checks that
// another worker takes the bot over. It runs a fleet of its own (two
// workers, one stopped under the test).
package handoff

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/e2e/fleet"
	"github.com/usherhq/usher/services/simulator/sim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestWorkerStopHandsBotOff: a worker told to stop (SIGTERM) while its bot
// is in a meeting gives the bot USHER_WORKER_DRAIN_TIMEOUT, then leaves the
// meeting and hands the bot off: the bot goes joined → joining (metadata
// reason worker_shutdown) → joined on the other worker, and the simulator
// sees it leave and come back.
func TestWorkerStopHandsBotOff(t *testing.T) {
	f := fleet.StartTest(t, fleet.Options{Slots: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := f.As(fleet.Project)
	m, err := f.Sim.CreateMeeting(sim.MeetingSpec{Platform: sim.Meet})
	if err != nil {
		t.Fatal(err)
	}
	const name = "Relay"
	bot, err := c.CreateBot(ctx, map[string]any{"meeting_url": m.URL, "bot_name": name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitState(ctx, bot.ID, "joined", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Sim.WaitParticipant(ctx, m.ID, name, sim.StateInMeeting); err != nil {
		t.Fatal(err)
	}

	if _, err := f.StartWorker(); err != nil {
		t.Fatal(err)
	}
	if err := f.Workers()[0].Stop(); err != nil {
		t.Fatalf("stop the first worker: %v", err)
	}
	got, err := c.WaitBot(ctx, bot.ID, 60*time.Second, func(b fleet.Bot) bool {
		return len(b.Events) >= 4 || b.State == "failed" || b.State == "ended"
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"joining", "joined", "joining", "joined"}; !slices.Equal(got.States(), want) {
		t.Fatalf("bot went through %v, want %v", eventsOf(got), want)
	}
	if reason := got.Events[2].Metadata["reason"]; reason != "worker_shutdown" {
		t.Fatalf("hand-off event %v, want reason worker_shutdown", eventsOf(got)[2])
	}
	mt, err := f.Sim.Meeting(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	var entries []sim.Participant
	for _, p := range mt.Participants {
		if p.Name == name {
			entries = append(entries, p)
		}
	}
	if len(entries) != 2 || entries[0].State != sim.StateLeft || entries[0].LeftReason != sim.LeftSelf || entries[1].State != sim.StateInMeeting {
		t.Fatalf("simulator entries for the bot: %+v, want it to have left, then be in the meeting again", entries)
	}
}

// eventsOf renders a bot's events as state/sub_code {metadata}.
func eventsOf(b fleet.Bot) []string {
	out := make([]string, len(b.Events))
	for i, e := range b.Events {
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
