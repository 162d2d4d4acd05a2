package webjoin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usherhq/usher/services/worker/internal/driver"
)

// ErrPageLost is returned by Wait when the meeting page stopped showing the
// meeting (and no end) for longer than the step timeout.
var ErrPageLost = driver.ErrPageLost

// Meeting is a bot in a meeting through a browser tab. It implements driver.Meeting.
type Meeting struct {
	page     *Page
	platform *Platform
	alone    time.Duration
	metrics  *Metrics

	leaving   atomic.Bool
	exitOnce  sync.Once
	closeOnce sync.Once
}

var _ driver.Meeting = (*Meeting)(nil)

// exit counts why the bot left the meeting, once.
func (m *Meeting) exit(reason string) {
	m.exitOnce.Do(func() {
		m.metrics.leaves.WithLabelValues(m.platform.Name, reason).Inc()
	})
}

// Wait blocks until the meeting is over for the bot: ended by the host,
// removed, or alone for the request's AloneTimeout. A browser crash returns
// an error wrapping driver.ErrBrowserCrashed. Once Leave has started, the
// page showing that the bot left does not end Wait; cancel ctx.
func (m *Meeting) Wait(ctx context.Context) (driver.End, error) {
	p := m.page
	tick := time.NewTicker(p.cfg.PollInterval)
	defer tick.Stop()
	var aloneSince, lostSince time.Time
	for {
		match, err := p.Observe(ctx, m.platform.InMeeting)
		now := time.Now()
		state := match.State
		if err != nil {
			state = StateNone
		}
		switch state {
		case StateEnded:
			m.exit(string(driver.EndMeetingEnded))
			return driver.End{Reason: driver.EndMeetingEnded, Detail: match.Detail}, nil
		case StateRemoved:
			m.exit(string(driver.EndRemoved))
			return driver.End{Reason: driver.EndRemoved, Detail: match.Detail}, nil
		case StateAlone:
			lostSince = time.Time{}
			if aloneSince.IsZero() {
				aloneSince = now
				p.log.Debug("alone in the meeting")
			}
			if m.alone > 0 && now.Sub(aloneSince) >= m.alone {
				m.exit(string(driver.EndAlone))
				return driver.End{Reason: driver.EndAlone, Detail: match.Detail}, nil
			}
		case StateInMeeting:
			aloneSince, lostSince = time.Time{}, time.Time{}
		default:
			if m.leaving.Load() {
				break
			}
			aloneSince = time.Time{}
			if lostSince.IsZero() {
				lostSince = now
			} else if now.Sub(lostSince) > p.cfg.StepTimeout {
				m.exit(reasonPageLost)
				if err != nil {
					return driver.End{}, fmt.Errorf("%w (last look: %w)", ErrPageLost, err)
				}
				return driver.End{}, ErrPageLost
			}
		}
		select {
		case <-ctx.Done():
			return driver.End{}, ctx.Err()
		case <-p.tab.Crashed():
			m.exit(reasonCrashed)
			return driver.End{}, fmt.Errorf("meeting: %w", driver.ErrBrowserCrashed)
		case <-tick.C:
		}
	}
}

// Leave clicks the platform's leave control (and its confirmation) and
// returns once the page shows the bot out, within the leave timeout. A bot
// already out (meeting ended, removed) leaves at once.
func (m *Meeting) Leave(ctx context.Context) error {
	m.leaving.Store(true)
	ctx, cancel := context.WithTimeout(ctx, m.page.cfg.LeaveTimeout)
	defer cancel()
	if m.page.tab.IsCrashed() {
		m.exit(reasonCrashed)
		return fmt.Errorf("leave: %w", driver.ErrBrowserCrashed)
	}
	if match, err := m.page.Observe(ctx, m.platform.InMeeting); err == nil {
		switch match.State {
		case StateEnded:
			m.exit(string(driver.EndMeetingEnded))
			return nil
		case StateRemoved:
			m.exit(string(driver.EndRemoved))
			return nil
		case StateLeft:
			return nil
		}
	}
	if err := m.platform.Leave(ctx, m.page); err != nil {
		if errors.Is(err, driver.ErrBrowserCrashed) {
			m.exit(reasonCrashed)
		}
		return fmt.Errorf("leave %s meeting: %w", m.platform.Name, err)
	}
	m.exit(reasonLeft)
	m.page.log.Debug("left the meeting")
	return nil
}

// Close closes the tab (and its incognito context). Idempotent.
func (m *Meeting) Close() error {
	var err error
	m.closeOnce.Do(func() {
		m.exit(reasonClosed)
		m.metrics.inMeeting.WithLabelValues(m.platform.Name).Dec()
		err = m.page.tab.Close()
	})
	return err
}

// Page is the meeting's tab, for checks beyond the driver contract.
func (m *Meeting) Page() *Page { return m.page }
