// Package intake takes create-bot requests over NATS: a queue subscription
// (group "ingest", shared by every ingest replica) on usher.requests.>, the
// project taken from the subject. Requests are protobuf CreateBotRequest, or
// JSON with Content-Type: application/json; each gets a reply with the
// Usher-Status header (protobuf CreateBotReply, or the HTTP API's JSON body),
// and every refused request is also published as a Rejection on
// usher.rejections.<project> for fire-and-forget publishers. Requests are
// handled by a bounded pool of workers, each taking every request waiting
// (up to MaxBatch) at once: the bots of a batch are created together
// (bots.Service.CreateMany), a round trip to JetStream per batch rather
// than per request.
//
// Authentication over NATS is the NATS server's: in production each
// upstream's NATS user may publish only on its own usher.requests.<project>
// (accounts and subject permissions), so the subject is the identity.
package intake

import (
	"context"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/protobuf/proto"

	"github.com/usherhq/usher/services/ingest/internal/answer"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
	"github.com/usherhq/usher/services/ingest/internal/bots"
	"github.com/usherhq/usher/shared/topology"
)

// QueueGroup is the queue group of the request subscription.
const QueueGroup = "ingest"

// InvalidProject is the rejection subject's token when the request subject
// names no valid project (it cannot clash: projects start with [a-z0-9]).
const InvalidProject = "_invalid"

// creator creates bots.
type creator interface {
	CreateMany(ctx context.Context, reqs []bots.Request) []bots.Created
}

// limiter is the per-project create budget shared with the HTTP API.
type limiter interface {
	Allow(project string) error
}

// Config of the intake.
type Config struct {
	// Workers is how many batches of requests are handled at once.
	Workers int
	// MaxBatch is the most requests a worker takes at once. Default 64.
	MaxBatch int
	// MaxBodyBytes bounds a request.
	MaxBodyBytes int64
	// RequestTimeout bounds the work behind one request.
	RequestTimeout time.Duration
	// DrainTimeout bounds the wait for accepted requests at shutdown.
	DrainTimeout time.Duration
}

// Intake is the NATS request intake.
type Intake struct {
	cfg       Config
	nc        *nats.Conn
	js        jetstream.JetStream
	svc       creator
	validator *botrequest.Validator
	limiter   limiter
	answers   *answer.Metrics
	log       *slog.Logger

	inFlight   prometheus.Gauge
	batches    prometheus.Histogram
	rejections *prometheus.CounterVec
	started    chan struct{}
}

// New returns an Intake; Run starts it.
func New(cfg Config, nc *nats.Conn, js jetstream.JetStream, svc creator, v *botrequest.Validator, lim limiter,
	answers *answer.Metrics, log *slog.Logger, reg prometheus.Registerer) *Intake {
	if cfg.MaxBatch < 1 {
		cfg.MaxBatch = 64
	}
	f := promauto.With(reg)
	in := &Intake{
		cfg: cfg, nc: nc, js: js, svc: svc, validator: v, limiter: lim, answers: answers, log: log,
		started: make(chan struct{}),
		inFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "usher_ingest_nats_requests_in_flight",
			Help: "NATS create requests being handled.",
		}),
		batches: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "usher_ingest_nats_batch_size",
			Help:    "NATS create requests handled together in one batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 … 1024
		}),
		rejections: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_ingest_rejections_published_total",
			Help: "Rejection events published on usher.rejections.<project>, by outcome (ok, failed).",
		}, []string{"outcome"}),
	}
	in.rejections.WithLabelValues("ok")
	in.rejections.WithLabelValues("failed")
	return in
}

// Started is closed once the server knows the subscription: from then on
// requests are answered.
func (in *Intake) Started() <-chan struct{} { return in.started }

