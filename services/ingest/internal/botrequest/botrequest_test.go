package botrequest_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
)

var now = time.Date(2026, 8, 21, 9, 0, 0, 0, time.UTC)

func validator() *botrequest.Validator {
	return botrequest.New(botrequest.Options{SimulatorURL: "http://127.0.0.1:8090", Now: func() time.Time { return now }})
}

const meet = `"meeting_url":"https://meet.google.com/abc-defg-hij?authuser=0","bot_name":"Notetaker"`

func TestFromJSONAcceptsAValidRequest(t *testing.T) {
	t.Parallel()
	spec, err := validator().FromJSON([]byte(`{
		"meeting_url": "  https://us02web.zoom.com/j/85012345678?pwd=abc123&uname=x ",
		"bot_name": "  Acme Notetaker ",
		"metadata": {"customer": "acme", "note": "café"},
		"join_at": "2026-08-21T11:30:00.5+02:00",
		"deduplication_key": " weekly-sync ",
		"callback_settings": {"zoom_tokens_url": "https://hooks.example.com/zak?t=1"},
		"teams_settings": {"use_login": true, "login_mode": "only_if_required", "login_group_name": null},
		"automatic_leave_settings": {"waiting_room_timeout_seconds": 600, "max_uptime_seconds": 3600,
			"silence_timeout_seconds": 10, "bot_keywords": ["usher"]}
	}`))
	if err != nil {
		t.Fatalf("FromJSON: %v", err)
	}
	wantAt := time.Date(2026, 8, 21, 9, 30, 0, 500_000_000, time.UTC)
	switch {
	case spec.Meeting.URL != "https://us02web.zoom.us/j/85012345678?pwd=abc123":
		t.Errorf("meeting url = %q", spec.Meeting.URL)
	case spec.BotName != "Acme Notetaker":
		t.Errorf("bot name = %q", spec.BotName)
	case !reflect.DeepEqual(spec.Metadata, map[string]string{"customer": "acme", "note": "café"}):
		t.Errorf("metadata = %v", spec.Metadata)
	case spec.JoinAt == nil || !spec.JoinAt.Equal(wantAt) || spec.JoinAt.Location() != time.UTC:
		t.Errorf("join_at = %v, want %v UTC", spec.JoinAt, wantAt)
	case spec.DeduplicationKey != "weekly-sync":
		t.Errorf("dedup = %q", spec.DeduplicationKey)
	case spec.ZoomTokensURL != "https://hooks.example.com/zak?t=1":
		t.Errorf("zoom tokens url = %q", spec.ZoomTokensURL)
	case !spec.Teams.UseLogin || spec.Teams.LoginMode != "only_if_required":
		t.Errorf("teams = %+v", spec.Teams)
	case spec.Leave != (botrequest.Leave{WaitingRoomTimeoutSeconds: 600, MaxDurationSeconds: 3600, OnlyParticipantTimeoutSeconds: 60}):
		t.Errorf("leave = %+v", spec.Leave)
	}
}

