// Package pagelost checks what happens to a bot whose meeting page stops
// showing the meeting without saying why (the platform forgot the bot's
// session, the page fell over). It runs a fleet of its own because it makes
// the simulator misbehave for every page.
package pagelost

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/e2e/fleet"
	"github.com/usherhq/usher/services/simulator/sim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestMeetingPageLostRejoins: the meeting page of a joined bot swaps to an
// error view (the platform no longer knows its participant) and stays so for
// longer than USHER_DRIVER_STEP_TIMEOUT. docs/design.md: the driver returns
// ErrPageLost, "treated like a crash" — the bot rejoins once: it goes back to
// joining, then joined, and the simulator lists it in the meeting again.
func TestMeetingPageLostRejoins(t *testing.T) {
	const stepTimeout = 3 * time.Second
	f := fleet.StartTest(t, fleet.Options{Slots: 1, Env: map[string]string{
		"USHER_DRIVER_STEP_TIMEOUT": stepTimeout.String(),
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := f.As(fleet.Project)
	m, err := f.Sim.CreateMeeting(sim.MeetingSpec{Platform: sim.Zoom})
	if err != nil {
		t.Fatal(err)
	}
	const name = "Steadfast"
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

	// The page's status polls answer 404 (the page shows its error view)
	// until the worker does something about it: it leaves, closes the page,
	// or opens a new one.
	var lost atomic.Bool
	lost.Store(true)
	f.InterceptSim(func(w http.ResponseWriter, r *http.Request) bool {
		if !lost.Load() {
			return false
		}
		if strings.HasPrefix(r.URL.Path, "/sim/api/participants/") && r.Method == http.MethodGet {
			http.Error(w, `{"error":"unknown participant"}`, http.StatusNotFound)
			return true
		}
		lost.Store(false) // anything else: the worker reacted
		return false
	})
	t.Cleanup(func() { f.InterceptSim(nil) })

	got, err := c.WaitBot(ctx, bot.ID, 60*time.Second, func(b fleet.Bot) bool {
		return len(b.Events) >= 4 || b.State == "failed" || b.State == "ended"
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"joining", "joined", "joining", "joined"}; !slices.Equal(got.States(), want) {
		t.Fatalf("after its page lost the meeting the bot went through %v, want %v", eventsOf(got), want)
	}
	if _, err := f.Sim.WaitParticipant(ctx, m.ID, name, sim.StateInMeeting); err != nil {
		t.Fatal(err)
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
