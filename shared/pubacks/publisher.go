package pubacks

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publisher is a JetStream context whose PublishMsgAsync without options
// is Usher's own, lean async publish; everything else, PublishMsgAsync with
// options included, is the wrapped context's.
//
// Why: a bot's way to joined makes six JetStream writes, all async, and
// nats.go's async publish is generic where these are not. Per write it arms
// a timer for its timeout, parses the acknowledgement with encoding/json
// while holding the publisher's lock, and allocates a dozen small objects.
// Here the acknowledgement the server writes from a template
// ({"stream":"S","seq":N}) is read by hand, with encoding/json only for
// anything else (errors, domains with escapes); one ticker times every
// pending write out; replies are keyed by a counter. The behaviour callers
// see is nats.go's: the same PubAck, *jetstream.APIError, timeout, stall,
// no-responders retry and disconnect errors. Options (a Nats-Msg-Id, an
// expected sequence) are headers the caller sets itself on the fast path.
type Publisher struct {
	jetstream.JetStream

	nc         *nats.Conn
	prefix     string // replies arrive on prefix + token (a base-36 counter)
	cfg        PublisherConfig
	slots      chan struct{} // one per pending write: MaxPending
	sub        *nats.Subscription
	status     chan nats.Status
	stop, done chan struct{}

	mu      sync.Mutex
	next    uint64
	tick    uint64 // the timeout ticker's count
	pending map[uint64]*Future
}

// PublisherConfig bounds the writes in flight.
type PublisherConfig struct {
	// Timeout fails a write not acknowledged within it (to 5/4 of it: one
	// ticker checks every pending write each Timeout/4) with
	// jetstream.ErrAsyncPublishTimeout. Default 10s.
	Timeout time.Duration
	// MaxPending writes may await their acknowledgement at once; one more
	// waits up to StallWait for a slot, then fails with
	// jetstream.ErrTooManyStalledMsgs. Default 4096.
	MaxPending int
	// StallWait: default 200ms, nats.go's.
	StallWait time.Duration
	// RetryWait and RetryAttempts: a write that finds no stream listening
	// (a JetStream restarting) is sent again up to RetryAttempts times,
	// RetryWait apart, as nats.go does. Defaults 250ms and 2.
	RetryWait     time.Duration
	RetryAttempts int
}

func (c PublisherConfig) withDefaults() PublisherConfig {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 4096
	}
	if c.StallWait <= 0 {
		c.StallWait = 200 * time.Millisecond
	}
	if c.RetryWait <= 0 {
		c.RetryWait = jetstream.DefaultPubRetryWait
	}
	if c.RetryAttempts <= 0 {
		c.RetryAttempts = jetstream.DefaultPubRetryAttempts
	}
	return c
}

// NewPublisher wraps js, a context on nc, and subscribes to its replies.
// Close it before nc.
func NewPublisher(js jetstream.JetStream, nc *nats.Conn, cfg PublisherConfig) (*Publisher, error) {
	cfg = cfg.withDefaults()
	p := &Publisher{
		JetStream: js,
		nc:        nc,
		prefix:    nc.NewRespInbox() + ".",
		cfg:       cfg,
		slots:     make(chan struct{}, cfg.MaxPending),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		pending:   make(map[uint64]*Future),
	}
	sub, err := nc.Subscribe(p.prefix+"*", p.reply)
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	p.sub = sub
	// A reply lost with the connection would only time out: fail those
	// writes at once, as nats.go does, so callers retry them.
	p.status = nc.StatusChanged(nats.RECONNECTING, nats.CLOSED)
	go p.run()
	return p, nil
}

// Close stops the publisher; writes still pending fail with
// nats.ErrConnectionClosed. It is idempotent.
func (p *Publisher) Close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *Publisher) run() {
	defer close(p.done)
	defer p.failAll(nats.ErrConnectionClosed)
	defer func() { _ = p.sub.Unsubscribe() }()
	defer p.nc.RemoveStatusListener(p.status)
	t := time.NewTicker(p.cfg.Timeout / 4)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case s, ok := <-p.status:
			if !ok || s == nats.CLOSED {
				p.failAll(nats.ErrConnectionClosed)
				<-p.stop
				return
			}
			p.failAll(nats.ErrDisconnected)
		case <-t.C:
			p.expire()
		}
	}
}

