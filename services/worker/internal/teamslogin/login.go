// Package teamslogin signs a Microsoft 365 bot account in with go-rod, the
// way a person would: email → Next → password → Sign in → "Stay signed
// in?" → Yes, then collects the browser context's cookies (the session).
// Anything beyond that flow fails clearly, classified (wrong password or
// unknown user, MFA, locked, captcha, timeout), with a screenshot of the
// page — password field blanked — stored in the SCREENSHOTS object store for
// the project to download.
//
// Selectors are the ones in docs/simulator-pages.md (from PLATFORMS.md), so
// the same code drives the simulator and login.microsoftonline.com.
package teamslogin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"time"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/proto"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/shared/metrics"
	"github.com/usherhq/usher/shared/secret"
)

// Config of the login.
type Config struct {
	// URL is the Microsoft sign-in entry for real meetings (simulated
	// meetings use the simulator's own login page). Default https://www.office.com/login.
	URL string `env:"USHER_TEAMS_LOGIN_URL" default:"https://www.office.com/login"`
	// Timeout bounds a whole login. Default 60s.
	Timeout time.Duration `env:"USHER_TEAMS_LOGIN_TIMEOUT" default:"60s"`
	// StepTimeout bounds each page step (email, password, "Stay signed in?"). Default 20s.
	StepTimeout time.Duration `env:"USHER_TEAMS_LOGIN_STEP_TIMEOUT" default:"20s"`
	// ScreenshotMaxBytes bounds one failed-login screenshot; a larger one is
	// retaken at lower quality, then dropped. Default 1048576.
	ScreenshotMaxBytes int `env:"USHER_TEAMS_LOGIN_SCREENSHOT_MAX_BYTES" default:"1048576"`
}

// Validate names the bad variable.
func (c Config) Validate() error {
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("USHER_TEAMS_LOGIN_URL must be an http(s) URL, got %q", c.URL)
	}
	switch {
	case c.StepTimeout < time.Second:
		return fmt.Errorf("USHER_TEAMS_LOGIN_STEP_TIMEOUT must be ≥ 1s, got %s", c.StepTimeout)
	case c.Timeout < c.StepTimeout:
		return fmt.Errorf("USHER_TEAMS_LOGIN_TIMEOUT must be ≥ USHER_TEAMS_LOGIN_STEP_TIMEOUT (%s), got %s", c.StepTimeout, c.Timeout)
	case c.ScreenshotMaxBytes < 16<<10:
		return fmt.Errorf("USHER_TEAMS_LOGIN_SCREENSHOT_MAX_BYTES must be ≥ 16384, got %d", c.ScreenshotMaxBytes)
	}
	return nil
}

// EntryURL is where a login starts for a meeting: the simulator's login
// page (returning to the simulator) for simulated meetings, cfg.URL otherwise.
func (c Config) EntryURL(meetingURL string, simulated bool) string {
	if simulated {
		if u, err := url.Parse(meetingURL); err == nil && u.Host != "" {
			origin := u.Scheme + "://" + u.Host
			return origin + "/microsoft/login?ru=" + url.QueryEscape(origin+"/")
		}
	}
	return c.URL
}

// Credentials of the account to sign in.
type Credentials struct {
	// Project and AccountID name the account in logs (never the email).
	Project   string
	AccountID string
	Email     string
	Password  secret.String
	// ScreenshotName is the object name a failed login's screenshot is
	// stored under (empty: no screenshot).
	ScreenshotName string
}

// tabs opens browser tabs (browser.Engine).
type tabs interface {
	Open(ctx context.Context) (*browser.Tab, error)
}

// objects stores screenshots (the SCREENSHOTS object store).
type objects interface {
	Put(ctx context.Context, meta jetstream.ObjectMeta, r io.Reader) (*jetstream.ObjectInfo, error)
}

// Login signs accounts in.
type Login struct {
	cfg   Config
	tabs  tabs
	shots objects
	log   *slog.Logger
	m     *loginMetrics
}

