// Package browser runs the worker's one Chromium and hands out one incognito
// context per bot, so cookies never cross bots or projects. The number of
// contexts is bounded (one per bot slot); every context is closed on every
// path out; a crashed browser is restarted and the bots that were in it are
// told through their Tab.
//
// API contract (used by the platform drivers and the Teams login):
//
//	eng := browser.New(cfg, log, reg)
//	err := eng.Start(ctx)            // launches Chromium (never downloads one)
//	tab, err := eng.Open(ctx)        // new incognito context + blank page; blocks while all contexts are in use
//	err = tab.SetCookies(ctx, c)     // pre-set a session (signed-in Teams joins)
//	page := tab.Page().Context(ctx)  // *rod.Page of the tab's own context
//	<-tab.Crashed()                  // closed if the browser process died under this tab
//	tab.Close()                      // closes the page and its context; idempotent
//	eng.Close()                      // kills Chromium, waits for it, leaves no zombies
//
// The worker adopts the browser's orphaned processes (PR_SET_CHILD_SUBREAPER)
// and reaps them, so a crash leaves no zombies even where PID 1 never reaps.
package browser

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/launcher"
	"github.com/go-rod/rod/lib/proto"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/usherhq/usher/services/worker/internal/driver"
)

// Config of the engine.
type Config struct {
	// Bin is the Chromium binary; never a downloaded one. Default /usr/bin/chromium.
	Bin string `env:"USHER_CHROMIUM_BIN" default:"/usr/bin/chromium"`
	// Headless runs without a display. Default true.
	Headless bool `env:"USHER_CHROMIUM_HEADLESS" default:"true"`
	// MaxContexts bounds open incognito contexts (set to the worker's slots). Default 4.
	MaxContexts int `env:"USHER_BROWSER_MAX_CONTEXTS" default:"4"`
	// LaunchTimeout bounds one start of the browser. Default 30s.
	LaunchTimeout time.Duration `env:"USHER_CHROMIUM_LAUNCH_TIMEOUT" default:"30s"`
}

// Validate names the bad field.
func (c Config) Validate() error {
	if c.Bin == "" {
		return errors.New("USHER_CHROMIUM_BIN must name the Chromium binary")
	}
	if c.MaxContexts < 1 {
		return fmt.Errorf("USHER_BROWSER_MAX_CONTEXTS must be ≥ 1, got %d", c.MaxContexts)
	}
	if c.LaunchTimeout <= 0 {
		return fmt.Errorf("USHER_CHROMIUM_LAUNCH_TIMEOUT must be > 0, got %s", c.LaunchTimeout)
	}
	return nil
}

// Errors of the engine.
var (
	// ErrClosed is returned by Open after Close.
	ErrClosed = errors.New("browser engine closed")
	// ErrNotStarted is returned by Open before Start.
	ErrNotStarted = errors.New("browser engine not started")
	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("browser engine already started")
)

// closeTimeout bounds the CDP calls made while closing a tab or the browser.
const closeTimeout = 5 * time.Second

// Engine owns one Chromium process and restarts it when it dies.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	slots   chan struct{}
	done    chan struct{} // closed by Close
	wg      sync.WaitGroup

	mu      sync.Mutex
	cur     *instance     // nil before Start and while restarting
	ready   chan struct{} // closed once cur is set; replaced when the browser dies
	started bool
	closed  bool
}

// instance is one run of the Chromium process.
type instance struct {
	browser  *rod.Browser
	launcher *launcher.Launcher
	pid      int
	marker   string        // in the environment of all its processes
	helpers  []int         // its processes outside its process group
	gone     chan struct{} // closed once the process has exited and been reaped
}

// New returns an engine; Start launches the browser. reg may be nil.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) *Engine {
	if cfg.LaunchTimeout <= 0 {
		cfg.LaunchTimeout = 30 * time.Second
	}
	e := &Engine{
		cfg:   cfg,
		log:   log,
		slots: make(chan struct{}, max(cfg.MaxContexts, 1)),
		done:  make(chan struct{}),
		ready: make(chan struct{}),
	}
	e.metrics = newMetrics(reg, e.MemoryBytes)
	return e
}

// Start launches Chromium and the goroutine that restarts it when it dies.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.started || e.closed {
		e.mu.Unlock()
		return ErrAlreadyStarted
	}
	e.started = true
	e.mu.Unlock()
	if err := adoptOrphans(); err != nil {
		// Not fatal: orphans then go to PID 1, which usually reaps them.
		e.log.Warn("cannot adopt the browser's orphaned processes", "err", err)
	}

	inst, err := e.launch(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		inst.kill()
		return ErrClosed
	}
	e.setLocked(inst)
	e.wg.Add(1)
	e.mu.Unlock()
	go e.supervise(inst)
	e.log.Info("browser started", "pid", inst.pid, "max_contexts", e.cfg.MaxContexts)
	return nil
}

