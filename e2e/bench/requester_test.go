package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/topology"
)

// benchMeetingURL is the meeting every benchmark bot asks for (the instant
// driver joins nothing; ingest only validates it).
const benchMeetingURL = "https://meet.google.com/abc-defg-hij"

// createRequest encodes a CreateBotRequest, scheduled when joinAt is set.
func createRequest(b *testing.B, joinAt time.Time) []byte {
	b.Helper()
	req := &usherv1.CreateBotRequest{MeetingUrl: benchMeetingURL, BotName: "Usher bench bot", Metadata: map[string]string{"bench": "1"}}
	if !joinAt.IsZero() {
		req.JoinAt = timestamppb.New(joinAt)
	}
	data, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// requester sends CreateBotRequests on usher.requests.<project> the way a
// busy upstream does: async request-reply, many in flight, every reply
// collected on one wildcard inbox subscription.
type requester struct {
	nc      *nats.Conn
	subject string
	inbox   string
	slots   chan struct{} // bounds the requests in flight
	all     *milestone    // every expected reply received

	mu      sync.Mutex
	sent    int
	created int
	refused map[string]int // Usher-Status → count, for everything but 201
}

// newRequester expects want replies; at most inFlight requests are
// unanswered at once. Its subscription ends with nc.
func newRequester(b *testing.B, nc *nats.Conn, project string, want, inFlight int) *requester {
	b.Helper()
	r := &requester{
		nc:      nc,
		subject: topology.RequestSubject(project),
		inbox:   nats.NewInbox(),
		slots:   make(chan struct{}, inFlight),
		all:     newMilestone(want),
		refused: make(map[string]int),
	}
	sub, err := nc.Subscribe(r.inbox+".*", r.onReply)
	if err != nil {
		b.Fatalf("subscribe to replies: %v", err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		b.Fatal(err)
	}
	return r
}

func (r *requester) onReply(m *nats.Msg) {
	status := m.Header.Get(topology.HeaderStatus)
	r.mu.Lock()
	if status == "201" {
		r.created++
	} else {
		r.refused[status]++
	}
	r.mu.Unlock()
	<-r.slots
	r.all.step()
}

// send publishes one request, waiting for a free in-flight slot.
func (r *requester) send(ctx context.Context, data []byte) error {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("no reply slot free: %w", ctx.Err())
	}
	r.mu.Lock()
	r.sent++
	n := r.sent
	r.mu.Unlock()
	msg := &nats.Msg{Subject: r.subject, Reply: fmt.Sprintf("%s.%d", r.inbox, n), Data: data,
		Header: nats.Header{topology.HeaderContentType: []string{topology.ContentTypeProtobuf}}}
	if err := r.nc.PublishMsg(msg); err != nil {
		<-r.slots
		return fmt.Errorf("publish request %d: %w", n, err)
	}
	return nil
}

// wait blocks until every expected reply came, and checks that each was
// 201 Created.
func (r *requester) wait(ctx context.Context) (time.Time, error) {
	at, err := r.all.wait(ctx, "replies to create requests")
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil:
		return at, fmt.Errorf("%w (created %d, refused %v)", err, r.created, r.refused)
	case len(r.refused) > 0:
		return at, fmt.Errorf("create requests refused (Usher-Status → count): %v", r.refused)
	}
	return at, nil
}