type loginMetrics struct {
	logins   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// outcomes are the closed label set of the login metrics.
func outcomes() []string {
	return []string{"ok", string(KindInvalidCredentials), string(KindMFARequired), string(KindLocked),
		string(KindCaptcha), string(KindTimeout), string(KindBrowser), "canceled"}
}

// New returns a Login opening tabs from tabs and storing screenshots in shots.
func New(cfg Config, tabs tabs, shots objects, log *slog.Logger, reg prometheus.Registerer) *Login {
	f := promauto.With(reg)
	m := &loginMetrics{
		logins: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_teams_logins_total",
			Help: "Microsoft logins performed by this worker, by outcome.",
		}, []string{"outcome"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usher_worker_teams_login_duration_seconds",
			Help:    "Duration of Microsoft logins, by outcome.",
			Buckets: metrics.SlowBuckets,
		}, []string{"outcome"}),
	}
	for _, o := range outcomes() {
		m.logins.WithLabelValues(o)
	}
	return &Login{cfg: cfg, tabs: tabs, shots: shots, log: log, m: m}
}

// Login signs c in starting at entry (see Config.EntryURL) and returns the
// browser context's cookies. Failures are *Error values; a done ctx returns
// ctx's error.
func (l *Login) Login(ctx context.Context, entry string, c Credentials) (cookies []driver.Cookie, err error) {
	start := time.Now()
	defer func() {
		outcome := "ok"
		if e, ok := errors.AsType[*Error](err); ok {
			outcome = string(e.Kind)
		} else if err != nil {
			outcome = "canceled"
		}
		l.m.logins.WithLabelValues(outcome).Inc()
		l.m.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
		l.log.Info("microsoft login", "project", c.Project, "account_id", c.AccountID, "outcome", outcome,
			"duration_ms", time.Since(start).Milliseconds())
	}()

	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	tab, err := l.tabs.Open(ctx)
	if err != nil {
		if parent.Err() != nil {
			return nil, parent.Err()
		}
		return nil, &Error{Kind: KindBrowser, Step: "open", Err: err}
	}
	defer tab.Close()

	r := &run{l: l, tab: tab, page: tab.Page(), ctx: ctx, creds: c}
	cookies, err = r.signIn(entry)
	if err == nil {
		return cookies, nil
	}
	if parent.Err() != nil {
		return nil, parent.Err()
	}
	var le *Error
	if !errors.As(err, &le) {
		le = &Error{Kind: KindBrowser, Step: r.step, Err: err}
	}
	if le.Kind != KindBrowser {
		le.Screenshot = r.screenshot(le)
	}
	return nil, le
}

// Page states the detector reports.
const (
	stateEmail         = "email"
	statePassword      = "password"
	stateKMSI          = "kmsi"
	stateUnknownUser   = "unknown_user"
	stateWrongPassword = "wrong_password"
	stateLocked        = "locked"
	stateMFA           = "mfa"
	stateCaptcha       = "captcha"
	stateOther         = "other"
	stateSignedIn      = "signed_in"
)

// detectJS names the login page's state in one evaluation, so a page that
// is half-way through a navigation is simply polled again. Order matters:
// an error shown on a page wins over the page's input.
const detectJS = `() => {
  const q = s => document.querySelector(s);
  const shown = el => !!el && !el.classList.contains('moveOffScreen') && el.getClientRects().length > 0;
  const text = (document.body && document.body.innerText) || '';
  if (q('#hipChallenge')) return 'captcha';
  if (q('#idDiv_SAOTCAS_Description') || q('#idRichContext_DisplaySign') || shown(q('input[name="otc"]'))) return 'mfa';
  if (/has been locked/i.test(text)) return 'locked';
  if (shown(q('#passwordError'))) return 'wrong_password';
  if (shown(q('#usernameError'))) return 'unknown_user';
  if (q('#KmsiDescription')) return 'kmsi';
  if (shown(q('input[name="passwd"]'))) return 'password';
  if (shown(q('input[name="loginfmt"]'))) return 'email';
  return 'other';
}`

// blankPasswordJS empties every password field before a screenshot.
const blankPasswordJS = `() => {
  for (const el of document.querySelectorAll('input[type="password"], input[name="passwd"]')) {
    el.value = ''; el.removeAttribute('value');
  }
}`

