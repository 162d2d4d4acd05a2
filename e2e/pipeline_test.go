package e2e

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/usherhq/usher/e2e/fleet"
	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/topology"
)

// TestBotRequestedOverNATS: an upstream system asks for a bot with a
// protobuf CreateBotRequest on usher.requests.<project>, gets a 201
// CreateBotReply, and follows the bot through its events on
// usher.events.<project>.<bot_id> until it is joined.
func TestBotRequestedOverNATS(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	m := newMeeting(t, sim.MeetingSpec{Platform: sim.Meet})
	name := uniqueName("Upstream bot")

	nc, err := nats.Connect(fl.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// Subscribe before asking: the first events may come before the reply.
	sub, err := nc.SubscribeSync(topology.EventSubject(fleet.Project, "*"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	req, err := proto.Marshal(&usherv1.CreateBotRequest{
		MeetingUrl: m.URL,
		BotName:    name,
		Metadata:   map[string]string{"source": "nats"},
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := nc.RequestWithContext(ctx, topology.RequestSubject(fleet.Project), req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	var reply usherv1.CreateBotReply
	if err := proto.Unmarshal(msg.Data, &reply); err != nil {
		t.Fatalf("reply is not a CreateBotReply: %v", err)
	}
	if reply.GetStatus() != http.StatusCreated || msg.Header.Get("Usher-Status") != "201" {
		t.Fatalf("reply status %d (header %q), errors %v %q, want 201", reply.GetStatus(), msg.Header.Get("Usher-Status"), reply.GetErrors(), reply.GetError())
	}
	id := reply.GetBot().GetId()
	if id == "" || reply.GetBot().GetState() != "ready" || reply.GetBot().GetBotName() != name {
		t.Fatalf("reply bot %v, want a ready bot named %q", reply.GetBot(), name)
	}

	var got []*usherv1.BotEvent
	want := []string{"joining", "joined"}
	evCtx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	for len(got) < len(want) {
		msg, err := sub.NextMsgWithContext(evCtx)
		if err != nil {
			t.Fatalf("events of %s on %s: %v, want %v (%v)", id, topology.EventSubject(fleet.Project, id), got, want, err)
		}
		if msg.Subject != topology.EventSubject(fleet.Project, id) {
			continue // another test's bot
		}
		ev, err := botevents.Decode(msg.Data)
		if err != nil {
			t.Fatalf("event on %s: %v", msg.Subject, err)
		}
		got = append(got, ev)
	}
	for i, ev := range got {
		if ev.GetBotId() != id || ev.GetProject() != fleet.Project || ev.GetSeq() != uint64(i+1) || ev.GetNewState() != want[i] ||
			ev.GetBotMetadata()["source"] != "nats" || ev.GetAt() == nil {
			t.Fatalf("event %d: %v, want bot %s project %s seq %d new_state %s with bot_metadata", i+1, ev, id, fleet.Project, i+1, want[i])
		}
	}
	// The API tells the same story, and the simulator has the bot in the meeting.
	waitState(t, ctx, fl.As(fleet.Project), id, "joined", joinTimeout)
	waitParticipant(t, ctx, m.ID, name, sim.StateInMeeting)
}

// TestScheduledBot: a bot with join_at a few seconds ahead is scheduled and
// stays so until its time; its joining event comes after join_at, and then
// it joins.
func TestScheduledBot(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(fleet.Project)
	m := newMeeting(t, sim.MeetingSpec{Platform: sim.Zoom})
	name, cancelledName := uniqueName("Punctual"), uniqueName("Cancelled")
	joinAt := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second).UTC()
	bot := createBot(t, ctx, c, map[string]any{"meeting_url": m.URL, "bot_name": name, "join_at": joinAt.Format(time.RFC3339)})
	if bot.State != "scheduled" || bot.JoinAt == nil {
		t.Fatalf("created bot: state %q join_at %v, want scheduled with join_at", bot.State, bot.JoinAt)
	}
	// A second bot for the same time is called off before its time: it ends
	// at once and never joins.
	cancelled := createBot(t, ctx, c, map[string]any{"meeting_url": m.URL, "bot_name": cancelledName, "join_at": joinAt.Format(time.RFC3339)})
	if status, body := leave(t, ctx, c, cancelled.ID); status != http.StatusOK || body["state"] != "ended" {
		t.Fatalf("leave of a scheduled bot: %d %v, want 200 with the bot ended", status, body)
	}
	// Until join_at the bot is scheduled and has no events. (Polled up to
	// half a second before: the check, not a sleep.)
	for time.Until(joinAt) > 500*time.Millisecond {
		b, err := c.GetBot(ctx, bot.ID)
		if err != nil {
			t.Fatal(err)
		}
		if b.State != "scheduled" || len(b.Events) != 0 {
			t.Fatalf("%s before join_at: bot is %s with events %v, want scheduled and none", time.Until(joinAt), b.State, describe(b.Events))
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	joined := waitState(t, ctx, c, bot.ID, "joined", joinTimeout)
	wantOutcome(t, joined, "joined", "", "joining", "joined")
	waitParticipant(t, ctx, m.ID, name, sim.StateInMeeting)

	evs, err := c.Events(ctx, bot.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 1 || evs[0].GetNewState() != "joining" || evs[0].GetOldState() != "scheduled" {
		t.Fatalf("first event %v, want scheduled → joining", evs)
	}
	if at := evs[0].GetAt().AsTime(); at.Before(joinAt) {
		t.Fatalf("joining at %s, before join_at %s", at.Format(time.RFC3339Nano), joinAt.Format(time.RFC3339))
	}
	if !slices.Equal(joined.States(), []string{"joining", "joined"}) {
		t.Fatalf("states %v", joined.States())
	}
	// The other bot's time came too (its schedule fired with this one's, or
	// was purged): it is still ended, and never entered the meeting.
	off, err := c.GetBot(ctx, cancelled.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, off, "ended", "user_requested", "ended")
	wantTypes(t, off, "cancelled")
	if mt, err := fl.Sim.Meeting(m.ID); err != nil {
		t.Fatal(err)
	} else if _, found := mt.Find(cancelledName); found {
		t.Fatalf("the cancelled bot is in the meeting: %+v", mt.Participants)
	}
}
