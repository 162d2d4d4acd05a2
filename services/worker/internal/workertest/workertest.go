// Package workertest is the worker's test harness: an embedded JetStream
// (natstest) with helpers to publish join jobs, read a bot's events, wait
// for conditions with a deadline, and run jobs runtimes in-process, each on
// its own connection like separate worker processes.
package workertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/worker/internal/attend"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/jobs"
	"github.com/usherhq/usher/shared/botcontrol"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/ids"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/natstest"
	"github.com/usherhq/usher/shared/topology"
)

// Project is the project of every test job.
const Project = "acme"

// Harness is one test's JetStream with the Usher topology.
type Harness struct {
	T    testing.TB
	Srv  *natstest.Server
	Topo *topology.Topology
	NC   *nats.Conn
	JS   jetstream.JetStream
}

// New starts a natstest server (lease TTL 3 s, ack wait 5 s) or one with
// the given topology.
func New(t testing.TB, topo ...topology.Config) *Harness {
	t.Helper()
	var srv *natstest.Server
	if len(topo) > 0 {
		srv = natstest.NewWithTopology(t, topo[0])
	} else {
		srv = natstest.New(t)
	}
	nc := srv.Conn()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return &Harness{T: t, Srv: srv, Topo: srv.Topology(), NC: nc, JS: js}
}

// Job returns a valid immediate Zoom job for a new bot, changed by mods.
func (h *Harness) Job(mods ...func(*usherv1.JoinJob)) *usherv1.JoinJob {
	now := time.Now()
	job := &usherv1.JoinJob{
		BotId:      ids.NewBotID(now),
		Project:    Project,
		Platform:   usherv1.Platform_PLATFORM_ZOOM,
		MeetingUrl: "https://zoom.us/j/123456789",
		BotName:    "Usher test bot",
		Metadata:   map[string]string{"deal": "42"},
		CreatedAt:  timestamppb.New(now),
		// Tests run for seconds; a deadline keeps a broken retry bounded.
		JoinDeadline: timestamppb.New(now.Add(10 * time.Minute)),
	}
	for _, m := range mods {
		m(job)
	}
	return job
}

// Publish publishes job on its platform's subject as ingest does.
func (h *Harness) Publish(job *usherv1.JoinJob) {
	h.T.Helper()
	data, err := proto.Marshal(job)
	if err != nil {
		h.T.Fatalf("encode job: %v", err)
	}
	h.PublishRaw(topology.JobSubject(job.GetPlatform()), data, topology.JobMsgID(job.GetBotId()))
}

// PublishRaw publishes data on subject with a message id.
func (h *Harness) PublishRaw(subject string, data []byte, msgID string) {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.JS.Publish(ctx, subject, data, jetstream.WithMsgID(msgID)); err != nil {
		h.T.Fatalf("publish %s: %v", subject, err)
	}
}

// Events returns the bot's events in order.
func (h *Harness) Events(job *usherv1.JoinJob) []*usherv1.BotEvent {
	h.T.Helper()
	evs, err := h.events(job.GetProject(), job.GetBotId())
	if err != nil {
		h.T.Fatalf("read events of %s: %v", job.GetBotId(), err)
	}
	return evs
}

func (h *Harness) events(project, botID string) ([]*usherv1.BotEvent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	subject := topology.EventSubject(project, botID)
	var out []*usherv1.BotEvent
	for seq := uint64(1); ; {
		msg, err := h.Topo.Events.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		ev, err := botevents.Decode(msg.Data)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
		seq = msg.Sequence + 1
	}
}

// States is the "state/sub_code" list of events, for readable assertions.
func States(evs []*usherv1.BotEvent) string {
	parts := make([]string, len(evs))
	for i, ev := range evs {
		parts[i] = ev.GetNewState()
		if ev.GetSubCode() != "" {
			parts[i] += "/" + ev.GetSubCode()
		}
	}
	return strings.Join(parts, " ")
}

// WaitStates waits until the bot's events read want (as States prints
// them) and returns them; it fails the test if they end up different or
// time runs out.
func (h *Harness) WaitStates(job *usherv1.JoinJob, want string, timeout time.Duration) []*usherv1.BotEvent {
	h.T.Helper()
	var evs []*usherv1.BotEvent
	Eventually(h.T, timeout, fmt.Sprintf("events of %s to be %q", job.GetBotId(), want), func() bool {
		evs = h.Events(job)
		return States(evs) == want
	})
	return evs
}

// WaitState waits until the bot's last event is state (optionally
// "state/sub_code") and returns all its events.
func (h *Harness) WaitState(job *usherv1.JoinJob, state string, timeout time.Duration) []*usherv1.BotEvent {
	h.T.Helper()
	var evs []*usherv1.BotEvent
	Eventually(h.T, timeout, fmt.Sprintf("bot %s to reach %q", job.GetBotId(), state), func() bool {
		evs = h.Events(job)
		if len(evs) == 0 {
			return false
		}
		last := States(evs[len(evs)-1:])
		return last == state || strings.HasPrefix(last, state+"/")
	})
	return evs
}