// run is one login in one tab.
type run struct {
	l     *Login
	tab   *browser.Tab
	page  *rod.Page
	ctx   context.Context
	creds Credentials
	step  string
}

func (r *run) signIn(entry string) ([]driver.Cookie, error) {
	r.step = "email"
	if err := r.page.Context(r.ctx).Navigate(entry); err != nil {
		return nil, &Error{Kind: KindTimeout, Step: r.step, Err: fmt.Errorf("open the sign-in page: %w", err)}
	}
	if _, err := r.await(stateEmail); err != nil {
		return nil, err
	}
	if err := r.fill(`input[name="loginfmt"]`, r.creds.Email); err != nil {
		return nil, err
	}

	r.step = "password"
	if _, err := r.await(statePassword, stateEmail); err != nil {
		return nil, err
	}
	if err := r.fill(`input[name="passwd"]`, r.creds.Password.Reveal()); err != nil {
		return nil, err
	}

	r.step = "stay_signed_in"
	st, err := r.await(stateKMSI, statePassword)
	if err != nil {
		return nil, err
	}
	if st == stateKMSI {
		if err := r.click(`#idSIButton9`); err != nil {
			return nil, err
		}
		if _, err := r.await(stateSignedIn, stateKMSI); err != nil {
			return nil, err
		}
	}
	return r.cookies()
}

// await polls the page until it reaches want (or is signed in), ignoring the
// states in stay (the page we just acted on, still shown while the next one
// loads). A failure state ends the wait with its *Error.
func (r *run) await(want string, stay ...string) (string, error) {
	deadline := time.Now().Add(r.l.cfg.StepTimeout)
	last := "none"
	for {
		st, err := r.detect()
		if err == nil {
			last = st
			if kind, failed := failureKind(st); failed {
				return st, &Error{Kind: kind, Step: r.step}
			}
			if st == want || st == stateSignedIn {
				return st, nil
			}
			if st != stateOther && !slices.Contains(stay, st) {
				return st, &Error{Kind: KindTimeout, Step: r.step, Err: fmt.Errorf("unexpected page %q", st)}
			}
		}
		if time.Now().After(deadline) {
			return last, &Error{Kind: KindTimeout, Step: r.step, Err: fmt.Errorf("page stayed at %q for %s", last, r.l.cfg.StepTimeout)}
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-r.tab.Crashed():
			t.Stop()
			return last, &Error{Kind: KindBrowser, Step: r.step, Err: driver.ErrBrowserCrashed}
		case <-r.ctx.Done():
			t.Stop()
			return last, &Error{Kind: KindTimeout, Step: r.step, Err: r.ctx.Err()}
		}
	}
}

func failureKind(state string) (Kind, bool) {
	switch state {
	case stateUnknownUser, stateWrongPassword:
		return KindInvalidCredentials, true
	case stateLocked:
		return KindLocked, true
	case stateMFA:
		return KindMFARequired, true
	case stateCaptcha:
		return KindCaptcha, true
	}
	return "", false
}

// detect evaluates detectJS; a page without login markers is signed in
// when the context holds a Microsoft sign-in cookie.
func (r *run) detect() (string, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
	defer cancel()
	res, err := r.page.Context(ctx).Eval(detectJS)
	if err != nil {
		return "", err
	}
	st := res.Value.Str()
	if st != stateOther {
		return st, nil
	}
	cookies, err := r.tab.Cookies(ctx)
	if err != nil {
		return "", err
	}
	for _, c := range cookies {
		if isAuthCookie(c.Name) && !c.Value.Empty() {
			return stateSignedIn, nil
		}
	}
	return stateOther, nil
}

// authCookies carry a Microsoft sign-in (PLATFORMS.md).
func isAuthCookie(name string) bool {
	return name == "ESTSAUTH" || name == "ESTSAUTHPERSISTENT" || name == "ESTSAUTHLIGHT"
}