func TestFromJSONDefaults(t *testing.T) {
	t.Parallel()
	spec, err := validator().FromJSON([]byte(`{` + meet + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if spec.Meeting.URL != "https://meet.google.com/abc-defg-hij" || spec.Metadata != nil || spec.JoinAt != nil ||
		spec.Teams.LoginMode != "always" || spec.Leave.WaitingRoomTimeoutSeconds != 900 ||
		spec.Leave.OnlyParticipantTimeoutSeconds != 60 || spec.Leave.MaxDurationSeconds != 0 {
		t.Fatalf("spec = %+v", spec)
	}
}

// TestFromJSONRefuses lists the bad inputs of issue 2 with the exact answer.
func TestFromJSONRefuses(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 101)
	bigMeta := `{"k":"` + strings.Repeat("a", 1001-9) + `"}` // {"k": "…"}: python length 1001
	okMeta := `{"k":"` + strings.Repeat("a", 1000-10) + `"}` // exactly 1000
	for _, tc := range []struct {
		name string
		body string
		want map[string][]string
	}{
		{"empty object", `{}`, map[string][]string{
			"meeting_url": {"This field is required."}, "bot_name": {"This field is required."}}},
		{"empty body", ``, map[string][]string{
			"meeting_url": {"This field is required."}, "bot_name": {"This field is required."}}},
		{"not a meeting", `{"meeting_url":"https://example.com/x","bot_name":"b"}`, map[string][]string{
			"meeting_url": {"Invalid meeting URL: the host example.com is not Zoom, Microsoft Teams or Google Meet"}}},
		{"look-alike host", `{"meeting_url":"https://zoom.us.evil.com/j/85012345678","bot_name":"b"}`, map[string][]string{
			"meeting_url": {"Invalid meeting URL: the host zoom.us.evil.com is not Zoom, Microsoft Teams or Google Meet"}}},
		{"javascript", `{"meeting_url":"javascript:alert(1)","bot_name":"b"}`, map[string][]string{
			"meeting_url": {`Invalid meeting URL: scheme "javascript" is not allowed, use https://`}}},
		{"file", `{"meeting_url":"file:///etc/passwd","bot_name":"b"}`, map[string][]string{
			"meeting_url": {`Invalid meeting URL: scheme "file" is not allowed, use https://`}}},
		{"simulator not configured elsewhere", `{"meeting_url":"http://127.0.0.1:9999/meet/abc-defg-hij","bot_name":"b"}`, map[string][]string{
			"meeting_url": {"Invalid meeting URL: a port is not allowed in a 127.0.0.1 link"}}},
		{"blank url", `{"meeting_url":"  ","bot_name":"b"}`, map[string][]string{"meeting_url": {"This field may not be blank."}}},
		{"url wrong type", `{"meeting_url":5,"bot_name":"b"}`, map[string][]string{"meeting_url": {"Not a valid string."}}},
		{"blank name", `{` + `"meeting_url":"https://meet.google.com/abc-defg-hij","bot_name":"   "}`, map[string][]string{"bot_name": {"This field may not be blank."}}},
		{"long name", `{"meeting_url":"https://meet.google.com/abc-defg-hij","bot_name":"` + long + `"}`, map[string][]string{"bot_name": {"Ensure this field has no more than 100 characters."}}},
		{"control char", `{"meeting_url":"https://meet.google.com/abc-defg-hij","bot_name":"a\u0007b"}`, map[string][]string{"bot_name": {"Bot name cannot contain control characters."}}},
		{"bidi override", `{"meeting_url":"https://meet.google.com/abc-defg-hij","bot_name":"a\u202eb"}`, map[string][]string{"bot_name": {"Bot name cannot contain control characters."}}},
		{"name wrong type", `{"meeting_url":"https://meet.google.com/abc-defg-hij","bot_name":["x"]}`, map[string][]string{"bot_name": {"Not a valid string."}}},
		{"metadata list", `{` + meet + `,"metadata":[]}`, map[string][]string{"metadata": {"Metadata must be an object not an array or other type"}}},
		{"metadata empty", `{` + meet + `,"metadata":{}}`, map[string][]string{"metadata": {"Metadata must have at least one key"}}},
		{"metadata number", `{` + meet + `,"metadata":{"ok":"x","a":1,"b":2}}`, map[string][]string{"metadata": {"Value for key 'a' must be a string"}}},
		{"metadata too long", `{` + meet + `,"metadata":` + bigMeta + `}`, map[string][]string{"metadata": {"Metadata must be less than 1000 characters"}}},
		{"join_at past", `{` + meet + `,"join_at":"2026-08-21T08:59:59Z"}`, map[string][]string{"join_at": {"join_at cannot be in the past"}}},
		{"join_at beyond a year", `{` + meet + `,"join_at":"2027-08-21T09:00:01Z"}`, map[string][]string{"join_at": {"join_at cannot be more than 1 year in the future"}}},
		{"join_at format", `{` + meet + `,"join_at":"tomorrow"}`, map[string][]string{"join_at": {botrequest.MsgDatetimeFormat}}},
		{"join_at number", `{` + meet + `,"join_at":1786000000}`, map[string][]string{"join_at": {botrequest.MsgDatetimeFormat}}},
		{"null join_at", `{` + meet + `,"join_at":null}`, map[string][]string{"join_at": {"This field may not be null."}}},
		{"null metadata", `{` + meet + `,"metadata":null}`, map[string][]string{"metadata": {"This field may not be null."}}},
		{"null dedup", `{` + meet + `,"deduplication_key":null}`, map[string][]string{"deduplication_key": {"This field may not be null."}}},
		{"blank dedup", `{` + meet + `,"deduplication_key":" "}`, map[string][]string{"deduplication_key": {"This field may not be blank."}}},
		{"long dedup", `{` + meet + `,"deduplication_key":"` + strings.Repeat("k", 1025) + `"}`, map[string][]string{"deduplication_key": {"Ensure this field has no more than 1024 characters."}}},
		{"callback http", `{` + meet + `,"callback_settings":{"zoom_tokens_url":"http://hooks.example.com/zak"}}`, map[string][]string{
			"callback_settings": {"zoom_tokens_url: must start with https:// (http:// is accepted only when USHER_CALLBACK_ALLOW_HTTP is set, for development)"}}},
		{"callback no real host", `{` + meet + `,"callback_settings":{"zoom_tokens_url":"https://x/zak"}}`, map[string][]string{
			"callback_settings": {"zoom_tokens_url: the host must be a fully qualified domain name"}}},
		{"callback credentials", `{` + meet + `,"callback_settings":{"zoom_tokens_url":"https://u:p@hooks.example.com/"}}`, map[string][]string{
			"callback_settings": {"zoom_tokens_url: credentials in the URL are not allowed"}}},
		{"callback too long", `{` + meet + `,"callback_settings":{"zoom_tokens_url":"https://hooks.example.com/` + strings.Repeat("a", 2048) + `"}}`, map[string][]string{
			"callback_settings": {"zoom_tokens_url: Ensure this field has no more than 2048 characters."}}},
		{"callback extra", `{` + meet + `,"callback_settings":{"zoom_tokens_url":"https://hooks.example.com/","foo":1}}`, map[string][]string{
			"callback_settings": {"Additional properties are not allowed ('foo' was unexpected)"}}},
		{"callback type", `{` + meet + `,"callback_settings":{"zoom_tokens_url":5}}`, map[string][]string{
			"callback_settings": {"zoom_tokens_url must be a string"}}},
		{"callback not object", `{` + meet + `,"callback_settings":"https://x"}`, map[string][]string{
			"callback_settings": {"Invalid data. Expected a dictionary, but got str."}}},
		{"teams login mode", `{` + meet + `,"teams_settings":{"login_mode":"sometimes"}}`, map[string][]string{
			"teams_settings": {"login_mode: 'sometimes' is not one of ['always', 'only_if_required']"}}},
		{"teams use_login type", `{` + meet + `,"teams_settings":{"use_login":"yes","x":1,"y":2}}`, map[string][]string{
			"teams_settings": {"use_login must be true or false", "Additional properties are not allowed ('x', 'y' were unexpected)"}}},
		{"leave unknown", `{` + meet + `,"automatic_leave_settings":{"foo":1}}`, map[string][]string{
			"automatic_leave_settings": {"Unexpected attribute: foo"}}},
		{"leave zero", `{` + meet + `,"automatic_leave_settings":{"silence_timeout_seconds":0,"waiting_room_timeout_seconds":1.5,"max_duration_seconds":null}}`, map[string][]string{
			"automatic_leave_settings": {"silence_timeout_seconds must be a positive integer", "waiting_room_timeout_seconds must be a positive integer", "max_duration_seconds must be a positive integer"}}},
		{"leave alias clash", `{` + meet + `,"automatic_leave_settings":{"max_duration_seconds":5,"max_uptime_seconds":6}}`, map[string][]string{
			"automatic_leave_settings": {"max_duration_seconds and max_uptime_seconds are the same setting with different values; give one"}}},
		{"keywords", `{` + meet + `,"automatic_leave_settings":{"bot_keywords":[1]}}`, map[string][]string{
			"automatic_leave_settings": {"Each keyword in bot_keywords must be a string"}}},
		{"unsupported webhooks", `{` + meet + `,"webhooks":[]}`, map[string][]string{
			"webhooks": {"Usher does not support webhooks: consume bot events from NATS (usher.events.<project>.>) or poll GET /api/v1/bots/{id}."}}},
		{"unsupported recording", `{` + meet + `,"recording_settings":{"format":"mp4"}}`, map[string][]string{
			"recording_settings": {"Usher does not support recording_settings: Usher does not record meetings."}}},
		{"unknown fields", `{` + meet + `,"zeta":1,"foo":2}`, map[string][]string{
			"non_field_errors": {"Unexpected field(s): foo, zeta. Allowed fields are: automatic_leave_settings, bot_name, callback_settings, deduplication_key, join_at, meeting_url, metadata, teams_settings"}}},
		{"all together", `{"foo":1,"metadata":[],"join_at":"x"}`, map[string][]string{
			"meeting_url": {"This field is required."}, "bot_name": {"This field is required."},
			"metadata": {"Metadata must be an object not an array or other type"}, "join_at": {botrequest.MsgDatetimeFormat},
			"non_field_errors": {"Unexpected field(s): foo. Allowed fields are: automatic_leave_settings, bot_name, callback_settings, deduplication_key, join_at, meeting_url, metadata, teams_settings"}}},
		{"array body", `[1,2]`, map[string][]string{"non_field_errors": {"Invalid data. Expected a dictionary, but got list."}}},
		{"string body", `"x"`, map[string][]string{"non_field_errors": {"Invalid data. Expected a dictionary, but got str."}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := validator().FromJSON([]byte(tc.body))
			var errs botrequest.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v (%T), want field errors", err, err)
			}
			if got := errs.ByField(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("errors =\n %v\nwant\n %v", got, tc.want)
			}
		})
	}
	if _, err := validator().FromJSON([]byte(`{` + meet + `,"metadata":` + okMeta + `}`)); err != nil {
		t.Errorf("metadata of exactly 1000 characters refused: %v", err)
	}
}

