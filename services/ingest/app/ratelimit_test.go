package app_test

import (
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
)

func TestRateLimitPerProjectSharedByHTTPAndNATS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"USHER_RATE_LIMIT": "3/min"})
	id := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b"}`)["id"].(string)
	// An invalid request spends the budget too, as in Attendee.
	if r := e.do("POST", "/api/v1/bots", acmeKey, `{}`); r.status != 400 {
		t.Fatalf("invalid create: %d", r.status)
	}
	// NATS shares the HTTP budget.
	if reply, _ := e.requestProto("usher.requests.acme", &usherv1.CreateBotRequest{MeetingUrl: meetURL, BotName: "n"}, nil); reply.GetStatus() != 201 {
		t.Fatalf("NATS create: %v", reply)
	}
	r := e.do("POST", "/api/v1/bots", acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b"}`)
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != 429 || err != nil || secs < 1 || secs > 60 {
		t.Fatalf("4th create: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	unit := "seconds."
	if secs == 1 {
		unit = "second."
	}
	if got := r.obj(t)["detail"]; got != "Request was throttled. Expected available in "+strconv.Itoa(secs)+" "+unit {
		t.Fatalf("429 detail = %v", got)
	}
	reply, m := e.requestProto("usher.requests.acme", &usherv1.CreateBotRequest{MeetingUrl: meetURL, BotName: "n"}, nats.Header{"Nats-Msg-Id": []string{"t1"}})
	if m.Header.Get("Usher-Status") != "429" || m.Header.Get("Retry-After") == "" || reply.GetError() == "" {
		t.Fatalf("throttled NATS request: %v %v", m.Header, reply)
	}
	if rej, _ := e.lastRejection("acme"); rej.GetReason() != "throttled" || rej.GetMsgId() != "t1" {
		t.Fatalf("rejection = %v", rej)
	}
	// Reads and leave are not throttled; another project is unaffected.
	if r := e.do("GET", "/api/v1/bots/"+id, acmeKey, ""); r.status != 200 {
		t.Fatalf("GET while throttled: %d", r.status)
	}
	if r := e.do("GET", "/api/v1/bots", acmeKey, ""); r.status != 200 {
		t.Fatalf("list while throttled: %d", r.status)
	}
	if r := e.do("POST", "/api/v1/bots/"+id+"/leave", acmeKey, ""); r.status != 200 {
		t.Fatalf("leave while throttled: %d %s", r.status, r.body)
	}
	e.create(globexKey, `{"meeting_url":"`+meetURL+`","bot_name":"b"}`)
}
