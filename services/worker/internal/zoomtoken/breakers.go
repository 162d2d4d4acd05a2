package zoomtoken

import (
	"container/list"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Verdicts reported to a breaker after a call: only transient failures
// count against the host; a call the caller abandoned is not counted at all.
// Anything else (a 4xx, an invalid answer, a refused address) shows the
// endpoint is up and counts as a success.
var (
	errBreakerFailure = errors.New("callback failed transiently")
	errBreakerIgnore  = errors.New("callback abandoned by the caller")
)

// breakers holds one circuit breaker per callback host, least recently used
// evicted past max hosts.
type breakers struct {
	failures int
	openFor  time.Duration
	// probeWait is how long a caller waits while a half-open breaker's probe
	// is in flight: one call's timeout, by which the probe has its answer.
	probeWait time.Duration
	max       int
	log       *slog.Logger
	metrics   *metrics

	mu     sync.Mutex
	byHost map[string]*list.Element // of *hostBreaker
	lru    *list.List
}

type hostBreaker struct {
	host string
	cb   *gobreaker.TwoStepCircuitBreaker[struct{}]
	// openedAt is when the breaker last opened (unix nanoseconds), to tell
	// callers how long until it half-opens: gobreaker does not say.
	openedAt atomic.Int64
}

// newBreakers returns the breakers; set metrics before the first get.
func newBreakers(cfg Config, log *slog.Logger) *breakers {
	return &breakers{
		failures:  cfg.BreakerFailures,
		openFor:   cfg.BreakerOpenFor,
		probeWait: cfg.Timeout,
		max:       cfg.BreakerHosts,
		log:       log,
		byHost:    map[string]*list.Element{},
		lru:       list.New(),
	}
}

// get returns the host's breaker, creating it closed.
func (b *breakers) get(host string) *hostBreaker {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.byHost[host]; ok {
		b.lru.MoveToFront(e)
		hb, _ := e.Value.(*hostBreaker)
		return hb
	}
	hb := &hostBreaker{host: host}
	failures := uint32(b.failures) // Validate keeps it in 1..1000.
	hb.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        host,
		MaxRequests: 1,
		Timeout:     b.openFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		IsExcluded:  func(err error) bool { return errors.Is(err, errBreakerIgnore) },
		// Runs under the breaker's lock: it must not call back into cb.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				hb.openedAt.Store(time.Now().UnixNano())
			}
			b.metrics.breakerChange(to)
			b.log.Warn("zoom tokens breaker state changed", "host", host, "from", stateLabel(from), "to", stateLabel(to))
		},
	})
	b.byHost[host] = b.lru.PushFront(hb)
	for b.lru.Len() > b.max {
		oldest := b.lru.Back()
		old, _ := b.lru.Remove(oldest).(*hostBreaker)
		delete(b.byHost, old.host)
	}
	return hb
}

// open counts the breakers that are open now (for the gauge).
func (b *breakers) open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for e := b.lru.Front(); e != nil; e = e.Next() {
		if hb, _ := e.Value.(*hostBreaker); hb.cb.State() == gobreaker.StateOpen {
			n++
		}
	}
	return n
}

// allow asks the breaker for one call. When refused it says how long to wait
// and why (ReasonBreakerOpen or ReasonBreakerProbing).
func (b *breakers) allow(hb *hostBreaker) (done func(error), wait time.Duration, reason string) {
	done, err := hb.cb.Allow()
	if err == nil {
		return done, 0, ""
	}
	if errors.Is(err, gobreaker.ErrTooManyRequests) {
		return nil, jitter(b.probeWait, 0.2), ReasonBreakerProbing
	}
	halfOpen := time.Unix(0, hb.openedAt.Load()).Add(b.openFor)
	wait = max(time.Until(halfOpen), 0)
	// Spread the callers that wake up together: only one gets the probe.
	return nil, wait + rand.N(min(time.Second, b.openFor/10)+1), ReasonBreakerOpen
}

func stateLabel(s gobreaker.State) string {
	switch s {
	case gobreaker.StateClosed:
		return "closed"
	case gobreaker.StateHalfOpen:
		return "half_open"
	default:
		return "open"
	}
}

// jitter returns d plus up to frac·d.
func jitter(d time.Duration, frac float64) time.Duration {
	spread := time.Duration(float64(d) * frac)
	if spread <= 0 {
		return d
	}
	return d + rand.N(spread+1)
}
