package jobs

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ackAttempts is how many times a job's ack is sent before it is reported
// unconfirmed.
const ackAttempts = 3

// acker confirms job acks without holding up the bots that send them. Each
// ack goes out with a reply subject, as jetstream.Msg.DoubleAck sends it,
// and every confirmation comes back on one subscription; an ack left
// unconfirmed for OpTimeout is sent again, up to ackAttempts times, then
// logged. (A bot's ack only guards against a redelivery its lease already
// makes harmless: nothing waits for it.)
type acker struct {
	nc      *nats.Conn
	timeout time.Duration
	log     *slog.Logger
	inbox   string // confirmations arrive on inbox.<token>

	mu      sync.Mutex
	next    uint64
	pending map[string]*pendingAck
}

// pendingAck is an ack waiting for its confirmation.
type pendingAck struct {
	subject string
	log     *slog.Logger
	sent    time.Time
	tries   int
}

// ackPayload is what an ack says (jetstream's AckAck).
var ackPayload = []byte("+ACK")

func newAcker(nc *nats.Conn, timeout time.Duration, log *slog.Logger) *acker {
	return &acker{nc: nc, timeout: timeout, log: log, inbox: nc.NewRespInbox(), pending: make(map[string]*pendingAck)}
}

// run takes confirmations and resends late acks until ctx is done.
func (a *acker) run(ctx context.Context) {
	sub, err := a.nc.Subscribe(a.inbox+".*", a.confirmed)
	if err != nil {
		a.log.Error("ack confirmations: subscribe", "error", err)
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	t := time.NewTicker(max(a.timeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.resendLate(now)
		}
	}
}

// ack acks the job whose ack subject is subject.
func (a *acker) ack(subject string, log *slog.Logger) {
	a.mu.Lock()
	a.next++
	token := strconv.FormatUint(a.next, 36)
	p := &pendingAck{subject: subject, log: log, sent: time.Now(), tries: 1}
	a.pending[token] = p
	a.mu.Unlock()
	a.send(token, p)
}

func (a *acker) send(token string, p *pendingAck) {
	if err := a.nc.PublishRequest(p.subject, a.inbox+"."+token, ackPayload); err != nil {
		p.log.Warn("ack of joined job not sent", "attempt", p.tries, "error", err)
	}
}

// confirmed settles the ack a confirmation answers. JetStream answers an
// ack with an empty message; "no responders" means nobody took it (the
// consumer is gone), and it is not sent again.
func (a *acker) confirmed(m *nats.Msg) {
	token := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	a.mu.Lock()
	p := a.pending[token]
	delete(a.pending, token)
	a.mu.Unlock()
	if p != nil && m.Header.Get("Status") == "503" {
		p.log.Warn("ack of joined job not taken: no responders")
	}
}

// resendLate sends again every ack unconfirmed for the timeout, and gives
// up on those sent ackAttempts times.
func (a *acker) resendLate(now time.Time) {
	type resend struct {
		token string
		p     *pendingAck
	}
	var again []resend
	a.mu.Lock()
	for token, p := range a.pending {
		if now.Sub(p.sent) < a.timeout {
			continue
		}
		if p.tries >= ackAttempts {
			delete(a.pending, token)
			p.log.Warn("ack of joined job unconfirmed; a redelivery finds the bot held", "attempts", p.tries)
			continue
		}
		p.tries++
		p.sent = now
		again = append(again, resend{token, p})
	}
	a.mu.Unlock()
	for _, r := range again {
		a.send(r.token, r.p)
	}
}
