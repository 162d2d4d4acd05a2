// Package zoomtoken obtains a signed-in Zoom bot's tokens (ZAK and friends)
// from the customer's callback_settings.zoom_tokens_url, right before each
// join attempt.
//
// The call is a signed POST (X-Usher-Signature, X-Usher-Timestamp) with a
// timeout, bounded jittered retries on timeouts, connection errors and 5xx
// only, no redirects, a 64 KiB answer cap, one circuit breaker per callback
// host, and an SSRF guard checked at dial time. Failures are *Error values
// naming the public sub-code the bot fails with. docs/zoom-tokens.md is the
// customer-facing contract.
package zoomtoken

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usherhq/usher/shared/callbacksig"
	"github.com/usherhq/usher/shared/secret"
)

// Request is one bot's need for tokens.
type Request struct {
	// URL is callback_settings.zoom_tokens_url.
	URL        string
	BotID      string
	Project    string
	MeetingURL string
	// Metadata is the bot's metadata given at creation (null in the body when empty).
	Metadata map[string]string
}

// Client calls zoom_tokens_url. It is safe for concurrent use; build one per
// worker process.
type Client struct {
	cfg       Config
	secrets   map[string][]secret.String
	http      *http.Client
	transport *http.Transport
	breakers  *breakers
	metrics   *metrics
	log       *slog.Logger
	userAgent string
	now       func() time.Time
}

// Option adjusts a Client beyond its Config (tests, build information).
type Option func(*options)

type options struct {
	rootCAs  *x509.CertPool
	resolver Resolver
	version  string
	now      func() time.Time
}

// WithRootCAs trusts these roots instead of the system's (tests with httptest TLS servers).
func WithRootCAs(pool *x509.CertPool) Option { return func(o *options) { o.rootCAs = pool } }

// WithResolver resolves callback host names with r instead of the system
// resolver. The SSRF guard still checks every address r returns.
func WithResolver(r Resolver) Option { return func(o *options) { o.resolver = r } }

