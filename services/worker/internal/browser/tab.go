package browser

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/proto"

	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/shared/secret"
)

// Tab is one bot's page in its own incognito context.
type Tab struct {
	engine  *Engine
	inc     *rod.Browser // the incognito browser context
	page    *rod.Page
	crashed <-chan struct{}
	cancel  context.CancelFunc // ends rod's goroutines for this tab
	once    sync.Once
}

// Page is the tab's page. Bind each use to a context: tab.Page().Context(ctx).
func (t *Tab) Page() *rod.Page { return t.page }

// Crashed is closed if the browser process died while the tab was open.
func (t *Tab) Crashed() <-chan struct{} { return t.crashed }

// IsCrashed reports whether Crashed is closed.
func (t *Tab) IsCrashed() bool {
	select {
	case <-t.crashed:
		return true
	default:
		return false
	}
}

// SetCookies puts cookies into the tab's context (and only there), for
// example a signed-in session before navigating to a meeting.
func (t *Tab) SetCookies(ctx context.Context, cookies []driver.Cookie) error {
	params := make([]*proto.NetworkCookieParam, 0, len(cookies))
	for _, c := range cookies {
		p := &proto.NetworkCookieParam{
			Name:     c.Name,
			Value:    c.Value.Reveal(),
			Domain:   c.Domain,
			Path:     c.Path,
			Secure:   c.Secure,
			HTTPOnly: c.HTTPOnly,
			SameSite: sameSite(c.SameSite),
		}
		if p.Path == "" {
			p.Path = "/"
		}
		if !c.Expires.IsZero() {
			p.Expires = proto.TimeSinceEpoch(float64(c.Expires.UnixNano()) / 1e9)
		}
		params = append(params, p)
	}
	if len(params) == 0 {
		return nil
	}
	if err := t.inc.Context(ctx).SetCookies(params); err != nil {
		// The CDP error never echoes cookie values; the names are not secret.
		return t.fault(fmt.Errorf("set %d cookies: %w", len(params), err))
	}
	return nil
}

// Cookies returns every cookie of the tab's context (for example the session
// a login just created). Values are secrets.
func (t *Tab) Cookies(ctx context.Context) ([]driver.Cookie, error) {
	got, err := t.inc.Context(ctx).GetCookies()
	if err != nil {
		return nil, t.fault(fmt.Errorf("read cookies: %w", err))
	}
	out := make([]driver.Cookie, 0, len(got))
	for _, c := range got {
		dc := driver.Cookie{
			Name:     c.Name,
			Value:    secret.String(c.Value),
			Domain:   c.Domain,
			Path:     c.Path,
			HTTPOnly: c.HTTPOnly,
			Secure:   c.Secure,
			SameSite: string(c.SameSite),
		}
		if !c.Session && c.Expires > 0 {
			dc.Expires = time.Unix(0, int64(float64(c.Expires)*1e9))
		}
		out = append(out, dc)
	}
	return out, nil
}

func sameSite(s string) proto.NetworkCookieSameSite {
	switch strings.ToLower(s) {
	case "strict":
		return proto.NetworkCookieSameSiteStrict
	case "lax":
		return proto.NetworkCookieSameSiteLax
	case "none":
		return proto.NetworkCookieSameSiteNone
	}
	return ""
}

// fault wraps driver.ErrBrowserCrashed into err when the browser died.
func (t *Tab) fault(err error) error {
	if t.IsCrashed() {
		return fmt.Errorf("%w: %w", driver.ErrBrowserCrashed, err)
	}
	return err
}

// Close closes the page and its incognito context and frees the slot.
// Idempotent; after a crash it only frees the slot.
func (t *Tab) Close() error {
	var err error
	t.once.Do(func() {
		if !t.IsCrashed() {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			if cerr := t.inc.Context(ctx).Close(); cerr != nil && !t.IsCrashed() {
				err = fmt.Errorf("close browser context: %w", cerr)
			}
			cancel()
		}
		t.cancel()
		t.engine.metrics.contexts.Dec()
		<-t.engine.slots
	})
	return err
}
