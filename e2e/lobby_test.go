package e2e

import (
	"net/http"
	"testing"

	"github.com/usherhq/usher/e2e/fleet"
	"github.com/usherhq/usher/services/simulator/sim"
)

// TestWaitingRoomThenAdmitted: a bot lobbied by the meeting reports
// waiting_room, the host admits it (simulator), and it reports joined — on
// each platform (Zoom waiting room, Teams lobby, Meet "Ask to join").
func TestWaitingRoomThenAdmitted(t *testing.T) {
	t.Parallel()
	for _, platform := range platforms {
		t.Run(platform, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			c := fl.As(fleet.Project)
			m := newMeeting(t, sim.MeetingSpec{Platform: platform, WaitingRoom: true})
			name := uniqueName("Lobby " + platform)
			bot := createBot(t, ctx, c, map[string]any{"meeting_url": m.URL, "bot_name": name})

			waitState(t, ctx, c, bot.ID, "waiting_room", joinTimeout)
			waitParticipant(t, ctx, m.ID, name, sim.StateWaiting)
			if _, err := fl.Sim.Admit(m.ID, name); err != nil {
				t.Fatalf("admit: %v", err)
			}
			joined := waitState(t, ctx, c, bot.ID, "joined", joinTimeout)
			wantOutcome(t, joined, "joined", "", "joining", "waiting_room", "joined")
			wantTypes(t, joined, "join_requested", "put_in_waiting_room", "joined_meeting")
			if p := waitParticipant(t, ctx, m.ID, name, sim.StateInMeeting); p.Identity != sim.IdentityAnonymous {
				t.Fatalf("participant identity %q, want %q", p.Identity, sim.IdentityAnonymous)
			}
		})
	}
}

// TestDeniedFromWaitingRoom: the host refuses the bot from the waiting room →
// failed/request_to_join_denied, on each platform; leaving it then is a 409.
func TestDeniedFromWaitingRoom(t *testing.T) {
	t.Parallel()
	for _, platform := range platforms {
		t.Run(platform, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			c := fl.As(fleet.Project)
			m := newMeeting(t, sim.MeetingSpec{Platform: platform, WaitingRoom: true})
			name := uniqueName("Denied " + platform)
			bot := createBot(t, ctx, c, map[string]any{"meeting_url": m.URL, "bot_name": name})

			waitState(t, ctx, c, bot.ID, "waiting_room", joinTimeout)
			waitParticipant(t, ctx, m.ID, name, sim.StateWaiting)
			if _, err := fl.Sim.Deny(m.ID, name); err != nil {
				t.Fatalf("deny: %v", err)
			}
			failed := waitFinished(t, ctx, c, bot.ID, endTimeout)
			wantOutcome(t, failed, "failed", "request_to_join_denied", "joining", "waiting_room", "failed")
			wantLeaveConflict(t, ctx, c, failed)
		})
	}
}

// TestWaitingRoomTimeout: nobody admits the bot within
// automatic_leave_settings.waiting_room_timeout_seconds →
// failed/waiting_room_timeout_exceeded, and the bot is no longer waiting.
func TestWaitingRoomTimeout(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(fleet.Project)
	m := newMeeting(t, sim.MeetingSpec{Platform: sim.Zoom, WaitingRoom: true})
	name := uniqueName("Patient")
	bot := createBot(t, ctx, c, map[string]any{
		"meeting_url":              m.URL,
		"bot_name":                 name,
		"automatic_leave_settings": map[string]any{"waiting_room_timeout_seconds": 2},
	})

	waitState(t, ctx, c, bot.ID, "waiting_room", joinTimeout)
	failed := waitFinished(t, ctx, c, bot.ID, endTimeout)
	wantOutcome(t, failed, "failed", "waiting_room_timeout_exceeded", "joining", "waiting_room", "failed")
	// The bot gave up its place: the simulator does not keep it waiting.
	waitParticipant(t, ctx, m.ID, name, sim.StateLeft)
}

// TestLeaveFromWaitingRoom: a leave request while the bot waits in the lobby
// answers 200 with the bot leaving; the bot gives up its place and ends with
// user_requested.
func TestLeaveFromWaitingRoom(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(fleet.Project)
	m := newMeeting(t, sim.MeetingSpec{Platform: sim.Teams, WaitingRoom: true})
	name := uniqueName("Impatient")
	bot := createBot(t, ctx, c, map[string]any{"meeting_url": m.URL, "bot_name": name})
	waitState(t, ctx, c, bot.ID, "waiting_room", joinTimeout)
	waitParticipant(t, ctx, m.ID, name, sim.StateWaiting)

	status, body := leave(t, ctx, c, bot.ID)
	if status != http.StatusOK || body["state"] != "leaving" {
		t.Fatalf("leave from the waiting room: %d %v, want 200 with the bot leaving", status, body)
	}
	ended := waitFinished(t, ctx, c, bot.ID, endTimeout)
	wantOutcome(t, ended, "ended", "user_requested")
	if got := ended.States(); got[len(got)-2] != "leaving" {
		t.Fatalf("states %v, want leaving before ended", describe(ended.Events))
	}
	waitParticipant(t, ctx, m.ID, name, sim.StateLeft)
}

// TestMeetNobodyAnswers: Meet itself gives up on an unanswered request to
// join ("No one responded to your request to join the call") →
// failed/waiting_room_timeout_exceeded, as when Usher's own timer runs out.
func TestMeetNobodyAnswers(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(fleet.Project)
	m := newMeeting(t, sim.MeetingSpec{Platform: sim.Meet, WaitingRoom: true, NoAnswerAfterSeconds: sim.Seconds(2)})
	name := uniqueName("Unanswered")
	bot := createBot(t, ctx, c, map[string]any{"meeting_url": m.URL, "bot_name": name})
	failed := waitFinished(t, ctx, c, bot.ID, joinTimeout)
	wantOutcome(t, failed, "failed", "waiting_room_timeout_exceeded", "joining", "waiting_room", "failed")
	if p := waitParticipant(t, ctx, m.ID, name, sim.StateLeft); p.LeftReason != sim.LeftNoAnswer {
		t.Fatalf("participant left with %q, want %q", p.LeftReason, sim.LeftNoAnswer)
	}
}
