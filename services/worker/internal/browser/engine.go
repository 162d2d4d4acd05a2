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
//	page := tab.Page()               // *rod.Page, already bound to nothing but its own context
//	<-tab.Crashed()                  // closed if the browser process died under this tab
//	tab.Close()                      // closes the page and its context; idempotent
//	eng.Close()                      // kills Chromium, waits for it, leaves no zombies
package browser

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

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
}

// Validate names the bad field.
func (c Config) Validate() error {
	if c.Bin == "" {
		return errors.New("USHER_CHROMIUM_BIN must name the Chromium binary")
	}
	if c.MaxContexts < 1 {
		return fmt.Errorf("USHER_BROWSER_MAX_CONTEXTS must be ≥ 1, got %d", c.MaxContexts)
	}
	return nil
}

// ErrClosed is returned by Open after Close.
var ErrClosed = errors.New("browser engine closed")

// Engine owns one Chromium process.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	slots chan struct{}

	mu       sync.Mutex
	browser  *rod.Browser
	launcher *launcher.Launcher
	crashed  chan struct{} // closed when the current browser process dies
	closed   bool
}

// New returns an engine; Start launches the browser.
func New(cfg Config, log *slog.Logger, _ prometheus.Registerer) *Engine {
	return &Engine{cfg: cfg, log: log, slots: make(chan struct{}, cfg.MaxContexts)}
}

// Start launches Chromium.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.launchLocked(ctx)
}

func (e *Engine) launchLocked(ctx context.Context) error {
	l := launcher.New().Context(ctx).
		Bin(e.cfg.Bin).
		Headless(e.cfg.Headless).
		Leakless(false).
		Set("disable-background-networking").
		Set("disable-component-update").
		Set("disable-sync").
		Set("disable-quic").
		Set("no-first-run").
		Set("disable-gpu").
		Set("lang", "en-US").
		Set("use-fake-ui-for-media-stream").
		Set("use-fake-device-for-media-stream")
	if isRoot() {
		l = l.NoSandbox(true)
	}
	u, err := l.Launch()
	if err != nil {
		return fmt.Errorf("launch chromium %s: %w", e.cfg.Bin, err)
	}
	b := rod.New().ControlURL(u)
	if err := b.Connect(); err != nil {
		l.Kill()
		return fmt.Errorf("connect to chromium: %w", err)
	}
	crashed := make(chan struct{})
	e.browser, e.launcher, e.crashed = b, l, crashed
	go func() {
		l.Cleanup() // waits for the process to exit (and reaps it)
		close(crashed)
	}()
	return nil
}

// Open returns a new tab in its own incognito context. It blocks while
// MaxContexts tabs are open.
func (e *Engine) Open(ctx context.Context) (*Tab, error) {
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.slots
		return nil, ErrClosed
	}
	b, crashed := e.browser, e.crashed
	e.mu.Unlock()

	inc, err := b.Context(ctx).Incognito()
	if err != nil {
		<-e.slots
		return nil, errors.Join(driver.ErrBrowserCrashed, fmt.Errorf("open incognito context: %w", err))
	}
	page, err := inc.Page(proto.TargetCreateTarget{URL: "about:blank"})
	if err != nil {
		_ = inc.Close()
		<-e.slots
		return nil, errors.Join(driver.ErrBrowserCrashed, fmt.Errorf("open page: %w", err))
	}
	return &Tab{engine: e, ctx: inc, page: page, crashed: crashed}, nil
}

// Close kills the browser and waits for it to exit.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if e.browser != nil {
		_ = e.browser.Close()
	}
	if e.launcher != nil {
		e.launcher.Kill()
		<-e.crashed
	}
	return nil
}

// Tab is one bot's page in its own incognito context.
type Tab struct {
	engine  *Engine
	ctx     *rod.Browser
	page    *rod.Page
	crashed <-chan struct{}
	once    sync.Once
}

// Page is the tab's page.
func (t *Tab) Page() *rod.Page { return t.page }

// Crashed is closed if the browser process died while the tab was open.
func (t *Tab) Crashed() <-chan struct{} { return t.crashed }

// Close closes the page and its incognito context and frees the slot. Idempotent.
func (t *Tab) Close() error {
	var err error
	t.once.Do(func() {
		err = t.ctx.Close()
		<-t.engine.slots
	})
	return err
}
