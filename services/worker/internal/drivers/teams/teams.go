// Package teams drives Microsoft Teams' web join: the meeting link's
// launcher ("Continue on this browser"), the pre-join page (name unless
// signed in, microphone and camera off, Join now), the lobby, the meeting.
// A signed-in join pre-sets the session's cookies in the bot's own tab; a
// bounce to the Microsoft login page means the session is missing or stale
// (login_required: the Teams session code logs in again and retries).
// Hooks: docs/simulator-pages.md § Teams and ../shared/PLATFORMS.md § 2.
package teams

import (
	"context"
	"errors"
	"log/slog"

	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/drivers/webjoin"
	"github.com/usherhq/usher/shared/botstate"
)

// Name is the platform's metric label.
const Name = "teams"

// New returns the Teams web driver.
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
	selNameInput  = "[data-tid=\"prejoin-display-name-input\"]"
	selJoin       = "[data-tid=\"prejoin-join-button\"]"
	selMic        = "[data-tid=\"toggle-mute\"]"
	selCamera     = "[data-tid=\"toggle-video\"]"
	selRetryTitle = "#calling-retry-screen-title"
	selInMeeting  = "#hangup-button, #callingButtons-showMoreBtn, [data-tid=\"hangup-main-btn\"]"
	selHangUp     = "#hangup-button, [data-tid=\"hangup-main-btn\"], [data-inp=\"hangup-button\"]"
	selLauncher   = "button[aria-label=\"Join on this browser\"], button[aria-label=\"Continue on this browser\"], button[aria-label=\"Join meeting from this browser\"]"
)

// loginHosts are Microsoft's sign-in hosts: landing there is the sign-in bounce.
func loginHosts() []string {
	return []string{
		"login.microsoftonline.com", "login.microsoftonline.us", "login.partner.microsoftonline.cn",
		"login.microsoft.com", "login.live.com", "login.windows.net", "login.microsoftonline.de",
	}
}

func failureHooks() []webjoin.Hook {
	return []webjoin.Hook{
		{State: webjoin.StateLoginRequired, Hosts: loginHosts()},
		{State: webjoin.StateLoginRequired, Selector: "input[name=\"loginfmt\"]"},
		{State: webjoin.StateCaptcha, Text: []string{"Verify you're a real person"}},
		{State: webjoin.StateNotFound, Text: []string{"Looks like the meeting URL is incorrect"}},
		{State: webjoin.StateLoginRequired, Text: []string{
			"We need to verify your info before you can join",
			"To join, sign in or use Teams on the web",
			"You need to be signed in to Teams to access this meeting",
			"Sign in to Teams to join, or contact the meeting organizer",
			"To join this Teams meeting, you need to be signed in to an account.",
			"To join this meeting, sign in again or select another account.",
			"Due to org policy, you need to sign in or use Teams on the web to join this meeting.",
		}},
		{State: webjoin.StateDenied, Text: []string{
			"but you were denied access to the meeting",
			"Your request to join was declined",
		}},
		{State: webjoin.StateRemoved, Selector: selRetryTitle, Text: []string{
			"You've been removed from this meeting", "Removed from the meeting",
		}},
		{State: webjoin.StateEnded, Selector: selRetryTitle, Text: []string{"The meeting has ended", "Meeting ended", "Call ended"}},
		{State: webjoin.StateBlocked, Text: []string{"we couldn't connect you"}},
	}
}

func launcherHooks() []webjoin.Hook {
	return append(failureHooks(),
		webjoin.Hook{State: webjoin.StatePrompt, Selector: selLauncher, Click: true},
		webjoin.Hook{State: webjoin.StatePrompt, Selector: "button", Text: []string{"Continue on this browser", "Join from browser"}, Click: true},
		webjoin.Hook{State: webjoin.StatePrejoin, Selector: selJoin},
		webjoin.Hook{State: webjoin.StatePrejoin, Selector: selNameInput},
		webjoin.Hook{State: webjoin.StatePrejoin, Text: []string{"Microsoft Teams meeting"}},
	)
}

func prejoinHooks() []webjoin.Hook {
	return append(failureHooks(), webjoin.Hook{State: webjoin.StatePrejoin, Selector: selJoin})
}

