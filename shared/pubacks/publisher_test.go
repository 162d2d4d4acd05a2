package pubacks_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/usherhq/usher/shared/natstest"
	"github.com/usherhq/usher/shared/pubacks"
	"github.com/usherhq/usher/shared/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(natstest.ObjectPutLeak))
}

// newPublisher is a Publisher on a fresh connection to srv, closed by the
// test's cleanup before the connection.
func newPublisher(t *testing.T, srv *natstest.Server, cfg pubacks.PublisherConfig) *pubacks.Publisher {
	t.Helper()
	nc := srv.Conn()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pubacks.NewPublisher(js, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// listenSilently subscribes to silent.> and never answers: a write there
// is taken by nobody's stream and waits for its timeout.
func listenSilently(t *testing.T, srv *natstest.Server) {
	t.Helper()
	nc := srv.Conn()
	sub, err := nc.SubscribeSync("silent.>")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// noExpectation publishes without a compare-and-set.
const noExpectation = ^uint64(0)

func awaitOne(t *testing.T, f jetstream.PubAckFuture, within time.Duration) pubacks.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return pubacks.Await(ctx, []jetstream.PubAckFuture{f})[0]
}

// TestPublisherAnswersAsNatsGoDoes: the acknowledgements and refusals a
// caller branches on are the ones nats.go's async publish gives.
func TestPublisherAnswersAsNatsGoDoes(t *testing.T) {
	t.Parallel()
	srv := natstest.New(t)
	p := newPublisher(t, srv, pubacks.PublisherConfig{})
	subject := topology.EventSubject("acme", "bot_0000000000000002")
	publish := func(expect uint64, msgID string) pubacks.Result {
		t.Helper()
		m := &nats.Msg{Subject: subject, Data: []byte("x")}
		if expect != noExpectation {
			pubacks.ExpectLastSequence(m, expect)
		}
		if msgID != "" {
			pubacks.SetMsgID(m, msgID)
		}
		f, err := p.PublishMsgAsync(m)
		if err != nil {
			t.Fatal(err)
		}
		if m.Reply != "" {
			t.Fatalf("the caller's message was given reply %q", m.Reply)
		}
		return awaitOne(t, f, 5*time.Second)
	}

	first := publish(0, "one")
	if first.Err != nil || first.Ack == nil || first.Ack.Stream != topology.StreamEvents || first.Ack.Sequence == 0 || first.Ack.Duplicate {
		t.Fatalf("stored write: %+v", first)
	}
	// The same Nats-Msg-Id again: JetStream drops the copy and says so.
	// (With an expectation, the stale expectation would be refused first.)
	dup := publish(noExpectation, "one")
	if dup.Err != nil || dup.Ack == nil || !dup.Ack.Duplicate || dup.Ack.Sequence != first.Ack.Sequence {
		t.Fatalf("duplicate write: %+v, want the first write's sequence %d marked duplicate", dup, first.Ack.Sequence)
	}
	stale := publish(0, "two")
	if stale.Ack != nil || !pubacks.WrongLastSequence(stale.Err) {
		t.Fatalf("stale compare-and-set: %+v, want a wrong-last-sequence refusal", stale)
	}
	var apiErr *jetstream.APIError
	if !errors.As(stale.Err, &apiErr) || apiErr.Code != 400 {
		t.Fatalf("refusal %v is not the server's API error", stale.Err)
	}
	next := publish(first.Ack.Sequence, "three")
	if next.Err != nil || next.Ack.Sequence <= first.Ack.Sequence {
		t.Fatalf("compare-and-set on the last sequence: %+v", next)
	}

	// The channels of jetstream.PubAckFuture work too, read after the answer.
	m := &nats.Msg{Subject: subject, Data: []byte("y")}
	f, err := p.PublishMsgAsync(m)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.(*pubacks.Future).Done():
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}
	select {
	case ack := <-f.Ok():
		if ack.Sequence <= next.Ack.Sequence {
			t.Fatalf("Ok gave %+v", ack)
		}
	case err := <-f.Err():
		t.Fatalf("Err gave %v", err)
	}
	if f.Msg() != m {
		t.Fatal("Msg is not the message published")
	}

	// With options it is nats.go's own publish.
	viaOpts, err := p.PublishMsgAsync(&nats.Msg{Subject: subject, Data: []byte("z")}, jetstream.WithExpectLastSequencePerSubject(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, ours := viaOpts.(*pubacks.Future); ours {
		t.Fatal("a publish with options did not go through nats.go")
	}
	if r := awaitOne(t, viaOpts, 5*time.Second); !pubacks.WrongLastSequence(r.Err) {
		t.Fatalf("nats.go's publish with a stale expectation: %+v", r)
	}
}

// TestPublisherFailsWhatGoesUnanswered: no stream on the subject, a
// listener that never answers, more writes than slots, a closed publisher.
func TestPublisherFailsWhatGoesUnanswered(t *testing.T) {
	t.Parallel()
	srv := natstest.New(t)
	p := newPublisher(t, srv, pubacks.PublisherConfig{
		Timeout: 200 * time.Millisecond, MaxPending: 2, StallWait: 50 * time.Millisecond, RetryWait: 10 * time.Millisecond,
	})

	// Nobody listens: retried, then ErrNoStreamResponse.
	f, err := p.PublishMsgAsync(&nats.Msg{Subject: "nowhere.at.all", Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if r := awaitOne(t, f, 5*time.Second); !errors.Is(r.Err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("no stream: %+v, want ErrNoStreamResponse", r)
	}

	// A listener that never answers: the write times out, within 5/4 of
	// the timeout and not before it.
	listenSilently(t, srv)
	start := time.Now()
	f, err = p.PublishMsgAsync(&nats.Msg{Subject: "silent.one", Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	r := awaitOne(t, f, 5*time.Second)
	if !errors.Is(r.Err, jetstream.ErrAsyncPublishTimeout) {
		t.Fatalf("unanswered write: %+v, want ErrAsyncPublishTimeout", r)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("timed out after %v, before the 200ms timeout", took)
	}

	// Two slots: a third write waits StallWait, then is refused.
	a, errA := p.PublishMsgAsync(&nats.Msg{Subject: "silent.a", Data: []byte("x")})
	b, errB := p.PublishMsgAsync(&nats.Msg{Subject: "silent.b", Data: []byte("x")})
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if _, err := p.PublishMsgAsync(&nats.Msg{Subject: "silent.c", Data: []byte("x")}); !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
		t.Fatalf("third write with two slots: %v, want ErrTooManyStalledMsgs", err)
	}

	// Closing fails what is pending, and frees its slots.
	p.Close()
	for _, f := range []jetstream.PubAckFuture{a, b} {
		if r := awaitOne(t, f, time.Second); !errors.Is(r.Err, nats.ErrConnectionClosed) {
			t.Fatalf("pending write at close: %+v, want ErrConnectionClosed", r)
		}
	}
}

// TestPublisherFailsPendingWritesOnDisconnect: a reply lost with the
// connection fails its write at once, so the caller retries, and the
// publisher works again after the reconnect.
func TestPublisherFailsPendingWritesOnDisconnect(t *testing.T) {
	t.Parallel()
	srv := natstest.New(t)
	p := newPublisher(t, srv, pubacks.PublisherConfig{Timeout: time.Minute})
	listenSilently(t, srv)
	f, err := p.PublishMsgAsync(&nats.Msg{Subject: "silent.one", Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	if r := awaitOne(t, f, 10*time.Second); !errors.Is(r.Err, nats.ErrDisconnected) {
		t.Fatalf("write pending at the disconnect: %+v, want ErrDisconnected", r)
	}
	subject := topology.EventSubject("acme", "bot_0000000000000003")
	deadline := time.Now().Add(20 * time.Second)
	for {
		f, err := p.PublishMsgAsync(&nats.Msg{Subject: subject, Data: []byte("x")})
		if err == nil {
			if r := awaitOne(t, f, 5*time.Second); r.Err == nil && r.Ack.Sequence > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write stored after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestParseAck: the server's template is read by hand; anything else by
// encoding/json, with the same result.
func TestParseAck(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want jetstream.PubAck
		err  error
		code jetstream.ErrorCode
	}{
		{in: `{"stream":"EVENTS","seq":42}`, want: jetstream.PubAck{Stream: "EVENTS", Sequence: 42}},
		{in: `{"stream":"EVENTS","domain":"hub","seq":7}`, want: jetstream.PubAck{Stream: "EVENTS", Domain: "hub", Sequence: 7}},
		{in: `{"stream":"EVENTS","seq":9,"duplicate": true}`, want: jetstream.PubAck{Stream: "EVENTS", Sequence: 9, Duplicate: true}},
		{in: `{"stream":"EVENTS","seq":9,"duplicate":true}`, want: jetstream.PubAck{Stream: "EVENTS", Sequence: 9, Duplicate: true}},
		// Not the template: encoding/json reads it.
		{in: `{"stream": "EVENTS", "seq": 5}`, want: jetstream.PubAck{Stream: "EVENTS", Sequence: 5}},
		{in: `{"stream":"EV\"X","seq":3}`, want: jetstream.PubAck{Stream: `EV"X`, Sequence: 3}},
		{in: `{"stream":"EVENTS","seq":18446744073709551615}`, want: jetstream.PubAck{Stream: "EVENTS", Sequence: 18446744073709551615}},
		{in: `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"},"stream":"EVENTS","seq":0}`, code: 10071},
		{in: `{"stream":"","seq":1}`, err: jetstream.ErrInvalidJSAck},
		{in: `{"stream":"EVENTS","seq":}`, err: jetstream.ErrInvalidJSAck},
		{in: `not json`, err: jetstream.ErrInvalidJSAck},
	} {
		got, err := pubacks.ParseAck([]byte(c.in))
		switch {
		case c.code != 0:
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode != c.code {
				t.Errorf("%s: %v, want API error %d", c.in, err, c.code)
			}
		case c.err != nil:
			if !errors.Is(err, c.err) {
				t.Errorf("%s: %+v, %v; want %v", c.in, got, err, c.err)
			}
		case err != nil || *got != c.want:
			t.Errorf("%s: %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}
