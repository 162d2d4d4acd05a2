package app_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/topology"
)

func TestProjectorShowsWorkerEventsInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	id := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b"}`)["id"].(string)
	w := e.worker("acme", id, "ready")
	w.emit("joining", "")
	w.emit("waiting_room", "")
	w.emit("joined", "")
	w.emit("leaving", botstate.SubAutoLeaveAlone)
	w.emit("ended", "")
	waitFor(t, 5*time.Second, "all five events in GET", func() bool {
		return len(e.get(acmeKey, id)["events"].([]any)) == 5
	})
	bot := e.get(acmeKey, id)
	var got []string
	for _, ev := range bot["events"].([]any) {
		m := ev.(map[string]any)
		got = append(got, fmt.Sprintf("%v %v→%v %v %v", m["seq"], m["old_state"], m["new_state"], m["type"], m["sub_type"]))
	}
	want := []string{
		"1 ready→joining join_requested <nil>",
		"2 joining→waiting_room put_in_waiting_room <nil>",
		"3 waiting_room→joined joined_meeting <nil>",
		"4 joined→leaving leave_requested auto_leave_only_participant_in_meeting",
		"5 leaving→ended left_meeting <nil>",
	}
	if !reflect.DeepEqual(got, want) || bot["state"] != "ended" || bot["sub_code"] != nil {
		t.Fatalf("events = %v, state %v, sub_code %v", got, bot["state"], bot["sub_code"])
	}
}

// publishRaw writes an event straight to EVENTS, bypassing botevents'
// ordering, as a misbehaving writer or a redelivery would.
func (e *env) publishRaw(project, id string, seq uint64, from, to, sub, msgID string) {
	e.t.Helper()
	data, err := proto.Marshal(&usherv1.BotEvent{BotId: id, Project: project, Seq: seq, OldState: from, NewState: to, SubCode: sub, At: timestamppb.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: topology.EventSubject(project, id), Data: data}, jetstream.WithMsgID(msgID)); err != nil {
		e.t.Fatal(err)
	}
}

func TestProjectorHandlesDuplicatesAndOutOfOrderEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	id := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b"}`)["id"].(string)
	e.publishRaw("acme", id, 2, "joining", "failed", botstate.SubMeetingNotFound, "a")
	e.publishRaw("acme", id, 1, "ready", "joining", "", "b")
	e.publishRaw("acme", id, 1, "ready", "joining", "", "c")
	e.publishRaw("acme", id, 2, "joining", "failed", botstate.SubMeetingNotFound, "d")
	waitFor(t, 10*time.Second, "the duplicates to be seen", func() bool {
		m := e.metrics()
		return strings.Contains(m, `usher_ingest_projector_events_total{outcome="duplicate"} 2`) &&
			strings.Contains(m, `usher_ingest_projector_events_total{outcome="applied"} 2`)
	})
	bot := e.get(acmeKey, id)
	events := bot["events"].([]any)
	if len(events) != 2 || bot["state"] != "failed" || bot["sub_code"] != botstate.SubMeetingNotFound {
		t.Fatalf("bot = %v", bot)
	}
	if events[0].(map[string]any)["seq"] != 1.0 || events[1].(map[string]any)["type"] != "could_not_join_meeting" {
		t.Fatalf("events = %v", events)
	}
	if m := e.metrics(); !strings.Contains(m, `usher_ingest_projector_events_total{outcome="gap"}`) || strings.Contains(m, `usher_ingest_projector_events_total{outcome="gap"} 0`) {
		t.Fatalf("the early event was not counted as a gap:\n%s", grep(m, "projector_events_total"))
	}
}

func TestProjectorResumesAfterIngestRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const n = 12
	var workers []*worker
	for i := range n {
		id := e.create(acmeKey, fmt.Sprintf(`{"meeting_url":"%s","bot_name":"b%d"}`, meetURL, i))["id"].(string)
		workers = append(workers, e.worker("acme", id, "ready"))
	}
	steps := []string{"joining", "joined", "leaving", "ended"}
	emitAll := func(step string) {
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Go(func() { w.emit(step, "") })
		}
		wg.Wait()
	}
	emitAll(steps[0])
	emitAll(steps[1])
	// Ingest goes away mid-stream; events keep coming.
	e.stopIngest()
	emitAll(steps[2])
	e.startIngest()
	emitAll(steps[3])
	waitFor(t, 15*time.Second, "every bot ended in GET", func() bool {
		for _, w := range workers {
			if e.get(acmeKey, w.cur.BotID)["state"] != "ended" {
				return false
			}
		}
		return true
	})
	for _, w := range workers {
		var seqs []float64
		for _, ev := range e.get(acmeKey, w.cur.BotID)["events"].([]any) {
			seqs = append(seqs, ev.(map[string]any)["seq"].(float64))
		}
		if !reflect.DeepEqual(seqs, []float64{1, 2, 3, 4}) {
			t.Fatalf("bot %s events %v, want each of 1-4 once", w.cur.BotID, seqs)
		}
	}
}

func TestDeduplicationKeyOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	body := `{"meeting_url":"` + meetURL + `","bot_name":"b","deduplication_key":" sync-42 "}`
	first := e.create(acmeKey, body)["id"].(string)
	before := e.counts()
	r := e.do("POST", "/api/v1/bots", acmeKey, body)
	want := map[string]any{
		"error": "Deduplication key already in use. A bot in a non-terminal state with this deduplication key already exists. Please use a different deduplication key or wait for that bot to terminate.",
		"id":    first,
	}
	if got := r.obj(t); r.status != 409 || !reflect.DeepEqual(got, want) {
		t.Fatalf("second create: %d %v", r.status, got)
	}
	if after := e.counts(); after.jobs != before.jobs {
		t.Fatalf("the duplicate published a job")
	}
	// Other projects have their own keys.
	e.create(globexKey, body)

	w := e.worker("acme", first, "ready")
	w.emit("joining", "")
	if r := e.do("POST", "/api/v1/bots", acmeKey, body); r.status != 409 {
		t.Fatalf("create while the first bot is joining: %d", r.status)
	}
	w.emit("failed", botstate.SubMeetingNotFound)
	var second string
	waitFor(t, 10*time.Second, "the key to be reusable once the first bot failed", func() bool {
		r := e.do("POST", "/api/v1/bots", acmeKey, body)
		if r.status == 201 {
			second = r.obj(t)["id"].(string)
		}
		return r.status == 201
	})
	if r := e.do("POST", "/api/v1/bots", acmeKey, body); r.status != 409 || r.obj(t)["id"] != second {
		t.Fatalf("the new bot does not hold the key: %d %s", r.status, r.body)
	}
	if got := e.list(acmeKey, "/api/v1/bots?deduplication_key=sync-42").ids; !reflect.DeepEqual(got, newestFirst([]string{first, second})) {
		t.Fatalf("bots with the key: %v", got)
	}
}
