package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/shared/topology"
)

// botWatch follows a project's bot documents in KV BOTS — what GET
// /api/v1/bots/{id} returns — and counts the bots seen in one state.
type botWatch struct {
	state   string
	watcher jetstream.KeyWatcher
	reached *milestone
	done    chan struct{} // closed when the reading goroutine is gone

	mu   sync.Mutex
	seen map[string]bool
	bad  int // documents that did not decode
}

// botState is the part of a bot document the watch reads.
type botState struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

// watchBots starts watching project's bot documents (from now on) for want
// bots in state. The caller stops it before closing nc.
func watchBots(b *testing.B, nc *nats.Conn, project, state string, want int) *botWatch {
	b.Helper()
	ctx := context.Background()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, topology.BucketBots)
	if err != nil {
		b.Fatalf("open KV %s: %v", topology.BucketBots, err)
	}
	// Documents are <project>.<bot_id>; the indexes have more tokens.
	w, err := kv.Watch(ctx, project+".*", jetstream.UpdatesOnly(), jetstream.IgnoreDeletes())
	if err != nil {
		b.Fatalf("watch KV %s: %v", topology.BucketBots, err)
	}
	bw := &botWatch{state: state, watcher: w, reached: newMilestone(want), done: make(chan struct{}), seen: make(map[string]bool, want)}
	go bw.read()
	return bw
}

func (bw *botWatch) read() {
	defer close(bw.done)
	for e := range bw.watcher.Updates() {
		if e == nil {
			continue // end of the (empty) initial values
		}
		if !bytes.Contains(e.Value(), []byte(`"`+bw.state+`"`)) {
			continue // cheap skip of the other revisions: this runs beside the fleet
		}
		var doc botState
		if err := json.Unmarshal(e.Value(), &doc); err != nil {
			bw.mu.Lock()
			bw.bad++
			bw.mu.Unlock()
			continue
		}
		if doc.State != bw.state {
			continue
		}
		bw.mu.Lock()
		first := !bw.seen[doc.ID]
		bw.seen[doc.ID] = true
		bw.mu.Unlock()
		if first {
			bw.reached.step()
		}
	}
}

// undecodable is how many documents did not decode (a broken document is
// a failure of the run, not a slow machine).
func (bw *botWatch) undecodable() int {
	bw.mu.Lock()
	defer bw.mu.Unlock()
	return bw.bad
}

// stop ends the watch and waits for its goroutine.
func (bw *botWatch) stop() {
	_ = bw.watcher.Stop()
	<-bw.done
}
