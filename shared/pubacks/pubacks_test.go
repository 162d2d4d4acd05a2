package pubacks_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/shared/natstest"
	"github.com/usherhq/usher/shared/pubacks"
	"github.com/usherhq/usher/shared/topology"
)

// TestAwaitGivesEachWriteItsResult: a stored write, a refused
// compare-and-set and a write never sent, awaited together; then a write
// awaited with a context already done.
func TestAwaitGivesEachWriteItsResult(t *testing.T) {
	t.Parallel()
	srv := natstest.New(t)
	js := srv.JetStream()
	subject := topology.EventSubject("acme", "bot_0000000000000001")
	send := func(expect uint64) jetstream.PubAckFuture {
		t.Helper()
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: []byte("x")}, jetstream.WithExpectLastSequencePerSubject(expect))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first := send(0)
	stale := send(0) // the subject has first by then
	got := pubacks.Await(ctx, []jetstream.PubAckFuture{first, stale, nil})
	if got[0].Err != nil || got[0].Ack == nil || got[0].Ack.Sequence == 0 {
		t.Fatalf("stored write: %+v", got[0])
	}
	if got[1].Ack != nil || !pubacks.WrongLastSequence(got[1].Err) {
		t.Fatalf("stale compare-and-set: %+v, want a wrong-last-sequence refusal", got[1])
	}
	if got[2] != (pubacks.Result{}) {
		t.Fatalf("no write: %+v, want a zero result", got[2])
	}

	// A write answered before the deadline counts even when awaited after it.
	answered := send(got[0].Ack.Sequence)
	if err := srv.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for js.PublishAsyncPending() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	late := pubacks.Await(done, []jetstream.PubAckFuture{answered})
	if late[0].Err != nil || late[0].Ack == nil {
		t.Fatalf("answered write awaited after the deadline: %+v", late[0])
	}
	if pubacks.WrongLastSequence(context.Canceled) {
		t.Fatal("a cancelled context is not a compare-and-set refusal")
	}
}
