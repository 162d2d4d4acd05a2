// Package drivertest runs what the browser drivers' tests and benchmarks
// need in-process: the simulator on an httptest server and a browser engine,
// plus small helpers to join and to wait on what the simulator saw.
package drivertest

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/services/worker/internal/browser/browsertest"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/drivers/webjoin"
)

// Config is the drivers' configuration in tests: short steps and polls.
func Config() webjoin.Config {
	return webjoin.Config{StepTimeout: 10 * time.Second, PollInterval: 100 * time.Millisecond, LeaveTimeout: 10 * time.Second}
}

// Env is a simulator and a browser.
type Env struct {
	Sim    *sim.Simulator
	Server *httptest.Server
	Engine *browser.Engine
}

// Start runs the simulator and a browser with maxContexts contexts (for TestMain).
func Start(maxContexts int) (*Env, error) { return StartWith(maxContexts, sim.Config{}) }

// StartWith is Start with a simulator configuration.
func StartWith(maxContexts int, simCfg sim.Config) (*Env, error) {
	s := sim.New(simCfg)
	srv := httptest.NewServer(s)
	if err := s.SetPublicURL(srv.URL); err != nil {
		srv.Close()
		return nil, err
	}
	eng, err := browsertest.Start(maxContexts)
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &Env{Sim: s, Server: srv, Engine: eng}, nil
}

// Close stops the browser and the simulator (Env is the io.Closer of
// browsertest.Main).
func (e *Env) Close() error {
	err := e.Engine.Close()
	e.Server.CloseClientConnections()
	e.Server.Close()
	return err
}

// Meeting creates a simulator meeting or fails the test.
func (e *Env) Meeting(t testing.TB, spec sim.MeetingSpec) sim.Meeting {
	t.Helper()
	m, err := e.Sim.CreateMeeting(spec)
	if err != nil {
		t.Fatalf("create %s meeting: %v", spec.Platform, err)
	}
	return m
}

// WaitParticipant waits (10 s at most) until the newest participant named
// name is in state, as the simulator's admin API reports it.
func (e *Env) WaitParticipant(t testing.TB, meetingID, name, state string) sim.Participant {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := e.Sim.WaitParticipant(ctx, meetingID, name, state)
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	return p
}

var botSeq atomic.Int64 //nolint:gochecknoglobals // unique bot names across a test binary

// BotName returns a unique display name.
func BotName(prefix string) string {
	return fmt.Sprintf("%s Bot %d", prefix, botSeq.Add(1))
}

// Watcher counts WaitingRoom calls and signals each on its channel.
type Watcher struct {
	calls atomic.Int64
	C     chan struct{}
}

// NewWatcher returns a Watcher.
func NewWatcher() *Watcher { return &Watcher{C: make(chan struct{}, 16)} }

// WaitingRoom implements driver.Watcher.
func (w *Watcher) WaitingRoom(context.Context) {
	w.calls.Add(1)
	select {
	case w.C <- struct{}{}:
	default:
	}
}

// Calls is how many times WaitingRoom was called.
func (w *Watcher) Calls() int { return int(w.calls.Load()) }

// Await waits (10 s at most) for a WaitingRoom call.
func (w *Watcher) Await(t testing.TB) {
	t.Helper()
	select {
	case <-w.C:
	case <-time.After(10 * time.Second):
		t.Fatal("the driver never reported the waiting room")
	}
}

// JoinResult is what an asynchronous Join returned.
type JoinResult struct {
	Meeting driver.Meeting
	Err     error
}

// JoinAsync runs d.Join in a goroutine the test waits for (its meeting is
// closed at cleanup).
func JoinAsync(t testing.TB, ctx context.Context, d driver.Driver, req driver.JoinRequest, w driver.Watcher) <-chan JoinResult {
	t.Helper()
	out := make(chan JoinResult, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m, err := d.Join(ctx, req, w)
		out <- JoinResult{m, err}
	}()
	t.Cleanup(func() {
		<-done
		select {
		case r := <-out:
			if r.Meeting != nil {
				_ = r.Meeting.Close()
			}
		default: // the test took the result, and owns its meeting
		}
	})
	return out
}

// Result waits (timeout at most) for an asynchronous Join.
func Result(t testing.TB, ch <-chan JoinResult, timeout time.Duration) JoinResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		t.Fatalf("Join did not return within %s", timeout)
		return JoinResult{}
	}
}

// Join joins synchronously, failing the test on error; the meeting is closed at cleanup.
func Join(t testing.TB, ctx context.Context, d driver.Driver, req driver.JoinRequest) driver.Meeting {
	t.Helper()
	m, err := d.Join(ctx, req, NewWatcher())
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// JoinFailure asserts err is a *driver.JoinError with subCode (and step, when
// not empty) and returns it.
func JoinFailure(t testing.TB, err error, subCode, step string) *driver.JoinError {
	t.Helper()
	var je *driver.JoinError
	if !errors.As(err, &je) {
		t.Fatalf("join returned %v, want a JoinError %s", err, subCode)
	}
	if je.SubCode != subCode || (step != "" && je.Step != step) {
		t.Fatalf("join failed with %s at step %q (%v), want %s at step %q", je.SubCode, je.Step, je.Err, subCode, step)
	}
	return je
}

// Ctx is a context cancelled at cleanup, with a deadline.
func Ctx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// WaitEnd runs m.Wait with a deadline.
func WaitEnd(t testing.TB, m driver.Meeting, d time.Duration) (driver.End, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return m.Wait(ctx)
}

// AssertShown fails unless each selector matches a rendered element of the
// meeting's page (for example the "unmute" controls of a muted bot).
func AssertShown(t testing.TB, m driver.Meeting, selectors ...string) {
	t.Helper()
	wm, ok := m.(*webjoin.Meeting)
	if !ok {
		t.Fatalf("meeting is a %T, not a browser meeting", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, sel := range selectors {
		shown, err := wm.Page().Has(ctx, webjoin.Hook{State: webjoin.StatePrompt, Selector: sel})
		if err != nil || !shown {
			t.Errorf("the meeting page does not show %s (%v)", sel, err)
		}
	}
}
