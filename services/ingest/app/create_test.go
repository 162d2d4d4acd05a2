package app_test

import (
	"context"
	"net/http"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/ingest/internal/bots"
	"github.com/usherhq/usher/shared/topology"
)

var botIDRe = regexp.MustCompile(`^bot_[A-Za-z0-9]{16}$`)

func TestCreateImmediatePublishesTheJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	bot := e.create(acmeKey, `{
		"meeting_url": "https://us02web.zoom.com/j/85012345678?pwd=abc123&uname=x",
		"bot_name": " Acme Notetaker ",
		"metadata": {"customer": "acme"},
		"deduplication_key": "weekly",
		"callback_settings": {"zoom_tokens_url": "https://hooks.example.com/zak"},
		"automatic_leave_settings": {"waiting_room_timeout_seconds": 120, "max_uptime_seconds": 3600}
	}`)
	id, _ := bot["id"].(string)
	if !botIDRe.MatchString(id) {
		t.Fatalf("id = %q", id)
	}
	want := map[string]any{
		"id": id, "metadata": map[string]any{"customer": "acme"},
		"meeting_url": "https://us02web.zoom.us/j/85012345678?pwd=abc123", "state": "ready", "events": []any{},
		"transcription_state": nil, "recording_state": nil, "join_at": nil, "deduplication_key": "weekly",
		"bot_name": "Acme Notetaker", "sub_code": nil, "created_at": bot["created_at"],
	}
	if !reflect.DeepEqual(bot, want) {
		t.Fatalf("201 body =\n%v\nwant\n%v", bot, want)
	}
	if got := e.get(acmeKey, id); !reflect.DeepEqual(got, want) {
		t.Fatalf("GET = %v, want %v", got, want)
	}

	job := e.lastJob("zoom")
	if job == nil {
		t.Fatal("no job on usher.jobs.zoom")
	}
	created, _ := time.Parse(time.RFC3339Nano, bot["created_at"].(string))
	switch {
	case job.GetBotId() != id || job.GetProject() != "acme" || job.GetPlatform() != usherv1.Platform_PLATFORM_ZOOM:
		t.Errorf("job identity = %v", job)
	case job.GetMeetingUrl() != "https://us02web.zoom.us/j/85012345678?pwd=abc123" || job.GetBotName() != "Acme Notetaker":
		t.Errorf("job meeting = %v", job)
	case job.GetMetadata()["customer"] != "acme" || job.GetJoinAt() != nil:
		t.Errorf("job metadata/join_at = %v", job)
	case job.GetCallbackSettings().GetZoomTokensUrl() != "https://hooks.example.com/zak":
		t.Errorf("job callback = %v", job.GetCallbackSettings())
	case job.GetAutomaticLeaveSettings().GetWaitingRoomTimeoutSeconds() != 120 ||
		job.GetAutomaticLeaveSettings().GetMaxDurationSeconds() != 3600 ||
		job.GetAutomaticLeaveSettings().GetOnlyParticipantTimeoutSeconds() != 60:
		t.Errorf("job leave settings = %v", job.GetAutomaticLeaveSettings())
	case job.GetTeamsSettings().GetLoginMode() != "always":
		t.Errorf("job teams = %v", job.GetTeamsSettings())
	case job.GetJoinDeadline().AsTime().Sub(created) != 10*time.Minute:
		t.Errorf("join deadline = %v, created %v", job.GetJoinDeadline().AsTime(), created)
	}
	// The job carries its Nats-Msg-Id, so a retried publish is stored once.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := e.topo.Jobs.GetLastMsgForSubject(ctx, "usher.jobs.zoom")
	if err != nil || msg.Header.Get(jetstream.MsgIDHeader) != "job:"+id {
		t.Fatalf("job Nats-Msg-Id = %q, %v", msg.Header.Get(jetstream.MsgIDHeader), err)
	}
	// The zoom_tokens_url is not part of the API's bot object.
	if _, ok := bot["callback_settings"]; ok {
		t.Error("bot object exposes callback_settings")
	}
}

