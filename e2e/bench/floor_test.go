package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/shared/natsembed"
	"github.com/usherhq/usher/shared/topology"
)

// Sizes of the floor's messages, about those the pipeline writes for a
// bench bot (its request, document, job, lease and events).
const (
	floorRequestBytes = 120
	floorDocBytes     = 600
	floorJobBytes     = 200
	floorLeaseBytes   = 60
	floorEventBytes   = 180
	floorBatch        = 256
)

// BenchmarkPipelineFloor measures what the pipeline's design costs before
// any of Usher's code runs (BenchmarkPipelineFloorPerBot: the same, done one
// bot at a time): per bot, the JetStream and NATS operations
// BenchmarkPipeline's bots go through — request and reply, document
// create, job, lease, two events, job ack, one document update, the
// watch's deliveries (the reaper's consumer, on the worker heartbeats,
// gets nothing per bot) — done the cheapest way
// nats.go offers (async writes in batches of 256, one goroutine per
// service, no validation, no encoding, no per-bot logic) on Usher's own
// topology. Its figure is CPU time per bot beside the raw work queue's CPU
// time per message, measured in the same process: the share of the raw
// rate the pipeline could reach if it were CPU-bound at the floor's cost.
// It tells how much of the pipeline's cost is its design and how much its
// implementation. Not a target: a compass.
func BenchmarkPipelineFloor(b *testing.B) { benchFloor(b, floorBatched) }

// BenchmarkPipelineFloorPerBot is BenchmarkPipelineFloor with ingest and
// worker working one bot at a time, the way Usher's did before its intake
// and its claims were batched: ingest handles 64 requests at once, each
// waiting for its own writes; the worker serves each job in its own
// goroutine, waiting for each write and confirming its ack (DoubleAck).
// The projector and the reaper stay batched. Beside BenchmarkPipelineFloor
// it prices the one-bot-at-a-time style itself: what batching is worth.
func BenchmarkPipelineFloorPerBot(b *testing.B) { benchFloor(b, floorPerBot) }

// floorStyle is how the floor's ingest and worker do their writes.
type floorStyle int

const (
	floorBatched floorStyle = iota // async, a batch at a time
	floorPerBot                    // synchronous, a goroutine per request or job
)

func (s floorStyle) String() string {
	if s == floorPerBot {
		return "one bot at a time, synchronous"
	}
	return "batched"
}

func benchFloor(b *testing.B, style floorStyle) {
	var floorCPU, rawCPU time.Duration
	var bots, msgs int
	for b.Loop() {
		raw := measureRaw(b, *rawMsgs/2)
		cpu := runFloor(b, *pipelineBots, style)
		after := measureRaw(b, *rawMsgs-*rawMsgs/2)
		floorCPU += cpu
		bots += *pipelineBots
		rawCPU += raw.cpu + after.cpu
		msgs += raw.msgs + after.msgs
	}
	perBot := float64(floorCPU.Microseconds()) / float64(bots)
	perMsg := float64(rawCPU.Microseconds()) / float64(msgs)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(perBot, "floor_cpu_µs/bot")
	b.ReportMetric(perMsg, "raw_cpu_µs/msg")
	b.ReportMetric(100*perMsg/perBot, "floor_pct_of_raw")
	b.Logf("design floor (%s): %.0f µs of CPU per bot for the pipeline's JetStream operations alone; "+
		"a raw work-queue message costs %.1f µs: a pipeline that cheap would move %.1f%% of the raw rate",
		style, perBot, perMsg, 100*perMsg/perBot)
}