// PublishMsgAsync publishes m and returns the future of its
// acknowledgement. With options, or a reply subject set, it is nats.go's.
func (p *Publisher) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if len(opts) > 0 || m.Reply != "" {
		return p.JetStream.PublishMsgAsync(m, opts...)
	}
	if err := p.acquire(); err != nil {
		return nil, err
	}
	f := &Future{msg: m, done: make(chan struct{})}
	p.mu.Lock()
	p.next++
	id := p.next
	f.tick = p.tick
	p.pending[id] = f
	p.mu.Unlock()
	f.reply = p.prefix + strconv.FormatUint(id, 36)
	if err := p.send(f); err != nil {
		p.forget(id)
		return nil, err
	}
	return f, nil
}

// send publishes the write (a copy: the caller's message keeps no reply).
func (p *Publisher) send(f *Future) error {
	return p.nc.PublishMsg(&nats.Msg{Subject: f.msg.Subject, Reply: f.reply, Header: f.msg.Header, Data: f.msg.Data})
}

func (p *Publisher) acquire() error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(p.cfg.StallWait)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-t.C:
		return jetstream.ErrTooManyStalledMsgs
	}
}

// forget drops a write that was never sent.
func (p *Publisher) forget(id uint64) {
	p.mu.Lock()
	_, ok := p.pending[id]
	delete(p.pending, id)
	p.mu.Unlock()
	if ok {
		<-p.slots
	}
}

// take removes the pending write id and frees its slot; nil when it is no
// longer pending (timed out, failed).
func (p *Publisher) take(id uint64) *Future {
	p.mu.Lock()
	f := p.pending[id]
	delete(p.pending, id)
	p.mu.Unlock()
	if f != nil {
		<-p.slots
	}
	return f
}

func (p *Publisher) reply(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[len(p.prefix):], 36, 64)
	if err != nil {
		return
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		p.noResponders(id)
		return
	}
	f := p.take(id)
	if f == nil {
		return
	}
	f.resolve(parseAck(m.Data))
}

// noResponders sends the write again later, or fails it once it has been
// sent RetryAttempts more times.
func (p *Publisher) noResponders(id uint64) {
	p.mu.Lock()
	f := p.pending[id]
	retry := f != nil && f.retries < p.cfg.RetryAttempts
	if retry {
		f.retries++
	}
	p.mu.Unlock()
	if f == nil {
		return
	}
	if !retry {
		if f = p.take(id); f != nil {
			f.resolve(nil, jetstream.ErrNoStreamResponse)
		}
		return
	}
	time.AfterFunc(p.cfg.RetryWait, func() {
		p.mu.Lock()
		still := p.pending[id] == f
		if still {
			f.tick = p.tick // its timeout starts again, as nats.go's does
		}
		p.mu.Unlock()
		if !still {
			return
		}
		if err := p.send(f); err != nil {
			if f = p.take(id); f != nil {
				f.resolve(nil, err)
			}
		}
	})
}

// expire fails the writes pending for four ticks or more.
func (p *Publisher) expire() {
	var late []*Future
	p.mu.Lock()
	p.tick++
	for id, f := range p.pending {
		if p.tick-f.tick >= 5 {
			delete(p.pending, id)
			late = append(late, f)
		}
	}
	p.mu.Unlock()
	for _, f := range late {
		<-p.slots
		f.resolve(nil, jetstream.ErrAsyncPublishTimeout)
	}
}

func (p *Publisher) failAll(err error) {
	p.mu.Lock()
	all := p.pending
	p.pending = make(map[uint64]*Future)
	p.mu.Unlock()
	for _, f := range all {
		<-p.slots
		f.resolve(nil, err)
	}
}

// Future is a write's acknowledgement to come: a jetstream.PubAckFuture,
// and Await's fast path.
type Future struct {
	msg   *nats.Msg
	reply string
	done  chan struct{} // closed once ack or err is set

	// Guarded by the Publisher's mu.
	tick    uint64
	retries int

	ack *jetstream.PubAck
	err error

	mu    sync.Mutex // guards okCh, errCh and resolved
	okCh  chan *jetstream.PubAck
	errCh chan error
}

func (f *Future) resolve(ack *jetstream.PubAck, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ack, f.err = ack, err
	close(f.done)
	if ack != nil && f.okCh != nil {
		f.okCh <- ack
	}
	if err != nil && f.errCh != nil {
		f.errCh <- err
	}
}

