// Package webjoin is what the browser drivers for Zoom web, Teams and Meet
// share: hooks that recognise a page's state (a selector, a text, a host),
// a Page that polls for them with bounded waits, the way from a pre-join
// page into the meeting (Entry: devices off, join, admission), the join → in
// meeting → leave skeleton of a Driver, the Meeting it returns, and their
// metrics.
//
// A platform package (drivers/zoom, drivers/teams, drivers/meet) supplies
// only its hooks and its steps, as a small explicit state machine:
// loading → prejoin → waiting_room → in_meeting, or one of the failure
// states (not_found, login_required, denied, ended, captcha) that map to a
// public sub-code.
package webjoin

import (
	"fmt"
	"time"
)

// Config of the browser drivers.
type Config struct {
	// StepTimeout bounds each page step (pre-join page, join button, admission
	// outside a waiting room, leaving); a step that stalls fails with
	// ui_element_not_found naming it. Default 30s.
	StepTimeout time.Duration `env:"USHER_DRIVER_STEP_TIMEOUT" default:"30s"`
	// PollInterval is how often a page is checked for its hooks. Default 250ms.
	PollInterval time.Duration `env:"USHER_DRIVER_POLL_INTERVAL" default:"250ms"`
	// LeaveTimeout bounds Meeting.Leave. Default 20s.
	LeaveTimeout time.Duration `env:"USHER_DRIVER_LEAVE_TIMEOUT" default:"20s"`
}

// Validate names the bad field.
func (c Config) Validate() error {
	if c.StepTimeout <= 0 {
		return fmt.Errorf("USHER_DRIVER_STEP_TIMEOUT must be > 0, got %s", c.StepTimeout)
	}
	if c.PollInterval <= 0 || c.PollInterval > c.StepTimeout {
		return fmt.Errorf("USHER_DRIVER_POLL_INTERVAL must be > 0 and at most USHER_DRIVER_STEP_TIMEOUT (%s), got %s", c.StepTimeout, c.PollInterval)
	}
	if c.LeaveTimeout <= 0 {
		return fmt.Errorf("USHER_DRIVER_LEAVE_TIMEOUT must be > 0, got %s", c.LeaveTimeout)
	}
	return nil
}

// withDefaults fills zero fields, so a zero Config works in tests.
func (c Config) withDefaults() Config {
	if c.StepTimeout <= 0 {
		c.StepTimeout = 30 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 250 * time.Millisecond
	}
	if c.LeaveTimeout <= 0 {
		c.LeaveTimeout = 20 * time.Second
	}
	return c
}
