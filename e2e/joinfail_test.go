package e2e

import (
	"strings"
	"testing"

	"github.com/usherhq/usher/e2e/fleet"
	"github.com/usherhq/usher/services/simulator/sim"
)

// unknownMeetingURL is a well-formed link of platform that leads to no
// meeting: a real meeting's link with another id of the same shape.
func unknownMeetingURL(t *testing.T, platform string) string {
	t.Helper()
	m := newMeeting(t, sim.MeetingSpec{Platform: platform})
	other := []rune(m.ID)
	for i, r := range other {
		switch {
		case r >= '0' && r <= '8', r >= 'a' && r <= 'y', r >= 'A' && r <= 'Y':
			other[i] = r + 1
		case r == '9':
			other[i] = '1'
		case r == 'z':
			other[i] = 'a'
		case r == 'Z':
			other[i] = 'A'
		}
	}
	id := string(other)
	if _, err := fl.Sim.Meeting(id); err == nil {
		t.Fatalf("meeting %s exists", id)
	}
	return strings.Replace(m.URL, m.ID, id, 1)
}

// TestMeetingNotFound: a link to a meeting that does not exist →
// failed/meeting_not_found, on each platform.
func TestMeetingNotFound(t *testing.T) {
	t.Parallel()
	for _, platform := range platforms {
		t.Run(platform, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			c := fl.As(fleet.Project)
			bot := createBot(t, ctx, c, map[string]any{"meeting_url": unknownMeetingURL(t, platform), "bot_name": uniqueName("Lost")})
			failed := waitFinished(t, ctx, c, bot.ID, joinTimeout)
			wantOutcome(t, failed, "failed", "meeting_not_found", "joining", "failed")
			wantTypes(t, failed, "join_requested", "could_not_join_meeting")
			wantLeaveConflict(t, ctx, c, failed)
		})
	}
}

// TestMeetingEndsWhileJoining: the meeting ends as the bot clicks join
// (fault end_while_joining) → failed/meeting_ended_before_join, on each
// platform.
func TestMeetingEndsWhileJoining(t *testing.T) {
	t.Parallel()
	for _, platform := range platforms {
		t.Run(platform, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			c := fl.As(fleet.Project)
			m := newMeeting(t, sim.MeetingSpec{Platform: platform, Fault: sim.FaultEndWhileJoining})
			name := uniqueName("Late")
			bot := createBot(t, ctx, c, map[string]any{"meeting_url": m.URL, "bot_name": name})
			failed := waitFinished(t, ctx, c, bot.ID, joinTimeout)
			wantOutcome(t, failed, "failed", "meeting_ended_before_join", "joining", "failed")
			// The bot did click join: the simulator saw it, and the meeting is over.
			p := waitParticipant(t, ctx, m.ID, name, sim.StateLeft)
			if p.LeftReason != sim.LeftMeetingEnded {
				t.Fatalf("participant left with %q, want %q", p.LeftReason, sim.LeftMeetingEnded)
			}
		})
	}
}

// TestAuthenticatedOnlyZoomWithoutIdentity: an "authenticated users only"
// Zoom meeting refuses a bot without zoom_tokens_url → failed/login_required,
// and the simulator never lets it in.
func TestAuthenticatedOnlyZoomWithoutIdentity(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(fleet.Project)
	m := newMeeting(t, sim.MeetingSpec{Platform: sim.Zoom, AuthRequired: true})
	bot := createBot(t, ctx, c, map[string]any{"meeting_url": m.URL, "bot_name": uniqueName("Guest")})
	failed := waitFinished(t, ctx, c, bot.ID, joinTimeout)
	wantOutcome(t, failed, "failed", "login_required", "joining", "failed")
	wantOnlyHumans(t, m.ID)
}

// wantOnlyHumans checks that no bot ever got into (or waited for) the meeting.
func wantOnlyHumans(t *testing.T, meetingID string) {
	t.Helper()
	mt, err := fl.Sim.Meeting(meetingID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range mt.Participants {
		if !p.Human {
			t.Fatalf("the simulator let %q (%s) into meeting %s: %s", p.Name, p.Identity, meetingID, p.State)
		}
	}
}

// TestOrgOnlyTeamsWithoutLogin: an org-only Teams meeting refuses an
// anonymous bot → failed/login_required.
func TestOrgOnlyTeamsWithoutLogin(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(fleet.Project)
	m := newMeeting(t, sim.MeetingSpec{Platform: sim.Teams, AuthRequired: true})
	bot := createBot(t, ctx, c, map[string]any{"meeting_url": m.URL, "bot_name": uniqueName("Outsider")})
	failed := waitFinished(t, ctx, c, bot.ID, joinTimeout)
	wantOutcome(t, failed, "failed", "login_required", "joining", "failed")
	wantOnlyHumans(t, m.ID)
}
