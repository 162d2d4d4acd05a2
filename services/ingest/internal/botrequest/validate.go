package botrequest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/usherhq/usher/shared/meetingurl"
)

// DRF's generic messages, which Attendee clients know.
const (
	msgRequired = "This field is required."
	msgNull     = "This field may not be null."
	msgBlank    = "This field may not be blank."
	msgNotStr   = "Not a valid string."
)

// Field names of the request.
const (
	fieldMeetingURL      = "meeting_url"
	fieldBotName         = "bot_name"
	fieldMetadata        = "metadata"
	fieldJoinAt          = "join_at"
	fieldDeduplication   = "deduplication_key"
	fieldCallback        = "callback_settings"
	fieldTeams           = "teams_settings"
	fieldAutomaticLeave  = "automatic_leave_settings"
	keyZoomTokensURL     = "zoom_tokens_url"
	keyWaitingRoom       = "waiting_room_timeout_seconds"
	keyMaxDuration       = "max_duration_seconds"
	keyMaxUptime         = "max_uptime_seconds"
	keyOnlyParticipant   = "only_participant_in_meeting_timeout_seconds"
	maxUint32AsInt64     = int64(^uint32(0))
	oneYearMessageSuffix = "1 year in the future"
)

// validate checks in and builds the Spec. errs already holds the front end's
// decoding errors; a field with one is not checked again.
func (v *Validator) validate(in input, errs Errors) (Spec, error) {
	var spec Spec
	now := v.opts.Now()

	// meeting_url
	switch {
	case errs.Has(fieldMeetingURL):
	case !in.meetingURL.set:
		errs.add(fieldMeetingURL, msgRequired)
	case strings.TrimSpace(in.meetingURL.v) == "":
		errs.add(fieldMeetingURL, msgBlank)
	default:
		m, err := meetingurl.Parse(in.meetingURL.v, meetingurl.Options{SimulatorURL: v.opts.SimulatorURL})
		if err != nil {
			errs.add(fieldMeetingURL, "Invalid meeting URL: "+meetingReason(err))
		} else {
			spec.Meeting = m
		}
	}

	// bot_name
	switch {
	case errs.Has(fieldBotName):
	case !in.botName.set:
		errs.add(fieldBotName, msgRequired)
	default:
		name := strings.TrimSpace(in.botName.v)
		switch {
		case name == "":
			errs.add(fieldBotName, msgBlank)
		case utf8.RuneCountInString(name) > MaxBotNameChars:
			errs.add(fieldBotName, fmt.Sprintf("Ensure this field has no more than %d characters.", MaxBotNameChars))
		case strings.IndexFunc(name, isForbiddenNameRune) >= 0:
			errs.add(fieldBotName, "Bot name cannot contain control characters.")
		default:
			spec.BotName = name
		}
	}

	// metadata
	if in.metadata.set && !errs.Has(fieldMetadata) {
		switch {
		case len(in.metadata.v) == 0:
			errs.add(fieldMetadata, "Metadata must have at least one key")
		case PythonJSONLen(in.metadata.v) > MaxMetadataChars:
			// Attendee's wording; exactly 1000 is allowed.
			errs.add(fieldMetadata, fmt.Sprintf("Metadata must be less than %d characters", MaxMetadataChars))
		default:
			spec.Metadata = in.metadata.v
		}
	}

	// join_at
	if in.joinAt.set && !errs.Has(fieldJoinAt) {
		at := in.joinAt.v.UTC()
		switch {
		case at.Before(now):
			errs.add(fieldJoinAt, "join_at cannot be in the past")
		case at.After(now.AddDate(1, 0, 0)):
			errs.add(fieldJoinAt, "join_at cannot be more than "+oneYearMessageSuffix)
		default:
			spec.JoinAt = &at
		}
	}

	// deduplication_key
	if in.deduplicationKey.set && !errs.Has(fieldDeduplication) {
		key := strings.TrimSpace(in.deduplicationKey.v)
		switch {
		case key == "":
			errs.add(fieldDeduplication, msgBlank)
		case utf8.RuneCountInString(key) > MaxDeduplicationKeyChars:
			errs.add(fieldDeduplication, fmt.Sprintf("Ensure this field has no more than %d characters.", MaxDeduplicationKeyChars))
		default:
			spec.DeduplicationKey = key
		}
	}

	// callback_settings.zoom_tokens_url
	if in.zoomTokensURL.set && !errs.Has(fieldCallback) {
		if msg := v.checkCallbackURL(in.zoomTokensURL.v); msg != "" {
			errs.add(fieldCallback, msg)
		} else {
			spec.ZoomTokensURL = strings.TrimSpace(in.zoomTokensURL.v)
		}
	}

	// teams_settings
	spec.Teams = in.teams
	if spec.Teams.LoginMode == "" {
		spec.Teams.LoginMode = LoginModeAlways
	}
	if !errs.Has(fieldTeams) && spec.Teams.LoginMode != LoginModeAlways && spec.Teams.LoginMode != LoginModeOnlyIfRequired {
		errs.add(fieldTeams, fmt.Sprintf("login_mode: %s is not one of ['always', 'only_if_required']", pyRepr(spec.Teams.LoginMode)))
	}

	// automatic_leave_settings
	spec.Leave = Leave{
		WaitingRoomTimeoutSeconds:     DefaultWaitingRoomTimeoutSeconds,
		OnlyParticipantTimeoutSeconds: DefaultOnlyParticipantTimeoutSeconds,
	}
	if !errs.Has(fieldAutomaticLeave) {
		for _, s := range []struct {
			name string
			in   opt[int64]
			dst  *uint32
		}{
			{keyWaitingRoom, in.waitingRoom, &spec.Leave.WaitingRoomTimeoutSeconds},
			{keyMaxDuration, in.maxDuration, &spec.Leave.MaxDurationSeconds},
			{keyOnlyParticipant, in.onlyParticipant, &spec.Leave.OnlyParticipantTimeoutSeconds},
		} {
			if !s.in.set {
				continue
			}
			if s.in.v < 1 || s.in.v > maxUint32AsInt64 {
				errs.add(fieldAutomaticLeave, s.name+" must be a positive integer")
				continue
			}
			*s.dst = uint32(s.in.v)
		}
	}

	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b FieldError) int { return fieldRank(a.Field) - fieldRank(b.Field) })
		return Spec{}, errs
	}
	return spec, nil
}

