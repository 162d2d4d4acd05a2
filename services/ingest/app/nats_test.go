package app_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
)

var jsonHeader = nats.Header{"Content-Type": []string{"application/json"}}

func TestNATSCreatesBotsFromProtobufAndJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)

	reply, msg := e.requestProto("usher.requests.acme", &usherv1.CreateBotRequest{
		MeetingUrl: meetURL + "?authuser=0", BotName: "Proto Bot", Metadata: map[string]string{"k": "v"},
		AutomaticLeaveSettings: &usherv1.AutomaticLeaveSettings{OnlyParticipantTimeoutSeconds: 15},
	}, nil)
	if msg.Header.Get("Usher-Status") != "201" || reply.GetStatus() != 201 || msg.Header.Get("Content-Type") != "application/protobuf" {
		t.Fatalf("reply = %v, headers %v", reply, msg.Header)
	}
	bot := reply.GetBot()
	if !botIDRe.MatchString(bot.GetId()) || bot.GetProject() != "acme" || bot.GetState() != "ready" ||
		bot.GetMeetingUrl() != meetURL || bot.GetPlatform() != "meet" || bot.GetMetadata()["k"] != "v" {
		t.Fatalf("bot = %v", bot)
	}
	job := e.lastJob("meet")
	if job.GetBotId() != bot.GetId() || job.GetAutomaticLeaveSettings().GetOnlyParticipantTimeoutSeconds() != 15 {
		t.Fatalf("job = %v", job)
	}
	if got := e.get(acmeKey, bot.GetId()); got["bot_name"] != "Proto Bot" {
		t.Fatalf("GET = %v", got)
	}

	m := e.request("usher.requests.globex", []byte(`{"meeting_url":"`+zoomURL+`","bot_name":"JSON Bot"}`), jsonHeader)
	if m.Header.Get("Usher-Status") != "201" || m.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON reply headers = %v (%s)", m.Header, m.Data)
	}
	var view map[string]any
	if err := json.Unmarshal(m.Data, &view); err != nil {
		t.Fatal(err)
	}
	if got := e.get(globexKey, view["id"].(string)); !reflect.DeepEqual(got, view) {
		t.Fatalf("JSON reply %v differs from GET %v", view, got)
	}
	if r := e.do("GET", "/api/v1/bots/"+view["id"].(string), acmeKey, ""); r.status != 404 {
		t.Fatalf("globex's NATS bot is visible to acme: %d", r.status)
	}
}