// runFloor moves n bots through the floor's operations and returns the CPU
// time this process spent on them.
func runFloor(b *testing.B, n int, style floorStyle) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, err := natsembed.Start(natsembed.Config{StoreDir: b.TempDir(), ServerName: "usher-bench-floor"})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	conn := func() (*nats.Conn, jetstream.JetStream) {
		nc := connect(b, srv.ClientURL())
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4*floorBatch))
		if err != nil {
			b.Fatal(err)
		}
		return nc, js
	}
	client, _ := conn()
	defer client.Close()
	ncIngest, jsIngest := conn()
	defer ncIngest.Close()
	ncWorker, jsWorker := conn()
	defer ncWorker.Close()
	ncProjector, jsProjector := conn()
	defer ncProjector.Close()
	topo, err := topology.Ensure(ctx, jsIngest, topology.Defaults())
	if err != nil {
		b.Fatal(err)
	}
	docs, err := jsWorker.KeyValue(ctx, topology.BucketBots)
	if err != nil {
		b.Fatal(err)
	}
	watch, err := docs.Watch(ctx, "floor.*", jetstream.UpdatesOnly(), jetstream.IgnoreDeletes())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = watch.Stop() }()
	watched := newMilestone(2 * n) // created, then joined (one update for both events)
	go func() {
		for e := range watch.Updates() {
			if e != nil {
				watched.step()
			}
		}
	}()
	requests := make(chan *nats.Msg, 4*floorBatch)
	sub, err := ncIngest.Subscribe(topology.RequestsPrefix+".>", func(m *nats.Msg) { requests <- m })
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	replies := newMilestone(n)
	rsub, err := client.Subscribe("_floor.>", func(*nats.Msg) { replies.step() })
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = rsub.Unsubscribe() }()
	for _, nc := range []*nats.Conn{client, ncIngest} {
		if err := nc.Flush(); err != nil {
			b.Fatal(err)
		}
	}

	f := &floor{b: b, n: n, revs: make([]uint64, n)}
	start := sampleCPU(b)
	var wg sync.WaitGroup
	wg.Go(func() {
		payload := make([]byte, floorRequestBytes)
		for i := range n {
			if err := client.PublishRequest(topology.RequestSubject("floor"), "_floor."+strconv.Itoa(i), payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if style == floorPerBot {
		wg.Go(func() { f.ingestPerRequest(ctx, jsIngest, requests) })
		wg.Go(func() { f.workerPerJob(ctx, jsWorker, topo.Workers) })
	} else {
		wg.Go(func() { f.ingest(jsIngest, requests) })
		wg.Go(func() { f.worker(ctx, jsWorker, topo.Workers) })
	}
	wg.Go(func() { f.projector(ctx, jsProjector, topo.Projector) })
	stopReaper := make(chan struct{})
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		f.reaper(topo.Reaper, stopReaper)
	}()
	wg.Wait()
	for _, m := range []*milestone{replies, watched} {
		if _, err := m.wait(ctx, "floor"); err != nil {
			b.Fatal(err)
		}
	}
	used := sampleCPU(b).self - start.self
	close(stopReaper)
	<-reaped
	return used
}

// floor is one run's state: the bots' document revisions, written by the
// ingest stage before any event of the bot exists.
type floor struct {
	b    *testing.B
	n    int
	revs []uint64
}

// ingest creates each bot's document, then its job, then replies: a batch
// at a time.
func (f *floor) ingest(js jetstream.JetStream, requests <-chan *nats.Msg) {
	doc, job, reply := make([]byte, floorDocBytes), make([]byte, floorJobBytes), make([]byte, floorDocBytes)
	for lo := 0; lo < f.n; lo += floorBatch {
		hi := min(lo+floorBatch, f.n)
		batch := make([]*nats.Msg, 0, hi-lo)
		for range hi - lo {
			batch = append(batch, <-requests)
		}
		creates := make([]jetstream.PubAckFuture, 0, len(batch))
		for i := lo; i < hi; i++ {
			m := nats.NewMsg("$KV." + topology.BucketBots + ".floor." + botName(i))
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
			m.Data = doc
			creates = append(creates, f.publish(js, m))
		}
		for i, fut := range creates {
			f.revs[lo+i] = f.await(fut)
		}
		jobs := make([]jetstream.PubAckFuture, 0, len(batch))
		for i := lo; i < hi; i++ {
			m := nats.NewMsg(topology.JobsPrefix + ".meet")
			m.Header.Set(jetstream.MsgIDHeader, topology.JobMsgID(botName(i)))
			m.Data = append([]byte(botName(i)+" "), job...)
			jobs = append(jobs, f.publish(js, m))
		}
		for _, fut := range jobs {
			f.await(fut)
		}
		for _, m := range batch {
			if err := m.Respond(reply); err != nil {
				f.b.Error(err)
			}
		}
	}
}

// worker takes jobs a batch at a time: every lease and first event, then
// every second event, then the acks.
func (f *floor) worker(ctx context.Context, js jetstream.JetStream, jobs jetstream.Consumer) {
	lease, event := make([]byte, floorLeaseBytes), make([]byte, floorEventBytes)
	for got := 0; got < f.n && ctx.Err() == nil; {
		msgs, err := fetchAll(jobs, floorBatch)
		if err != nil {
			f.b.Error(err)
			return
		}
		got += len(msgs)
		bots := make([]string, len(msgs))
		firsts := make([]jetstream.PubAckFuture, 0, len(msgs))
		for i, m := range msgs {
			bots[i] = jobBot(m)
			l := nats.NewMsg("$KV." + topology.BucketLeases + "." + bots[i])
			l.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
			l.Data = lease
			f.publish(js, l)
			e := nats.NewMsg(topology.EventSubject("floor", bots[i]))
			e.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
			e.Data = event
			firsts = append(firsts, f.publish(js, e))
		}
		seconds := make([]jetstream.PubAckFuture, 0, len(msgs))
		for i, fut := range firsts {
			e := nats.NewMsg(topology.EventSubject("floor", bots[i]))
			e.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(f.await(fut), 10))
			e.Data = event
			seconds = append(seconds, f.publish(js, e))
		}
		for _, fut := range seconds {
			f.await(fut)
		}
		for _, m := range msgs {
			if err := m.Ack(); err != nil {
				f.b.Error(err)
			}
		}
	}
}

// ingestPerRequest is ingest one request at a time: 64 requests at once,
// each writing its document, then its job, waiting for each write.
func (f *floor) ingestPerRequest(ctx context.Context, js jetstream.JetStream, requests <-chan *nats.Msg) {
	doc, job, reply := make([]byte, floorDocBytes), make([]byte, floorJobBytes), make([]byte, floorDocBytes)
	bots := make(chan int)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range bots {
				req := <-requests
				m := nats.NewMsg("$KV." + topology.BucketBots + ".floor." + botName(i))
				m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
				m.Data = doc
				f.revs[i] = f.publishSync(ctx, js, m)
				j := nats.NewMsg(topology.JobsPrefix + ".meet")
				j.Header.Set(jetstream.MsgIDHeader, topology.JobMsgID(botName(i)))
				j.Data = append([]byte(botName(i)+" "), job...)
				f.publishSync(ctx, js, j)
				if err := req.Respond(reply); err != nil {
					f.b.Error(err)
				}
			}
		})
	}
	for i := range f.n {
		bots <- i
	}
	close(bots)
	wg.Wait()
}