func TestFromJSONParseError(t *testing.T) {
	t.Parallel()
	_, err := validator().FromJSON([]byte(`{"meeting_url": `))
	var pe *botrequest.ParseError
	if !errors.As(err, &pe) || !strings.HasPrefix(pe.Error(), "JSON parse error - ") {
		t.Fatalf("err = %v, want a JSON parse error", err)
	}
}

func TestErrorsFollowAttendeeFieldOrder(t *testing.T) {
	t.Parallel()
	_, err := validator().FromJSON([]byte(`{"automatic_leave_settings":{"x":1},"webhooks":[],"foo":1}`))
	var errs botrequest.Errors
	if !errors.As(err, &errs) {
		t.Fatal(err)
	}
	var order []string
	for _, fe := range errs {
		order = append(order, fe.Field)
	}
	want := []string{"meeting_url", "bot_name", "webhooks", "automatic_leave_settings", "non_field_errors"}
	if !reflect.DeepEqual(order, want) {
		t.Fatalf("order = %v, want %v", order, want)
	}
}

func TestPythonJSONLen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		m    map[string]string
		want int
	}{
		{map[string]string{"a": "b"}, len(`{"a": "b"}`)},
		{map[string]string{"a": "b", "c": "d"}, len(`{"a": "b", "c": "d"}`)},
		{map[string]string{"é": "\n"}, len(`{"\u00e9": "\n"}`)},
		{map[string]string{"k": "🤖\x01\""}, len(`{"k": "\ud83e\udd16\u0001\""}`)},
	} {
		if got := botrequest.PythonJSONLen(tc.m); got != tc.want {
			t.Errorf("PythonJSONLen(%q) = %d, want %d", tc.m, got, tc.want)
		}
	}
}

