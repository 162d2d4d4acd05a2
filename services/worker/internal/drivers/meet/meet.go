// Package meet drives Google Meet anonymously (signed-in Meet is not
// supported yet): name, microphone and camera off, "Ask to join" or "Join
// now", waiting to be let in, the call. Hooks: docs/simulator-pages.md
// § Google Meet and ../shared/PLATFORMS.md § 4.
package meet

import (
	"context"
	"log/slog"

	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/drivers/webjoin"
)

// Name is the platform's metric label.
const Name = "meet"

// New returns the Google Meet driver.
func New(opener webjoin.Opener, cfg webjoin.Config, m *webjoin.Metrics, log *slog.Logger) *webjoin.Driver {
	return webjoin.NewDriver(opener, cfg, m, log, webjoin.Platform{
		Name:      Name,
		Join:      join,
		InMeeting: inMeetingHooks(),
		Leave:     leave,
	})
}

// Selectors.
const (
	selName      = "input[type=\"text\"][aria-label=\"Your name\"]"
	selEndBanner = ".roSPhc"
	selTile      = "[data-participant-id]"
	selSelfTile  = "[data-self-name]"
	selLeave     = "button[aria-label=\"Leave call\"]"
)

// joinTexts are the join button's texts, with and without a waiting room.
func joinTexts() []string {
	return []string{"Ask to join", "Join now", "Join the call now", "Join anyway", "Join here too"}
}

func failureHooks() []webjoin.Hook {
	return []webjoin.Hook{
		{State: webjoin.StateLoginRequired, Hosts: []string{"accounts.google.com"}},
		{State: webjoin.StateNotFound, Text: []string{
			"Check your meeting code", "Invalid video call name", "Your meeting code has expired",
			"The meeting code you entered doesn't work",
		}},
		{State: webjoin.StateDenied, Text: []string{
			"Someone in the call denied your request to join", "Your request to join was denied",
		}},
		{State: webjoin.StateNoAnswer, Text: []string{"No one responded to your request to join the call"}},
		{State: webjoin.StateRemoved, Selector: selEndBanner, Text: []string{"You've been removed from the meeting"}},
		{State: webjoin.StateEnded, Selector: selEndBanner, Text: []string{"Your host ended the meeting for everyone"}},
		{State: webjoin.StateBlocked, Text: []string{"You can't join this video call", "There is a problem connecting to this video call"}},
	}
}

func prejoinHooks() []webjoin.Hook {
	return append(failureHooks(),
		webjoin.Hook{State: webjoin.StatePrompt, Selector: "button", Text: []string{"Continue without microphone and camera"}, Click: true},
		webjoin.Hook{State: webjoin.StatePrejoin, Selector: "button", Text: joinTexts()},
	)
}

func admissionHooks() []webjoin.Hook {
	return append(failureHooks(),
		webjoin.Hook{State: webjoin.StateWaitingRoom, Text: []string{
			"Asking to be let in",
			"You'll join the call when someone lets you in",
			"Please wait until a meeting host brings you into the call",
			"Waiting for the host to let you in",
		}},
		// The tiles, not "Leave call": the lobby has a Leave call button too.
		webjoin.Hook{State: webjoin.StateInMeeting, Selector: selSelfTile},
		webjoin.Hook{State: webjoin.StateInMeeting, Selector: selTile},
	)
}

func inMeetingHooks() []webjoin.Hook {
	return []webjoin.Hook{
		{State: webjoin.StateEnded, Selector: selEndBanner, Text: []string{"Your host ended the meeting for everyone"}},
		{State: webjoin.StateRemoved, Selector: selEndBanner, Text: []string{"You've been removed from the meeting"}},
		{State: webjoin.StateLeft, Text: []string{"You left the meeting"}},
		{State: webjoin.StateAlone, Selector: selTile, Count: 1},
		{State: webjoin.StateInMeeting, Selector: selTile},
	}
}

// join is the state machine: loading → prejoin → (asking to be let in) → in_meeting.
func join(ctx context.Context, p *webjoin.Page, req driver.JoinRequest, w driver.Watcher) error {
	if err := p.Navigate(ctx, "open", req.MeetingURL); err != nil {
		return err
	}
	if err := p.Reach(ctx, "prejoin", prejoinHooks()); err != nil {
		return err
	}

	name := webjoin.Hook{State: webjoin.StatePrejoin, Selector: selName}
	if ok, _ := p.Has(ctx, name); ok {
		if err := p.Type(ctx, "name", name, req.BotName); err != nil {
			return err
		}
	}
	return p.Enter(ctx, w, entry())
}

// entry is Meet's way in: the pre-join page's device toggles, "Ask to join"
// or "Join now", asking to be let in, and the call's toggles, which Meet may
// turn back on.
func entry() webjoin.Entry {
	return webjoin.Entry{
		Microphone:     webjoin.NewToggle("[aria-label=\"Turn off microphone\"]", "[aria-label=\"Turn on microphone\"]"),
		Camera:         webjoin.NewToggle("[aria-label=\"Turn off camera\"]", "[aria-label=\"Turn on camera\"]"),
		Join:           webjoin.Hook{State: webjoin.StatePrejoin, Selector: "button", Text: joinTexts(), Enabled: true},
		Admission:      admissionHooks(),
		CallMicrophone: webjoin.NewToggle("button[aria-label=\"Turn off microphone\"]", "button[aria-label=\"Turn on microphone\"]"),
		CallCamera:     webjoin.NewToggle("button[aria-label=\"Turn off camera\"]", "button[aria-label=\"Turn on camera\"]"),
	}
}

// leave clicks "Leave call" and waits for the page that says the bot left.
func leave(ctx context.Context, p *webjoin.Page) error {
	if err := p.Click(ctx, "leave", webjoin.Hook{State: webjoin.StateInMeeting, Selector: selLeave}); err != nil {
		return err
	}
	_, err := p.Await(ctx, "leave", []webjoin.Hook{
		{State: webjoin.StateLeft, Text: []string{"You left the meeting"}},
		{State: webjoin.StateEnded, Selector: selEndBanner, Text: []string{"Your host ended the meeting for everyone"}},
		{State: webjoin.StateRemoved, Selector: selEndBanner, Text: []string{"You've been removed from the meeting"}},
	})
	return err
}