// workerPerJob is the worker one job at a time: a goroutine per job,
// writing its lease, then each event, then confirming its ack.
func (f *floor) workerPerJob(ctx context.Context, js jetstream.JetStream, jobs jetstream.Consumer) {
	lease, event := make([]byte, floorLeaseBytes), make([]byte, floorEventBytes)
	var wg sync.WaitGroup
	defer wg.Wait()
	for got := 0; got < f.n && ctx.Err() == nil; {
		fetched, err := jobs.Fetch(floorBatch, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			f.b.Error(err)
			return
		}
		for m := range fetched.Messages() {
			got++
			wg.Go(func() {
				bot := jobBot(m)
				l := nats.NewMsg("$KV." + topology.BucketLeases + "." + bot)
				l.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
				l.Data = lease
				f.publishSync(ctx, js, l)
				var seq uint64
				for range 2 {
					e := nats.NewMsg(topology.EventSubject("floor", bot))
					e.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(seq, 10))
					e.Data = event
					seq = f.publishSync(ctx, js, e)
				}
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if err := m.DoubleAck(actx); err != nil {
					f.b.Error(err)
				}
			})
		}
	}
}

// publishSync writes and waits for the write, and returns the stored
// message's sequence.
func (f *floor) publishSync(ctx context.Context, js jetstream.JetStream, m *nats.Msg) uint64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		f.b.Errorf("floor write on %s: %v", m.Subject, err)
		return 0
	}
	return ack.Sequence
}