// fill types into a field and presses the page's primary button.
func (r *run) fill(selector, value string) error {
	ctx, cancel := context.WithTimeout(r.ctx, r.l.cfg.StepTimeout)
	defer cancel()
	el, err := r.page.Context(ctx).Element(selector)
	if err != nil {
		return &Error{Kind: KindTimeout, Step: r.step, Err: fmt.Errorf("find the %s field: %w", r.step, err)}
	}
	if err := el.SelectAllText(); err != nil {
		return &Error{Kind: KindTimeout, Step: r.step, Err: fmt.Errorf("focus the %s field: %w", r.step, err)}
	}
	// The error never quotes value (it may be the password).
	if err := el.Input(value); err != nil {
		return &Error{Kind: KindTimeout, Step: r.step, Err: fmt.Errorf("type into the %s field: %w", r.step, err)}
	}
	return r.click(`#idSIButton9`)
}

func (r *run) click(selector string) error {
	ctx, cancel := context.WithTimeout(r.ctx, r.l.cfg.StepTimeout)
	defer cancel()
	el, err := r.page.Context(ctx).Element(selector)
	if err != nil {
		return &Error{Kind: KindTimeout, Step: r.step, Err: fmt.Errorf("find %s: %w", selector, err)}
	}
	if err := el.Click(proto.InputMouseButtonLeft, 1); err != nil {
		return &Error{Kind: KindTimeout, Step: r.step, Err: fmt.Errorf("click %s: %w", selector, err)}
	}
	return nil
}

// cookies returns the context's whole cookie jar: the session.
func (r *run) cookies() ([]driver.Cookie, error) {
	cookies, err := r.tab.Cookies(r.ctx)
	if err != nil {
		return nil, &Error{Kind: KindBrowser, Step: r.step, Err: err}
	}
	return cookies, nil
}

// screenshot stores the failed page with its password fields blanked and
// returns the object name, or "" when none was stored. It has its own
// deadline: the login's may be spent (a timeout is a failure too).
func (r *run) screenshot(e *Error) string {
	name := r.creds.ScreenshotName
	if name == "" || r.l.shots == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	img, err := capture(r.page.Context(ctx), r.l.cfg.ScreenshotMaxBytes)
	if err != nil {
		r.l.log.Warn("no failed-login screenshot", "account_id", r.creds.AccountID, "err", err)
		return ""
	}
	_, err = r.l.shots.Put(ctx, jetstream.ObjectMeta{
		Name:        name,
		Description: "failed Microsoft login (" + string(e.Kind) + " at " + e.Step + ")",
		Metadata: map[string]string{
			"content_type": "image/jpeg",
			"sub_code":     e.SubCode(),
			"step":         e.Step,
			"taken_at":     time.Now().UTC().Format(time.RFC3339),
		},
	}, bytes.NewReader(img))
	if err != nil {
		r.l.log.Warn("store failed-login screenshot", "account_id", r.creds.AccountID, "err", err)
		return ""
	}
	return name
}

// errScreenshotTooLarge: even at low quality the page is over the limit.
var errScreenshotTooLarge = errors.New("screenshot larger than the limit")

// capture blanks the page's password fields, then screenshots it as JPEG
// within maxBytes. If the fields cannot be blanked there is no screenshot:
// never one with a typed password in it.
func capture(page *rod.Page, maxBytes int) ([]byte, error) {
	if _, err := page.Eval(blankPasswordJS); err != nil {
		return nil, fmt.Errorf("blank the password field: %w", err)
	}
	for _, quality := range []int{70, 30} {
		q := quality
		img, err := page.Screenshot(false, &proto.PageCaptureScreenshot{Format: proto.PageCaptureScreenshotFormatJpeg, Quality: &q})
		if err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
		if len(img) <= maxBytes {
			return img, nil
		}
	}
	return nil, fmt.Errorf("%w of %d bytes", errScreenshotTooLarge, maxBytes)
}

// EntryURL is where a login for a meeting starts (see Config.EntryURL).
func (l *Login) EntryURL(meetingURL string, simulated bool) string {
	return l.cfg.EntryURL(meetingURL, simulated)
}
