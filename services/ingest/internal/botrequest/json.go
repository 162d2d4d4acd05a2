package botrequest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// allowedFields are the request fields Usher reads, sorted (they are listed
// in the "Unexpected field(s)" message).
var allowedFields = []string{
	fieldAutomaticLeave, fieldBotName, fieldCallback, fieldDeduplication,
	fieldJoinAt, fieldMeetingURL, fieldMetadata, fieldTeams,
}

// unsupportedFields are Attendee's request fields that Usher does not
// implement. They are refused (rather than silently ignored) so a client
// migrating from Attendee learns that the feature is missing.
var unsupportedFields = map[string]string{
	"bot_image":                       "Usher does not support bot_image: bots join with the platform's default avatar.",
	"bot_chat_message":                "Usher does not support bot_chat_message: bots do not send chat messages.",
	"calendar_event_id":               "Usher does not support calendar_event_id: give meeting_url (and join_at) instead.",
	"webhooks":                        "Usher does not support webhooks: consume bot events from NATS (usher.events.<project>.>) or poll GET /api/v1/bots/{id}.",
	"external_media_storage_settings": "Usher does not support external_media_storage_settings: Usher does not record meetings.",
	"voice_agent_settings":            "Usher does not support voice_agent_settings.",
	"transcription_settings":          "Usher does not support transcription_settings: Usher does not transcribe meetings.",
	"websocket_settings":              "Usher does not support websocket_settings: Usher does not stream meeting audio or video.",
	"rtmp_settings":                   "Usher does not support rtmp_settings: Usher does not stream meetings.",
	"recording_settings":              "Usher does not support recording_settings: Usher does not record meetings.",
	"google_meet_settings":            "Usher does not support google_meet_settings: Google Meet bots join anonymously.",
	"zoom_settings":                   "Usher does not support zoom_settings: Zoom bots join with the web client and the ZAK from callback_settings.zoom_tokens_url.",
	"debug_settings":                  "Usher does not support debug_settings.",
	"kubernetes_settings":             "Usher does not support kubernetes_settings.",
}

// fieldOrder is Attendee's declaration order, which its errors follow.
var fieldOrder = []string{
	fieldMeetingURL, fieldBotName, "bot_image", fieldMetadata, "bot_chat_message", fieldJoinAt,
	"calendar_event_id", fieldDeduplication, "webhooks", fieldCallback,
	"external_media_storage_settings", "voice_agent_settings", "transcription_settings",
	"websocket_settings", "rtmp_settings", "recording_settings", "google_meet_settings",
	fieldTeams, "zoom_settings", "debug_settings", fieldAutomaticLeave, "kubernetes_settings",
}

// Attendee's automatic_leave_settings keys that Usher accepts but does not
// apply (documented): positive integers, like in Attendee.
var unappliedLeaveKeys = []string{
	"silence_timeout_seconds", "silence_activate_after_seconds",
	"wait_for_host_to_start_meeting_timeout_seconds", "enable_closed_captions_timeout_seconds",
	"authorized_user_not_in_meeting_timeout_seconds",
}