// projector writes each bot's document once per batch of its events.
func (f *floor) projector(ctx context.Context, js jetstream.JetStream, events jetstream.Consumer) {
	doc := make([]byte, floorDocBytes)
	revs := make(map[string]uint64, f.n)
	for got := 0; got < 2*f.n && ctx.Err() == nil; {
		msgs, err := fetchAll(events, 2*floorBatch)
		if err != nil {
			f.b.Error(err)
			return
		}
		got += len(msgs)
		type write struct {
			bot string
			fut jetstream.PubAckFuture
		}
		var writes []write
		seen := make(map[string]bool, len(msgs))
		for _, m := range msgs {
			bot := m.Subject()[len(topology.EventSubject("floor", "")):]
			if seen[bot] {
				continue
			}
			seen[bot] = true
			rev, ok := revs[bot]
			if !ok {
				i, err := strconv.Atoi(bot[len("b"):])
				if err != nil || i >= len(f.revs) {
					f.b.Errorf("floor event of an unknown bot %q", bot)
					continue
				}
				rev = f.revs[i]
			}
			u := nats.NewMsg("$KV." + topology.BucketBots + ".floor." + bot)
			u.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
			u.Data = doc
			writes = append(writes, write{bot, f.publish(js, u)})
		}
		for _, w := range writes {
			revs[w.bot] = f.await(w.fut)
		}
		for _, m := range msgs {
			if err := m.Ack(); err != nil {
				f.b.Error(err)
			}
		}
	}
}

// reaper acks whatever the reaper consumer delivers (heartbeats, not bots) until stop.
func (f *floor) reaper(beats jetstream.Consumer, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		fetched, err := beats.Fetch(floorBatch, jetstream.FetchMaxWait(100*time.Millisecond))
		if err != nil {
			continue
		}
		for m := range fetched.Messages() {
			_ = m.Ack()
		}
	}
}

// fetchAll pulls up to n messages, waiting up to 5 s for the first.
func fetchAll(c jetstream.Consumer, n int) ([]jetstream.Msg, error) {
	fetched, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range fetched.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, nil
}

func (f *floor) publish(js jetstream.JetStream, m *nats.Msg) jetstream.PubAckFuture {
	fut, err := js.PublishMsgAsync(m)
	if err != nil {
		f.b.Errorf("floor publish on %s: %v", m.Subject, err)
	}
	return fut
}

// await returns the stored message's sequence.
func (f *floor) await(fut jetstream.PubAckFuture) uint64 {
	select {
	case ack := <-fut.Ok():
		return ack.Sequence
	case err := <-fut.Err():
		f.b.Errorf("floor write on %s: %v", fut.Msg().Subject, err)
	case <-time.After(30 * time.Second):
		f.b.Errorf("floor write on %s unanswered", fut.Msg().Subject)
	}
	return 0
}

func botName(i int) string { return fmt.Sprintf("b%d", i) }

// jobBot is the bot a floor job names: the first word of its data.
func jobBot(m jetstream.Msg) string {
	bot, _, _ := bytes.Cut(m.Data(), []byte(" "))
	return string(bot)
}
