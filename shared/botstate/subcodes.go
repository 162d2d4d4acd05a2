package botstate

// Sub-codes: the closed, documented list of reasons carried by failed,
// leaving and ended events. Add to it only with a row in SubCodes.
const (
	// Join outcomes.
	SubMeetingNotFound         = "meeting_not_found"
	SubRequestToJoinDenied     = "request_to_join_denied"
	SubWaitingRoomTimeout      = "waiting_room_timeout_exceeded"
	SubLoginRequired           = "login_required"
	SubMeetingEndedBeforeJoin  = "meeting_ended_before_join"
	SubBlockedByCaptcha        = "blocked_by_captcha"
	SubUIElementNotFound       = "ui_element_not_found"
	SubBrowserCrashed          = "browser_crashed"
	SubJoinDeadlineExceeded    = "join_deadline_exceeded"
	SubWorkerLost              = "worker_lost"
	SubInvalidJob              = "invalid_job"
	SubMaxDeliveriesExceeded   = "max_deliveries_exceeded"
	SubInternalError           = "internal_error"
	SubZoomTokensFailed        = "zoom_tokens_callback_failed"
	SubZoomTokensUnavailable   = "zoom_tokens_callback_unavailable"
	SubZoomTokensInvalid       = "zoom_tokens_invalid_response"
	SubZoomTokensURLForbidden  = "zoom_tokens_url_forbidden"
	SubTeamsCredentialsMissing = "teams_credentials_missing"
	SubTeamsInvalidCredentials = "teams_login_invalid_credentials"
	SubTeamsMFARequired        = "teams_login_mfa_required"
	SubTeamsAccountLocked      = "teams_login_account_locked"
	SubTeamsNoLoginAvailable   = "teams_no_login_available"
	SubTeamsLoginFailed        = "teams_login_failed"

	// Leave reasons (on leaving and ended events).
	SubUserRequested        = "user_requested"
	SubAutoLeaveMaxDuration = "auto_leave_max_duration_exceeded"
	SubAutoLeaveAlone       = "auto_leave_only_participant_in_meeting"
	SubMeetingEnded         = "meeting_ended"
	SubRemovedFromMeeting   = "removed_from_meeting"
	SubWorkerShutdown       = "worker_shutdown"
)

// SubCode documents one sub-code.
type SubCode struct {
	Code string
	// On is the state the sub-code appears with.
	On State
	// Meaning is the one-line documentation shown in the README.
	Meaning string
}

// SubCodes is the public list, in README order.
var SubCodes = []SubCode{
	{SubMeetingNotFound, Failed, "The meeting link does not lead to a meeting (wrong id, or the platform says it does not exist)."},
	{SubRequestToJoinDenied, Failed, "The host refused the bot from the waiting room or lobby."},
	{SubWaitingRoomTimeout, Failed, "Nobody admitted the bot within automatic_leave_settings.waiting_room_timeout_seconds."},
	{SubLoginRequired, Failed, "The meeting refuses anonymous participants and the bot had no identity to sign in with, or the meeting refused its fresh sign-in."},
	{SubMeetingEndedBeforeJoin, Failed, "The meeting ended while the bot was joining or waiting."},
	{SubBlockedByCaptcha, Failed, "The platform or the login page showed a captcha."},
	{SubUIElementNotFound, Failed, "The page never showed an element the driver waits for; event metadata `step` names the step that stalled."},
	{SubBrowserCrashed, Failed, "The worker's browser crashed and the bot could not rejoin."},
	{SubJoinDeadlineExceeded, Failed, "The bot could not start joining before its join deadline."},
	{SubWorkerLost, Failed, "The worker serving the bot in its meeting stopped heartbeating (crashed or partitioned)."},
	{SubInvalidJob, Failed, "The join job could not be decoded or is inconsistent."},
	{SubMaxDeliveriesExceeded, Failed, "The job was delivered the maximum number of times without an outcome (crash loop)."},
	{SubInternalError, Failed, "An unexpected error in Usher; the logs carry the detail. Metadata `reason: create_aborted` marks a create that could not be completed (the caller got a 503)."},
	{SubZoomTokensFailed, Failed, "zoom_tokens_url answered 4xx (event metadata `status`), or 5xx / timed out until the join deadline, or the project has no callback signing secret (metadata `reason: signing_secret_missing`)."},
	{SubZoomTokensUnavailable, Failed, "The circuit breaker for the callback host stayed open until the join deadline; no call was made."},
	{SubZoomTokensInvalid, Failed, "zoom_tokens_url answered something other than a JSON object with a non-empty string zak_token (or over 64 KiB)."},
	{SubZoomTokensURLForbidden, Failed, "zoom_tokens_url is not a valid https URL, redirects, or resolves to a private, loopback or link-local address."},
	{SubTeamsCredentialsMissing, Failed, "teams_settings.use_login is set but the project has no usable Teams bot account."},
	{SubTeamsInvalidCredentials, Failed, "Microsoft refused the account's password; the account is marked invalid until its credentials change."},
	{SubTeamsMFARequired, Failed, "Microsoft asked the account for multi-factor authentication."},
	{SubTeamsAccountLocked, Failed, "Microsoft says the account is locked."},
	{SubTeamsNoLoginAvailable, Failed, "Every account of the project was busy (in this meeting or at its limit) until the join deadline."},
	{SubTeamsLoginFailed, Failed, "The Microsoft login page timed out repeatedly until the join deadline."},
	{SubUserRequested, Leaving, "POST /api/v1/bots/{id}/leave was called (on `ended` when no worker held the bot: a ready or scheduled bot is ended directly, also by DELETE)."},
	{SubAutoLeaveMaxDuration, Leaving, "The bot reached automatic_leave_settings.max_duration_seconds in the meeting."},
	{SubAutoLeaveAlone, Leaving, "Everyone else left the meeting."},
	{SubMeetingEnded, Ended, "The host ended the meeting."},
	{SubRemovedFromMeeting, Ended, "The bot was removed from the meeting."},
	{SubWorkerShutdown, Leaving, "The worker was shut down for longer than its drain timeout and left the meeting."},
}

// KnownSubCode reports whether code is in the public list (or empty).
func KnownSubCode(code string) bool {
	if code == "" {
		return true
	}
	for _, s := range SubCodes {
		if s.Code == code {
			return true
		}
	}
	return false
}
