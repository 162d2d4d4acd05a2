package instant_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/instant"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestJoinWaitsAndHonoursContext(t *testing.T) {
	t.Parallel()
	d := instant.New(instant.Config{JoinDelay: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Join(ctx, driver.JoinRequest{BotID: "bot_a"}, driver.WatcherFunc(func(context.Context) {})); !errors.Is(err, context.Canceled) {
		t.Fatalf("join with a done context: %v", err)
	}
	if st := d.Stats(); st.Attempts != 1 || st.Joins != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWaitingRoomAndStay(t *testing.T) {
	t.Parallel()
	d := instant.New(instant.Config{WaitingRoom: 10 * time.Millisecond, Stay: 10 * time.Millisecond})
	lobbied := 0
	m, err := d.Join(context.Background(), driver.JoinRequest{BotID: "bot_a"}, driver.WatcherFunc(func(context.Context) { lobbied++ }))
	if err != nil || lobbied != 1 || !d.InMeeting("bot_a") {
		t.Fatalf("join: %v, lobbied %d", err, lobbied)
	}
	end, err := m.Wait(context.Background())
	if err != nil || end.Reason != driver.EndMeetingEnded || d.InMeeting("bot_a") {
		t.Fatalf("wait: %v, %v", end, err)
	}
	_ = m.Close()
	_ = m.Close()
	if st := d.Stats(); st.Open != 0 || st.MaxInMeeting != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDoubleJoinIsCounted(t *testing.T) {
	t.Parallel()
	d := instant.New(instant.Config{})
	w := driver.WatcherFunc(func(context.Context) {})
	m1, _ := d.Join(context.Background(), driver.JoinRequest{BotID: "bot_a"}, w)
	m2, _ := d.Join(context.Background(), driver.JoinRequest{BotID: "bot_a"}, w)
	if st := d.Stats(); st.Doubles != 1 || d.Joins("bot_a") != 2 {
		t.Fatalf("stats %+v", st)
	}
	_ = m1.Close()
	_ = m2.Close()
}

func TestEndCrashAndFailJoins(t *testing.T) {
	t.Parallel()
	d := instant.New(instant.Config{})
	w := driver.WatcherFunc(func(context.Context) {})
	wantErr := driver.Fail("meeting_not_found", "prejoin", errors.New("no"))
	d.FailJoins("bot_a", wantErr)
	if _, err := d.Join(context.Background(), driver.JoinRequest{BotID: "bot_a"}, w); !errors.Is(err, wantErr) {
		t.Fatalf("scripted failure: %v", err)
	}
	m, err := d.Join(context.Background(), driver.JoinRequest{BotID: "bot_a"}, w)
	if err != nil {
		t.Fatal(err)
	}
	d.Crash("bot_a")
	if _, err := m.Wait(context.Background()); !errors.Is(err, driver.ErrBrowserCrashed) {
		t.Fatalf("crash: %v", err)
	}
	m, _ = d.Join(context.Background(), driver.JoinRequest{BotID: "bot_a"}, w)
	d.End("bot_a", driver.EndRemoved)
	if end, err := m.Wait(context.Background()); err != nil || end.Reason != driver.EndRemoved {
		t.Fatalf("end: %v, %v", end, err)
	}
	if d.End("bot_a", driver.EndRemoved) {
		t.Fatal("ended a bot not in its meeting")
	}
}
