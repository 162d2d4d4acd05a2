package teamslogin

import (
	"fmt"

	"github.com/usherhq/usher/shared/botstate"
)

// Kind classifies a failed login.
type Kind string

// Kinds of failure. Each is an outcome label of the login metrics.
const (
	// KindInvalidCredentials: wrong password, or Microsoft does not know the user.
	KindInvalidCredentials Kind = "invalid_credentials"
	// KindMFARequired: Microsoft asked for a second factor.
	KindMFARequired Kind = "mfa_required"
	// KindLocked: Microsoft says the account is locked.
	KindLocked Kind = "locked"
	// KindCaptcha: the login page showed a captcha.
	KindCaptcha Kind = "captcha"
	// KindTimeout: a page did not reach a known state in time (transient).
	KindTimeout Kind = "timeout"
	// KindBrowser: the browser failed (crash, no tab) (transient).
	KindBrowser Kind = "browser_error"
)

// Error is a failed login. It never carries the password or cookies.
type Error struct {
	Kind Kind
	// Step is the page step that failed: "email", "password", "stay_signed_in".
	Step string
	// Screenshot names the stored screenshot of the page (password blanked),
	// empty when none was stored.
	Screenshot string
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("microsoft login failed at %s (%s): %v", e.Step, e.Kind, e.Err)
	}
	return fmt.Sprintf("microsoft login failed at %s (%s)", e.Step, e.Kind)
}

func (e *Error) Unwrap() error { return e.Err }

// Transient reports whether trying again later may succeed.
func (e *Error) Transient() bool { return e.Kind == KindTimeout || e.Kind == KindBrowser }

// SubCode is the bot's failure sub_code for this login failure.
func (e *Error) SubCode() string {
	switch e.Kind {
	case KindInvalidCredentials:
		return botstate.SubTeamsInvalidCredentials
	case KindMFARequired:
		return botstate.SubTeamsMFARequired
	case KindLocked:
		return botstate.SubTeamsAccountLocked
	case KindCaptcha:
		return botstate.SubBlockedByCaptcha
	default:
		return botstate.SubTeamsLoginFailed
	}
}

// SharedFailure implements teamssession.SharedFailure: a refusal about the
// account is shared with the workers waiting for the same login; a
// transient failure is not (they try themselves).
func (e *Error) SharedFailure() string {
	if e.Transient() {
		return ""
	}
	return e.SubCode()
}
