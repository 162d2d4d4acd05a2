package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/ingest/app"
	"github.com/usherhq/usher/shared/botcontrol"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/metrics"
	"github.com/usherhq/usher/shared/natstest"
	"github.com/usherhq/usher/shared/topology"
)

const (
	acmeKey   = "acme-key-0123456789abcdef"
	globexKey = "globex-key-0123456789abcdef"
	meetURL   = "https://meet.google.com/abc-defg-hij"
	zoomURL   = "https://zoom.us/j/85012345678?pwd=abc123"
)

// env is one test's JetStream server, a client connection to it, and a
// running ingest service.
type env struct {
	t      testing.TB
	srv    *natstest.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	topo   *topology.Topology
	events *botevents.Store
	vars   map[string]string
	// mounts are mounted on every ingest run.
	mounts map[string]http.Handler

	ingest *ingestProc
	// lastLogs are the logs of the last ingest run that was stopped.
	lastLogs string
}

// ingestProc is one run of the ingest app.
type ingestProc struct {
	app    *app.App
	base   string
	reg    *prometheus.Registry
	logs   *logging.Buffer
	cancel context.CancelFunc
	done   chan error
}

// newEnv starts JetStream and ingest; vars override the environment ingest
// is configured from (rate limiting is off unless a test sets it).
func newEnv(t testing.TB, vars map[string]string) *env {
	t.Helper()
	return newEnvMounted(t, vars, nil)
}

// newEnvMounted is newEnv with handlers mounted behind the API's authentication.
func newEnvMounted(t testing.TB, vars map[string]string, mounts map[string]http.Handler) *env {
	t.Helper()
	srv := natstest.New(t)
	e := &env{t: t, srv: srv, nc: srv.Conn(), topo: srv.Topology(), mounts: mounts}
	var err error
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	e.events = botevents.New(e.js, e.topo.Events)
	e.vars = map[string]string{
		"USHER_NATS_URL":       srv.URL,
		"USHER_API_KEYS":       "acme:" + acmeKey + ",globex:" + globexKey,
		"USHER_RATE_LIMIT":     "off",
		"USHER_SHUTDOWN_GRACE": "3s",
		"USHER_LOG_LEVEL":      "debug",
	}
	for k, v := range vars {
		e.vars[k] = v
	}
	e.startIngest()
	return e
}