func TestCreateScheduledFiresAtJoinAt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	joinAt := time.Now().Add(2 * time.Second).Truncate(time.Millisecond).Add(300 * time.Millisecond)
	offset := joinAt.In(time.FixedZone("", 2*3600)).Format("2006-01-02T15:04:05.000-07:00")
	bot := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"Later","join_at":"`+offset+`"}`)
	id := bot["id"].(string)
	wantJoinAt := joinAt.UTC().Format("2006-01-02T15:04:05.000000Z")
	if bot["state"] != "scheduled" || len(bot["events"].([]any)) != 0 || bot["join_at"] != wantJoinAt {
		t.Fatalf("201 body = %v, want scheduled with join_at %s", bot, wantJoinAt)
	}
	if job := e.lastJob("meet"); job != nil {
		t.Fatalf("a job is on usher.jobs.meet before join_at: %v", job)
	}

	// Act as a worker: the job arrives when JetStream fires the schedule,
	// never before join_at (rounded up to the second).
	cons, err := e.js.Consumer(context.Background(), topology.StreamJobs, topology.ConsumerWorkers)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got *usherv1.JoinJob
	for m := range batch.Messages() {
		if time.Now().Before(joinAt) {
			t.Errorf("job delivered at %v, before join_at %v", time.Now(), joinAt)
		}
		if m.Subject() != "usher.jobs.meet" {
			t.Errorf("job on %s", m.Subject())
		}
		got = &usherv1.JoinJob{}
		if err := proto.Unmarshal(m.Data(), got); err != nil {
			t.Fatal(err)
		}
		_ = m.Ack()
	}
	if got == nil {
		t.Fatal("the scheduled job never fired")
	}
	if got.GetBotId() != id || !got.GetJoinAt().AsTime().Equal(joinAt.UTC()) ||
		!got.GetJoinDeadline().AsTime().Equal(joinAt.UTC().Add(10*time.Minute)) {
		t.Fatalf("job = %v", got)
	}
}

func TestCeilSecond(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 8, 21, 9, 0, 0, 0, time.UTC)
	for in, want := range map[time.Time]time.Time{
		base:                             base,
		base.Add(time.Nanosecond):        base.Add(time.Second),
		base.Add(999 * time.Millisecond): base.Add(time.Second),
	} {
		if got := bots.CeilSecond(in); !got.Equal(want) {
			t.Errorf("CeilSecond(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestScheduledBotSurvivesRestarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	joinAt := time.Now().Add(3 * time.Second).UTC()
	bot := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"Later","join_at":"`+joinAt.Format(time.RFC3339Nano)+`"}`)
	id := bot["id"].(string)

	e.stopIngest()
	e.srv.Restart()
	e.startIngest()

	if got := e.get(acmeKey, id); got["state"] != "scheduled" {
		t.Fatalf("after restarts the bot is %v", got["state"])
	}
	cons, err := e.js.Consumer(context.Background(), topology.StreamJobs, topology.ConsumerWorkers)
	if err != nil {
		t.Fatal(err)
	}
	var job usherv1.JoinJob
	waitFor(t, 15*time.Second, "the scheduled job after restarts", func() bool {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return false
		}
		for m := range batch.Messages() {
			_ = proto.Unmarshal(m.Data(), &job)
			_ = m.Ack()
		}
		return job.GetBotId() != ""
	})
	if job.GetBotId() != id {
		t.Fatalf("fired job is for %s, want %s", job.GetBotId(), id)
	}
	if time.Now().Before(joinAt) {
		t.Fatalf("fired before join_at")
	}
}

func TestCreateRefusesBadInputOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"USHER_MAX_BODY_BYTES": "2048"})
	before := e.counts()
	big := `{"bot_name":"` + string(make([]byte, 0)) + repeat("x", 3000) + `"}`
	for _, tc := range []struct {
		name   string
		body   string
		hdr    []string
		status int
		want   map[string]any
	}{
		{"empty object", `{}`, nil, 400, map[string]any{"meeting_url": []any{"This field is required."}, "bot_name": []any{"This field is required."}}},
		{"empty body", ``, nil, 400, map[string]any{"meeting_url": []any{"This field is required."}, "bot_name": []any{"This field is required."}}},
		{"bad url", `{"meeting_url":"https://zoom.us.evil.com/j/85012345678","bot_name":"b"}`, nil, 400,
			map[string]any{"meeting_url": []any{"Invalid meeting URL: the host zoom.us.evil.com is not Zoom, Microsoft Teams or Google Meet"}}},
		{"simulator link without simulator", `{"meeting_url":"http://127.0.0.1:8090/meet/abc-defg-hij","bot_name":"b"}`, nil, 400,
			map[string]any{"meeting_url": []any{"Invalid meeting URL: a port is not allowed in a 127.0.0.1 link"}}},
		{"wrong type", `{"meeting_url":5,"bot_name":true}`, nil, 400,
			map[string]any{"meeting_url": []any{"Not a valid string."}, "bot_name": []any{"Not a valid string."}}},
		{"null", `{"meeting_url":"` + meetURL + `","bot_name":"b","metadata":null}`, nil, 400, map[string]any{"metadata": []any{"This field may not be null."}}},
		{"past join_at", `{"meeting_url":"` + meetURL + `","bot_name":"b","join_at":"2020-01-01T00:00:00Z"}`, nil, 400,
			map[string]any{"join_at": []any{"join_at cannot be in the past"}}},
		{"unknown field", `{"meeting_url":"` + meetURL + `","bot_name":"b","foo":1}`, nil, 400,
			map[string]any{"non_field_errors": []any{"Unexpected field(s): foo. Allowed fields are: automatic_leave_settings, bot_name, callback_settings, deduplication_key, join_at, meeting_url, metadata, teams_settings"}}},
		{"unsupported field", `{"meeting_url":"` + meetURL + `","bot_name":"b","transcription_settings":{}}`, nil, 400,
			map[string]any{"transcription_settings": []any{"Usher does not support transcription_settings: Usher does not transcribe meetings."}}},
		{"malformed json", `{"meeting_url":`, nil, 400, map[string]any{"detail": "JSON parse error - unexpected end of JSON input"}},
		{"array body", `[{"meeting_url":"x"}]`, nil, 400, map[string]any{"non_field_errors": []any{"Invalid data. Expected a dictionary, but got list."}}},
		{"string body", `"hello"`, nil, 400, map[string]any{"non_field_errors": []any{"Invalid data. Expected a dictionary, but got str."}}},
		{"text/plain", `meeting_url=x`, []string{"Content-Type", "text/plain"}, 415, map[string]any{"detail": `Unsupported media type "text/plain" in request.`}},
		{"form", `meeting_url=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415,
			map[string]any{"detail": `Unsupported media type "application/x-www-form-urlencoded" in request.`}},
		{"too large", big, nil, 413, map[string]any{"detail": "Request body is larger than the limit of 2048 bytes."}},
	} {
		r := e.do("POST", "/api/v1/bots", acmeKey, tc.body, tc.hdr...)
		if r.status != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, r.status, tc.status, r.body)
			continue
		}
		if got := r.obj(t); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: body =\n%v\nwant\n%v", tc.name, got, tc.want)
		}
	}
	if after := e.counts(); after != before {
		t.Fatalf("refused requests stored something: before %+v, after %+v", before, after)
	}
	if m := e.metrics(); !containsAll(m,
		`usher_ingest_requests_rejected_total{reason="invalid_request",source="http"} 11`,
		`usher_ingest_requests_rejected_total{reason="bad_encoding",source="http"} 1`,
		`usher_ingest_requests_rejected_total{reason="unsupported_media_type",source="http"} 2`,
		`usher_ingest_requests_rejected_total{reason="too_large",source="http"} 1`,
		`usher_ingest_http_requests_total{code="400",route="POST /api/v1/bots"} 12`) {
		t.Fatalf("metrics do not count the refusals:\n%s", grep(m, "usher_ingest_requests_rejected_total", "usher_ingest_http_requests_total"))
	}
}

func TestSimulatorLinksWhenConfigured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"USHER_SIMULATOR_URL": "http://127.0.0.1:8090"})
	bot := e.create(acmeKey, `{"meeting_url":"http://127.0.0.1:8090/teams/meet/1234567890?p=abc","bot_name":"Sim"}`)
	job := e.lastJob("teams")
	if job == nil || job.GetBotId() != bot["id"] || !job.GetSimulated() || job.GetMeetingUrl() != "http://127.0.0.1:8090/teams/meet/1234567890?p=abc" {
		t.Fatalf("job = %v", job)
	}
	if r := e.do("POST", "/api/v1/bots", acmeKey, `{"meeting_url":"http://127.0.0.1:9999/teams/meet/1234567890","bot_name":"x"}`); r.status != http.StatusBadRequest {
		t.Fatalf("another local host accepted: %d %s", r.status, r.body)
	}
}
