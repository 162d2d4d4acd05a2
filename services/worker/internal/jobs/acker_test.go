package jobs

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/natstest"
)

// TestAckerSendsAnUnconfirmedAckAgain: an ack that goes unanswered (as if
// lost) is sent again and then confirmed; an ack nobody can take is
// answered "no responders" and dropped. Nothing is left pending.
func TestAckerSendsAnUnconfirmedAckAgain(t *testing.T) {
	t.Parallel()
	srv := natstest.New(t)
	nc := srv.Conn()
	var got atomic.Int32
	sub, err := nc.Subscribe("test.ack.lossy", func(m *nats.Msg) {
		if string(m.Data) != "+ACK" {
			t.Errorf("ack payload %q", m.Data)
		}
		if got.Add(1) > 1 {
			_ = m.Respond(nil)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	a := newAcker(nc, 100*time.Millisecond, logging.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	waitFor(t, func() bool { return nc.NumSubscriptions() == 2 })

	a.ack("test.ack.lossy", logging.Discard())
	a.ack("test.ack.nobody", logging.Discard())
	waitFor(t, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.pending) == 0
	})
	if n := got.Load(); n != 2 {
		t.Fatalf("the lost ack was sent %d times, want 2 (sent again once, then confirmed)", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
