package app_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/usherhq/usher/services/worker/app"
	"github.com/usherhq/usher/services/worker/internal/instant"
	wt "github.com/usherhq/usher/services/worker/internal/workertest"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/topology"
)

// BenchmarkJetStreamWorkQueue is the raw ceiling the pipeline is measured
// against: async publish of 512-byte messages into a file-storage
// work-queue stream on an embedded server, then pull consume + ack.
func BenchmarkJetStreamWorkQueue(b *testing.B) {
	h := wt.New(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nc := h.Srv.Conn()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		b.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "BENCH", Subjects: []string{"bench.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
	})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 512)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := js.PublishAsync("bench.jobs", payload); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal("publishes not acknowledged")
	}
	published := time.Since(start)
	got := 0
	for got < b.N {
		batch, err := cons.Fetch(min(1000, b.N-got), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.Ack(); err != nil {
				b.Fatal(err)
			}
			got++
		}
		if err := batch.Error(); err != nil && got < b.N {
			b.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	total := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/published.Seconds(), "publish_msgs/s")
	b.ReportMetric(float64(b.N)/(total-published).Seconds(), "consume_ack_msgs/s")
	b.ReportMetric(float64(b.N)/total.Seconds(), "msgs/s")
}

// benchApp starts an in-process worker with the instant driver and many
// slots against h, recording claim latencies.
type benchApp struct {
	driver *instant.Driver
	mu     sync.Mutex
	claims []time.Duration
	stop   context.CancelFunc
	done   chan error
}

func startBenchApp(b *testing.B, h *wt.Harness, slots int, inst instant.Config) *benchApp {
	b.Helper()
	cfg := app.Defaults()
	cfg.NATSURL = h.Srv.URL
	cfg.Driver = app.DriverInstant
	cfg.MetricsAddr = ""
	cfg.Topology = h.Topo.Config
	cfg.Jobs.Slots = slots
	cfg.Jobs.DrainTimeout = 100 * time.Millisecond
	cfg.Log.Level = "error"
	ba := &benchApp{driver: instant.New(inst), done: make(chan error, 1)}
	a, err := app.New(cfg, logging.Discard(), prometheus.NewRegistry(),
		app.WithInstantDriver(ba.driver),
		app.WithClaimObserver(func(d time.Duration) {
			ba.mu.Lock()
			ba.claims = append(ba.claims, d)
			ba.mu.Unlock()
		}))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ba.stop = cancel
	go func() { ba.done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-ba.done:
		b.Fatalf("worker stopped: %v", err)
	}
	b.Cleanup(func() {
		cancel()
		if err := <-ba.done; err != nil {
			b.Errorf("worker Run: %v", err)
		}
	})
	return ba
}

func (ba *benchApp) claimed() int {
	ba.mu.Lock()
	defer ba.mu.Unlock()
	return len(ba.claims)
}

func (ba *benchApp) report(b *testing.B) {
	b.Helper()
	ba.mu.Lock()
	lat := slices.Clone(ba.claims)
	ba.mu.Unlock()
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "claim_p50_ms")
	b.ReportMetric(at(0.99), "claim_p99_ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "claim_max_ms")
}

// jobMsgs pre-encodes n join jobs so the timed loop only publishes.
func jobMsgs(b *testing.B, h *wt.Harness, n int) []*nats.Msg {
	b.Helper()
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		job := h.Job()
		data, err := proto.Marshal(job)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = &nats.Msg{Subject: topology.JobSubject(job.GetPlatform()), Data: data,
			Header: nats.Header{jetstream.MsgIDHeader: []string{topology.JobMsgID(job.GetBotId())}}}
	}
	return msgs
}

func waitFor(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkClaimLatency offers 1,000 jobs/s (one every millisecond) to an
// in-process worker with 4,096 slots and reports the claim latency
// (job stored on JOBS → bot lease held) percentiles. Target: p99 < 10 ms.
func BenchmarkClaimLatency(b *testing.B) {
	h := wt.New(b)
	ba := startBenchApp(b, h, 4096, instant.Config{Stay: 50 * time.Millisecond})
	js, err := jetstream.New(h.Srv.Conn())
	if err != nil {
		b.Fatal(err)
	}
	msgs := jobMsgs(b, h, b.N)
	b.ResetTimer()
	start := time.Now()
	for i, m := range msgs {
		if wait := time.Until(start.Add(time.Duration(i) * time.Millisecond)); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	offered := time.Since(start)
	waitFor(b, time.Minute, fmt.Sprintf("%d claims", b.N), func() bool { return ba.claimed() >= b.N })
	b.StopTimer()
	ba.report(b)
	b.ReportMetric(float64(b.N)/offered.Seconds(), "offered_jobs/s")
}

// BenchmarkPipelineThroughput publishes b.N jobs at once and measures how
// fast one worker (4,096 slots, instant driver, 1 ms meetings) takes them
// to joined: lease, events, control subscription, ack, end, release.
func BenchmarkPipelineThroughput(b *testing.B) {
	h := wt.New(b)
	ba := startBenchApp(b, h, 4096, instant.Config{Stay: time.Millisecond})
	js, err := jetstream.New(h.Srv.Conn(), jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		b.Fatal(err)
	}
	msgs := jobMsgs(b, h, b.N)
	b.ResetTimer()
	start := time.Now()
	for _, m := range msgs {
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, 5*time.Minute, fmt.Sprintf("%d joins", b.N), func() bool { return ba.driver.Stats().Joins >= b.N })
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "joined_jobs/s")
	ba.report(b)
}

// BenchmarkBotsInMeetings puts b.N bots into meetings they stay in, on one
// worker with 4,096 slots (use -benchtime=2000x), and reports the
// goroutines each bot costs (heartbeats, keep-alives and leave commands are
// shared, so about one: its own) and how fast they got in.
func BenchmarkBotsInMeetings(b *testing.B) {
	if b.N > 4096 {
		b.Skip("at most 4,096 bots (the worker's slots): use -benchtime=2000x")
	}
	h := wt.New(b)
	ba := startBenchApp(b, h, 4096, instant.Config{})
	js, err := jetstream.New(h.Srv.Conn(), jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		b.Fatal(err)
	}
	msgs := jobMsgs(b, h, b.N)
	before := runtime.NumGoroutine()
	b.ResetTimer()
	start := time.Now()
	for _, m := range msgs {
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, 5*time.Minute, "all bots in meetings", func() bool { return ba.driver.Stats().InMeeting == b.N })
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "joined_bots/s")
	b.ReportMetric(float64(runtime.NumGoroutine()-before)/float64(b.N), "goroutines/bot")
}
