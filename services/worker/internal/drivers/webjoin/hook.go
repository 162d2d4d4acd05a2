package webjoin

import (
	"errors"
	"fmt"

	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/shared/botstate"
)

// State is what a meeting page shows, as far as a driver cares.
type State string

// Page states. The failure states map to public sub-codes (Match.JoinErr).
const (
	StateNone        State = ""
	StatePrejoin     State = "prejoin"      // the pre-join page (name, devices, join button)
	StateWaitingRoom State = "waiting_room" // waiting room, lobby, "asking to be let in"
	StateInMeeting   State = "in_meeting"
	StateAlone       State = "alone" // in the meeting with nobody else
	StateLeft        State = "left"  // the page after leaving
	StatePrompt      State = "prompt"

	StateNotFound      State = "not_found"
	StateLoginRequired State = "login_required"
	StateTokenRejected State = "token_rejected" // Zoom 4013: invalid or expired ZAK/OBF
	StateDenied        State = "denied"
	StateRemoved       State = "removed"
	StateEnded         State = "ended"
	StateNoAnswer      State = "no_answer"
	StateCaptcha       State = "captcha"
	StateBlocked       State = "blocked" // the platform refused the browser for now; retryable
)

// Hook recognises a state on a page. Hooks are checked in order and the
// first that matches wins, so put failure states before the states they can
// coexist with (a denial banner over a still-present pre-join form).
type Hook struct {
	State State `json:"state"`
	// Selector is a CSS selector; the element must be rendered. Empty: the
	// document body (a text anywhere on the page).
	Selector string `json:"sel,omitempty"`
	// Text: the element's visible text contains one of these. The typographic
	// apostrophe ’ and ' are the same. Empty: any text.
	Text []string `json:"text,omitempty"`
	// Exact: the trimmed text equals one of Text instead of containing it.
	Exact bool `json:"exact,omitempty"`
	// Enabled: the element must not be disabled (attribute, aria-disabled or class).
	Enabled bool `json:"enabled,omitempty"`
	// Count: exactly this many elements match Selector (for example one
	// participant tile: the bot is alone). Zero: at least one.
	Count int `json:"count,omitempty"`
	// Hosts: the page's host name is one of these (a redirect to a login
	// host). Selector and Text are then ignored.
	Hosts []string `json:"hosts,omitempty"`
	// Click: click the element and keep waiting (launchers, dialogs).
	Click bool `json:"-"`
}

// what names the hook in logs and errors (never a URL or a secret).
func (h Hook) what() string {
	switch {
	case len(h.Text) > 0:
		return fmt.Sprintf("%q", h.Text[0])
	case h.Selector != "":
		return h.Selector
	case len(h.Hosts) > 0:
		return "host " + h.Hosts[0]
	}
	return string(h.State)
}

// Match is the hook a page matched.
type Match struct {
	State State
	// Hook is the index of the hook in the list; Element the index of the
	// element among the selector's matches (-1 when not an element).
	Hook, Element int
	// Detail names what was seen, for logs and errors.
	Detail string
}

// ErrPageRefused is wrapped by join failures the page announced (not found,
// denied, login required...): the JoinError's sub-code says which.
var ErrPageRefused = errors.New("the meeting page refused the join")

// ErrBlocked is wrapped when the platform refuses the browser for now (not a
// host's decision); the join is retried.
var ErrBlocked = errors.New("the platform blocked this browser for now")

// JoinErr is the join failure a match announces, or nil when the state is
// not a failure. step names the page step, for the event metadata.
func (m Match) JoinErr(step string) error {
	sub := ""
	switch m.State {
	case StateNotFound:
		sub = botstate.SubMeetingNotFound
	case StateLoginRequired, StateTokenRejected:
		sub = botstate.SubLoginRequired
	case StateDenied, StateRemoved:
		sub = botstate.SubRequestToJoinDenied
	case StateEnded:
		sub = botstate.SubMeetingEndedBeforeJoin
	case StateNoAnswer:
		sub = botstate.SubWaitingRoomTimeout
	case StateCaptcha:
		sub = botstate.SubBlockedByCaptcha
	case StateBlocked:
		return fmt.Errorf("%s: %w: page shows %s", step, ErrBlocked, m.Detail)
	default:
		return nil
	}
	return driver.Fail(sub, step, fmt.Errorf("%w: page shows %s", ErrPageRefused, m.Detail))
}

// observeJS finds the first matching hook. One evaluation per poll keeps a
// busy worker's CDP traffic low. Template contents and hidden elements have
// no client rects, so they never match.
const observeJS = `(hooks) => {
  const norm = (s) => (s || "").replace(/\u2019/g, "'");
  const has = (h, t) => !h.text || h.text.some((x) => h.exact ? t.trim() === x : t.includes(x));
  let body = null;
  const bodyText = () => body === null ? (body = norm(document.body ? document.body.innerText : "")) : body;
  for (let i = 0; i < hooks.length; i++) {
    const h = hooks[i];
    if (h.hosts) {
      if (h.hosts.includes(location.hostname)) return {hook: i, element: -1};
      continue;
    }
    if (!h.sel) {
      if (has(h, bodyText())) return {hook: i, element: -1};
      continue;
    }
    const els = Array.from(document.querySelectorAll(h.sel)).filter((el) => el.getClientRects().length > 0);
    if (h.count) {
      if (els.length === h.count) return {hook: i, element: -1};
      continue;
    }
    for (let n = 0; n < els.length; n++) {
      const el = els[n];
      if (h.enabled && (el.disabled || el.getAttribute("aria-disabled") === "true" || el.classList.contains("disabled"))) continue;
      if (!has(h, norm(el.innerText || ""))) continue;
      return {hook: i, element: n};
    }
  }
  return {hook: -1, element: -1};
}`

// elementJS returns the n-th rendered element matching a selector: the
// element a hook matched, for clicking it.
const elementJS = `(sel, n) => {
  const els = Array.from(document.querySelectorAll(sel)).filter((el) => el.getClientRects().length > 0);
  return els[n] || null;
}`