// TestNATSRefusesBadInput sends every kind of bad request over NATS: each
// reply names the reason, a Rejection is on EVENTS, and nothing is stored.
func TestNATSRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"USHER_MAX_BODY_BYTES": "2048"})
	before := e.counts()

	valid, err := proto.Marshal(&usherv1.CreateBotRequest{MeetingUrl: meetURL, BotName: "b"})
	if err != nil {
		t.Fatal(err)
	}
	withUnknown := protowire.AppendVarint(protowire.AppendTag(append([]byte{}, valid...), 99, protowire.VarintType), 7)
	invalid, _ := proto.Marshal(&usherv1.CreateBotRequest{MeetingUrl: "file:///etc/passwd", Metadata: map[string]string{"a": "b"}})

	for _, tc := range []struct {
		name      string
		subject   string
		data      []byte
		hdr       nats.Header
		status    string
		reason    string
		project   string
		errFields map[string]string // field → message (protobuf reply and Rejection)
		message   string            // request-level error (substring)
		jsonBody  map[string]any    // for JSON requests, the reply body
	}{
		{name: "bad protobuf", subject: "usher.requests.acme", data: []byte{0x0a, 0xff, 0x01}, status: "400", reason: "bad_encoding", project: "acme",
			message: "the request is not a usher.v1.CreateBotRequest protobuf message"},
		{name: "uppercase project", subject: "usher.requests.Acme", data: valid, status: "400", reason: "invalid_subject", project: "_invalid",
			message: `Requests must be sent on usher.requests.<project>`},
		{name: "extra token", subject: "usher.requests.acme.more", data: valid, status: "400", reason: "invalid_subject", project: "_invalid",
			message: `got subject "usher.requests.acme.more"`},
		{name: "protobuf validation", subject: "usher.requests.acme", data: invalid, status: "400", reason: "invalid_request", project: "acme",
			errFields: map[string]string{"meeting_url": `Invalid meeting URL: scheme "file" is not allowed, use https://`, "bot_name": "This field is required."}},
		{name: "protobuf unknown field", subject: "usher.requests.acme", data: withUnknown, status: "400", reason: "invalid_request", project: "acme",
			errFields: map[string]string{"non_field_errors": "Unexpected field(s): protobuf field number(s) 99. Allowed fields are: automatic_leave_settings, bot_name, callback_settings, deduplication_key, join_at, meeting_url, metadata, teams_settings"}},
		{name: "JSON wrong type", subject: "usher.requests.acme", hdr: jsonHeader, data: []byte(`{"meeting_url":["x"],"bot_name":"b"}`), status: "400", reason: "invalid_request", project: "acme",
			errFields: map[string]string{"meeting_url": "Not a valid string."}, jsonBody: map[string]any{"meeting_url": []any{"Not a valid string."}}},
		{name: "JSON unknown field", subject: "usher.requests.acme", hdr: jsonHeader, data: []byte(`{"meeting_url":"` + meetURL + `","bot_name":"b","webhook":1}`), status: "400", reason: "invalid_request", project: "acme",
			errFields: map[string]string{"non_field_errors": "Unexpected field(s): webhook. Allowed fields are: automatic_leave_settings, bot_name, callback_settings, deduplication_key, join_at, meeting_url, metadata, teams_settings"}},
		{name: "malformed JSON", subject: "usher.requests.acme", hdr: jsonHeader, data: []byte(`{"meeting_url"`), status: "400", reason: "bad_encoding", project: "acme",
			message: "JSON parse error - ", jsonBody: map[string]any{"detail": "JSON parse error - unexpected end of JSON input"}},
		{name: "JSON array", subject: "usher.requests.acme", hdr: jsonHeader, data: []byte(`[]`), status: "400", reason: "invalid_request", project: "acme",
			errFields: map[string]string{"non_field_errors": "Invalid data. Expected a dictionary, but got list."}},
		{name: "too large", subject: "usher.requests.acme", data: make([]byte, 3000), status: "413", reason: "too_large", project: "acme",
			message: "Request body is larger than the limit of 2048 bytes."},
	} {
		hdr := nats.Header{}
		for k, v := range tc.hdr {
			hdr[k] = v
		}
		hdr.Set("Nats-Msg-Id", "req-"+tc.name)
		_, lastSeq := e.lastRejection(tc.project)
		m := e.request(tc.subject, tc.data, hdr)
		if got := m.Header.Get("Usher-Status"); got != tc.status {
			t.Errorf("%s: Usher-Status %q, want %q (%q)", tc.name, got, tc.status, m.Data)
			continue
		}
		if tc.hdr != nil {
			var body map[string]any
			if err := json.Unmarshal(m.Data, &body); err != nil {
				t.Errorf("%s: JSON reply %q: %v", tc.name, m.Data, err)
			}
			if tc.jsonBody != nil && !reflect.DeepEqual(body, tc.jsonBody) {
				t.Errorf("%s: JSON reply = %v, want %v", tc.name, body, tc.jsonBody)
			}
		} else {
			var reply usherv1.CreateBotReply
			if err := proto.Unmarshal(m.Data, &reply); err != nil {
				t.Errorf("%s: reply: %v", tc.name, err)
			}
			checkFieldErrors(t, tc.name+" reply", reply.GetErrors(), tc.errFields)
			if !strings.Contains(reply.GetError(), tc.message) || reply.GetStatus() == 0 {
				t.Errorf("%s: reply error %q, want it to contain %q", tc.name, reply.GetError(), tc.message)
			}
		}
		rej, seq := e.lastRejection(tc.project)
		if rej == nil || seq == lastSeq {
			t.Errorf("%s: no Rejection on usher.rejections.%s", tc.name, tc.project)
			continue
		}
		if rej.GetReason() != tc.reason || rej.GetSubject() != tc.subject || rej.GetProject() != tc.project ||
			rej.GetMsgId() != "req-"+tc.name || !strings.Contains(rej.GetError(), tc.message) || rej.GetAt() == nil {
			t.Errorf("%s: rejection = %v", tc.name, rej)
		}
		checkFieldErrors(t, tc.name+" rejection", rej.GetErrors(), tc.errFields)
	}
	if after := e.counts(); after != before {
		t.Fatalf("refused requests stored something: before %+v, after %+v", before, after)
	}
}

