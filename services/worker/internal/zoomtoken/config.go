package zoomtoken

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/topology"
)

// Config of the callback client. The defaults are the production ones: https
// only, no private address reachable.
type Config struct {
	// Timeout bounds one call to zoom_tokens_url, answer body included. Default 10s.
	Timeout time.Duration `env:"USHER_CALLBACK_TIMEOUT" default:"10s"`
	// Retries is how many times a call that timed out, could not connect or
	// got a 5xx is repeated within one join attempt (0 to 5). Default 2.
	Retries int `env:"USHER_CALLBACK_RETRIES" default:"2"`
	// Backoff is the first pause between retries; it doubles and is jittered
	// (±50%). Default 250ms.
	Backoff time.Duration `env:"USHER_CALLBACK_BACKOFF" default:"250ms"`
	// RetryDelay is how long a job waits (naked, holding no bot slot) before
	// the next join attempt when the callback failed transiently. Jittered
	// (+0–20%). Default 15s.
	RetryDelay time.Duration `env:"USHER_CALLBACK_RETRY_DELAY" default:"15s"`
	// Secrets are the per-project signing secrets, "project:secret,...". A
	// project may be listed more than once (rotation: every secret signs).
	// Secrets are at least 16 characters and cannot contain a comma. A project
	// without a secret gets no callback: its bots fail with
	// zoom_tokens_callback_failed (reason signing_secret_missing). Default empty.
	Secrets secret.String `env:"USHER_CALLBACK_SECRETS"`
	// AllowHTTP permits http:// callback URLs (dev and tests only). Default false.
	AllowHTTP bool `env:"USHER_CALLBACK_ALLOW_HTTP" default:"false"`
	// AllowCIDRs are address ranges a callback may connect to even though they
	// are loopback, private, link-local... ("127.0.0.0/8,::1/128" for make
	// run). Default empty: only public addresses.
	AllowCIDRs []string `env:"USHER_CALLBACK_ALLOW_CIDRS"`
	// BreakerFailures is how many consecutive failed calls (timeouts,
	// connection errors, 5xx) to one host open its circuit breaker (1 to
	// 1000). Default 5.
	BreakerFailures int `env:"USHER_CALLBACK_BREAKER_FAILURES" default:"5"`
	// BreakerOpenFor is how long an open breaker refuses calls before letting
	// one probe through (half-open). Default 30s.
	BreakerOpenFor time.Duration `env:"USHER_CALLBACK_BREAKER_OPEN_FOR" default:"30s"`
	// BreakerHosts bounds how many callback hosts keep a breaker (least
	// recently used first out). Default 1024.
	BreakerHosts int `env:"USHER_CALLBACK_BREAKER_HOSTS" default:"1024"`
}

// Validate names the bad field.
func (c Config) Validate() error {
	switch {
	case c.Timeout <= 0:
		return fmt.Errorf("USHER_CALLBACK_TIMEOUT must be > 0, got %s", c.Timeout)
	case c.Retries < 0 || c.Retries > 5:
		return fmt.Errorf("USHER_CALLBACK_RETRIES must be between 0 and 5, got %d", c.Retries)
	case c.Backoff < 0:
		return fmt.Errorf("USHER_CALLBACK_BACKOFF must be ≥ 0, got %s", c.Backoff)
	case c.RetryDelay <= 0:
		return fmt.Errorf("USHER_CALLBACK_RETRY_DELAY must be > 0, got %s", c.RetryDelay)
	case c.BreakerFailures < 1 || c.BreakerFailures > 1000:
		return fmt.Errorf("USHER_CALLBACK_BREAKER_FAILURES must be between 1 and 1000, got %d", c.BreakerFailures)
	case c.BreakerOpenFor <= 0:
		return fmt.Errorf("USHER_CALLBACK_BREAKER_OPEN_FOR must be > 0, got %s", c.BreakerOpenFor)
	case c.BreakerHosts < 1:
		return fmt.Errorf("USHER_CALLBACK_BREAKER_HOSTS must be ≥ 1, got %d", c.BreakerHosts)
	}
	if _, err := parseCIDRs(c.AllowCIDRs); err != nil {
		return err
	}
	if _, err := parseSecrets(c.Secrets); err != nil {
		return err
	}
	return nil
}

func parseCIDRs(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("USHER_CALLBACK_ALLOW_CIDRS: %q is not a CIDR like 127.0.0.0/8 or ::1/128", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// minSecretLen keeps signing secrets out of brute-force reach.
const minSecretLen = 16

// parseSecrets reads "project:secret,...". Errors name the entry or the
// project, never a secret.
func parseSecrets(spec secret.String) (map[string][]secret.String, error) {
	out := map[string][]secret.String{}
	n := 0
	for item := range strings.SplitSeq(spec.Reveal(), ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		n++
		project, key, ok := strings.Cut(item, ":")
		if !ok || key == "" {
			return nil, fmt.Errorf("USHER_CALLBACK_SECRETS: entry %d is not project:secret", n)
		}
		if !topology.ValidProject(project) {
			return nil, fmt.Errorf("USHER_CALLBACK_SECRETS: entry %d: project must be lowercase letters, digits, - or _", n)
		}
		if len(key) < minSecretLen {
			return nil, fmt.Errorf("USHER_CALLBACK_SECRETS: the secret of project %s is shorter than %d characters", project, minSecretLen)
		}
		out[project] = append(out[project], secret.String(key))
	}
	return out, nil
}
