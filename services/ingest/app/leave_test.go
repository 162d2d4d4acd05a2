package app_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/topology"
)

func TestLeaveWithoutWorkerEndsTheBot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	id := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b","metadata":{"k":"v"}}`)["id"].(string)

	r := e.do("POST", "/api/v1/bots/"+id+"/leave", acmeKey, "")
	if r.status != 200 {
		t.Fatalf("leave: %d %s", r.status, r.body)
	}
	bot := r.obj(t)
	events := bot["events"].([]any)
	if bot["state"] != "ended" || bot["sub_code"] != "user_requested" || len(events) != 1 {
		t.Fatalf("leave answered %v", bot)
	}
	ev := events[0].(map[string]any)
	if ev["old_state"] != "ready" || ev["new_state"] != "ended" || ev["sub_type"] != "user_requested" || ev["seq"] != 1.0 {
		t.Fatalf("event = %v", ev)
	}
	// The event is on EVENTS, written through botevents, with the bot's metadata.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cur, err := e.events.Last(ctx, "acme", id, botstate.Ready)
	if err != nil || cur.State != botstate.Ended || cur.Seq != 1 {
		t.Fatalf("last event = %+v, %v", cur, err)
	}
	// The projector shows it in GET.
	waitFor(t, 5*time.Second, "GET to show ended", func() bool { return e.get(acmeKey, id)["state"] == "ended" })

	// A finished bot cannot leave again.
	r = e.do("POST", "/api/v1/bots/"+id+"/leave", acmeKey, "")
	if got := r.obj(t); r.status != 409 || !reflect.DeepEqual(got, map[string]any{"error": "Bot has already ended", "state": "ended"}) {
		t.Fatalf("second leave: %d %v", r.status, got)
	}
}

// TestLeaveOfABotWhoseHolderIsGoneEndsIt: the bot's lease names a worker
// that no longer takes commands (it died, its lease not reaped yet), or one
// that answers it does not serve the bot: ingest ends the bot itself, as
// when no worker holds it.
func TestLeaveOfABotWhoseHolderIsGoneEndsIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, answers := range []bool{false, true} {
		id := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b"}`)["id"].(string)
		w := e.worker("acme", id, "ready")
		w.emit("joining", "")
		w.emit("joined", "")
		subject := w.holdLease()
		if answers {
			sub, err := e.nc.Subscribe(subject, func(m *nats.Msg) {
				data, _ := proto.Marshal(&usherv1.ControlReply{Error: "bot is not served by this worker"})
				_ = m.Respond(data)
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sub.Unsubscribe() })
		}
		r := e.do("POST", "/api/v1/bots/"+id+"/leave", acmeKey, "")
		if bot := r.obj(t); r.status != 200 || bot["state"] != "ended" || bot["sub_code"] != "user_requested" {
			t.Fatalf("leave (holder answers: %v): %d %v", answers, r.status, bot)
		}
	}
}

func TestLeaveOfAScheduledBotPurgesItsSchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	joinAt := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	id := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b","join_at":"`+joinAt+`"}`)["id"].(string)
	if !e.hasSchedule(id) {
		t.Fatal("no schedule stored")
	}
	if r := e.do("POST", "/api/v1/bots/"+id+"/leave", acmeKey, ""); r.status != 200 || r.obj(t)["state"] != "ended" {
		t.Fatalf("leave: %d %s", r.status, r.body)
	}
	if e.hasSchedule(id) {
		t.Fatal("the schedule is still stored after leave")
	}
}