func (f *Future) resolved() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// Ok delivers the acknowledgement, once.
func (f *Future) Ok() <-chan *jetstream.PubAck {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.okCh == nil {
		f.okCh = make(chan *jetstream.PubAck, 1)
		if f.resolved() && f.ack != nil {
			f.okCh <- f.ack
		}
	}
	return f.okCh
}

// Err delivers the error, once.
func (f *Future) Err() <-chan error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.errCh == nil {
		f.errCh = make(chan error, 1)
		if f.resolved() && f.err != nil {
			f.errCh <- f.err
		}
	}
	return f.errCh
}

// Msg is the message published.
func (f *Future) Msg() *nats.Msg { return f.msg }

// Done is closed once the write is acknowledged or failed; Result then
// says which.
func (f *Future) Done() <-chan struct{} { return f.done }

// Result is the write's outcome, once Done is closed.
func (f *Future) Result() Result { return Result{Ack: f.ack, Err: f.err} }

// parseAck reads a publish acknowledgement: the server's template by hand,
// anything else (an error, an escaped name) with encoding/json.
func parseAck(data []byte) (*jetstream.PubAck, error) {
	if ack, ok := parseAckTemplate(data); ok {
		return ack, nil
	}
	var resp struct {
		Error *jetstream.APIError `json:"error,omitempty"`
		*jetstream.PubAck
	}
	resp.PubAck = new(jetstream.PubAck)
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, jetstream.ErrInvalidJSAck
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	if resp.Stream == "" {
		return nil, jetstream.ErrInvalidJSAck
	}
	return resp.PubAck, nil
}

// parseAckTemplate reads {"stream":"S"[,"domain":"D"],"seq":N[,"duplicate": true]}
// — exactly what nats-server writes for a stored message — and reports
// false for anything else.
func parseAckTemplate(b []byte) (*jetstream.PubAck, bool) {
	var ack jetstream.PubAck
	var ok bool
	if b, ok = bytes.CutPrefix(b, []byte(`{"stream":`)); !ok {
		return nil, false
	}
	if ack.Stream, b, ok = plainString(b); !ok || ack.Stream == "" {
		return nil, false
	}
	if rest, found := bytes.CutPrefix(b, []byte(`,"domain":`)); found {
		if ack.Domain, b, ok = plainString(rest); !ok {
			return nil, false
		}
	}
	if b, ok = bytes.CutPrefix(b, []byte(`,"seq":`)); !ok {
		return nil, false
	}
	n := 0
	for ; n < len(b) && b[n] >= '0' && b[n] <= '9'; n++ {
		if n == 19 { // more than any uint64 sequence the server writes
			return nil, false
		}
		ack.Sequence = ack.Sequence*10 + uint64(b[n]-'0')
	}
	if n == 0 {
		return nil, false
	}
	switch b = b[n:]; {
	case string(b) == "}":
	case string(b) == `,"duplicate": true}` || string(b) == `,"duplicate":true}`:
		ack.Duplicate = true
	default:
		return nil, false
	}
	return &ack, true
}

// plainString reads a JSON string without escapes at the start of b.
func plainString(b []byte) (string, []byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 0 || bytes.IndexByte(b[1:1+end], '\\') >= 0 {
		return "", nil, false
	}
	return string(b[1 : 1+end]), b[2+end:], true
}

// ExpectLastSequence makes m a compare-and-set: stored only while its
// subject's last sequence is seq (0: the subject has no message), as
// jetstream.WithExpectLastSequencePerSubject does.
func ExpectLastSequence(m *nats.Msg, seq uint64) {
	setHeader(m, jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(seq, 10))
}

// SetMsgID gives m a Nats-Msg-Id, as jetstream.WithMsgID does.
func SetMsgID(m *nats.Msg, id string) { setHeader(m, jetstream.MsgIDHeader, id) }

// ExpectStream makes m fail unless stream stores it, as
// jetstream.WithExpectStream does.
func ExpectStream(m *nats.Msg, stream string) { setHeader(m, jetstream.ExpectedStreamHeader, stream) }

func setHeader(m *nats.Msg, key, value string) {
	if m.Header == nil {
		m.Header = make(nats.Header, 2)
	}
	m.Header[key] = []string{value}
}
