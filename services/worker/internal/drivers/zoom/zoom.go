// Package zoom drives Zoom's web client (app.zoom.us/wc/<id>/join, or the
// simulator's B/zoom/wc/<id>/join): straight to the web client, name typed
// unless a ZAK signed the bot in, microphone and camera off, Join, waiting
// room, in meeting. Hooks: docs/simulator-pages.md § Zoom and
// ../shared/PLATFORMS.md § 3a.
package zoom

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/drivers/webjoin"
	"github.com/usherhq/usher/shared/botstate"
)

// Name is the platform's metric label.
const Name = "zoom"

// WebClientHost serves Zoom's web client for real meeting links.
const WebClientHost = "app.zoom.us"

// New returns the Zoom web client driver.
func New(opener webjoin.Opener, cfg webjoin.Config, m *webjoin.Metrics, log *slog.Logger) *webjoin.Driver {
	return webjoin.NewDriver(opener, cfg, m, log, webjoin.Platform{
		Name:      Name,
		Join:      join,
		InMeeting: inMeetingHooks(),
		Leave:     leave,
	})
}

// Selectors and texts.
const (
	selName         = "#input-for-name"
	selPasscode     = "#input-for-pwd, input[type=\"password\"]"
	selMic          = "#preview-audio-control-button"
	selCamera       = "#preview-video-control-button"
	selJoin         = "button.preview-join-button"
	selMeetingApp   = ".meeting-app"
	selCounter      = ".footer-button__number-counter"
	selLeave        = "[footer-section=\"right\"] button[aria-label=\"Leave\"]"
	selLeaveConfirm = "button.leave-meeting-options__btn--danger"
	selModalTitle   = ".zm-modal-body-title"
)

// failureHooks are the pages that end a join, checked before anything else.
func failureHooks() []webjoin.Hook {
	return []webjoin.Hook{
		{State: webjoin.StateCaptcha, Selector: "iframe[src*=\"recaptcha\"]"},
		{State: webjoin.StateCaptcha, Text: []string{"We detected you may be a bot", "Automated bots aren't allowed", "check captcha"}},
		{State: webjoin.StateTokenRejected, Text: []string{"The OBF or ZAK token is not provided or invalid"}},
		{State: webjoin.StateLoginRequired, Text: []string{
			"This meeting is for authorized attendees only",
			"The host requires authentication on the commercial Zoom platform to join this meeting",
			"only authenticated users can join",
			"this meeting requires authentication",
		}},
		{State: webjoin.StateNotFound, Text: []string{"This meeting link is invalid"}},
		{State: webjoin.StateNotFound, Selector: selModalTitle, Text: []string{"Passcode wrong"}},
		{State: webjoin.StateEnded, Selector: selModalTitle, Text: []string{"This meeting has been ended by host"}},
		{State: webjoin.StateDenied, Text: []string{"You have been removed"}},
	}
}

func prejoinHooks() []webjoin.Hook {
	return append(failureHooks(),
		webjoin.Hook{State: webjoin.StatePrejoin, Selector: selJoin},
		// The launcher of a link that is not a web client URL (personal links).
		webjoin.Hook{State: webjoin.StatePrompt, Selector: "a", Text: []string{"Join from your browser"}, Click: true},
		webjoin.Hook{State: webjoin.StatePrompt, Selector: "button", Text: []string{"Continue without microphone and camera"}, Click: true},
		webjoin.Hook{State: webjoin.StatePrompt, Selector: "#onetrust-accept-btn-handler", Click: true},
	)
}

func admissionHooks() []webjoin.Hook {
	return append(failureHooks(),
		webjoin.Hook{State: webjoin.StateWaitingRoom, Text: []string{
			"Please wait, the meeting host will let you in soon.",
			"Waiting for the host to start this meeting",
			"Waiting for the host to start the meeting",
			"Please wait for the host to start this meeting.",
		}},
		webjoin.Hook{State: webjoin.StateInMeeting, Selector: selMeetingApp},
		webjoin.Hook{State: webjoin.StatePrompt, Selector: "button", Text: []string{"Continue without microphone and camera"}, Click: true},
	)
}

func inMeetingHooks() []webjoin.Hook {
	return []webjoin.Hook{
		{State: webjoin.StateEnded, Selector: selModalTitle, Text: []string{"This meeting has been ended by host"}},
		{State: webjoin.StateRemoved, Text: []string{"You have been removed"}},
		{State: webjoin.StateLeft, Text: []string{"You have left the meeting"}},
		{State: webjoin.StateAlone, Selector: selCounter, Text: []string{"1"}, Exact: true},
		{State: webjoin.StateInMeeting, Selector: selMeetingApp},
	}
}

// ErrNoPasscode: the meeting asks for a passcode and the link has none.
var ErrNoPasscode = errors.New("the meeting asks for a passcode and the link has none")

