package bench

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/shared/natsembed"
)

// rawPayload is the size of a raw baseline message (a join job is smaller).
const rawPayload = 512

// rawQueue is a bare JetStream work queue on its own embedded server (file
// storage, in the benchmark's temp dir): the baselines the pipeline and the
// claim latency are measured against, with nothing of Usher in the way.
type rawQueue struct {
	srv   *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	cons  jetstream.Consumer
	close func() // idempotent: at the end of its round, and in cleanup
}

func newRawQueue(b *testing.B) *rawQueue {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := natsembed.Start(natsembed.Config{StoreDir: b.TempDir(), ServerName: "usher-bench-raw"})
	if err != nil {
		b.Fatalf("raw baseline server: %v", err)
	}
	q := &rawQueue{srv: srv}
	q.close = sync.OnceFunc(func() {
		if q.nc != nil {
			q.nc.Close()
		}
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	b.Cleanup(q.close)
	if q.nc, err = nats.Connect(srv.ClientURL()); err != nil {
		b.Fatal(err)
	}
	if q.js, err = jetstream.New(q.nc, jetstream.WithPublishAsyncMaxPending(8192)); err != nil {
		b.Fatal(err)
	}
	stream, err := q.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "RAW", Subjects: []string{"raw.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
	})
	if err != nil {
		b.Fatal(err)
	}
	q.cons, err = stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1 << 20,
	})
	if err != nil {
		b.Fatal(err)
	}
	return q
}

// rawRate is the work-queue throughput: n messages published async, then
// pulled and acked.
type rawRate struct {
	msgs             int
	publish, consume time.Duration
	cpu              time.Duration // this process's CPU time over the run
}

// perSecond is messages through the queue (published, consumed, acked) per
// second of the whole run.
func (r rawRate) perSecond() float64 { return float64(r.msgs) / (r.publish + r.consume).Seconds() }

// plus adds two measurements of the same queue.
func (r rawRate) plus(o rawRate) rawRate {
	return rawRate{msgs: r.msgs + o.msgs, publish: r.publish + o.publish, consume: r.consume + o.consume, cpu: r.cpu + o.cpu}
}

// throughput runs the work-queue rate: async publish of n 512-byte messages,
// then pull consume and ack — the same workload as the worker's
// BenchmarkJetStreamWorkQueue.
func (q *rawQueue) throughput(b *testing.B, n int) rawRate {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	payload := make([]byte, rawPayload)
	cpu0 := sampleCPU(b)
	start := time.Now()
	for range n {
		if _, err := q.js.PublishAsync("raw.jobs", payload); err != nil {
			b.Fatalf("raw publish: %v", err)
		}
	}
	select {
	case <-q.js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal("raw publishes not acknowledged in 5 minutes")
	}
	published := time.Now()
	for got := 0; got < n; {
		batch, err := q.cons.Fetch(min(1000, n-got), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			b.Fatalf("raw fetch: %v", err)
		}
		for m := range batch.Messages() {
			if err := m.Ack(); err != nil {
				b.Fatalf("raw ack: %v", err)
			}
			got++
		}
		if err := batch.Error(); err != nil && got < n {
			b.Fatalf("raw fetch after %d of %d: %v", got, n, err)
		}
	}
	if err := q.nc.FlushTimeout(time.Minute); err != nil {
		b.Fatalf("raw flush: %v", err)
	}
	return rawRate{msgs: n, publish: published.Sub(start), consume: time.Since(published), cpu: sampleCPU(b).self - cpu0.self}
}

// deliveryLatency offers n messages at rate per second to a consumer that
// pulls like a worker (batches of up to 256, waiting up to 1 s) and returns
// each message's latency from storage to receipt: the floor under a claim.
func (q *rawQueue) deliveryLatency(b *testing.B, n, rate int) []time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lat := make([]time.Duration, 0, n)
	received := make(chan error, 1)
	go func() {
		received <- func() error {
			for len(lat) < n {
				batch, err := q.cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
				if err != nil {
					return err
				}
				for m := range batch.Messages() {
					now := time.Now()
					md, err := m.Metadata()
					if err != nil {
						return err
					}
					lat = append(lat, now.Sub(md.Timestamp))
					if err := m.Ack(); err != nil {
						return err
					}
				}
				if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
					return err
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			return nil
		}()
	}()
	payload := make([]byte, rawPayload)
	every := time.Second / time.Duration(rate)
	start := time.Now()
	var pubErr error
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * every)); wait > 0 {
			time.Sleep(wait) // pacing the offered rate
		}
		if _, pubErr = q.js.PublishAsync("raw.jobs", payload); pubErr != nil {
			cancel()
			break
		}
	}
	err := <-received
	switch {
	case pubErr != nil:
		b.Fatalf("raw publish: %v", pubErr)
	case err != nil:
		b.Fatalf("raw delivery after %d of %d: %v", len(lat), n, err)
	}
	return lat
}
