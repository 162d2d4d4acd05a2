package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/topology"
)

// TestJetStreamRestartLosesNoAcceptedBot stops and restarts the JetStream
// server while clients create bots: every 201 has its document and its job;
// every other answer is a clear 503 and leaves no document behind.
func TestJetStreamRestartLosesNoAcceptedBot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"USHER_REQUEST_TIMEOUT": "2s"})
	client := &http.Client{Timeout: 15 * time.Second}

	var (
		mu       sync.Mutex
		accepted []string
		refused  = map[int]int{}
		sent     atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for c := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				body := fmt.Sprintf(`{"meeting_url":"%s","bot_name":"c%d-%d"}`, meetURL, c, i)
				req, _ := http.NewRequest("POST", e.ingest.base+"/api/v1/bots", strings.NewReader(body))
				req.Header.Set("Authorization", "Token "+acmeKey)
				req.Header.Set("Content-Type", "application/json")
				res, err := client.Do(req)
				if err != nil {
					t.Errorf("create: %v", err)
					return
				}
				r := resp{status: res.StatusCode, body: readAll(t, res)}
				mu.Lock()
				if r.status == http.StatusCreated {
					accepted = append(accepted, r.obj(t)["id"].(string))
				} else {
					refused[r.status]++
					if r.status < 500 || r.obj(t)["error"] == "" {
						t.Errorf("refused create: %d %s", r.status, r.body)
					}
				}
				mu.Unlock()
			}
		})
	}
	waitFor(t, 10*time.Second, "some creates before the restart", func() bool { return sent.Load() > 40 })
	// Down long enough for creates to give up, then back.
	e.srv.Shutdown()
	waitFor(t, 30*time.Second, "creates refused while JetStream is down", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return refused[http.StatusServiceUnavailable] >= 4
	})
	e.srv.Restart()
	n := sent.Load()
	waitFor(t, 20*time.Second, "creates after the restart", func() bool { return sent.Load() > n+40 })
	close(stop)
	wg.Wait()
	t.Logf("%d accepted, refused by status: %v", len(accepted), refused)

	// Every accepted bot has its document and its job.
	for _, id := range accepted {
		if r := e.do("GET", "/api/v1/bots/"+id, acmeKey, ""); r.status != 200 {
			t.Errorf("accepted bot %s: GET %d", id, r.status)
		}
	}
	jobs := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := e.js.Consumer(ctx, topology.StreamJobs, topology.ConsumerWorkers)
	if err != nil {
		t.Fatal(err)
	}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			var job usherv1.JoinJob
			if err := proto.Unmarshal(m.Data(), &job); err != nil {
				t.Fatal(err)
			}
			jobs[job.GetBotId()] = true
			_ = m.Ack()
			got++
		}
		if got == 0 {
			break
		}
	}
	// Nothing half-created: once JetStream is back, the refused creates'
	// documents are gone (rolled back in the background if need be).
	waitFor(t, 20*time.Second, "only accepted bots to have documents", func() bool {
		return e.countDocs("acme") == len(accepted)
	})
	for _, id := range accepted {
		if !jobs[id] {
			t.Errorf("accepted bot %s has no job", id)
		}
	}
}

// countDocs counts the project's bot documents in BOTS.
func (e *env) countDocs(project string) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lister, err := e.topo.Bots.ListKeysFiltered(ctx, project+".*")
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	return n
}
