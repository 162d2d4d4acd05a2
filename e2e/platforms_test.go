package e2e

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/usherhq/usher/services/simulator/sim"
)

// TestBotJoinsAndLeavesEachPlatform: HTTP request → worker → Chromium →
// simulator meeting → joined (listed by name in the meeting) → leave → ended.
func TestBotJoinsAndLeavesEachPlatform(t *testing.T) {
	for _, platform := range []string{"zoom", "teams", "meet"} {
		t.Run(platform, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			m, err := fl.Sim.CreateMeeting(sim.MeetingSpec{Platform: platform})
			if err != nil {
				t.Fatal(err)
			}
			name := "Usher " + platform + " bot"
			bot, err := fl.CreateBot(ctx, map[string]any{"meeting_url": m.URL, "bot_name": name, "metadata": map[string]string{"case": platform}})
			if err != nil {
				t.Fatal(err)
			}
			if bot.State != "ready" || len(bot.Events) != 0 {
				t.Fatalf("created bot: state %q events %v, want ready and none", bot.State, bot.Events)
			}
			if _, err := fl.WaitState(ctx, bot.ID, "joined", 60*time.Second); err != nil {
				t.Fatal(err)
			}
			if _, err := fl.Sim.WaitParticipant(ctx, m.ID, name, "in_meeting"); err != nil {
				t.Fatalf("simulator never listed %q in the meeting: %v", name, err)
			}
			status, body, err := fl.Do(ctx, http.MethodPost, "/api/v1/bots/"+bot.ID+"/leave", nil)
			if err != nil || status != http.StatusOK {
				t.Fatalf("leave: %d %s %v", status, body, err)
			}
			ended, err := fl.WaitState(ctx, bot.ID, "ended", 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"joining", "joined", "leaving", "ended"}; !slices.Equal(ended.States(), want) {
				t.Fatalf("states %v, want %v", ended.States(), want)
			}
			if ended.Sub() != "user_requested" {
				t.Fatalf("sub_code %q, want user_requested", ended.Sub())
			}
			if _, err := fl.Sim.WaitParticipant(ctx, m.ID, name, "left"); err != nil {
				t.Fatalf("simulator never saw %q leave: %v", name, err)
			}
			// Leaving a bot that already ended is a clear 409.
			status, body, _ = fl.Do(ctx, http.MethodPost, "/api/v1/bots/"+bot.ID+"/leave", nil)
			if status != http.StatusConflict {
				t.Fatalf("second leave: %d %s, want 409", status, body)
			}
		})
	}
}