// JobsStored is how many messages the JOBS stream holds (0 once every job
// was acked or terminated).
func (h *Harness) JobsStored() uint64 {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := h.Topo.Jobs.Info(ctx)
	if err != nil {
		h.T.Fatalf("jobs stream info: %v", err)
	}
	return info.State.Msgs
}

// Consumer returns the workers consumer's info.
func (h *Harness) Consumer() *jetstream.ConsumerInfo {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := h.Topo.Workers.Info(ctx)
	if err != nil {
		h.T.Fatalf("workers consumer info: %v", err)
	}
	return info
}

// Eventually polls cond until it holds, failing the test after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Runner is a jobs runtime running in the background.
type Runner struct {
	RT   *jobs.Runtime
	Reg  *prometheus.Registry
	NC   *nats.Conn
	t    testing.TB
	stop context.CancelFunc
	done chan error
}

// Config returns a jobs.Config for tests: short fetch wait and backoff.
func Config(slots int) jobs.Config {
	c := jobs.Defaults()
	c.Slots = slots
	c.WorkerID = "test-" + ids.NewBotID(time.Now())[4:]
	c.FetchWait = 200 * time.Millisecond
	c.RetryBackoff = 200 * time.Millisecond
	c.RetryBackoffMax = time.Second
	c.DrainTimeout = 200 * time.Millisecond
	return c
}

// Start runs a runtime with handler on its own connection. It is stopped
// (drained) by t.Cleanup unless Stop was called.
func (h *Harness) Start(cfg jobs.Config, handler jobs.Handler, opts ...jobs.Option) *Runner {
	h.T.Helper()
	nc := h.Srv.Conn(nats.Name(cfg.WorkerID))
	js, err := jetstream.New(nc)
	if err != nil {
		h.T.Fatalf("jetstream: %v", err)
	}
	// Handles on the runtime's own connection, as a worker process has.
	ectx, cancelEnsure := context.WithTimeout(context.Background(), 20*time.Second)
	topo, err := topology.Ensure(ectx, js, h.Topo.Config)
	cancelEnsure()
	if err != nil {
		h.T.Fatalf("ensure topology: %v", err)
	}
	reg := prometheus.NewRegistry()
	rt, err := jobs.New(cfg, nc, js, topo, handler, logging.Discard(), reg, opts...)
	if err != nil {
		h.T.Fatalf("jobs.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{RT: rt, Reg: reg, NC: nc, t: h.T, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- rt.Run(ctx) }()
	h.T.Cleanup(func() { r.Stop() })
	return r
}

// StartAttend runs a runtime serving every platform through d with the
// attend lifecycle.
func (h *Harness) StartAttend(cfg jobs.Config, d driver.Driver, opts ...jobs.Option) *Runner {
	h.T.Helper()
	return h.Start(cfg, Attend(h.T, d), opts...)
}

// Attend returns the attend handler serving every platform through d.
func Attend(t testing.TB, d driver.Driver) *attend.Handler {
	t.Helper()
	j := driver.Anonymous{Driver: d}
	joiners := map[usherv1.Platform]driver.Joiner{
		usherv1.Platform_PLATFORM_ZOOM:  j,
		usherv1.Platform_PLATFORM_TEAMS: j,
		usherv1.Platform_PLATFORM_MEET:  j,
	}
	cfg := attend.Defaults()
	cfg.LeaveTimeout = 2 * time.Second
	cfg.CrashRetryDelay = 200 * time.Millisecond
	a, err := attend.New(cfg, joiners, logging.Discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("attend.New: %v", err)
	}
	return a
}

// Stop cancels the runtime's context and waits for Run to return (the
// drain included), failing the test after 30 s. Idempotent.
func (r *Runner) Stop() {
	r.t.Helper()
	r.stop()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
			if err != nil {
				r.t.Errorf("runtime Run: %v", err)
			}
		}
	case <-time.After(30 * time.Second):
		r.t.Fatalf("runtime did not stop within 30s")
	}
}

// Leave sends a leave command for the bot as ingest does (to the worker its
// lease names) and returns the reply.
func (h *Harness) Leave(job *usherv1.JoinJob) (*usherv1.ControlReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return botcontrol.Leave(ctx, h.NC, h.Topo.Leases, job.GetProject(), job.GetBotId(), "user_requested")
}

// Metric returns the value of the counter or gauge name with labels (a
// subset of the series' labels), summed over matching series; 0 if none.
func Metric(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}
