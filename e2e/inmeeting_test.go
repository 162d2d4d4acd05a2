package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/usherhq/usher/e2e/fleet"
	"github.com/usherhq/usher/services/simulator/sim"
)

// joinedBot creates a meeting of platform with the given human participants
// and a bot in it, and waits until the bot is joined and listed in the
// meeting. extra is merged into the create request.
func joinedBot(t *testing.T, ctx context.Context, platform string, humans []string, extra map[string]any) (sim.Meeting, fleet.Bot, string) {
	t.Helper()
	c := fl.As(fleet.Project)
	m := newMeeting(t, sim.MeetingSpec{Platform: platform, Participants: humans})
	name := uniqueName("Attendee " + platform)
	req := map[string]any{"meeting_url": m.URL, "bot_name": name}
	for k, v := range extra {
		req[k] = v
	}
	bot := createBot(t, ctx, c, req)
	waitState(t, ctx, c, bot.ID, "joined", joinTimeout)
	waitParticipant(t, ctx, m.ID, name, sim.StateInMeeting)
	return m, bot, name
}

// TestHostEndsMeeting: the host ends the meeting with the bot in it →
// ended/meeting_ended (no leaving step: there is nothing to leave), on each
// platform; a leave afterwards is a 409.
func TestHostEndsMeeting(t *testing.T) {
	t.Parallel()
	for _, platform := range platforms {
		t.Run(platform, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			c := fl.As(fleet.Project)
			m, bot, name := joinedBot(t, ctx, platform, nil, nil)
			if _, err := fl.Sim.End(m.ID); err != nil {
				t.Fatal(err)
			}
			ended := waitFinished(t, ctx, c, bot.ID, endTimeout)
			wantOutcome(t, ended, "ended", "meeting_ended", "joining", "joined", "ended")
			wantTypes(t, ended, "join_requested", "joined_meeting", "meeting_ended")
			if p := waitParticipant(t, ctx, m.ID, name, sim.StateLeft); p.LeftReason != sim.LeftMeetingEnded {
				t.Fatalf("participant left with %q, want %q", p.LeftReason, sim.LeftMeetingEnded)
			}
			wantLeaveConflict(t, ctx, c, ended)
		})
	}
}

// TestRemovedFromMeeting: the host removes the bot → ended/removed_from_meeting,
// on each platform.
func TestRemovedFromMeeting(t *testing.T) {
	t.Parallel()
	for _, platform := range platforms {
		t.Run(platform, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			c := fl.As(fleet.Project)
			m, bot, name := joinedBot(t, ctx, platform, nil, nil)
			if _, err := fl.Sim.Remove(m.ID, name); err != nil {
				t.Fatal(err)
			}
			ended := waitFinished(t, ctx, c, bot.ID, endTimeout)
			wantOutcome(t, ended, "ended", "removed_from_meeting", "joining", "joined", "ended")
			waitParticipant(t, ctx, m.ID, name, sim.StateRemoved)
			// The meeting goes on without the bot.
			if mt, err := fl.Sim.Meeting(m.ID); err != nil || mt.State != sim.MeetingOpen {
				t.Fatalf("meeting after the removal: %+v %v, want open", mt.State, err)
			}
		})
	}
}

// TestEveryoneElseLeaves: once every other participant has left, the bot
// waits only_participant_in_meeting_timeout_seconds, then leaves:
// leaving/auto_leave_only_participant_in_meeting → ended — on each platform.
func TestEveryoneElseLeaves(t *testing.T) {
	t.Parallel()
	for _, platform := range platforms {
		t.Run(platform, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			c := fl.As(fleet.Project)
			m, bot, name := joinedBot(t, ctx, platform, []string{"Host", "Guest"}, map[string]any{
				"automatic_leave_settings": map[string]any{"only_participant_in_meeting_timeout_seconds": 1},
			})
			// One human leaving is not enough: the bot is not alone. Give it
			// three of its alone timeouts to (wrongly) leave.
			if _, err := fl.Sim.ParticipantLeaves(m.ID, "Guest"); err != nil {
				t.Fatal(err)
			}
			if b, err := c.WaitBot(ctx, bot.ID, 3*time.Second, func(b fleet.Bot) bool { return b.State != "joined" }); err == nil {
				t.Fatalf("bot left with the host still in the meeting: %v", describe(b.Events))
			}
			if _, err := fl.Sim.ParticipantLeaves(m.ID, "Host"); err != nil {
				t.Fatal(err)
			}
			ended := waitFinished(t, ctx, c, bot.ID, endTimeout)
			wantOutcome(t, ended, "ended", "auto_leave_only_participant_in_meeting", "joining", "joined", "leaving", "ended")
			wantTypes(t, ended, "join_requested", "joined_meeting", "leave_requested", "left_meeting")
			if ev := ended.Events[2]; ev.SubCode != "auto_leave_only_participant_in_meeting" {
				t.Fatalf("leaving event sub_code %q, want auto_leave_only_participant_in_meeting", ev.SubCode)
			}
			// The bot left the way a person does (not a dropped connection).
			if p := waitParticipant(t, ctx, m.ID, name, sim.StateLeft); p.LeftReason != sim.LeftSelf {
				t.Fatalf("participant left with %q, want %q", p.LeftReason, sim.LeftSelf)
			}
		})
	}
}

// TestMaxDuration: a bot reaching automatic_leave_settings.max_duration_seconds
// leaves: leaving/auto_leave_max_duration_exceeded → ended, and the simulator
// sees it leave.
func TestMaxDuration(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(fleet.Project)
	m, bot, name := joinedBot(t, ctx, sim.Meet, nil, map[string]any{
		"automatic_leave_settings": map[string]any{"max_duration_seconds": 3},
	})
	ended := waitFinished(t, ctx, c, bot.ID, endTimeout)
	wantOutcome(t, ended, "ended", "auto_leave_max_duration_exceeded", "joining", "joined", "leaving", "ended")
	if ev := ended.Events[2]; ev.SubCode != "auto_leave_max_duration_exceeded" {
		t.Fatalf("leaving event sub_code %q, want auto_leave_max_duration_exceeded", ev.SubCode)
	}
	if p := waitParticipant(t, ctx, m.ID, name, sim.StateLeft); p.LeftReason != sim.LeftSelf {
		t.Fatalf("participant left with %q, want %q", p.LeftReason, sim.LeftSelf)
	}
}