// WithVersion sets the version in the User-Agent (default: the binary's module
// version, or "dev").
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithClock sets the clock used for X-Usher-Timestamp (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New builds a Client. It registers its metrics on reg.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	allow, err := parseCIDRs(cfg.AllowCIDRs)
	if err != nil {
		return nil, err
	}
	secrets, err := parseSecrets(cfg.Secrets)
	if err != nil {
		return nil, err
	}
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.version == "" {
		o.version = buildVersion()
	}

	g := newGuard(allow)
	tr := &http.Transport{
		// No proxy: through one, the guard would check the proxy's address,
		// not the callback's.
		Proxy:       nil,
		DialContext: g.dialer(&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}, o.resolver),
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    o.rootCAs,
		},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    cfg.Timeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxResponseHeaderBytes: 32 << 10,
	}
	c := &Client{
		cfg:       cfg,
		secrets:   secrets,
		transport: tr,
		http: &http.Client{
			Transport: tr,
			// Never follow: the 3xx comes back and is refused (zoom_tokens_url_forbidden).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log:       log,
		userAgent: "Usher-Callback/" + o.version + " (+https://github.com/usherhq/usher)",
		now:       o.now,
	}
	c.breakers = newBreakers(cfg, log)
	c.metrics = newMetrics(reg, c.breakers.open)
	c.breakers.metrics = c.metrics

	if len(secrets) == 0 {
		log.Warn("zoom tokens callbacks have no signing secret: signed-in zoom bots will fail", "setting", "USHER_CALLBACK_SECRETS")
	}
	if cfg.AllowHTTP || len(allow) > 0 {
		log.Warn("zoom tokens callbacks relax the production guard (dev and tests only)",
			"allow_http", cfg.AllowHTTP, "allow_cidrs", strings.Join(cfg.AllowCIDRs, ","))
	}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// Fetch calls r.URL for fresh tokens. Errors are *Error values, or wrap the
// context's error when ctx ended first. Tokens are never cached.
func (c *Client) Fetch(ctx context.Context, r Request) (Tokens, error) {
	start := time.Now()
	t, err := c.fetch(ctx, r)
	d := time.Since(start)
	log := c.log.With("bot_id", r.BotID, "project", r.Project)
	e, failed := errors.AsType[*Error](err)
	switch {
	case err == nil:
		c.metrics.observe(outcomeOK, subCodeNone, d)
		log.Info("zoom tokens obtained", "identity", t, "duration", d)
	case failed && errors.Is(e.Kind, ErrBreakerOpen):
		c.metrics.observe(e.Reason, e.SubCode(), d)
		log.Info("zoom tokens callback skipped: breaker open", "host", e.Host, "reason", e.Reason, "retry_after", e.RetryAfter)
	case failed:
		c.metrics.observe(e.Reason, e.SubCode(), d)
		log.Warn("zoom tokens callback failed", "host", e.Host, "sub_code", e.SubCode(), "reason", e.Reason,
			"status", e.Status, "attempts", e.Attempts, "transient", e.Transient(), "retry_after", e.RetryAfter, "error", err)
	default:
		c.metrics.observe(outcomeCanceled, "", d)
		log.Info("zoom tokens callback abandoned", "error", err)
	}
	return t, err
}

func (c *Client) fetch(ctx context.Context, r Request) (Tokens, error) {
	target, host, uerr := c.target(r.URL)
	if uerr != nil {
		return Tokens{}, uerr
	}
	secrets := c.secrets[r.Project]
	if len(secrets) == 0 {
		return Tokens{}, &Error{Kind: ErrNotConfigured, Reason: ReasonSecretMissing, Host: host}
	}
	hb := c.breakers.get(host)
	var (
		last *Error
		body []byte
	)
	for attempt := 1; ; attempt++ {
		done, wait, reason := c.breakers.allow(hb)
		if done == nil {
			if last != nil {
				// This join attempt already reached the host: report what it
				// answered, but wait at least until the breaker half-opens.
				last.RetryAfter = max(last.RetryAfter, wait)
				return Tokens{}, last
			}
			return Tokens{}, &Error{Kind: ErrBreakerOpen, Reason: reason, Host: host, RetryAfter: wait}
		}
		if body == nil {
			var err error
			if body, err = encodeBody(r); err != nil {
				done(errBreakerIgnore)
				return Tokens{}, err
			}
		}
		t, err := c.call(ctx, target, host, secrets, body)
		if err == nil {
			done(nil)
			return t, nil
		}
		if ctx.Err() != nil {
			// The caller gave up (leave, join deadline, drain): not the host's fault.
			done(errBreakerIgnore)
			return Tokens{}, fmt.Errorf("zoom tokens callback to %s: %w", host, ctx.Err())
		}
		e, ok := errors.AsType[*Error](err)
		if !ok {
			done(errBreakerIgnore)
			return Tokens{}, err
		}
		e.Attempts = attempt
		switch {
		case errors.Is(e.Kind, ErrForbidden) && e.Reason == ReasonAddress:
			done(errBreakerIgnore) // no call reached the host
			return Tokens{}, e
		case !e.Transient():
			done(nil) // the host is up: it answered
			return Tokens{}, e
		}
		done(errBreakerFailure)
		e.RetryAfter = jitter(c.cfg.RetryDelay, 0.2)
		last = e
		if attempt > c.cfg.Retries {
			return Tokens{}, e
		}
		pause := c.backoff(attempt)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < pause {
			return Tokens{}, e
		}
		c.metrics.retries.Inc()
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return Tokens{}, fmt.Errorf("zoom tokens callback to %s: %w", host, ctx.Err())
		case <-timer.C:
		}
	}
}

// target checks the URL's form: absolute, https (or http when allowed).
// Errors never quote the URL (its query may hold a secret).
func (c *Client) target(raw string) (string, string, *Error) {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" || u.Opaque != "" {
		return "", "", &Error{Kind: ErrForbidden, Reason: ReasonInvalidURL}
	}
	host := strings.ToLower(u.Host)
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !c.cfg.AllowHTTP {
			return "", "", &Error{Kind: ErrForbidden, Reason: ReasonNotHTTPS, Host: host}
		}
	default:
		return "", "", &Error{Kind: ErrForbidden, Reason: ReasonNotHTTPS, Host: host}
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String(), host, nil
}