func (e *Engine) setLocked(inst *instance) {
	e.cur = inst
	close(e.ready)
}

// launch starts one Chromium process and connects to it.
func (e *Engine) launch(ctx context.Context) (*instance, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.LaunchTimeout)
	defer cancel()
	l := launcher.New().Context(ctx).
		Bin(e.cfg.Bin).
		Headless(e.cfg.Headless).
		Leakless(false).
		Set("disable-background-networking").
		Set("disable-component-update").
		Set("disable-sync").
		Set("disable-quic").
		Set("disable-extensions").
		Set("no-first-run").
		Set("disable-gpu").
		// rod's defaults (site-per-process, TranslateUI) plus the omnibox
		// popup WebUIs: headless Chromium opens a window per incognito
		// context, and each window preloaded them in a renderer of its own
		// (≈ 45 MiB per bot, more than the meeting page itself).
		Set("disable-features", "site-per-process", "TranslateUI", "WebUIOmniboxPopup", "WebUIOmniboxAimPopup").
		Set("mute-audio").
		Set("lang", "en-US").
		Set("accept-lang", "en-US").
		Set("use-fake-ui-for-media-stream").
		Set("use-fake-device-for-media-stream")
	if isRoot() {
		l = l.NoSandbox(true)
	}
	marker := rand.Text()
	l = l.Env(append(os.Environ(), markerEnv+"="+marker)...)
	u, err := l.Launch()
	if err != nil {
		if pid := l.PID(); pid > 0 {
			gone := make(chan struct{})
			go func() { l.Cleanup(); close(gone) }() // ends with the process, which killMarked kills
			killMarked(pid, marker, nil, gone)
			<-gone
		}
		return nil, fmt.Errorf("launch chromium %s: %w", e.cfg.Bin, err)
	}
	inst := &instance{launcher: l, pid: l.PID(), marker: marker, gone: make(chan struct{})}
	go func() {
		// Owned by the instance: it ends when the process exits, which
		// kill (called on every path that drops the instance) guarantees.
		l.Cleanup() // waits for the process to exit (reaped by os/exec) and removes its profile
		close(inst.gone)
	}()
	// Connect on a background context: rod ties the browser's event stream
	// to the context it connects with, and it must outlive this launch.
	b := rod.New().ControlURL(u)
	if err := b.Connect(); err != nil {
		inst.kill()
		return nil, fmt.Errorf("connect to chromium: %w", err)
	}
	inst.browser = b
	// Chromium starts its crash handlers before it listens for DevTools;
	// note them now, while their environment still says whose they are.
	inst.helpers = helpers(inst.pid, marker)
	return inst, nil
}

// kill ends the process group (the browser and its renderers, zygotes and
// utility processes, which would otherwise be orphaned) and waits for the
// browser process to be reaped.
func (i *instance) kill() {
	killMarked(i.pid, i.marker, i.helpers, i.gone)
	<-i.gone
}

func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the launcher starts Chromium as a process group leader
	}
}

// supervise waits for the browser to die and, unless the engine is closing,
// starts a new one. It is the only goroutine the engine owns; Close waits for it.
func (e *Engine) supervise(inst *instance) {
	defer e.wg.Done()
	for {
		select {
		case <-inst.gone:
		case <-e.done:
			return
		}
		// Forget the dead browser before cleaning up after it (kill can take
		// seconds): a bot rejoining at once must wait for the new browser,
		// not open a context on the dead one.
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			inst.kill()
			return
		}
		if e.cur == inst {
			e.cur = nil
			e.ready = make(chan struct{})
		}
		e.mu.Unlock()
		inst.kill() // renderers and zygotes left behind by the dead browser
		e.metrics.restarts.Inc()
		e.log.Warn("browser process died, restarting", "pid", inst.pid)

		next, ok := e.relaunch()
		if !ok {
			return
		}
		inst = next
	}
}