// fieldRank orders errors as Attendee declares its fields, whole-request
// errors last.
func fieldRank(field string) int {
	if i := slices.Index(fieldOrder, field); i >= 0 {
		return i
	}
	return len(fieldOrder)
}

// meetingReason is meetingurl's reason without its "invalid meeting URL: " prefix.
func meetingReason(err error) string {
	msg := err.Error()
	if errors.Is(err, meetingurl.ErrInvalid) {
		msg = strings.TrimPrefix(msg, meetingurl.ErrInvalid.Error()+": ")
	}
	return msg
}

// isForbiddenNameRune refuses control characters and the invisible
// direction overrides that make a name display as something else.
func isForbiddenNameRune(r rune) bool {
	if unicode.IsControl(r) || r == utf8.RuneError {
		return true
	}
	switch {
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

var hostLabelRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// checkCallbackURL returns why raw cannot be a zoom_tokens_url, or "". The
// message never repeats the URL: it may carry a token of the customer's.
func (v *Validator) checkCallbackURL(raw string) string {
	const field = keyZoomTokensURL + ": "
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return field + msgBlank
	}
	if utf8.RuneCountInString(raw) > MaxCallbackURLChars {
		return fmt.Sprintf("%sEnsure this field has no more than %d characters.", field, MaxCallbackURLChars)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return field + "not a valid URL"
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !v.opts.AllowHTTPCallback {
			return field + "must start with https:// (http:// is accepted only when USHER_CALLBACK_ALLOW_HTTP is set, for development)"
		}
	default:
		return field + "must start with https://"
	}
	if u.User != nil {
		return field + "credentials in the URL are not allowed"
	}
	if u.Fragment != "" {
		return field + "a fragment (#...) is not allowed"
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return field + "the URL has no host"
	}
	if ip := net.ParseIP(host); ip != nil {
		return ""
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if !hostLabelRe.MatchString(l) {
			return field + "the host is not a valid DNS name or IP address"
		}
	}
	if len(labels) < 2 && !v.opts.AllowHTTPCallback {
		return field + "the host must be a fully qualified domain name"
	}
	return ""
}
