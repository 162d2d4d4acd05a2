package app_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
)

// benchClients is how many requests are in flight at once.
const benchClients = 64

// runClients runs n calls of do spread over benchClients goroutines and
// reports throughput and latency percentiles.
func runClients(b *testing.B, unit string, do func() error) {
	b.Helper()
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, b.N)
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := do(); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), unit+"/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkNATSCreate pushes protobuf create requests through the NATS
// intake: validation, index, document, job publish, reply.
func BenchmarkNATSCreate(b *testing.B) {
	e := newEnv(b, map[string]string{"USHER_LOG_LEVEL": "warn"})
	data, err := proto.Marshal(&usherv1.CreateBotRequest{MeetingUrl: meetURL, BotName: "bench", Metadata: map[string]string{"k": "v"}})
	if err != nil {
		b.Fatal(err)
	}
	runClients(b, "creates", func() error {
		m, err := e.nc.Request("usher.requests.acme", data, 10*time.Second)
		if err != nil {
			return err
		}
		if s := m.Header.Get("Usher-Status"); s != "201" {
			return fmt.Errorf("status %s", s)
		}
		return nil
	})
}

// BenchmarkHTTPCreate is BenchmarkNATSCreate over the HTTP API.
func BenchmarkHTTPCreate(b *testing.B) {
	e := newEnv(b, map[string]string{"USHER_LOG_LEVEL": "warn"})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients}, Timeout: 10 * time.Second}
	b.Cleanup(client.CloseIdleConnections)
	body := `{"meeting_url":"` + meetURL + `","bot_name":"bench","metadata":{"k":"v"}}`
	runClients(b, "creates", func() error {
		req, _ := http.NewRequest("POST", e.ingest.base+"/api/v1/bots", strings.NewReader(body))
		req.Header.Set("Authorization", "Token "+acmeKey)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		readAll(b, res)
		if res.StatusCode != http.StatusCreated {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	})
}

// BenchmarkProjector measures events applied to bot documents per second:
// many bots, each moving joining ↔ joined, written through botevents.
func BenchmarkProjector(b *testing.B) {
	e := newEnv(b, map[string]string{"USHER_LOG_LEVEL": "warn"})
	const nbots = 256
	data, _ := proto.Marshal(&usherv1.CreateBotRequest{MeetingUrl: meetURL, BotName: "bench"})
	cursors := make([]botevents.Cursor, nbots)
	for i := range cursors {
		var reply usherv1.CreateBotReply
		m, err := e.nc.Request("usher.requests.acme", data, 10*time.Second)
		if err != nil || proto.Unmarshal(m.Data, &reply) != nil || reply.GetStatus() != 201 {
			b.Fatalf("create: %v %v", err, reply.GetError())
		}
		cursors[i] = botevents.Cursor{Project: "acme", BotID: reply.GetBot().GetId(), State: botstate.Ready}
	}
	applied0 := e.counter("usher_ingest_projector_events_total", "applied")

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for c := range benchClients {
		wg.Go(func() {
			// Each client owns the bots c, c+benchClients, ... and writes
			// to them in turn, so a bot has one writer.
			var owned []int
			for i := c; i < nbots; i += benchClients {
				owned = append(owned, i)
			}
			for k := 0; next.Add(1) <= int64(b.N); k++ {
				i := owned[k%len(owned)]
				to := botstate.Joining
				if cursors[i].State == botstate.Joining {
					to = botstate.Joined
				}
				cur, _, err := e.events.Publish(context.Background(), cursors[i], botevents.Change{To: to})
				if err != nil {
					b.Error(err)
					return
				}
				cursors[i] = cur
			}
		})
	}
	wg.Wait()
	waitFor(b, 5*time.Minute, "every event to be projected", func() bool {
		return e.counter("usher_ingest_projector_events_total", "applied")-applied0 >= float64(b.N)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// counter reads a counter of the running ingest by its first label value.
func (e *env) counter(name, label string) float64 {
	e.t.Helper()
	mfs, err := e.ingest.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
