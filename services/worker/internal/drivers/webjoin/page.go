package webjoin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/proto"

	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/shared/botstate"
)

// ErrStalled is wrapped when a step saw none of its hooks in time.
var ErrStalled = errors.New("page step stalled")

// errStepTimeout is the cause of a step context that ran out of time.
var errStepTimeout = errors.New("step timeout")

// evalTimeout bounds one look at the page: a page busy navigating answers
// the next poll instead.
const evalTimeout = 5 * time.Second

// reclickAfter keeps a click hook from being clicked again while the page
// reacts to the first click.
const reclickAfter = 2 * time.Second

// Page is one bot's tab as a driver sees it: polled for hooks, clicked, typed into.
type Page struct {
	tab *browser.Tab
	cfg Config
	log *slog.Logger
}

// NewPage wraps a tab. log should carry the bot's id and platform.
func NewPage(tab *browser.Tab, cfg Config, log *slog.Logger) *Page {
	return &Page{tab: tab, cfg: cfg.withDefaults(), log: log}
}

// Tab is the underlying browser tab.
func (p *Page) Tab() *browser.Tab { return p.tab }

// stepCtx bounds one action by the step timeout.
func (p *Page) stepCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, p.cfg.StepTimeout, errStepTimeout)
}

// Navigate opens url. The url may carry secrets (a ZAK): it never reaches an
// error or a log line, only the step does.
func (p *Page) Navigate(ctx context.Context, step, url string) error {
	ctx, cancel := p.stepCtx(ctx)
	defer cancel()
	if err := p.tab.Page().Context(ctx).Navigate(url); err != nil {
		var nav *rod.NavigationError
		if errors.As(err, &nav) {
			// The browser could not load the page at all (DNS, refused connection).
			return p.fault(ctx, step, fmt.Errorf("open the meeting page: %s", nav.Reason))
		}
		return p.fault(ctx, step, errors.New("open the meeting page"))
	}
	return nil
}

// Observe looks at the page once and returns the first hook that matches
// (State is StateNone when none does).
func (p *Page) Observe(ctx context.Context, hooks []Hook) (Match, error) {
	ctx, cancel := context.WithTimeout(ctx, evalTimeout)
	defer cancel()
	res, err := p.tab.Page().Context(ctx).Evaluate(rod.Eval(observeJS, hooks))
	if err != nil {
		return Match{Hook: -1, Element: -1}, fmt.Errorf("observe page: %w", err)
	}
	var out struct {
		Hook    int `json:"hook"`
		Element int `json:"element"`
	}
	if err := res.Value.Unmarshal(&out); err != nil {
		return Match{Hook: -1, Element: -1}, fmt.Errorf("observe page: %w", err)
	}
	if out.Hook < 0 || out.Hook >= len(hooks) {
		return Match{Hook: -1, Element: -1}, nil
	}
	h := hooks[out.Hook]
	return Match{State: h.State, Hook: out.Hook, Element: out.Element, Detail: h.what()}, nil
}

// Has reports whether one hook matches now.
func (p *Page) Has(ctx context.Context, h Hook) (bool, error) {
	m, err := p.Observe(ctx, []Hook{h})
	return m.State == h.State && m.Hook == 0, err
}

// Await polls until a hook matches and returns it. Hooks with Click set are
// clicked (at most every couple of seconds each) and waiting goes on. Outside
// a waiting room a step is bounded by the step timeout: then it fails with
// ui_element_not_found naming step.
func (p *Page) Await(ctx context.Context, step string, hooks []Hook) (Match, error) {
	return p.await(ctx, step, hooks, nil)
}

// Reach waits for a step's page like Await, and fails with the join error
// of a failure state the page announces there (Match.JoinErr).
func (p *Page) Reach(ctx context.Context, step string, hooks []Hook) error {
	m, err := p.Await(ctx, step, hooks)
	if err != nil {
		return err
	}
	return m.JoinErr(step)
}

// Admit waits for the bot to be let in: it returns nil once a StateInMeeting
// hook matches, and the JoinErr of a failure state. Each time the page enters
// StateWaitingRoom it calls w.WaitingRoom; in the waiting room there is no
// step timeout (ctx, held by the lifecycle, bounds the wait).
func (p *Page) Admit(ctx context.Context, step string, w driver.Watcher, hooks []Hook) error {
	inLobby := false
	m, err := p.await(ctx, step, hooks, func(m Match) (bool, error) {
		switch m.State {
		case StateInMeeting, StateAlone:
			return true, nil
		case StateWaitingRoom:
			if !inLobby {
				inLobby = true
				p.log.Debug("in waiting room", "step", step)
				w.WaitingRoom(ctx)
			}
			return false, nil
		case StateNone:
			return false, nil
		}
		if err := m.JoinErr(step); err != nil {
			return true, err
		}
		inLobby = false
		return false, nil
	})
	if err != nil {
		return err
	}
	return m.JoinErr(step)
}