// errAttemptTimeout is the cause of a call that got no answer in time. It
// deliberately does not wrap context.DeadlineExceeded: the caller's deadline
// has not passed, only this call's.
var errAttemptTimeout = errors.New("no answer in time")

// call makes one signed POST and reads the answer.
func (c *Client) call(ctx context.Context, target, host string, secrets []secret.String, body []byte) (Tokens, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return Tokens{}, &Error{Kind: ErrForbidden, Reason: ReasonInvalidURL, Host: host}
	}
	ts := c.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set(callbacksig.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(callbacksig.HeaderSignature, callbacksig.Sign(secrets, ts, body))

	resp, err := c.http.Do(req)
	if err != nil {
		return Tokens{}, c.transportError(actx, host, err)
	}
	defer resp.Body.Close()
	status := resp.StatusCode
	switch {
	case status >= 200 && status < 300:
		raw, rerr := readCapped(resp)
		if errors.Is(rerr, errTooLarge) {
			return Tokens{}, &Error{Kind: ErrInvalidResponse, Reason: ReasonTooLarge, Status: status, Host: host}
		}
		if rerr != nil {
			return Tokens{}, c.transportError(actx, host, rerr)
		}
		t, inv := parseTokens(raw)
		if inv != nil {
			return Tokens{}, &Error{Kind: ErrInvalidResponse, Reason: inv.reason, Field: inv.field, Status: status, Host: host}
		}
		return t, nil
	case status >= 300 && status < 400:
		return Tokens{}, &Error{Kind: ErrForbidden, Reason: ReasonRedirect, Status: status, Host: host}
	case status >= 400 && status < 500:
		drain(resp)
		return Tokens{}, &Error{Kind: ErrRejected, Reason: ReasonRejected, Status: status, Host: host}
	case status >= 500:
		drain(resp)
		return Tokens{}, &Error{Kind: ErrUnavailable, Reason: ReasonServerError, Status: status, Host: host}
	default:
		return Tokens{}, &Error{Kind: ErrInvalidResponse, Reason: ReasonNotJSON, Status: status, Host: host}
	}
}

// transportError classifies a failed round trip or body read. The caller
// checks its own context first; actx is this call's.
func (c *Client) transportError(actx context.Context, host string, err error) error {
	// *url.Error quotes the whole URL, query included: keep only its cause.
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, errAddressForbidden):
		return &Error{Kind: ErrForbidden, Reason: ReasonAddress, Host: host, Err: err}
	case errors.Is(actx.Err(), context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &Error{Kind: ErrUnavailable, Reason: ReasonTimeout, Host: host,
			Err: fmt.Errorf("%w (%s)", errAttemptTimeout, c.cfg.Timeout)}
	default:
		return &Error{Kind: ErrUnavailable, Reason: ReasonConnection, Host: host, Err: err}
	}
}

// backoff is the pause after the n-th failed call: Backoff·2^(n-1), ±50%.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.Backoff << (n - 1)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d+1)
}

var errTooLarge = errors.New("answer over the size cap")

// readCapped reads at most MaxResponseBytes; more is errTooLarge.
func readCapped(resp *http.Response) ([]byte, error) {
	if resp.ContentLength > MaxResponseBytes {
		return nil, errTooLarge
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if len(raw) > MaxResponseBytes {
		return nil, errTooLarge
	}
	return raw, nil
}

// drain reads what is left of a short error answer so the connection can be
// reused; a long one is abandoned with its connection.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
}

// callbackBody is the POST body. Fields are in key order, so the bytes are
// also Attendee's canonical JSON (sorted keys, no spaces, no HTML escaping).
type callbackBody struct {
	BotID        string            `json:"bot_id"`
	BotMetadata  map[string]string `json:"bot_metadata"`
	CallbackType string            `json:"callback_type"`
	MeetingURL   string            `json:"meeting_url"`
}

func encodeBody(r Request) ([]byte, error) {
	meta := r.Metadata
	if len(meta) == 0 {
		meta = nil // "bot_metadata": null, as Attendee sends for no metadata
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(callbackBody{BotID: r.BotID, BotMetadata: meta, CallbackType: "zoom_tokens", MeetingURL: r.MeetingURL}); err != nil {
		return nil, fmt.Errorf("encode callback body: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
