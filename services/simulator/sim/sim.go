// Package sim is Usher's offline stand-in for Zoom, Microsoft login,
// Microsoft Teams and Google Meet: real pages a browser drives (reproducing
// the hooks of docs/simulator-pages.md), the Zoom REST endpoint that mints
// ZAKs, and an admin API that creates meetings, admits, denies, removes and
// ends, and reports who is in each meeting and as which identity.
//
// A Simulator is an http.Handler, so tests run it in-process:
//
//	s := sim.New(sim.Config{})
//	srv := httptest.NewServer(s)
//	s.SetPublicURL(srv.URL)
//	m, err := s.CreateMeeting(sim.MeetingSpec{Platform: sim.Zoom, WaitingRoom: true})
//
// State lives in memory behind one mutex. Time-driven changes (auto-admit,
// Meet's "no answer", participants whose page went away) are applied lazily
// whenever a meeting is read, so the simulator runs no goroutines of its own.
package sim

import (
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config of the simulator. The zero value is usable: zero durations take their defaults.
type Config struct {
	// PublicURL is the base URL B used in meeting links and redirects, such as
	// http://127.0.0.1:8090 (no path). Empty: taken from each request's Host
	// for the admin API; Go accessors then need SetPublicURL.
	PublicURL string `env:"USHER_SIMULATOR_PUBLIC_URL"`
	// ZAKTTL is how long a minted Zoom ZAK stays valid. Default 5m.
	ZAKTTL time.Duration `env:"USHER_SIMULATOR_ZAK_TTL" default:"5m"`
	// SessionTTL is how long a Microsoft sign-in session (ESTSAUTH cookies) stays valid. Default 24h.
	SessionTTL time.Duration `env:"USHER_SIMULATOR_SESSION_TTL" default:"24h"`
	// PresenceTimeout: a browser participant whose page has not polled for this
	// long has left (closed tab, crashed browser). Default 30s.
	PresenceTimeout time.Duration `env:"USHER_SIMULATOR_PRESENCE_TIMEOUT" default:"30s"`
}

// Defaults for zero Config durations.
const (
	DefaultZAKTTL          = 5 * time.Minute
	DefaultSessionTTL      = 24 * time.Hour
	DefaultPresenceTimeout = 30 * time.Second
)

// Validate names the bad field.
func (c Config) Validate() error {
	if c.PublicURL != "" {
		if err := checkPublicURL(c.PublicURL); err != nil {
			return fmt.Errorf("USHER_SIMULATOR_PUBLIC_URL %w", err)
		}
	}
	if c.ZAKTTL < 0 {
		return fmt.Errorf("USHER_SIMULATOR_ZAK_TTL must be > 0, got %s", c.ZAKTTL)
	}
	if c.SessionTTL < 0 {
		return fmt.Errorf("USHER_SIMULATOR_SESSION_TTL must be > 0, got %s", c.SessionTTL)
	}
	if c.PresenceTimeout < 0 {
		return fmt.Errorf("USHER_SIMULATOR_PRESENCE_TIMEOUT must be > 0, got %s", c.PresenceTimeout)
	}
	return nil
}

func checkPublicURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an http(s) URL such as http://127.0.0.1:8090, got %q", raw)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("must have no path, query or fragment, got %q", raw)
	}
	return nil
}

// Option configures a Simulator beyond its Config.
type Option func(*Simulator)

// WithLogger sets the logger (default: discard).
func WithLogger(log *slog.Logger) Option { return func(s *Simulator) { s.log = log } }

// WithRegistry registers the simulator's metrics on reg (default: a private, unexposed registry).
func WithRegistry(reg prometheus.Registerer) Option { return func(s *Simulator) { s.reg = reg } }

// WithClock replaces time.Now, for tests of expiry and timers.
func WithClock(now func() time.Time) Option { return func(s *Simulator) { s.now = now } }

