// Package ratelimit is the per-project budget on bot creation, shared by the
// HTTP API and the NATS intake. It is Attendee's ProjectPostThrottle: a
// sliding window of the timestamps of allowed requests; a request is refused
// when the window already holds the limit, and told when the oldest one
// leaves it. The budget is per ingest process (like Attendee's per-process
// cache): with N replicas a project may create up to N times the rate.
package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rate is n requests per period. The zero Rate is unlimited.
type Rate struct {
	N      int
	Period time.Duration
}

// Unlimited reports whether the rate never refuses.
func (r Rate) Unlimited() bool { return r.N <= 0 }

// String renders the rate as it is parsed.
func (r Rate) String() string {
	if r.Unlimited() {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.N, r.Period)
}

// ParseRate reads "<n>/<period>" where only the period's first letter counts
// (s, m, h, d: "3000/min", "10/second", "50000/day"), as Attendee does, or
// "off" for no limit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "off") {
		return Rate{}, nil
	}
	num, period, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(strings.TrimSpace(num))
	period = strings.TrimSpace(period)
	if !ok || err != nil || n < 1 || period == "" {
		return Rate{}, fmt.Errorf("rate %q is not <n>/<s|m|h|d> with n ≥ 1, or off", s)
	}
	var d time.Duration
	switch period[0] {
	case 's':
		d = time.Second
	case 'm':
		d = time.Minute
	case 'h':
		d = time.Hour
	case 'd':
		d = 24 * time.Hour
	default:
		return Rate{}, fmt.Errorf("rate %q: period must start with s, m, h or d", s)
	}
	return Rate{N: n, Period: d}, nil
}

// ThrottledError refuses a request; RetryAfter is when the budget has room again.
type ThrottledError struct {
	RetryAfter time.Duration
}

// Seconds is RetryAfter rounded up to whole seconds, as in Retry-After.
func (e *ThrottledError) Seconds() int {
	return int(math.Ceil(e.RetryAfter.Seconds()))
}

// Error is Attendee's 429 wording.
func (e *ThrottledError) Error() string {
	s := e.Seconds()
	unit := "seconds"
	if s == 1 {
		unit = "second"
	}
	return fmt.Sprintf("Request was throttled. Expected available in %d %s.", s, unit)
}

// Limiter holds one sliding window per project.
type Limiter struct {
	rate Rate
	now  func() time.Time

	mu        sync.Mutex
	windows   map[string]*window
	nextSweep time.Time
}

// sweepAbove is the number of windows above which idle ones are dropped, so
// that projects named only by NATS subjects cannot grow the map without bound.
const sweepAbove = 1024

// New returns a limiter; now is the clock (time.Now when nil).
func New(rate Rate, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{rate: rate, now: now, windows: map[string]*window{}}
}

// window is a ring of the timestamps of the last N allowed requests.
type window struct {
	times  []time.Time
	next   int
	newest time.Time
}

// Allow records a request of project and returns nil, or a *ThrottledError
// when the project's window is full.
func (l *Limiter) Allow(project string) error {
	if l.rate.Unlimited() {
		return nil
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.windows) > sweepAbove && !now.Before(l.nextSweep) {
		l.sweep(now)
	}
	w := l.windows[project]
	if w == nil {
		w = &window{times: make([]time.Time, 0, min(l.rate.N, 64))}
		l.windows[project] = w
	}
	if len(w.times) < l.rate.N {
		w.times = append(w.times, now)
		w.newest = now
		return nil
	}
	// The ring is full: w.next is the oldest allowed request.
	oldest := w.times[w.next]
	if free := oldest.Add(l.rate.Period); free.After(now) {
		return &ThrottledError{RetryAfter: free.Sub(now)}
	}
	w.times[w.next] = now
	w.next = (w.next + 1) % len(w.times)
	w.newest = now
	return nil
}

// sweep drops the windows whose every request has left the window.
func (l *Limiter) sweep(now time.Time) {
	for project, w := range l.windows {
		if now.Sub(w.newest) >= l.rate.Period {
			delete(l.windows, project)
		}
	}
	l.nextSweep = now.Add(l.rate.Period / 10)
}

// Projects is how many projects the limiter tracks (for tests).
func (l *Limiter) Projects() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.windows)
}