// FromJSON validates a JSON request body (HTTP, or NATS with
// Content-Type: application/json). An empty body is {}. It returns a
// *ParseError for a body that is not JSON, and Errors for everything else.
func (v *Validator) FromJSON(body []byte) (Spec, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if !json.Valid(body) {
		var x any
		reason := "invalid JSON"
		if err := json.Unmarshal(body, &x); err != nil {
			reason = err.Error()
		}
		return Spec{}, &ParseError{Reason: reason}
	}
	if body[0] != '{' {
		// Attendee answers 500 here (it calls .get on a list); a 400 is right.
		return Spec{}, Errors{{NonFieldErrors, "Invalid data. Expected a dictionary, but got " + pyType(body) + "."}}
	}
	var (
		in      input
		errs    Errors
		unknown []string
	)
	for _, m := range objectMembers(body) {
		raw := m.raw
		switch m.key {
		case fieldMeetingURL:
			in.meetingURL = jsonString(fieldMeetingURL, raw, &errs)
		case fieldBotName:
			in.botName = jsonString(fieldBotName, raw, &errs)
		case fieldDeduplication:
			in.deduplicationKey = jsonString(fieldDeduplication, raw, &errs)
		case fieldMetadata:
			in.metadata = jsonMetadata(raw, &errs)
		case fieldJoinAt:
			in.joinAt = jsonJoinAt(raw, &errs)
		case fieldCallback:
			in.zoomTokensURL = jsonCallback(raw, &errs)
		case fieldTeams:
			in.teams = jsonTeams(raw, &errs)
		case fieldAutomaticLeave:
			jsonAutomaticLeave(raw, &in, &errs)
		default:
			if msg, ok := unsupportedFields[m.key]; ok {
				errs.add(m.key, msg)
			} else {
				unknown = append(unknown, m.key)
			}
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		errs.add(NonFieldErrors, fmt.Sprintf("Unexpected field(s): %s. Allowed fields are: %s",
			strings.Join(unknown, ", "), strings.Join(allowedFields, ", ")))
	}
	return v.validate(in, errs)
}

type member struct {
	key string
	raw json.RawMessage
}

// objectMembers returns the members of a valid JSON object in order; a
// repeated key keeps its last value (as Python's json does).
func objectMembers(obj []byte) []member {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // {
		return nil
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return out
		}
		if i := slices.IndexFunc(out, func(m member) bool { return m.key == key }); i >= 0 {
			out = slices.Delete(out, i, i+1)
		}
		out = append(out, member{key: key, raw: raw})
	}
	return out
}

// pyType names a JSON value's type the way Python does, for DRF's messages.
func pyType(raw []byte) string {
	switch raw[0] {
	case '{':
		return "dict"
	case '[':
		return "list"
	case '"':
		return "str"
	case 't', 'f':
		return "bool"
	case 'n':
		return "NoneType"
	}
	if bytes.ContainsAny(raw, ".eE") {
		return "float"
	}
	return "int"
}

func jsonString(field string, raw json.RawMessage, errs *Errors) opt[string] {
	switch raw[0] {
	case 'n':
		errs.add(field, msgNull)
		return opt[string]{}
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			errs.add(field, msgNotStr)
			return opt[string]{}
		}
		return some(s)
	}
	// DRF would coerce a number to a string; Usher refuses every non-string
	// so that a client's type mistake is caught where it is made.
	errs.add(field, msgNotStr)
	return opt[string]{}
}

func jsonMetadata(raw json.RawMessage, errs *Errors) opt[map[string]string] {
	switch raw[0] {
	case 'n':
		errs.add(fieldMetadata, msgNull)
		return opt[map[string]string]{}
	case '{':
	default:
		errs.add(fieldMetadata, "Metadata must be an object not an array or other type")
		return opt[map[string]string]{}
	}
	md := map[string]string{}
	for _, m := range objectMembers(raw) {
		var s string
		if m.raw[0] != '"' || json.Unmarshal(m.raw, &s) != nil {
			errs.add(fieldMetadata, fmt.Sprintf("Value for key '%s' must be a string", m.key))
			return opt[map[string]string]{}
		}
		md[m.key] = s
	}
	return some(md)
}

func jsonJoinAt(raw json.RawMessage, errs *Errors) opt[time.Time] {
	var s string
	switch {
	case raw[0] == 'n':
		errs.add(fieldJoinAt, msgNull)
		return opt[time.Time]{}
	case raw[0] != '"' || json.Unmarshal(raw, &s) != nil:
		errs.add(fieldJoinAt, MsgDatetimeFormat)
		return opt[time.Time]{}
	}
	t, err := ParseDatetime(s)
	if err != nil {
		errs.add(fieldJoinAt, MsgDatetimeFormat)
		return opt[time.Time]{}
	}
	return some(t)
}

// settingsObject checks that a settings field is an object and returns its members.
func settingsObject(field string, raw json.RawMessage, errs *Errors) ([]member, bool) {
	switch raw[0] {
	case 'n':
		errs.add(field, msgNull)
		return nil, false
	case '{':
		return objectMembers(raw), true
	}
	errs.add(field, "Invalid data. Expected a dictionary, but got "+pyType(raw)+".")
	return nil, false
}