func TestParseDatetime(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Time{
		"2026-08-21T09:00:00Z":         time.Date(2026, 8, 21, 9, 0, 0, 0, time.UTC),
		"2026-08-21 09:00":             time.Date(2026, 8, 21, 9, 0, 0, 0, time.UTC),
		"2026-08-21T11:00:00+02:00":    time.Date(2026, 8, 21, 9, 0, 0, 0, time.UTC),
		"2026-08-21T11:00:00+0200":     time.Date(2026, 8, 21, 9, 0, 0, 0, time.UTC),
		"2026-08-21T08:00:00-01":       time.Date(2026, 8, 21, 9, 0, 0, 0, time.UTC),
		"2026-08-21T09:00:00.1234567Z": time.Date(2026, 8, 21, 9, 0, 0, 123456000, time.UTC),
		"2026-08-21":                   time.Date(2026, 8, 21, 0, 0, 0, 0, time.UTC),
		"2026-8-1T9:5":                 time.Date(2026, 8, 1, 9, 5, 0, 0, time.UTC),
		"2026-08-21T09:00:00,5Z":       time.Date(2026, 8, 21, 9, 0, 0, 500000000, time.UTC),
	} {
		got, err := botrequest.ParseDatetime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseDatetime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"tomorrow", "2026-02-30T00:00:00Z", "2026-13-01", "2026-08-21T24:00:00Z", "2026-08-21Z", "21/08/2026", "2026-08-21T09:00:00+25:00"} {
		if _, err := botrequest.ParseDatetime(bad); err == nil {
			t.Errorf("ParseDatetime(%q) accepted", bad)
		}
	}
}

