// Package driver is the contract between the worker's bot lifecycle and the
// code that drives a meeting platform: the instant driver for pipeline tests
// and benchmarks, and the browser drivers for Zoom web, Teams and Meet.
//
// A driver only knows pages: joining, the waiting room, being in the meeting,
// leaving. Identity (ZAK tokens, Teams sessions) is obtained before Join and
// handed in; events, leases, acks and timeouts belong to the lifecycle.
package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/secret"
)

// Driver joins meetings of one platform.
type Driver interface {
	// Join opens the meeting and returns once the bot is in it. While the bot
	// waits in a lobby or waiting room it calls w.WaitingRoom (once per
	// entry). It must return promptly when ctx is done (leave requested,
	// waiting-room timeout, join deadline), releasing what it opened.
	// Failures are *JoinError values naming a sub-code and the step.
	Join(ctx context.Context, req JoinRequest, w Watcher) (Meeting, error)
}

// Meeting is a bot inside a meeting.
type Meeting interface {
	// Wait blocks until the meeting is over for the bot and says why. When
	// ctx is done it returns ctx's error. A browser crash returns an error
	// wrapping ErrBrowserCrashed.
	Wait(ctx context.Context) (End, error)
	// Leave leaves the meeting the way a person would (the Leave button) and
	// returns once the bot is out.
	Leave(ctx context.Context) error
	// Close releases everything the meeting holds (its browser context). It is
	// safe to call more than once and after Leave.
	Close() error
}

// Watcher hears about progress while joining.
type Watcher interface {
	// WaitingRoom is called when the bot is put in a waiting room or lobby.
	WaitingRoom(ctx context.Context)
}

// WatcherFunc adapts a function to Watcher.
type WatcherFunc func(ctx context.Context)

// WaitingRoom calls f.
func (f WatcherFunc) WaitingRoom(ctx context.Context) { f(ctx) }

// EndReason says why a meeting ended for the bot.
type EndReason string

// End reasons.
const (
	// EndMeetingEnded: the host ended the meeting.
	EndMeetingEnded EndReason = "meeting_ended"
	// EndRemoved: the bot was removed from the meeting.
	EndRemoved EndReason = "removed_from_meeting"
	// EndAlone: every other participant left and the bot stayed alone for JoinRequest.AloneTimeout.
	EndAlone EndReason = "alone"
)

// End is how a meeting ended for the bot.
type End struct {
	Reason EndReason
	// Detail is the platform's wording, for logs (never secrets).
	Detail string
}

// JoinRequest is everything a driver needs to join.
type JoinRequest struct {
	BotID   string
	Project string
	// BotName is the display name typed into the name field (anonymous joins).
	BotName    string
	Platform   usherv1.Platform
	MeetingURL string
	// Simulated is true for simulator links.
	Simulated bool
	// Zoom carries the ZAK and related tokens; nil joins anonymously.
	Zoom *ZoomIdentity
	// Teams carries a signed-in Microsoft session; nil joins anonymously.
	Teams *TeamsIdentity
	// AloneTimeout: Wait returns EndAlone after the bot has been the only
	// participant this long. Zero disables the check.
	AloneTimeout time.Duration
}

// ZoomIdentity are the tokens the customer's zoom_tokens_url returned. They
// are secrets: fresh for every join, never logged or stored.
type ZoomIdentity struct {
	ZAK               secret.String
	OnBehalfToken     secret.String
	JoinToken         secret.String
	AppPrivilegeToken secret.String
}

// TeamsIdentity is a signed-in Microsoft session: the cookie jar after login.
type TeamsIdentity struct {
	// Account is the bot account's email; shown in logs, never in metrics.
	Account string
	Cookies []Cookie
}

// Cookie is one browser cookie of a session. Its value is a secret.
type Cookie struct {
	Name     string        `json:"name"`
	Value    secret.String `json:"-"`
	Domain   string        `json:"domain"`
	Path     string        `json:"path"`
	Expires  time.Time     `json:"expires"`
	HTTPOnly bool          `json:"http_only"`
	Secure   bool          `json:"secure"`
	SameSite string        `json:"same_site"`
}

// ErrBrowserCrashed is wrapped by errors caused by the browser process dying.
var ErrBrowserCrashed = errors.New("browser crashed")

// ErrPageLost is wrapped by Wait's error when the meeting page stopped
// showing the meeting without saying why (its renderer died, it navigated
// away). The lifecycle treats it like a browser crash: it rejoins once.
var ErrPageLost = errors.New("the meeting page no longer shows the meeting")

// JoinError is a join that failed for a reason a user can act on.
type JoinError struct {
	// SubCode is from botstate's public list (meeting_not_found, login_required...).
	SubCode string
	// Step names the page step that failed or stalled ("prejoin", "lobby"...).
	Step string
	Err  error
}

// Fail returns a *JoinError.
func Fail(subCode, step string, err error) error {
	return &JoinError{SubCode: subCode, Step: step, Err: err}
}

func (e *JoinError) Error() string {
	return fmt.Sprintf("join failed at %s (%s): %v", e.Step, e.SubCode, e.Err)
}

func (e *JoinError) Unwrap() error { return e.Err }