func jsonCallback(raw json.RawMessage, errs *Errors) opt[string] {
	members, ok := settingsObject(fieldCallback, raw, errs)
	if !ok {
		return opt[string]{}
	}
	var (
		out   opt[string]
		extra []string
	)
	for _, m := range members {
		if m.key != keyZoomTokensURL {
			extra = append(extra, m.key)
			continue
		}
		var s string
		if m.raw[0] != '"' || json.Unmarshal(m.raw, &s) != nil {
			errs.add(fieldCallback, keyZoomTokensURL+" must be a string")
			continue
		}
		out = some(s)
	}
	if len(extra) > 0 {
		errs.add(fieldCallback, additionalProperties(extra))
	}
	return out
}

func jsonTeams(raw json.RawMessage, errs *Errors) Teams {
	members, ok := settingsObject(fieldTeams, raw, errs)
	if !ok {
		return Teams{}
	}
	var (
		t     Teams
		extra []string
	)
	for _, m := range members {
		switch m.key {
		case "use_login":
			switch string(m.raw) {
			case "true":
				t.UseLogin = true
			case "false":
			default:
				errs.add(fieldTeams, "use_login must be true or false")
			}
		case "login_mode":
			var s string
			if m.raw[0] != '"' || json.Unmarshal(m.raw, &s) != nil {
				errs.add(fieldTeams, "login_mode must be a string")
				continue
			}
			if s != LoginModeAlways && s != LoginModeOnlyIfRequired {
				errs.add(fieldTeams, fmt.Sprintf("login_mode: %s is not one of ['always', 'only_if_required']", pyRepr(s)))
				continue
			}
			t.LoginMode = s
		case "login_group_name":
			if m.raw[0] == 'n' {
				continue
			}
			var s string
			if m.raw[0] != '"' || json.Unmarshal(m.raw, &s) != nil {
				errs.add(fieldTeams, "login_group_name must be a string or null")
				continue
			}
			t.LoginGroupName = &s
		default:
			extra = append(extra, m.key)
		}
	}
	if len(extra) > 0 {
		errs.add(fieldTeams, additionalProperties(extra))
	}
	return t
}

var integerRe = regexp.MustCompile(`^-?[0-9]+$`)

func jsonAutomaticLeave(raw json.RawMessage, in *input, errs *Errors) {
	members, ok := settingsObject(fieldAutomaticLeave, raw, errs)
	if !ok {
		return
	}
	positive := func(m member) (int64, bool) {
		n, err := strconv.ParseInt(string(m.raw), 10, 64)
		if !integerRe.Match(m.raw) || err != nil || n < 1 || n > maxUint32AsInt64 {
			errs.add(fieldAutomaticLeave, m.key+" must be a positive integer")
			return 0, false
		}
		return n, true
	}
	var uptime opt[int64]
	for _, m := range members {
		switch {
		case m.key == keyWaitingRoom:
			if n, ok := positive(m); ok {
				in.waitingRoom = some(n)
			}
		case m.key == keyOnlyParticipant:
			if n, ok := positive(m); ok {
				in.onlyParticipant = some(n)
			}
		case m.key == keyMaxDuration:
			if n, ok := positive(m); ok {
				in.maxDuration = some(n)
			}
		case m.key == keyMaxUptime:
			if n, ok := positive(m); ok {
				uptime = some(n)
			}
		case slices.Contains(unappliedLeaveKeys, m.key):
			positive(m)
		case m.key == "bot_keywords":
			checkKeywords(m.raw, errs)
		default:
			errs.add(fieldAutomaticLeave, "Unexpected attribute: "+m.key)
		}
	}
	if uptime.set {
		if in.maxDuration.set && in.maxDuration.v != uptime.v {
			errs.add(fieldAutomaticLeave, "max_duration_seconds and max_uptime_seconds are the same setting with different values; give one")
			return
		}
		in.maxDuration = uptime
	}
}

func checkKeywords(raw json.RawMessage, errs *Errors) {
	if raw[0] == 'n' {
		return
	}
	var list []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		errs.add(fieldAutomaticLeave, "bot_keywords must be a list of strings or null")
		return
	}
	for _, item := range list {
		if item[0] != '"' {
			errs.add(fieldAutomaticLeave, "Each keyword in bot_keywords must be a string")
			return
		}
	}
}
