package webjoin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/services/worker/internal/driver"
)

// Opener gives a fresh incognito tab; *browser.Engine is one.
type Opener interface {
	Open(ctx context.Context) (*browser.Tab, error)
}

// Platform is what a platform package supplies: its name (a metric label),
// its join steps, the hooks Wait watches in the meeting, and its leave steps.
type Platform struct {
	// Name is zoom, teams or meet.
	Name string
	// Join drives the page from a blank tab to the meeting. It returns nil
	// once in the meeting; a *driver.JoinError for failures the page announced
	// or steps that stalled; errors wrapping driver.ErrBrowserCrashed or the
	// context's error otherwise.
	Join func(ctx context.Context, p *Page, req driver.JoinRequest, w driver.Watcher) error
	// InMeeting are the hooks Meeting.Wait and Leave look for: StateEnded,
	// StateRemoved, StateLeft, StateAlone, StateInMeeting.
	InMeeting []Hook
	// Leave takes the bot out of the meeting the way a person would.
	Leave func(ctx context.Context, p *Page) error
}

// Driver joins meetings of one platform in browser tabs. It implements driver.Driver.
type Driver struct {
	opener   Opener
	cfg      Config
	metrics  *Metrics
	log      *slog.Logger
	platform *Platform
}

var _ driver.Driver = (*Driver)(nil)

// NewDriver returns a driver for platform. metrics is shared by all platforms.
func NewDriver(opener Opener, cfg Config, m *Metrics, log *slog.Logger, platform Platform) *Driver {
	return &Driver{opener: opener, cfg: cfg.withDefaults(), metrics: m, log: log, platform: &platform}
}

// Join opens a tab and runs the platform's join steps. The tab is closed on
// every path that does not return a Meeting.
func (d *Driver) Join(ctx context.Context, req driver.JoinRequest, w driver.Watcher) (driver.Meeting, error) {
	start := time.Now()
	log := d.log.With("bot_id", req.BotID, "project", req.Project, "platform", d.platform.Name)
	mt, err := d.join(ctx, req, w, log)
	outcome := outcomeOf(err)
	d.metrics.joinDuration.WithLabelValues(d.platform.Name, outcome).Observe(time.Since(start).Seconds())
	if err != nil {
		log.Info("browser join failed", "outcome", outcome, "err", err)
		return nil, err
	}
	log.Info("browser joined the meeting", "duration", time.Since(start).Round(time.Millisecond))
	return mt, nil
}

func (d *Driver) join(ctx context.Context, req driver.JoinRequest, w driver.Watcher, log *slog.Logger) (*Meeting, error) {
	tab, err := d.opener.Open(ctx)
	if err != nil {
		return nil, err
	}
	page := NewPage(tab, d.cfg, log)
	if err := d.platform.Join(ctx, page, req, w); err != nil {
		_ = tab.Close()
		if tab.IsCrashed() && !errors.Is(err, driver.ErrBrowserCrashed) {
			// Whatever the step saw (a stalled page), it saw it because the
			// browser died: report the crash, not the step's sub-code.
			return nil, fmt.Errorf("join: %w (%v)", driver.ErrBrowserCrashed, err)
		}
		return nil, err
	}
	d.metrics.inMeeting.WithLabelValues(d.platform.Name).Inc()
	return &Meeting{page: page, platform: d.platform, alone: req.AloneTimeout, metrics: d.metrics}, nil
}

func outcomeOf(err error) string {
	var je *driver.JoinError
	switch {
	case err == nil:
		return outcomeJoined
	case errors.Is(err, driver.ErrBrowserCrashed):
		return outcomeCrashed
	case errors.As(err, &je) && je.SubCode != "":
		return je.SubCode
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return outcomeCanceled
	}
	return outcomeError
}