func TestLeaveAsksTheWorkerHoldingTheBot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	id := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b"}`)["id"].(string)
	w := e.worker("acme", id, "ready")
	w.emit("joining", "")
	w.emit("joined", "")

	// A fake worker on the control subject: it emits leaving, then answers.
	var (
		mu       sync.Mutex
		commands []*usherv1.LeaveCommand
	)
	received := func() []*usherv1.LeaveCommand {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(commands)
	}
	sub, err := e.nc.Subscribe(w.holdLease(), func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		var cmd usherv1.LeaveCommand
		if err := proto.Unmarshal(m.Data, &cmd); err != nil {
			t.Errorf("leave command: %v", err)
			return
		}
		commands = append(commands, &cmd)
		w.emit("leaving", botstate.SubUserRequested)
		data, _ := proto.Marshal(&usherv1.ControlReply{Accepted: true, State: "leaving", Seq: w.cur.Seq})
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	r := e.do("POST", "/api/v1/bots/"+id+"/leave", acmeKey, "")
	if r.status != 200 {
		t.Fatalf("leave: %d %s", r.status, r.body)
	}
	bot := r.obj(t)
	events := bot["events"].([]any)
	last := events[len(events)-1].(map[string]any)
	if bot["state"] != "leaving" || len(events) != 3 || last["type"] != "leave_requested" || last["sub_type"] != "user_requested" {
		t.Fatalf("leave answered %v", bot)
	}
	if cmds := received(); len(cmds) != 1 || cmds[0].GetBotId() != id || cmds[0].GetReason() != "user_requested" {
		t.Fatalf("commands = %v", cmds)
	}
	// Leave of a leaving bot answers it as it is, without a second command.
	if r := e.do("POST", "/api/v1/bots/"+id+"/leave", acmeKey, ""); r.status != 200 || r.obj(t)["state"] != "leaving" || len(received()) != 1 {
		t.Fatalf("second leave: %d %s, %d commands", r.status, r.body, len(received()))
	}
	mu.Lock()
	w.emit("ended", "")
	mu.Unlock()
	waitFor(t, 5*time.Second, "ended in GET", func() bool { return e.get(acmeKey, id)["state"] == "ended" })
	if r := e.do("POST", "/api/v1/bots/"+id+"/leave", acmeKey, ""); r.status != 409 {
		t.Fatalf("leave of an ended bot: %d %s", r.status, r.body)
	}
}

func TestDeleteScheduledBot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	joinAt := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	id := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b","join_at":"`+joinAt+`","deduplication_key":"d1"}`)["id"].(string)

	r := e.do("DELETE", "/api/v1/bots/"+id, acmeKey, "")
	if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Type") != "" {
		t.Fatalf("delete: %d %q %q", r.status, r.body, r.header.Get("Content-Type"))
	}
	if r := e.do("GET", "/api/v1/bots/"+id, acmeKey, ""); r.status != 404 {
		t.Fatalf("GET after delete: %d", r.status)
	}
	if e.hasSchedule(id) {
		t.Fatal("the schedule survived the delete")
	}
	// A worker that got the job anyway would find the bot finished.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if cur, err := e.events.Last(ctx, "acme", id, botstate.Scheduled); err != nil || !cur.State.Terminal() {
		t.Fatalf("last event after delete = %+v, %v", cur, err)
	}
	// Its deduplication key is free.
	e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b","deduplication_key":"d1"}`)

	// Only scheduled bots can be deleted.
	ready := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b"}`)["id"].(string)
	r = e.do("DELETE", "/api/v1/bots/"+ready, acmeKey, "")
	if got := r.obj(t); r.status != 400 || got["error"] != "Bot is in state ready but can only be deleted when in scheduled state" {
		t.Fatalf("delete of a ready bot: %d %v", r.status, got)
	}
	sched := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b","join_at":"`+joinAt+`"}`)["id"].(string)
	w := e.worker("acme", sched, "scheduled")
	w.emit("joining", "")
	r = e.do("DELETE", "/api/v1/bots/"+sched, acmeKey, "")
	if got := r.obj(t); r.status != 400 || got["error"] != "Bot is in state joining but can only be deleted when in scheduled state" {
		t.Fatalf("delete of a joining bot: %d %v", r.status, got)
	}
}

// hasSchedule reports whether the bot's schedule is stored in JOBS.
func (e *env) hasSchedule(id string) bool {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := e.topo.Jobs.GetLastMsgForSubject(ctx, topology.ScheduleSubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return true
}

func TestLeaveRefusedByTheWorkerAsksToRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	id := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b"}`)["id"].(string)
	w := e.worker("acme", id, "ready")
	w.emit("joining", "")
	w.emit("joined", "")
	sub, err := e.nc.Subscribe(w.holdLease(), func(m *nats.Msg) {
		data, _ := proto.Marshal(&usherv1.ControlReply{State: "joined", Seq: 2, Error: "bot lease lost"})
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	r := e.do("POST", "/api/v1/bots/"+id+"/leave", acmeKey, "")
	if r.status != 503 || r.header.Get("Retry-After") != "1" || !strings.Contains(string(r.body), "bot lease lost") {
		t.Fatalf("leave refused by the worker: %d %s", r.status, r.body)
	}
	if got := e.get(acmeKey, id); got["state"] != "joined" {
		t.Fatalf("a refused leave changed the bot: %v", got["state"])
	}
}