// relaunch starts a new browser, retrying with backoff until it works or the
// engine is closed. A launch in progress is not interrupted by Close (it is
// bounded by LaunchTimeout); the new browser is then killed at once.
func (e *Engine) relaunch() (*instance, bool) {
	backoff := 100 * time.Millisecond
	for {
		inst, err := e.launch(context.Background())
		if err == nil {
			e.mu.Lock()
			if e.closed {
				e.mu.Unlock()
				inst.kill()
				return nil, false
			}
			e.setLocked(inst)
			e.mu.Unlock()
			e.log.Info("browser restarted", "pid", inst.pid)
			return inst, true
		}
		e.log.Error("browser restart failed", "err", err, "retry_in", backoff)
		select {
		case <-e.done:
			return nil, false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// Open returns a new tab in its own incognito context. It blocks while
// MaxContexts tabs are open, and while the browser is being restarted.
// Errors caused by the browser dying wrap driver.ErrBrowserCrashed.
func (e *Engine) Open(ctx context.Context) (*Tab, error) {
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a free browser context: %w", ctx.Err())
	case <-e.done:
		return nil, ErrClosed
	}
	tab, err := e.open(ctx)
	if err != nil {
		<-e.slots
		return nil, err
	}
	e.metrics.contexts.Inc()
	return tab, nil
}

func (e *Engine) open(ctx context.Context) (*Tab, error) {
	inst, err := e.current(ctx)
	if err != nil {
		return nil, err
	}
	// The tab's rod objects live on tabCtx (cancelled by Tab.Close, which ends
	// rod's per-page event goroutine); ctx only bounds the opening itself.
	tabCtx, cancelTab := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancelTab)
	inc, err := inst.browser.Context(tabCtx).Incognito()
	if err != nil {
		stop()
		cancelTab()
		return nil, e.openError(ctx, inst, "create incognito context", err)
	}
	page, err := inc.Page(proto.TargetCreateTarget{})
	if !stop() || err != nil {
		// ctx ended while opening, or the page failed: dispose of the context.
		closeCtx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		_ = inc.Context(closeCtx).Close()
		cancel()
		cancelTab()
		if err == nil {
			err = ctx.Err()
		}
		return nil, e.openError(ctx, inst, "open page", err)
	}
	return &Tab{
		engine:  e,
		inc:     inc,
		page:    page,
		crashed: inst.gone,
		cancel:  cancelTab,
	}, nil
}

// current returns the running browser, waiting while it is being restarted.
func (e *Engine) current(ctx context.Context) (*instance, error) {
	for {
		e.mu.Lock()
		closed, started, inst, ready := e.closed, e.started, e.cur, e.ready
		e.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case !started:
			return nil, ErrNotStarted
		case inst != nil && !inst.dead():
			return inst, nil
		case inst != nil:
			// Died, and supervise has not replaced it yet: wait for it to.
			if !e.waitReplaced(ctx, inst) {
				return nil, fmt.Errorf("wait for the browser restart: %w", ctx.Err())
			}
			continue
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the browser restart: %w", ctx.Err())
		case <-e.done:
			return nil, ErrClosed
		}
	}
}

// waitReplaced waits until supervise has forgotten the dead inst; false when ctx ends first.
func (e *Engine) waitReplaced(ctx context.Context, inst *instance) bool {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		e.mu.Lock()
		replaced := e.cur != inst || e.closed
		e.mu.Unlock()
		if replaced {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-e.done:
			return true
		case <-t.C:
		}
	}
}

func (e *Engine) openError(ctx context.Context, inst *instance, what string, err error) error {
	select {
	case <-inst.gone:
		return fmt.Errorf("%s: %w: %w", what, driver.ErrBrowserCrashed, err)
	default:
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	return fmt.Errorf("%s: %w", what, err)
}

// PID is the running browser's process id (0 while restarting). The browser
// leads a process group holding all of its processes.
func (e *Engine) PID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		return 0
	}
	return e.cur.pid
}

// MemoryBytes is the proportional set size (PSS) of all the running
// browser's processes (its process group and its crash handlers): what the
// browser costs the machine.
func (e *Engine) MemoryBytes() (int64, error) {
	e.mu.Lock()
	inst := e.cur
	e.mu.Unlock()
	if inst == nil {
		return 0, errors.New("browser not running")
	}
	total, err := GroupPSS(inst.pid)
	if err != nil {
		return 0, err
	}
	for _, pid := range inst.helpers {
		if n, err := pss(pid); err == nil {
			total += n
		}
	}
	return total, nil
}

// Close kills the browser, waits for it and its restarter, and makes Open
// fail. Tabs still open see Crashed closed; closing them stays safe.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.done)
	inst := e.cur
	e.cur = nil
	e.mu.Unlock()

	e.wg.Wait()
	if inst != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		_ = inst.browser.Context(ctx).Close() // lets Chromium exit cleanly
		cancel()
		inst.kill()
		e.log.Info("browser stopped", "pid", inst.pid)
	}
	return nil
}

// dead reports whether the browser process has exited.
func (i *instance) dead() bool {
	select {
	case <-i.gone:
		return true
	default:
		return false
	}
}
