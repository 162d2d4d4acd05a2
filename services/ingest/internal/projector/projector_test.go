package projector

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/ids"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/meetingurl"
	"github.com/usherhq/usher/shared/natstest"
	"github.com/usherhq/usher/shared/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixture is one test's JetStream and a projector with one shard, whose
// batches the test hands over itself: the events a shard finds waiting
// together are exactly the ones the test fetched.
type fixture struct {
	t    *testing.T
	topo *topology.Topology
	js   jetstream.JetStream
	p    *Projector
	reg  *prometheus.Registry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := natstest.New(t)
	js, err := jetstream.New(srv.Conn())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, topo: srv.Topology(), js: js, reg: prometheus.NewRegistry()}
	f.p = New(Config{Shards: 1, GapDelay: 50 * time.Millisecond}, f.js, f.topo, logging.Discard(), f.reg)
	return f
}

func (f *fixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

// create stores a new bot's document as ingest does and returns it with
// its revision.
func (f *fixture) create() (*botdoc.Doc, uint64) {
	f.t.Helper()
	m, err := meetingurl.Parse("https://meet.google.com/abc-defg-hij", meetingurl.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	now := time.Now()
	doc := botdoc.New(botrequest.Spec{Meeting: m, BotName: "b", Metadata: map[string]string{"k": "v"}}, "acme", ids.NewBotID(now), now, 10*time.Minute)
	data, err := doc.Marshal()
	if err != nil {
		f.t.Fatal(err)
	}
	rev, err := f.topo.Bots.Create(f.ctx(), doc.Key(), data)
	if err != nil {
		f.t.Fatal(err)
	}
	return doc, rev
}

// emit publishes a bot's next events through botevents, as its worker does.
func (f *fixture) emit(doc *botdoc.Doc, to ...botstate.State) {
	f.t.Helper()
	store := botevents.New(f.js, f.topo.Events)
	cur, err := store.Last(f.ctx(), doc.Project, doc.ID, botstate.Ready)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, s := range to {
		if cur, _, err = store.Publish(f.ctx(), cur, botevents.Change{To: s}); err != nil {
			f.t.Fatalf("publish %s: %v", s, err)
		}
	}
}

// emitRaw writes an event straight to EVENTS, bypassing botevents'
// ordering, as a redelivery or a misbehaving writer would.
func (f *fixture) emitRaw(doc *botdoc.Doc, seq uint64, from, to botstate.State, msgID string) {
	f.t.Helper()
	data, err := proto.Marshal(&usherv1.BotEvent{BotId: doc.ID, Project: doc.Project, Seq: seq,
		OldState: string(from), NewState: string(to), At: timestamppb.Now()})
	if err != nil {
		f.t.Fatal(err)
	}
	msg := &nats.Msg{Subject: topology.EventSubject(doc.Project, doc.ID), Data: data}
	if _, err := f.js.PublishMsg(f.ctx(), msg, jetstream.WithMsgID(msgID)); err != nil {
		f.t.Fatal(err)
	}
}

// batch fetches n events from the projector consumer and has the shard
// project them as one batch.
func (f *fixture) batch(n int) {
	f.t.Helper()
	fetched, err := f.topo.Projector.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		f.t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range fetched.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != n {
		f.t.Fatalf("fetched %d events, want %d", len(msgs), n)
	}
	projectNow(f.p.shards[0], msgs)
}

// projectNow has a shard project a batch at once, holding nothing back.
func projectNow(s *shard, msgs []jetstream.Msg) {
	var held holding
	s.hold(msgs, &held, time.Now())
	s.project(context.Background(), held.take(time.Now(), 0))
}

// stored reads a document from the bucket.
func (f *fixture) stored(doc *botdoc.Doc) *botdoc.Doc {
	f.t.Helper()
	entry, err := f.topo.Bots.Get(f.ctx(), doc.Key())
	if err != nil {
		f.t.Fatal(err)
	}
	d, err := botdoc.Unmarshal(entry.Value())
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// history is a document's events as "seq old→new".
func history(d *botdoc.Doc) []string {
	var out []string
	for _, e := range d.Events {
		out = append(out, fmt.Sprintf("%d %s→%s", e.Seq, e.OldState, e.NewState))
	}
	return out
}

func (f *fixture) writes() float64 {
	return testutil.ToFloat64(f.p.metrics.writes)
}

func (f *fixture) outcomes() map[string]float64 {
	out := map[string]float64{}
	for o, c := range f.p.metrics.events {
		if v := testutil.ToFloat64(c); v > 0 {
			out[o] = v
		}
	}
	return out
}

// unacked is how many delivered events wait for an ack or a redelivery.
func (f *fixture) unacked() int {
	f.t.Helper()
	info, err := f.topo.Projector.Info(f.ctx())
	if err != nil {
		f.t.Fatal(err)
	}
	return info.NumAckPending
}

// allAcked fails the test unless every delivered event is acked within 5 s
// (acks are asynchronous publishes).
func (f *fixture) allAcked() {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.unacked() != 0 {
		if time.Now().After(deadline) {
			f.t.Fatalf("%d events left unacked", f.unacked())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBatchAppliesEachBotsEventsInOneWrite(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, revA := f.create()
	b, _ := f.create()
	f.p.Seed(a, revA) // created by this process: no read needed
	f.emit(a, botstate.Joining, botstate.Joined)
	f.emit(b, botstate.Joining)
	f.emitRaw(a, 1, botstate.Ready, botstate.Joining, "redelivered-joining")
	f.batch(4)

	if got, want := history(f.stored(a)), []string{"1 ready→joining", "2 joining→joined"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("bot a events %v, want %v", got, want)
	}
	if d := f.stored(a); d.State != botstate.Joined || d.LastSeq != 2 {
		t.Fatalf("bot a is %s at seq %d, want joined at 2", d.State, d.LastSeq)
	}
	if got := history(f.stored(b)); !reflect.DeepEqual(got, []string{"1 ready→joining"}) {
		t.Fatalf("bot b events %v", got)
	}
	if w := f.writes(); w != 2 {
		t.Fatalf("document writes = %v, want 2 (one per bot)", w)
	}
	if got, want := f.outcomes(), map[string]float64{outcomeApplied: 3, outcomeDuplicate: 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes = %v, want %v", got, want)
	}
	f.allAcked()

	// Redelivered, the same events change nothing and write nothing.
	f.emitRaw(a, 2, botstate.Joining, botstate.Joined, "redelivered-joined")
	f.batch(1)
	if w := f.writes(); w != 2 || len(f.stored(a).Events) != 2 {
		t.Fatalf("a redelivered event was applied again: %v writes, events %v", w, history(f.stored(a)))
	}
}

// TestHeldBackEventsOfABotShareOneWrite: a bot's events that arrive within
// Linger of each other (joining, then joined a moment later, as with a
// quick join) are applied in one document write, and a document is written
// no later than Linger after its first event arrived.
func TestHeldBackEventsOfABotShareOneWrite(t *testing.T) {
	t.Parallel()
	const linger = time.Second
	f := newFixture(t)
	f.reg = prometheus.NewRegistry()
	f.p = New(Config{Shards: 1, Linger: linger}, f.js, f.topo, logging.Discard(), f.reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	quick, _ := f.create()
	slow, _ := f.create()
	f.emit(quick, botstate.Joining)
	f.emit(slow, botstate.Joining)
	time.Sleep(50 * time.Millisecond)
	f.emit(quick, botstate.Joined)
	waitFor(t, "both documents written", func() bool {
		return f.stored(quick).State == botstate.Joined && f.stored(slow).State == botstate.Joining
	})
	// The shard counts a write once its acknowledgement is back, a moment
	// after the bucket shows it.
	waitFor(t, "both writes acknowledged", func() bool { return f.writes() >= 2 })
	if w := f.writes(); w != 2 {
		t.Fatalf("document writes = %v, want 2: one for quick's joining and joined, one for slow's joining", w)
	}
	// An event that comes later than Linger is a write of its own.
	start := time.Now()
	f.emit(slow, botstate.Joined)
	waitFor(t, "slow joined", func() bool { return f.stored(slow).State == botstate.Joined })
	if waited := time.Since(start); waited > 5*linger {
		t.Fatalf("a lone event took %s to reach its document (linger %s)", waited, linger)
	}
	waitFor(t, "the third write acknowledged", func() bool { return f.writes() >= 3 })
	if w := f.writes(); w != 3 {
		t.Fatalf("document writes = %v, want 3", w)
	}
	f.allAcked()
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBatchKeepsArrivalOrderAndNaksGaps(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	doc, _ := f.create()
	// Event 2 arrives before event 1, and both come twice.
	f.emitRaw(doc, 2, botstate.Joining, botstate.Failed, "e2")
	f.emitRaw(doc, 1, botstate.Ready, botstate.Joining, "e1")
	f.emitRaw(doc, 1, botstate.Ready, botstate.Joining, "e1-again")
	f.emitRaw(doc, 2, botstate.Joining, botstate.Failed, "e2-again")
	f.batch(4)
	want := []string{"1 ready→joining", "2 joining→failed"}
	if got := history(f.stored(doc)); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	// Events are never reordered: the early event 2 is a gap, naked, even
	// though its predecessor came in the same batch.
	if got, want := f.outcomes(), map[string]float64{outcomeApplied: 2, outcomeDuplicate: 1, outcomeGap: 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes = %v, want %v", got, want)
	}
	if w := f.writes(); w != 1 {
		t.Fatalf("document writes = %v, want 1", w)
	}
	// The naked gap comes back and is a duplicate now.
	f.batch(1)
	if got := f.outcomes()[outcomeDuplicate]; got != 2 {
		t.Fatalf("redelivered gap: duplicates %v, want 2", got)
	}
	f.allAcked()
	if got := history(f.stored(doc)); !reflect.DeepEqual(got, want) {
		t.Fatalf("events after the redelivery %v, want %v", got, want)
	}
}

// TestStaleCacheFallsBackToTheBucket: another ingest replica projected the
// bot since this one seeded its cache. The stale entry costs a failed
// compare-and-set or a read, never a lost, doubled or stuck event.
func TestStaleCacheFallsBackToTheBucket(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The other replica's projector shares the bucket, not the cache.
	other := New(Config{Shards: 1}, f.js, f.topo, logging.Discard(), prometheus.NewRegistry())

	// Bot a: the stale cache says event 1 applies; the bucket has it
	// already (the compare-and-set fails, the document is read again).
	a, revA := f.create()
	f.p.Seed(a, revA)
	f.emit(a, botstate.Joining)
	fetched, err := f.topo.Projector.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var first []jetstream.Msg
	for m := range fetched.Messages() {
		first = append(first, m)
	}
	projectNow(other.shards[0], first)
	f.emitRaw(a, 1, botstate.Ready, botstate.Joining, "a-redelivered")
	f.batch(1)
	if w := f.writes(); w != 0 {
		t.Fatalf("a redelivered event was written again (%v writes)", w)
	}
	f.emit(a, botstate.Joined)
	f.batch(1)

	// Bot b: the stale cache says event 2 is a gap; the bucket has event 1
	// (only a document read from the bucket proves a gap).
	b, revB := f.create()
	f.p.Seed(b, revB)
	bDoc, _ := b.Apply(&usherv1.BotEvent{Seq: 1, OldState: "ready", NewState: "joining", At: timestamppb.Now()})
	data, err := bDoc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.topo.Bots.Update(f.ctx(), b.Key(), data, revB); err != nil {
		t.Fatal(err)
	}
	f.emitRaw(b, 2, botstate.Joining, botstate.Joined, "b2")
	f.batch(1)

	for _, d := range []*botdoc.Doc{a, b} {
		if got, want := history(f.stored(d)), []string{"1 ready→joining", "2 joining→joined"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("bot %s events %v, want %v", d.ID, got, want)
		}
	}
	if got, want := f.outcomes(), map[string]float64{outcomeApplied: 2, outcomeDuplicate: 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes = %v, want %v", got, want)
	}
	f.allAcked()
}
