package botcontrol_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/botcontrol"
	"github.com/usherhq/usher/shared/natstest"
)

func TestTargetReadsTheBotOfASubject(t *testing.T) {
	t.Parallel()
	prefix := botcontrol.NewPrefix()
	if other := botcontrol.NewPrefix(); other == prefix {
		t.Fatalf("two workers got prefix %s", prefix)
	}
	project, bot, ok := botcontrol.Target(prefix, botcontrol.Subject(prefix, "acme", "bot_0000000000000001"))
	if !ok || project != "acme" || bot != "bot_0000000000000001" {
		t.Fatalf("Target = %q %q %v", project, bot, ok)
	}
	for _, subject := range []string{
		botcontrol.Subject(botcontrol.NewPrefix(), "acme", "bot_0000000000000001"), // another worker's
		prefix + ".acme",
		prefix + ".acme.bot_1.x",
		"usher.control.acme.bot_0000000000000001", // the old per-bot subject
	} {
		if _, _, ok := botcontrol.Target(prefix, subject); ok {
			t.Errorf("Target(%s) accepted", subject)
		}
	}
}

// TestLeaveReachesTheWorkerItsLeaseNames: the command goes to the prefix
// the lease names (an older worker's lease, without one: the subject per
// bot that worker subscribed); no lease, a hand-off, an older worker's lease without a
// prefix whose worker is gone, a holder gone and a holder that does not serve the bot are all
// "nobody holds it" (ErrNotHeld, a nats.ErrNoResponders).
func TestLeaveReachesTheWorkerItsLeaseNames(t *testing.T) {
	t.Parallel()
	srv := natstest.New(t)
	topo := srv.Topology()
	nc := srv.Conn()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease := func(bot, value string) {
		t.Helper()
		if _, err := topo.Leases.Put(ctx, bot, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	prefix := botcontrol.NewPrefix()
	got := make(chan *usherv1.LeaveCommand, 4)
	sub, err := nc.Subscribe(prefix+".>", func(m *nats.Msg) {
		var cmd usherv1.LeaveCommand
		if err := proto.Unmarshal(m.Data, &cmd); err != nil {
			t.Errorf("command: %v", err)
			return
		}
		got <- &cmd
		reply := &usherv1.ControlReply{Accepted: true, State: "leaving", Seq: 3}
		if cmd.GetBotId() == "bot_0000000000000006" {
			reply = &usherv1.ControlReply{Error: "bot is not served by this worker"}
		}
		data, _ := proto.Marshal(reply)
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	lease("bot_0000000000000001", fmt.Sprintf(`{"worker":"w","token":"t","beat":"b","control":%q}`, prefix))
	reply, err := botcontrol.Leave(ctx, nc, topo.Leases, "acme", "bot_0000000000000001", "user_requested")
	if err != nil || !reply.GetAccepted() || reply.GetState() != "leaving" || reply.GetSeq() != 3 {
		t.Fatalf("leave of a held bot: %v, %v", reply, err)
	}
	if cmd := <-got; cmd.GetBotId() != "bot_0000000000000001" || cmd.GetReason() != "user_requested" {
		t.Fatalf("command = %v", cmd)
	}

	// An older worker's lease (no prefix): its subscription per bot.
	legacy, err := nc.Subscribe("usher.control.acme.bot_0000000000000004", func(m *nats.Msg) {
		data, _ := proto.Marshal(&usherv1.ControlReply{Accepted: true, State: "leaving", Seq: 4})
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = legacy.Unsubscribe() })
	lease("bot_0000000000000004", `{"worker":"w","token":"t","beat":"b"}`)
	if reply, err := botcontrol.Leave(ctx, nc, topo.Leases, "acme", "bot_0000000000000004", "user_requested"); err != nil || reply.GetSeq() != 4 {
		t.Fatalf("leave of a bot an older worker holds: %v, %v", reply, err)
	}
	lease("bot_0000000000000007", `{"worker":"w","token":"t","beat":"b"}`)

	lease("bot_0000000000000003", fmt.Sprintf(`{"worker":"w","token":"t","beat":"b","control":%q,"hand_off":true}`, prefix))
	lease("bot_0000000000000005", fmt.Sprintf(`{"worker":"w","token":"t","beat":"b","control":%q}`, botcontrol.NewPrefix()))
	lease("bot_0000000000000006", fmt.Sprintf(`{"worker":"w","token":"t","beat":"b","control":%q}`, prefix))
	for bot, why := range map[string]string{
		"bot_0000000000000002": "no lease",
		"bot_0000000000000003": "handed off",
		"bot_0000000000000007": "an older worker's lease, that worker gone",
		"bot_0000000000000005": "its worker is gone",
		"bot_0000000000000006": "its worker does not serve it",
	} {
		reply, err := botcontrol.Leave(ctx, nc, topo.Leases, "acme", bot, "user_requested")
		if !errors.Is(err, botcontrol.ErrNotHeld) || !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("leave of a bot %s: %v, %v; want ErrNotHeld", why, reply, err)
		}
	}
	if len(got) != 1 { // the one the worker does not serve
		t.Fatalf("%d more commands reached the worker, want 1", len(got))
	}
}