// join is the state machine: loading → prejoin → (waiting_room) → in_meeting.
func join(ctx context.Context, p *webjoin.Page, req driver.JoinRequest, w driver.Watcher) error {
	u, pwd, err := WebClientURL(req)
	if err != nil {
		return driver.Fail(botstate.SubMeetingNotFound, "open", err)
	}
	// u may carry the ZAK: Navigate never puts it in an error or a log line.
	if err := p.Navigate(ctx, "open", u); err != nil {
		return err
	}

	if err := p.Reach(ctx, "prejoin", prejoinHooks()); err != nil {
		return err
	}

	passcode := webjoin.Hook{State: webjoin.StatePrejoin, Selector: selPasscode}
	if ok, _ := p.Has(ctx, passcode); ok {
		if pwd == "" {
			return driver.Fail(botstate.SubMeetingNotFound, "passcode", ErrNoPasscode)
		}
		if err := p.Type(ctx, "passcode", passcode, pwd); err != nil {
			return err
		}
	}

	// Signed in with a ZAK, Zoom fills the name with the user's own and
	// makes it read-only.
	editable := webjoin.Hook{State: webjoin.StatePrejoin, Selector: selName + ":not([readonly]):not([disabled])"}
	if ok, _ := p.Has(ctx, editable); ok {
		if err := p.Type(ctx, "name", editable, req.BotName); err != nil {
			return err
		}
	}

	return p.Enter(ctx, w, entry())
}

// entry is the web client's way in: its pre-join device toggles, the join
// button, the waiting room, and the meeting footer's toggles, which the web
// client may turn back on.
func entry() webjoin.Entry {
	return webjoin.Entry{
		Microphone:     webjoin.NewToggle(selMic+"[aria-label=\"Mute\"]", selMic+"[aria-label=\"Unmute\"]"),
		Camera:         webjoin.NewToggle(selCamera+"[aria-label=\"Stop Video\"]", selCamera+"[aria-label=\"Start Video\"]"),
		Join:           webjoin.Hook{State: webjoin.StatePrejoin, Selector: selJoin, Enabled: true},
		Admission:      admissionHooks(),
		CallMicrophone: webjoin.NewToggle("#wc-footer button[aria-label=\"mute my microphone\"]", "#wc-footer button[aria-label=\"unmute my microphone\"]"),
		CallCamera:     webjoin.NewToggle("#wc-footer button[aria-label=\"stop my video\"]", "#wc-footer button[aria-label=\"start my video\"]"),
	}
}

// leave clicks Leave, then "Leave Meeting" in the confirmation, and waits for
// the page that says the bot left.
func leave(ctx context.Context, p *webjoin.Page) error {
	if err := p.Click(ctx, "leave", webjoin.Hook{State: webjoin.StateInMeeting, Selector: selLeave}); err != nil {
		return err
	}
	_, err := p.Await(ctx, "leave", []webjoin.Hook{
		{State: webjoin.StateLeft, Text: []string{"You have left the meeting"}},
		{State: webjoin.StateEnded, Selector: selModalTitle, Text: []string{"This meeting has been ended by host"}},
		{State: webjoin.StateRemoved, Text: []string{"You have been removed"}},
		{State: webjoin.StatePrompt, Selector: selLeaveConfirm, Click: true},
	})
	return err
}

// WebClientURL turns a meeting link into the web client's join URL:
// /j/<id> becomes /wc/<id>/join (the real host becomes app.zoom.us; the
// simulator keeps its B/zoom/ prefix), pwd is kept, and the ZAK (zak) and
// on-behalf token (obf) are appended when the request carries them. The URL
// then holds secrets: never log it. pwd is the link's passcode.
func WebClientURL(req driver.JoinRequest) (u, pwd string, err error) {
	link, err := url.Parse(req.MeetingURL)
	if err != nil || link.Host == "" {
		return "", "", errors.New("the meeting URL is not a URL")
	}
	if i := strings.LastIndex(link.Path, "/j/"); i >= 0 {
		id := link.Path[i+len("/j/"):]
		if id == "" || strings.Contains(id, "/") {
			return "", "", fmt.Errorf("the Zoom link has no meeting id")
		}
		link.Path = link.Path[:i] + "/wc/" + id + "/join"
		link.RawPath = ""
		if !req.Simulated {
			link.Scheme, link.Host = "https", WebClientHost
		}
	}
	q := link.Query()
	pwd = q.Get("pwd")
	if z := req.Zoom; z != nil {
		if !z.ZAK.Empty() {
			q.Set("zak", z.ZAK.Reveal())
		}
		if !z.OnBehalfToken.Empty() {
			q.Set("obf", z.OnBehalfToken.Reveal())
		}
	}
	link.RawQuery = q.Encode()
	link.Fragment = ""
	return link.String(), pwd, nil
}