// Simulator is the whole simulated world: meetings, Zoom users and tokens,
// Microsoft accounts and sessions. It is an http.Handler.
type Simulator struct {
	cfg      Config
	log      *slog.Logger
	reg      prometheus.Registerer
	now      func() time.Time
	metrics  *metrics
	mux      *http.ServeMux
	pages    *template.Template
	pagesErr error

	publicURL atomic.Pointer[string] // read while mu is held: not guarded by it

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every state change
	meetings  map[string]*meeting
	teamsNums map[string]string // Teams short-link number → meeting id
	byToken   map[string]*participant
	zoomUsers map[string]*zoomUser   // by id
	zoomToks  map[string]*zoomToken  // by token
	accounts  map[string]*msAccount  // by lower-case email
	sessions  map[string]*msSession  // by cookie value
	flows     map[string]*signInFlow // by flowToken
	stats     Stats
}

// New returns a simulator. Zero Config durations take their defaults; call
// Config.Validate first to refuse bad values.
func New(cfg Config, opts ...Option) *Simulator {
	if cfg.ZAKTTL <= 0 {
		cfg.ZAKTTL = DefaultZAKTTL
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.PresenceTimeout <= 0 {
		cfg.PresenceTimeout = DefaultPresenceTimeout
	}
	s := &Simulator{
		cfg:     cfg,
		log:     slog.New(slog.DiscardHandler),
		now:     time.Now,
		changed: make(chan struct{}),
	}
	base := strings.TrimSuffix(cfg.PublicURL, "/")
	s.publicURL.Store(&base)
	for _, o := range opts {
		o(s)
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	s.metrics = newMetrics(s.reg)
	s.pages, s.pagesErr = parsePages()
	s.resetLocked()
	s.mux = s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// ErrNoPublicURL is returned by Go accessors that build links when neither
// Config.PublicURL nor SetPublicURL gave the simulator its base URL.
var ErrNoPublicURL = errors.New("sim: public URL unknown: set Config.PublicURL or call SetPublicURL")

// SetPublicURL sets the base URL B used in links (for httptest servers, whose
// URL is known only after start). It fails on a URL with a path.
func (s *Simulator) SetPublicURL(u string) error {
	if err := checkPublicURL(u); err != nil {
		return fmt.Errorf("public URL %w", err)
	}
	base := strings.TrimSuffix(u, "/")
	s.publicURL.Store(&base)
	return nil
}

// PublicURL returns the configured base URL, or "" when unknown.
func (s *Simulator) PublicURL() string { return *s.publicURL.Load() }

// baseURL is the public URL, or the request's own origin when none is set.
func (s *Simulator) baseURL(r *http.Request) string {
	if b := s.PublicURL(); b != "" {
		return b
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// Reset forgets every meeting, user, token, account and session and zeroes
// the stats (for test isolation when one simulator is shared).
func (s *Simulator) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
	s.notifyLocked()
	s.log.Info("simulator reset")
}

func (s *Simulator) resetLocked() {
	s.meetings = map[string]*meeting{}
	s.teamsNums = map[string]string{}
	s.byToken = map[string]*participant{}
	s.zoomUsers = map[string]*zoomUser{}
	s.zoomToks = map[string]*zoomToken{}
	s.accounts = map[string]*msAccount{}
	s.sessions = map[string]*msSession{}
	s.flows = map[string]*signInFlow{}
	s.stats = Stats{}
}

// notifyLocked wakes everyone waiting for a state change.
func (s *Simulator) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Stats are counters tests assert on. Reset zeroes them.
type Stats struct {
	// MicrosoftLogins counts successful password sign-ins (a session was issued).
	MicrosoftLogins int `json:"microsoft_logins"`
	// MicrosoftLoginFailures counts sign-ins refused: unknown user, wrong
	// password, locked, MFA or captcha required.
	MicrosoftLoginFailures int `json:"microsoft_login_failures"`
	// MicrosoftSessions is the number of currently valid sessions.
	MicrosoftSessions int `json:"microsoft_sessions"`
	// ZAKsMinted counts tokens minted by the Zoom token endpoint.
	ZAKsMinted int `json:"zaks_minted"`
	// ZAKRejections counts invalid, expired or unknown tokens presented to the web client.
	ZAKRejections int `json:"zak_rejections"`
	// Meetings is the number of meetings (open and ended).
	Meetings int `json:"meetings"`
	// Joins counts join clicks on the meeting pages (accepted or not).
	Joins int `json:"joins"`
}

// Stats returns the current counters.
func (s *Simulator) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Meetings = len(s.meetings)
	now := s.now()
	for _, ss := range s.sessions {
		if now.Before(ss.expires) {
			st.MicrosoftSessions++
		}
	}
	return st
}
