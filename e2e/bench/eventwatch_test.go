package bench

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/topology"
)

// joiningWatch reads a project's events from the EVENTS stream and keeps,
// per bot, the `at` of its first `joining` event.
type joiningWatch struct {
	cc      jetstream.ConsumeContext
	reached *milestone

	mu  sync.Mutex
	at  map[string]time.Time
	bad int // events that did not decode
}

// watchJoining starts reading project's events from the beginning of the
// stream for want bots' joining events. The caller stops it before closing nc.
func watchJoining(b *testing.B, nc *nats.Conn, project string, want int) *joiningWatch {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, topology.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{topology.EventsPrefix + "." + project + ".>"},
	})
	if err != nil {
		b.Fatalf("events consumer: %v", err)
	}
	jw := &joiningWatch{reached: newMilestone(want), at: make(map[string]time.Time, want)}
	if jw.cc, err = cons.Consume(jw.onEvent); err != nil {
		b.Fatalf("consume events: %v", err)
	}
	return jw
}

func (jw *joiningWatch) onEvent(m jetstream.Msg) {
	ev, err := botevents.Decode(m.Data())
	jw.mu.Lock()
	if err != nil {
		jw.bad++
		jw.mu.Unlock()
		return
	}
	_, seen := jw.at[ev.GetBotId()]
	first := !seen && ev.GetNewState() == string(botstate.Joining)
	if first {
		jw.at[ev.GetBotId()] = ev.GetAt().AsTime()
	}
	jw.mu.Unlock()
	if first {
		jw.reached.step()
	}
}

// times returns the joining times seen, one per bot.
func (jw *joiningWatch) times() []time.Time {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	out := make([]time.Time, 0, len(jw.at))
	for _, t := range jw.at {
		out = append(out, t)
	}
	return out
}

// undecodable is how many events did not decode.
func (jw *joiningWatch) undecodable() int {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	return jw.bad
}

// stop ends the consumer and waits until its callbacks are done.
func (jw *joiningWatch) stop() {
	jw.cc.Stop()
	<-jw.cc.Closed()
}