func admissionHooks() []webjoin.Hook {
	return append(failureHooks(),
		webjoin.Hook{State: webjoin.StatePrompt, Selector: "button", Text: []string{"Continue without audio or video"}, Click: true},
		webjoin.Hook{State: webjoin.StateWaitingRoom, Text: []string{
			"Someone will let you in shortly",
			"Someone will let you in soon",
			"Someone in the meeting should let you in soon",
			"You're in the lobby",
			"Waiting for someone to let you in",
			"Please wait until someone admits you",
			"Wait for someone to admit you",
			"Waiting to be admitted",
			"Your request to join has been sent",
		}},
		webjoin.Hook{State: webjoin.StateInMeeting, Selector: selInMeeting},
	)
}

func inMeetingHooks() []webjoin.Hook {
	return []webjoin.Hook{
		{State: webjoin.StateRemoved, Selector: selRetryTitle, Text: []string{
			"You've been removed from this meeting", "Removed from the meeting", "You have been removed from this meeting",
		}},
		{State: webjoin.StateEnded, Selector: selRetryTitle, Text: []string{"The meeting has ended", "Meeting ended", "Call ended"}},
		{State: webjoin.StateLeft, Text: []string{"You left the meeting"}},
		{State: webjoin.StateAlone, Text: []string{"You're the only one here", "You are the only one in this meeting"}},
		{State: webjoin.StateInMeeting, Selector: selInMeeting},
	}
}

// ErrNotSignedIn: the request carried a session, but Teams asks for a name,
// so the session did not sign the tab in.
var ErrNotSignedIn = errors.New("teams asks for a display name: the session did not sign in")

// join is the state machine: loading → launcher → prejoin → (lobby) → in_meeting.
func join(ctx context.Context, p *webjoin.Page, req driver.JoinRequest, w driver.Watcher) error {
	if req.Teams != nil {
		if err := p.Tab().SetCookies(ctx, req.Teams.Cookies); err != nil {
			return err
		}
	}
	if err := p.Navigate(ctx, "open", req.MeetingURL); err != nil {
		return err
	}

	if err := p.Reach(ctx, "launcher", launcherHooks()); err != nil {
		return err
	}
	if err := p.Reach(ctx, "prejoin", prejoinHooks()); err != nil {
		return err
	}

	name := webjoin.Hook{State: webjoin.StatePrejoin, Selector: selNameInput}
	if ok, _ := p.Has(ctx, name); ok {
		if req.Teams != nil {
			return driver.Fail(botstate.SubLoginRequired, "prejoin", ErrNotSignedIn)
		}
		if err := p.Type(ctx, "name", name, req.BotName); err != nil {
			return err
		}
	}

	return p.Enter(ctx, w, entry())
}

// entry is Teams' way in: the pre-join page's device toggles, Join now, the
// lobby, and the call toolbar's toggles, which Teams may turn back on.
func entry() webjoin.Entry {
	return webjoin.Entry{
		Microphone:     webjoin.NewToggle(selMic+"[aria-checked=\"true\"]", selMic+"[aria-checked=\"false\"]"),
		Camera:         webjoin.NewToggle(selCamera+"[aria-checked=\"true\"]", selCamera+"[aria-checked=\"false\"]"),
		Join:           webjoin.Hook{State: webjoin.StatePrejoin, Selector: selJoin, Enabled: true},
		Admission:      admissionHooks(),
		CallMicrophone: webjoin.NewToggle("[role=\"toolbar\"] button[aria-label=\"Mute mic\"]", "[role=\"toolbar\"] button[aria-label=\"Unmute mic\"]"),
		CallCamera:     webjoin.NewToggle("[role=\"toolbar\"] button[aria-label=\"Turn camera off\"]", "[role=\"toolbar\"] button[aria-label=\"Turn camera on\"]"),
	}
}

// leave hangs up and waits for the page that says the bot left.
func leave(ctx context.Context, p *webjoin.Page) error {
	if err := p.Click(ctx, "leave", webjoin.Hook{State: webjoin.StateInMeeting, Selector: selHangUp}); err != nil {
		return err
	}
	_, err := p.Await(ctx, "leave", []webjoin.Hook{
		{State: webjoin.StateLeft, Text: []string{"You left the meeting"}},
		{State: webjoin.StateEnded, Selector: selRetryTitle, Text: []string{"The meeting has ended", "Meeting ended", "Call ended"}},
		{State: webjoin.StateRemoved, Selector: selRetryTitle, Text: []string{"You've been removed from this meeting", "Removed from the meeting"}},
	})
	return err
}