// startIngest runs ingest until stopIngest or the end of the test.
func (e *env) startIngest() {
	t := e.t
	t.Helper()
	var cfg app.Config
	if err := config.Load(config.MapLookup(e.vars), &cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ingestProc{reg: metrics.NewRegistry(), logs: &logging.Buffer{}, done: make(chan error, 1)}
	log := logging.New(p.logs, cfg.Log, "ingest")
	if p.app, err = app.New(cfg, log, p.reg, app.WithListener(ln), app.WithTopology(e.srv.Topo)); err != nil {
		t.Fatalf("app.New: %v", err)
	}
	for pattern, h := range e.mounts {
		p.app.Mount(pattern, h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- p.app.Run(ctx) }()
	select {
	case <-p.app.Ready():
	case err := <-p.done:
		t.Fatalf("ingest stopped before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("ingest not ready after 20s")
	}
	p.base = "http://" + p.app.Addr()
	e.ingest = p
	t.Cleanup(e.stopIngest)
}

// stopIngest stops ingest and waits for it (idempotent).
func (e *env) stopIngest() {
	p := e.ingest
	if p == nil {
		return
	}
	e.ingest = nil
	defer func() { e.lastLogs = p.logs.String() }()
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			e.t.Errorf("ingest Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		e.t.Error("ingest did not stop within 30s")
	}
}

// resp is an HTTP answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) obj(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// do sends an HTTP request to ingest; key "" sends no Authorization, a key
// is sent as "Token <key>"; hdr are extra header name/value pairs (a
// Content-Type in hdr replaces the default application/json).
func (e *env) do(method, path, key, body string, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ingest.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Token "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// create POSTs a bot and expects 201.
func (e *env) create(key, body string) map[string]any {
	e.t.Helper()
	r := e.do("POST", "/api/v1/bots", key, body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create %s: %d %s", body, r.status, r.body)
	}
	return r.obj(e.t)
}

// get GETs a bot and expects 200.
func (e *env) get(key, id string) map[string]any {
	e.t.Helper()
	r := e.do("GET", "/api/v1/bots/"+id, key, "")
	if r.status != http.StatusOK {
		e.t.Fatalf("get %s: %d %s", id, r.status, r.body)
	}
	return r.obj(e.t)
}

// request sends a NATS request and returns the reply.
func (e *env) request(subject string, data []byte, hdr nats.Header) *nats.Msg {
	e.t.Helper()
	msg := &nats.Msg{Subject: subject, Data: data, Header: hdr}
	reply, err := e.nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		e.t.Fatalf("request on %s: %v", subject, err)
	}
	return reply
}

func (e *env) requestProto(subject string, req *usherv1.CreateBotRequest, hdr nats.Header) (*usherv1.CreateBotReply, *nats.Msg) {
	e.t.Helper()
	data, err := proto.Marshal(req)
	if err != nil {
		e.t.Fatal(err)
	}
	m := e.request(subject, data, hdr)
	var reply usherv1.CreateBotReply
	if err := proto.Unmarshal(m.Data, &reply); err != nil {
		e.t.Fatalf("reply is not a CreateBotReply: %v (%q)", err, m.Data)
	}
	return &reply, m
}

// counts is how many messages the JOBS stream and BOTS bucket ever stored.
type counts struct{ jobs, bots uint64 }

func (e *env) counts() counts {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var c counts
	for name, dst := range map[string]*uint64{topology.StreamJobs: &c.jobs, "KV_" + topology.BucketBots: &c.bots} {
		s, err := e.js.Stream(ctx, name)
		if err != nil {
			e.t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		*dst = info.State.LastSeq
	}
	return c
}

// lastJob returns the last job on usher.jobs.<platform>, or nil.
func (e *env) lastJob(platform string) *usherv1.JoinJob {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := e.topo.Jobs.GetLastMsgForSubject(ctx, topology.JobsPrefix+"."+platform)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var job usherv1.JoinJob
	if err := proto.Unmarshal(msg.Data, &job); err != nil {
		e.t.Fatal(err)
	}
	return &job
}

// lastRejection returns the last Rejection of a project, or nil.
func (e *env) lastRejection(project string) (*usherv1.Rejection, uint64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := e.topo.Events.GetLastMsgForSubject(ctx, topology.RejectionSubject(project))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var r usherv1.Rejection
	if err := proto.Unmarshal(msg.Data, &r); err != nil {
		e.t.Fatal(err)
	}
	return &r, msg.Sequence
}

// metric returns the /metrics text.
func (e *env) metrics() string {
	e.t.Helper()
	return string(e.do("GET", "/metrics", "", "").body)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// worker plays a worker's part in events: it publishes through botevents.
type worker struct {
	t   testing.TB
	e   *env
	cur botevents.Cursor
}

func (e *env) worker(project, id string, initial string) *worker {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cur, err := e.events.Last(ctx, project, id, botstateOf(initial))
	if err != nil {
		e.t.Fatal(err)
	}
	return &worker{t: e.t, e: e, cur: cur}
}

func (w *worker) emit(to, subCode string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cur, _, err := w.e.events.Publish(ctx, w.cur, botevents.Change{To: botstateOf(to), SubCode: subCode})
	if err != nil {
		w.t.Fatalf("emit %s: %v", to, err)
	}
	w.cur = cur
}

// holdLease writes the bot's lease as a worker taking commands on a
// control prefix of its own does, and returns where that worker takes the
// bot's commands.
func (w *worker) holdLease() string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	prefix := botcontrol.NewPrefix()
	val := fmt.Sprintf(`{"worker":"fake-worker","token":"t","beat":"b","control":%q}`, prefix)
	if _, err := w.e.topo.Leases.Create(ctx, w.cur.BotID, []byte(val)); err != nil {
		w.t.Fatalf("lease of bot %s: %v", w.cur.BotID, err)
	}
	return botcontrol.Subject(prefix, w.cur.Project, w.cur.BotID)
}

// ingest0Logs returns the logs of the last stopped ingest run.
func (e *env) ingest0Logs() string { return e.lastLogs }

func readAll(t testing.TB, res *http.Response) []byte {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