// Run serves requests until ctx is done, then stops taking new ones
// (draining the subscription), finishes those accepted, and returns.
func (in *Intake) Run(ctx context.Context) error {
	work := make(chan *nats.Msg, in.cfg.Workers*in.cfg.MaxBatch)
	quit := make(chan struct{})
	sub, err := in.nc.QueueSubscribe(topology.RequestsPrefix+".>", QueueGroup, func(m *nats.Msg) {
		select {
		case work <- m:
		case <-quit:
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe %s.>: %w", topology.RequestsPrefix, err)
	}
	// Requests in flight finish even though ctx is done: they were accepted.
	base := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for range in.cfg.Workers {
		wg.Go(func() {
			batch := make([]*nats.Msg, 0, in.cfg.MaxBatch)
			for {
				select {
				case m := <-work:
					in.handle(base, gather(append(batch[:0], m), work))
				case <-quit:
					for {
						select {
						case m := <-work:
							in.handle(base, gather(append(batch[:0], m), work))
						default:
							return
						}
					}
				}
				clear(batch) // hold no request until the next batch
			}
		})
	}
	// A flush round trip: the server has the subscription when it answers.
	// Without a connection the subscription is made on reconnect.
	if err := in.nc.FlushTimeout(5 * time.Second); err != nil {
		in.log.Warn("flush request subscription", "error", err)
	}
	close(in.started)
	in.log.Info("nats intake listening", "subject", topology.RequestsPrefix+".>", "queue", QueueGroup, "workers", in.cfg.Workers)
	<-ctx.Done()

	// Stop taking requests; those the client already received are handled.
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	switch {
	case !in.nc.IsConnected():
		_ = sub.Unsubscribe() // nobody to tell; unanswered requesters retry
	case sub.Drain() != nil:
		_ = sub.Unsubscribe()
	default:
		select {
		case <-closed:
		case <-time.After(in.cfg.DrainTimeout):
			in.log.Warn("nats intake drain timed out")
			_ = sub.Unsubscribe()
		}
	}
	close(quit)
	wg.Wait()
	return nil
}

// gather adds to batch every request waiting in work, up to its capacity.
func gather(batch []*nats.Msg, work <-chan *nats.Msg) []*nats.Msg {
	for len(batch) < cap(batch) {
		select {
		case m := <-work:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// request is one request of a batch on its way to its answer.
type request struct {
	m       *nats.Msg
	project string
	msgID   string
	jsonReq bool
	ans     answer.Answer
	create  int // index in the batch's creates, or -1
}

// handle answers a batch of requests: each is checked on its own, the bots
// of those that pass are created together, then each gets its answer.
func (in *Intake) handle(ctx context.Context, ms []*nats.Msg) {
	in.inFlight.Add(float64(len(ms)))
	defer in.inFlight.Sub(float64(len(ms)))
	in.batches.Observe(float64(len(ms)))
	reqs := make([]request, len(ms))
	var creates []bots.Request
	for i, m := range ms {
		r := &reqs[i]
		r.m, r.create = m, -1
		r.msgID = m.Header.Get(jetstream.MsgIDHeader)
		r.jsonReq = isJSON(m.Header.Get(topology.HeaderContentType))
		project, err := topology.ProjectFromRequestSubject(m.Subject)
		if err != nil {
			r.project = InvalidProject
			r.ans = answer.Refused(&answer.SubjectError{Subject: m.Subject})
			continue
		}
		r.project = project
		spec, err := in.check(project, m.Data, r.jsonReq)
		if err != nil {
			r.ans = answer.Refused(err)
			continue
		}
		r.create = len(creates)
		creates = append(creates, bots.Request{Project: project, Spec: spec, MsgID: r.msgID})
	}
	if len(creates) > 0 {
		cctx, cancel := context.WithTimeout(ctx, in.cfg.RequestTimeout)
		created := in.svc.CreateMany(cctx, creates)
		cancel()
		for i := range reqs {
			if r := &reqs[i]; r.create >= 0 {
				r.ans = in.answer(r.project, created[r.create])
			}
		}
	}
	for i := range reqs {
		r := &reqs[i]
		in.answers.Record(answer.SourceNATS, r.ans)
		// The Rejection is stored before the reply goes out, so a requester
		// that reads usher.rejections.<project> after its reply finds it.
		if r.ans.Reason != "" {
			in.reject(ctx, r.project, r.m.Subject, r.msgID, r.ans)
		}
		in.reply(r.m, r.ans, r.jsonReq)
	}
}

// check refuses a request that cannot become a bot, and returns the
// validated spec of one that can.
func (in *Intake) check(project string, data []byte, jsonReq bool) (botrequest.Spec, error) {
	if int64(len(data)) > in.cfg.MaxBodyBytes {
		return botrequest.Spec{}, &answer.TooLargeError{Limit: in.cfg.MaxBodyBytes}
	}
	if err := in.limiter.Allow(project); err != nil {
		return botrequest.Spec{}, err
	}
	if jsonReq {
		return in.validator.FromJSON(data)
	}
	return in.validator.DecodeProto(data)
}

// answer is a create's answer.
func (in *Intake) answer(project string, c bots.Created) answer.Answer {
	if c.Err != nil {
		ans := answer.Refused(c.Err)
		if ans.Status >= http.StatusInternalServerError {
			in.log.Error("create bot", "project", project, "error", c.Err)
		}
		return ans
	}
	in.log.Debug("bot created", "project", project, "bot_id", c.Doc.ID, "platform", c.Doc.Platform, "state", c.Doc.State)
	return answer.Created(c.Doc)
}

// reply answers on the request's reply subject, if it has one.
func (in *Intake) reply(m *nats.Msg, ans answer.Answer, jsonReq bool) {
	if m.Reply == "" {
		return
	}
	out := nats.NewMsg(m.Reply)
	out.Header.Set(topology.HeaderStatus, strconv.Itoa(ans.Status))
	if ans.RetryAfter > 0 {
		out.Header.Set("Retry-After", strconv.Itoa(ans.RetryAfter))
	}
	var err error
	if jsonReq {
		out.Header.Set(topology.HeaderContentType, topology.ContentTypeJSON)
		out.Data, err = marshalJSON(ans.Body)
	} else {
		out.Header.Set(topology.HeaderContentType, topology.ContentTypeProtobuf)
		out.Data, err = proto.Marshal(ans.Proto())
	}
	if err != nil {
		in.log.Error("encode reply", "error", err)
		return
	}
	if err := in.nc.PublishMsg(out); err != nil {
		in.log.Warn("send reply", "error", err)
	}
}

// reject publishes the Rejection event of a refused request.
func (in *Intake) reject(ctx context.Context, project, subject, msgID string, ans answer.Answer) {
	data, err := proto.Marshal(ans.Rejection(project, subject, msgID, time.Now()))
	if err != nil {
		in.log.Error("encode rejection", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	msg := nats.NewMsg(topology.RejectionSubject(project))
	msg.Header.Set(topology.HeaderContentType, topology.ContentTypeProtobuf)
	msg.Data = data
	if _, err := in.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(topology.StreamEvents)); err != nil {
		in.rejections.WithLabelValues("failed").Inc()
		in.log.Warn("publish rejection", "project", project, "reason", ans.Reason, "error", err)
		return
	}
	in.rejections.WithLabelValues("ok").Inc()
}

func isJSON(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == topology.ContentTypeJSON
}