func TestFromProto(t *testing.T) {
	t.Parallel()
	v := validator()
	spec, err := v.FromProto(&usherv1.CreateBotRequest{
		MeetingUrl:             "https://teams.microsoft.com/meet/1234567890?p=abc",
		BotName:                "Bot",
		JoinAt:                 timestamppb.New(now.Add(time.Hour)),
		TeamsSettings:          &usherv1.TeamsSettings{UseLogin: true},
		AutomaticLeaveSettings: &usherv1.AutomaticLeaveSettings{OnlyParticipantTimeoutSeconds: 30},
	})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Teams.LoginMode != "always" || !spec.Teams.UseLogin || spec.Leave.OnlyParticipantTimeoutSeconds != 30 ||
		spec.Leave.WaitingRoomTimeoutSeconds != 900 || !spec.JoinAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("spec = %+v", spec)
	}

	// The same rules as JSON, with the same messages.
	_, err = v.FromProto(&usherv1.CreateBotRequest{
		MeetingUrl:    "https://example.com",
		Metadata:      map[string]string{"k": strings.Repeat("a", 1000)},
		JoinAt:        timestamppb.New(now.Add(-time.Second)),
		TeamsSettings: &usherv1.TeamsSettings{LoginMode: "never"},
	})
	var errs botrequest.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("err = %v", err)
	}
	want := map[string][]string{
		"meeting_url":    {"Invalid meeting URL: the host example.com is not Zoom, Microsoft Teams or Google Meet"},
		"bot_name":       {"This field is required."},
		"metadata":       {"Metadata must be less than 1000 characters"},
		"join_at":        {"join_at cannot be in the past"},
		"teams_settings": {"login_mode: 'never' is not one of ['always', 'only_if_required']"},
	}
	if got := errs.ByField(); !reflect.DeepEqual(got, want) {
		t.Fatalf("errors = %v\nwant %v", got, want)
	}
}

func TestDecodeProtoRefusesGarbageAndUnknownFields(t *testing.T) {
	t.Parallel()
	v := validator()
	var enc *botrequest.EncodingError
	if _, err := v.DecodeProto([]byte{0xff, 0xff, 0xff}); !errors.As(err, &enc) {
		t.Fatalf("garbage: err = %v, want an encoding error", err)
	}
	data, err := proto.Marshal(&usherv1.CreateBotRequest{MeetingUrl: "https://meet.google.com/abc-defg-hij", BotName: "b"})
	if err != nil {
		t.Fatal(err)
	}
	data = protowire.AppendTag(data, 42, protowire.VarintType)
	data = protowire.AppendVarint(data, 1)
	_, err = v.DecodeProto(data)
	var errs botrequest.Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Field != "non_field_errors" ||
		!strings.HasPrefix(errs[0].Message, "Unexpected field(s): protobuf field number(s) 42.") {
		t.Fatalf("unknown field: err = %v", err)
	}
}

func TestSimulatorLinksOnlyWhenConfigured(t *testing.T) {
	t.Parallel()
	body := []byte(`{"meeting_url":"http://127.0.0.1:8090/meet/abc-defg-hij","bot_name":"b"}`)
	spec, err := validator().FromJSON(body)
	if err != nil || !spec.Meeting.Simulated || spec.Meeting.URL != "http://127.0.0.1:8090/meet/abc-defg-hij" {
		t.Fatalf("with a simulator: spec = %+v, err = %v", spec.Meeting, err)
	}
	if _, err := botrequest.New(botrequest.Options{}).FromJSON(body); err == nil {
		t.Fatal("without a simulator the simulator link was accepted")
	}
}

func TestCallbackHTTPOnlyInDevelopment(t *testing.T) {
	t.Parallel()
	v := botrequest.New(botrequest.Options{AllowHTTPCallback: true})
	spec, err := v.FromJSON([]byte(`{` + meet + `,"callback_settings":{"zoom_tokens_url":"http://localhost:9000/zak"}}`))
	if err != nil || spec.ZoomTokensURL != "http://localhost:9000/zak" {
		t.Fatalf("spec = %+v, err = %v", spec, err)
	}
}
