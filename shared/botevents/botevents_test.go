package botevents_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/natstest"
)

func TestPublishOrdersEventsAndRefusesStaleWriters(t *testing.T) {
	t.Parallel()
	srv := natstest.New(t)
	topo := srv.Topology()
	store := botevents.New(srv.JetStream(), topo.Events)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cur, err := store.Last(ctx, "acme", "bot_0000000000000001", botstate.Ready)
	if err != nil || cur.Seq != 0 || cur.State != botstate.Ready {
		t.Fatalf("Last on a new bot = %+v, %v", cur, err)
	}
	stale := cur
	cur, ev, err := store.Publish(ctx, cur, botevents.Change{To: botstate.Joining, BotMetadata: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatalf("publish joining: %v", err)
	}
	if ev.GetSeq() != 1 || ev.GetOldState() != "ready" || ev.GetNewState() != "joining" || ev.GetBotMetadata()["k"] != "v" {
		t.Fatalf("event = %v", ev)
	}
	// A second writer that read before the first publish is refused.
	if _, _, err := store.Publish(ctx, stale, botevents.Change{To: botstate.Ended}); !errors.Is(err, botevents.ErrConflict) {
		t.Fatalf("stale writer: err = %v, want ErrConflict", err)
	}
	// So is a retry of the event that landed (events carry no Nats-Msg-Id:
	// the compare-and-set alone keeps a bot's events one each), and nothing
	// is stored twice.
	if _, _, err := store.Publish(ctx, stale, botevents.Change{To: botstate.Joining, BotMetadata: map[string]string{"k": "v"}}); !errors.Is(err, botevents.ErrConflict) {
		t.Fatalf("retried joining: err = %v, want ErrConflict", err)
	}
	if again, err := store.Last(ctx, "acme", "bot_0000000000000001", botstate.Ready); err != nil || again != cur {
		t.Fatalf("after the retry Last = %+v, %v; want %+v", again, err, cur)
	}
	if _, _, err := store.Publish(ctx, cur, botevents.Change{To: botstate.Ready}); !errors.Is(err, botevents.ErrIllegalTransition) {
		t.Fatalf("joining → ready: err = %v, want ErrIllegalTransition", err)
	}
	cur, _, err = store.Publish(ctx, cur, botevents.Change{To: botstate.Failed, SubCode: botstate.SubMeetingNotFound})
	if err != nil {
		t.Fatalf("publish failed: %v", err)
	}
	last, err := store.Last(ctx, "acme", "bot_0000000000000001", botstate.Ready)
	if err != nil || last != cur || last.Seq != 2 || last.State != botstate.Failed {
		t.Fatalf("Last = %+v, %v; want %+v", last, err, cur)
	}
}

// TestPublishManyGivesEachChangeItsOwnOutcome: one burst holds a first
// event, a stale writer's, an illegal one and a later event of a bot; each
// gets what Publish would have given it.
func TestPublishManyGivesEachChangeItsOwnOutcome(t *testing.T) {
	t.Parallel()
	srv := natstest.New(t)
	store := botevents.New(srv.JetStream(), srv.Topology().Events)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fresh := func(id string) botevents.Cursor {
		return botevents.Cursor{Project: "acme", BotID: id, State: botstate.Ready}
	}
	b2, _, err := store.Publish(ctx, fresh("bot_0000000000000002"), botevents.Change{To: botstate.Joining})
	if err != nil {
		t.Fatal(err)
	}
	out := store.PublishMany(ctx, []botevents.Append{
		{Cur: fresh("bot_0000000000000001"), Change: botevents.Change{To: botstate.Joining}},
		{Cur: fresh("bot_0000000000000002"), Change: botevents.Change{To: botstate.Joining}}, // stale: 2 has an event
		{Cur: fresh("bot_0000000000000003"), Change: botevents.Change{To: botstate.Ready}},   // illegal
		{Cur: b2, Change: botevents.Change{To: botstate.Joined}},
	})
	if out[0].Err != nil || out[0].Cur.Seq != 1 || out[0].Cur.State != botstate.Joining || out[0].Event.GetSeq() != 1 {
		t.Fatalf("first event: %+v", out[0])
	}
	if !errors.Is(out[1].Err, botevents.ErrConflict) || out[1].Cur != fresh("bot_0000000000000002") {
		t.Fatalf("stale writer: %+v, want ErrConflict and its cursor back", out[1])
	}
	if !errors.Is(out[2].Err, botevents.ErrIllegalTransition) {
		t.Fatalf("ready → ready: %+v, want ErrIllegalTransition", out[2])
	}
	if out[3].Err != nil || out[3].Cur.Seq != 2 || out[3].Cur.State != botstate.Joined {
		t.Fatalf("second event of bot 2: %+v", out[3])
	}
	for i, id := range []string{"bot_0000000000000001", "bot_0000000000000002"} {
		last, err := store.Last(ctx, "acme", id, botstate.Ready)
		if err != nil || last != out[[]int{0, 3}[i]].Cur {
			t.Fatalf("Last(%s) = %+v, %v", id, last, err)
		}
	}
}