func checkFieldErrors(t *testing.T, what string, got []*usherv1.FieldError, want map[string]string) {
	t.Helper()
	m := map[string]string{}
	for _, fe := range got {
		m[fe.GetField()] = fe.GetMessage()
	}
	if len(want) == 0 {
		want = map[string]string{}
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("%s: field errors = %v, want %v", what, m, want)
	}
}

func TestNATSFireAndForgetRefusalIsPublished(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if err := e.nc.Publish("usher.requests.acme", []byte{0xff}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the rejection of a request without reply subject", func() bool {
		r, _ := e.lastRejection("acme")
		return r != nil && r.GetReason() == "bad_encoding"
	})
}

func TestNATSMsgIDCreatesOneBot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	req := &usherv1.CreateBotRequest{MeetingUrl: meetURL, BotName: "Once"}
	hdr := nats.Header{"Nats-Msg-Id": []string{"upstream-42"}}
	first, _ := e.requestProto("usher.requests.acme", req, hdr)
	if first.GetStatus() != 201 {
		t.Fatalf("first: %v", first)
	}
	before := e.counts()
	second, m := e.requestProto("usher.requests.acme", req, hdr)
	if m.Header.Get("Usher-Status") != "409" || second.GetBot().GetId() != first.GetBot().GetId() ||
		second.GetError() != "A bot was already created for this Nats-Msg-Id." {
		t.Fatalf("repeat: %v", second)
	}
	if after := e.counts(); after != before {
		t.Fatalf("the repeat stored something: %+v → %+v", before, after)
	}
	rej, _ := e.lastRejection("acme")
	if rej.GetReason() != "duplicate" || rej.GetMsgId() != "upstream-42" ||
		rej.GetError() != "A bot was already created for this Nats-Msg-Id. Existing bot: "+first.GetBot().GetId()+"." {
		t.Fatalf("rejection = %v", rej)
	}

	// JSON repeats answer the HTTP shape of a duplicate.
	jm := e.request("usher.requests.acme", []byte(`{"meeting_url":"`+meetURL+`","bot_name":"Once"}`),
		nats.Header{"Nats-Msg-Id": []string{"upstream-42"}, "Content-Type": []string{"application/json"}})
	var body map[string]any
	_ = json.Unmarshal(jm.Data, &body)
	if jm.Header.Get("Usher-Status") != "409" || body["id"] != first.GetBot().GetId() {
		t.Fatalf("JSON repeat: %s %v", jm.Header.Get("Usher-Status"), body)
	}

	// The id is per project.
	other, _ := e.requestProto("usher.requests.globex", req, hdr)
	if other.GetStatus() != 201 || other.GetBot().GetId() == first.GetBot().GetId() {
		t.Fatalf("another project's request with the same id: %v", other)
	}
	if m := e.metrics(); !containsAll(m, `usher_ingest_bots_created_total{source="nats"} 2`, `usher_ingest_requests_rejected_total{reason="duplicate",source="nats"} 2`) {
		t.Fatalf("metrics:\n%s", grep(m, "usher_ingest_bots_created_total", "duplicate"))
	}
}

