// Package botrequest turns a create-bot request — the JSON body of
// POST /api/v1/bots, the same JSON over NATS, or a protobuf CreateBotRequest —
// into a validated Spec. All three go through one validator, so a field is
// accepted or refused with the same message whatever the transport. Field
// errors name the field, are all returned together, and use Attendee's
// wording where Attendee has one.
package botrequest

import (
	"time"

	"github.com/usherhq/usher/shared/meetingurl"
)

// Limits and defaults of the request fields.
const (
	MaxBotNameChars          = 100
	MaxMetadataChars         = 1000
	MaxDeduplicationKeyChars = 1024
	MaxCallbackURLChars      = 2048
	// DefaultWaitingRoomTimeoutSeconds applies when automatic_leave_settings
	// does not set waiting_room_timeout_seconds.
	DefaultWaitingRoomTimeoutSeconds = 900
	// DefaultOnlyParticipantTimeoutSeconds applies when
	// only_participant_in_meeting_timeout_seconds is not set.
	DefaultOnlyParticipantTimeoutSeconds = 60
	// LoginModeAlways and LoginModeOnlyIfRequired are teams_settings.login_mode's values.
	LoginModeAlways         = "always"
	LoginModeOnlyIfRequired = "only_if_required"
)

// Spec is a validated request for a bot.
type Spec struct {
	// Meeting is the recognised meeting; Meeting.URL is the normalised link
	// that is stored and returned.
	Meeting meetingurl.Meeting
	// BotName is trimmed.
	BotName string
	// Metadata is nil when not given.
	Metadata map[string]string
	// JoinAt is nil for an immediate bot; otherwise in UTC, as given (the
	// schedule rounds it up to the second).
	JoinAt *time.Time
	// DeduplicationKey is trimmed; empty when not given.
	DeduplicationKey string
	// ZoomTokensURL is callback_settings.zoom_tokens_url; empty when not given.
	ZoomTokensURL string
	Teams         Teams
	Leave         Leave
}

// Teams is teams_settings.
type Teams struct {
	UseLogin bool
	// LoginMode is LoginModeAlways (default) or LoginModeOnlyIfRequired.
	LoginMode string
	// LoginGroupName is accepted for Attendee compatibility and unused.
	LoginGroupName *string
}

// Leave is the part of automatic_leave_settings that Usher applies.
type Leave struct {
	WaitingRoomTimeoutSeconds uint32
	// MaxDurationSeconds is 0 for no limit (max_uptime_seconds in Attendee).
	MaxDurationSeconds            uint32
	OnlyParticipantTimeoutSeconds uint32
}

// Options configure a Validator.
type Options struct {
	// SimulatorURL lets simulator meeting links through; empty refuses them.
	SimulatorURL string
	// AllowHTTPCallback accepts http:// zoom_tokens_url and single-label
	// hosts such as localhost (development only).
	AllowHTTPCallback bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Validator validates create-bot requests.
type Validator struct {
	opts Options
}

// New returns a Validator.
func New(opts Options) *Validator {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Validator{opts: opts}
}

// opt is a request field: whether it was given, and its value.
type opt[T any] struct {
	set bool
	v   T
}

func some[T any](v T) opt[T] { return opt[T]{set: true, v: v} }

// input is a request after decoding and before validation: what the JSON
// and protobuf front ends have in common.
type input struct {
	meetingURL       opt[string]
	botName          opt[string]
	metadata         opt[map[string]string]
	joinAt           opt[time.Time]
	deduplicationKey opt[string]
	zoomTokensURL    opt[string]
	teams            Teams
	waitingRoom      opt[int64]
	maxDuration      opt[int64]
	onlyParticipant  opt[int64]
}