// await is the polling loop. done, when set, decides whether a match ends
// the wait (and with which error); without it any match does. The step
// deadline is pushed back while the page shows a waiting room.
func (p *Page) await(ctx context.Context, step string, hooks []Hook, done func(Match) (bool, error)) (Match, error) {
	deadline := time.Now().Add(p.cfg.StepTimeout)
	clicked := make(map[int]time.Time)
	poll := newPoller(p.cfg.PollInterval)
	defer poll.stop()
	last := StateNone
	var lastErr error
	for {
		m, err := p.Observe(ctx, hooks)
		lastErr = err
		if err == nil {
			if m.State != last {
				p.log.Debug("page state", "step", step, "state", string(m.State), "seen", m.Detail)
				last = m.State
			}
			switch {
			case m.State == StateNone:
			case hooks[m.Hook].Click:
				if time.Since(clicked[m.Hook]) > reclickAfter {
					clicked[m.Hook] = time.Now()
					if err := p.clickMatch(ctx, step, hooks, m); err != nil {
						return m, err
					}
				}
			case done == nil:
				return m, nil
			default:
				ok, err := done(m)
				if ok || err != nil {
					return m, err
				}
			}
			if m.State == StateWaitingRoom {
				deadline = time.Now().Add(p.cfg.StepTimeout)
			}
		}
		if time.Now().After(deadline) {
			return m, p.stalled(step, hooks, lastErr)
		}
		select {
		case <-ctx.Done():
			return m, fmt.Errorf("%s: %w", step, ctx.Err())
		case <-p.tab.Crashed():
			return m, fmt.Errorf("%s: %w", step, driver.ErrBrowserCrashed)
		case <-poll.next():
		}
	}
}

// poller paces a step's looks at the page: quickly at first (a page usually
// answers a click within a few tens of milliseconds), then every interval.
type poller struct {
	interval time.Duration
	delay    time.Duration
	timer    *time.Timer
}

func newPoller(interval time.Duration) *poller {
	return &poller{interval: interval, delay: min(25*time.Millisecond, interval)}
}

func (p *poller) next() <-chan time.Time {
	if p.timer == nil {
		p.timer = time.NewTimer(p.delay)
	} else {
		p.timer.Reset(p.delay)
	}
	p.delay = min(p.delay*2, p.interval)
	return p.timer.C
}

func (p *poller) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

func (p *Page) stalled(step string, hooks []Hook, lastErr error) error {
	var want []string
	for _, h := range hooks {
		if h.State != StatePrompt {
			want = append(want, string(h.State))
		}
	}
	err := fmt.Errorf("%w: no page state among [%s] after %s", ErrStalled, strings.Join(dedupe(want), " "), p.cfg.StepTimeout)
	if lastErr != nil {
		err = fmt.Errorf("%w (last look: %w)", err, lastErr)
	}
	return driver.Fail(botstate.SubUIElementNotFound, step, err)
}

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// Click clicks the hook's element once it is there (and enabled, when the
// hook says so), waiting at most the step timeout.
func (p *Page) Click(ctx context.Context, step string, h Hook) error {
	hooks := []Hook{h}
	m, err := p.Await(ctx, step, hooks)
	if err != nil {
		return err
	}
	return p.clickMatch(ctx, step, hooks, m)
}

func (p *Page) clickMatch(ctx context.Context, step string, hooks []Hook, m Match) error {
	sel := hooks[m.Hook].Selector
	if sel == "" || m.Element < 0 {
		return fmt.Errorf("%s: hook %s has no element to click", step, hooks[m.Hook].what())
	}
	ctx, cancel := p.stepCtx(ctx)
	defer cancel()
	el, err := p.tab.Page().Context(ctx).ElementByJS(rod.Eval(elementJS, sel, m.Element))
	if err == nil {
		err = el.Click(proto.InputMouseButtonLeft, 1)
	}
	if err != nil {
		return p.fault(ctx, step, fmt.Errorf("click %s: %w", hooks[m.Hook].what(), err))
	}
	p.log.Debug("clicked", "step", step, "what", hooks[m.Hook].what())
	return nil
}

// Type replaces the text of the hook's input with text.
func (p *Page) Type(ctx context.Context, step string, h Hook, text string) error {
	hooks := []Hook{h}
	m, err := p.Await(ctx, step, hooks)
	if err != nil {
		return err
	}
	ctx, cancel := p.stepCtx(ctx)
	defer cancel()
	el, err := p.tab.Page().Context(ctx).ElementByJS(rod.Eval(elementJS, h.Selector, m.Element))
	if err == nil {
		err = el.SelectAllText()
	}
	if err == nil {
		err = el.Input(text)
	}
	if err != nil {
		return p.fault(ctx, step, fmt.Errorf("type into %s: %w", h.what(), err))
	}
	return nil
}

// TurnOff switches a device toggle off: when on matches, it clicks it and
// waits for off to match. A toggle that is absent (no such device) is left
// alone; one that will not turn off fails the step, so that a bot never
// joins with its microphone or camera on.
func (p *Page) TurnOff(ctx context.Context, step string, on, off Hook) error {
	isOn, err := p.Has(ctx, on)
	if err != nil {
		return p.fault(ctx, step, err)
	}
	if !isOn {
		return nil
	}
	if err := p.Click(ctx, step, on); err != nil {
		return err
	}
	_, err = p.Await(ctx, step, []Hook{off})
	return err
}

// fault turns an action's error into what the lifecycle acts on: a crash,
// the caller's cancellation, a stalled step (ui_element_not_found), or the
// error itself (retried).
func (p *Page) fault(ctx context.Context, step string, err error) error {
	if p.crashed() {
		return fmt.Errorf("%s: %w: %w", step, driver.ErrBrowserCrashed, err)
	}
	if ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), errStepTimeout) {
			return driver.Fail(botstate.SubUIElementNotFound, step, fmt.Errorf("%w: %w", ErrStalled, err))
		}
		return fmt.Errorf("%s: %w", step, ctx.Err())
	}
	return fmt.Errorf("%s: %w", step, err)
}

// crashed reports a dead browser. A CDP call fails the moment the browser's
// socket closes, a little before the process is reaped, so it waits briefly.
func (p *Page) crashed() bool {
	select {
	case <-p.tab.Crashed():
		return true
	case <-time.After(300 * time.Millisecond):
		return false
	}
}
