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