// TestNATSBatchAnswersEachRequestOnItsOwn sends a burst of requests at an
// intake with one worker, so they are handled in batches: good and bad
// requests, JSON and protobuf, and three with one Nats-Msg-Id. Each gets
// its own answer, and exactly the bots answered 201 exist, each with its
// job.
func TestNATSBatchAnswersEachRequestOnItsOwn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"USHER_INGEST_INTAKE_WORKERS": "1", "USHER_INGEST_INTAKE_BATCH": "16"})
	before := e.counts()
	replies := make(chan *nats.Msg, 100)
	sub, err := e.nc.ChanSubscribe("_batch.>", replies)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	type sent struct {
		name, msgID string
		json, bad   bool
	}
	var reqs []sent
	for i := range 40 {
		s := sent{name: fmt.Sprintf("Bot %d", i), json: i%3 == 0, bad: i%7 == 3 && i < 37}
		if i >= 37 {
			s.msgID = "same-upstream-id"
		}
		reqs = append(reqs, s)
	}
	for i, s := range reqs {
		url := meetURL
		if s.bad {
			url = ""
		}
		msg := &nats.Msg{Subject: "usher.requests.acme", Reply: fmt.Sprintf("_batch.%d", i), Header: nats.Header{}}
		if s.json {
			msg.Header.Set("Content-Type", "application/json")
			msg.Data = []byte(`{"meeting_url":"` + url + `","bot_name":"` + s.name + `"}`)
		} else if msg.Data, err = proto.Marshal(&usherv1.CreateBotRequest{MeetingUrl: url, BotName: s.name}); err != nil {
			t.Fatal(err)
		}
		if s.msgID != "" {
			msg.Header.Set("Nats-Msg-Id", s.msgID)
		}
		if err := e.nc.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
	}

	created, dupOf := map[string]string{}, map[int]string{} // bot id → name; request → existing id
	var sameID []int
	for range reqs {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d replies missing", len(reqs)-len(created)-len(dupOf))
		}
		i, err := strconv.Atoi(strings.TrimPrefix(m.Subject, "_batch."))
		if err != nil {
			t.Fatal(err)
		}
		s, status := reqs[i], m.Header.Get("Usher-Status")
		var id, errText string
		if s.json {
			var body map[string]any
			if err := json.Unmarshal(m.Data, &body); err != nil {
				t.Fatalf("request %d: JSON reply %q: %v", i, m.Data, err)
			}
			id, _ = body["id"].(string)
			errText = string(m.Data)
		} else {
			var reply usherv1.CreateBotReply
			if err := proto.Unmarshal(m.Data, &reply); err != nil {
				t.Fatalf("request %d: reply: %v", i, err)
			}
			id, errText = reply.GetBot().GetId(), reply.GetError()+fmt.Sprint(reply.GetErrors())
		}
		switch {
		case s.bad:
			if status != "400" || !strings.Contains(errText, "meeting_url") {
				t.Fatalf("request %d (no meeting_url): %s %s", i, status, errText)
			}
		case s.msgID != "" && status == "409":
			dupOf[i] = id
			sameID = append(sameID, i)
		case status == "201":
			if _, twice := created[id]; twice || id == "" {
				t.Fatalf("request %d: bot id %q answered twice or empty", i, id)
			}
			created[id] = s.name
			if s.msgID != "" {
				sameID = append(sameID, i)
			}
		default:
			t.Fatalf("request %d (%+v): %s %s", i, s, status, errText)
		}
	}
	if len(sameID) != 3 || len(dupOf) != 2 {
		t.Fatalf("three requests with one Nats-Msg-Id: %d answered, %d as duplicates (want 3, 2)", len(sameID), len(dupOf))
	}
	for i, id := range dupOf {
		if _, ok := created[id]; !ok {
			t.Fatalf("request %d is a duplicate of %q, which was not created", i, id)
		}
	}
	for id, name := range created {
		if got := e.get(acmeKey, id); got["bot_name"] != name || got["state"] != "ready" {
			t.Fatalf("GET %s = %v, want %q ready", id, got, name)
		}
	}
	// Each created bot stored its document and its job, and nothing else was
	// stored (the Nats-Msg-Id index adds one key).
	after := e.counts()
	if jobs := after.jobs - before.jobs; jobs != uint64(len(created)) {
		t.Fatalf("%d jobs stored for %d bots created", jobs, len(created))
	}
	if docs := after.bots - before.bots; docs != uint64(len(created))+1 {
		t.Fatalf("%d BOTS keys written for %d bots and one Nats-Msg-Id", docs, len(created))
	}
	// Every request went through a batch, and they were not taken one by one.
	m := e.metrics()
	if !containsAll(m, "usher_ingest_nats_batch_size_sum 40") {
		t.Fatalf("batch sizes:\n%s", grep(m, "usher_ingest_nats_batch_size_"))
	}
	if grep(m, "usher_ingest_nats_batch_size_count 40") != "" {
		t.Fatal("40 requests sent at once were handled one at a time")
	}
}
