package teamssession

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/shared/secret"
)

// Key names one account's session: per project and account. The
// credentials version scopes shared login failures, so a verdict about an
// old password never blocks the new one.
type Key struct {
	Project            string
	AccountID          string
	CredentialsVersion string
}

func (k Key) String() string { return k.Project + "/" + k.AccountID }

// sealContext binds a cached session to its project and account.
func (k Key) sealContext() string { return "teams-session/" + k.Project + "/" + k.AccountID }

// Source says where a session came from.
type Source string

// Sources of a session.
const (
	// FromCache: found in Redis.
	FromCache Source = "cache"
	// FromLogin: this worker logged in.
	FromLogin Source = "login"
	// FromPeer: another worker logged in while this one waited.
	FromPeer Source = "peer"
)

// Session is a signed-in Microsoft session: the cookie jar after login.
type Session struct {
	Cookies   []driver.Cookie
	CreatedAt time.Time
	// ExpiresAt is when the cache drops the session (zero when not cached).
	ExpiresAt time.Time
	Source    Source
	// blob is the sealed form stored in Redis, the token for a
	// compare-and-delete in Invalidate; empty when not cached.
	blob string
}

// payload is the sealed JSON of a session. Cookie values are revealed only
// here, inside the seal.
type payload struct {
	Cookies   []cookie  `json:"cookies"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

type cookie struct {
	Name     string    `json:"name"`
	Value    string    `json:"value"`
	Domain   string    `json:"domain"`
	Path     string    `json:"path"`
	Expires  time.Time `json:"expires,omitzero"`
	HTTPOnly bool      `json:"http_only,omitempty"`
	Secure   bool      `json:"secure,omitempty"`
	SameSite string    `json:"same_site,omitempty"`
}

func encodeSession(s *Session) ([]byte, error) {
	p := payload{CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt, Cookies: make([]cookie, len(s.Cookies))}
	for i, c := range s.Cookies {
		p.Cookies[i] = cookie{Name: c.Name, Value: c.Value.Reveal(), Domain: c.Domain, Path: c.Path,
			Expires: c.Expires, HTTPOnly: c.HTTPOnly, Secure: c.Secure, SameSite: c.SameSite}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode session: %w", err)
	}
	return b, nil
}

func decodeSession(b []byte) (*Session, error) {
	var p payload
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decode session: %w", err)
	}
	s := &Session{CreatedAt: p.CreatedAt, ExpiresAt: p.ExpiresAt, Cookies: make([]driver.Cookie, len(p.Cookies))}
	for i, c := range p.Cookies {
		s.Cookies[i] = driver.Cookie{Name: c.Name, Value: secret.String(c.Value), Domain: c.Domain, Path: c.Path,
			Expires: c.Expires, HTTPOnly: c.HTTPOnly, Secure: c.Secure, SameSite: c.SameSite}
	}
	return s, nil
}

// isAuthCookie: ESTSAUTH, ESTSAUTHPERSISTENT and ESTSAUTHLIGHT carry a
// Microsoft sign-in (PLATFORMS.md: "Signed-in session cookies"). Their
// expiry bounds the cache TTL; other cookies of the jar (tracking, load
// balancing) do not.
func isAuthCookie(name string) bool {
	switch name {
	case "ESTSAUTH", "ESTSAUTHPERSISTENT", "ESTSAUTHLIGHT":
		return true
	}
	return false
}

// HasAuthCookie reports whether a cookie jar holds a non-empty sign-in cookie.
func HasAuthCookie(cookies []driver.Cookie) bool {
	for _, c := range cookies {
		if isAuthCookie(c.Name) && !c.Value.Empty() {
			return true
		}
	}
	return false
}

// cacheTTL is how long a session may be cached: never past the first
// expiry of its persistent sign-in cookies (of every persistent cookie when
// it has none), less the margin, and never past maxTTL. Zero or less means
// "do not cache".
func cacheTTL(cookies []driver.Cookie, now time.Time, maxTTL, margin time.Duration) time.Duration {
	auth := HasAuthCookie(cookies)
	ttl := maxTTL
	for _, c := range cookies {
		if c.Expires.IsZero() || (auth && !isAuthCookie(c.Name)) {
			continue // browser-session cookies are bounded by maxTTL only
		}
		if d := c.Expires.Sub(now) - margin; d < ttl {
			ttl = d
		}
	}
	return ttl
}
