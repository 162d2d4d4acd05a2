package teamssession

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config of the session cache.
type Config struct {
	// RedisURL locates Redis. Default redis://127.0.0.1:6379/0.
	RedisURL string `env:"REDIS_URL" default:"redis://127.0.0.1:6379/0"`
	// KeyPrefix starts every key the cache writes. Default usher:.
	KeyPrefix string `env:"USHER_REDIS_KEY_PREFIX" default:"usher:"`
	// MaxTTL caps how long a session is cached, whatever its cookies say. Default 8h.
	MaxTTL time.Duration `env:"USHER_TEAMS_SESSION_MAX_TTL" default:"8h"`
	// ExpiryMargin drops a session this long before its first cookie
	// expires, so a bot never joins with a cookie about to lapse. Default 5m.
	ExpiryMargin time.Duration `env:"USHER_TEAMS_SESSION_EXPIRY_MARGIN" default:"5m"`
	// LockTTL is the login lock's PX. The holder renews it while it logs in;
	// if the holder dies, another worker logs in after at most this long. Default 30s.
	LockTTL time.Duration `env:"USHER_TEAMS_LOGIN_LOCK_TTL" default:"30s"`
	// WaitTimeout bounds how long a worker waits for another worker's login
	// before giving up with a retryable error. Default 90s.
	WaitTimeout time.Duration `env:"USHER_TEAMS_LOGIN_WAIT_TIMEOUT" default:"90s"`
	// FailureTTL is how long a refused login (wrong password, locked, MFA,
	// captcha) is shared with the workers that waited for it, so they fail
	// the same way instead of trying the password again. Default 60s.
	FailureTTL time.Duration `env:"USHER_TEAMS_LOGIN_FAILURE_TTL" default:"60s"`
	// RedisTimeout bounds every Redis command; past it the cache counts as
	// down for that call and the worker logs in without it. Default 500ms.
	RedisTimeout time.Duration `env:"USHER_REDIS_TIMEOUT" default:"500ms"`
}

// Validate names the bad variable.
func (c Config) Validate() error {
	if _, err := redis.ParseURL(c.RedisURL); err != nil {
		// The parser's message may quote the URL, which may carry a password.
		return errors.New("REDIS_URL must be redis://[user:password@]host:port/db or rediss://... (value not shown: it may carry a password)")
	}
	switch {
	case c.MaxTTL < time.Minute:
		return fmt.Errorf("USHER_TEAMS_SESSION_MAX_TTL must be ≥ 1m, got %s", c.MaxTTL)
	case c.ExpiryMargin < 0 || c.ExpiryMargin >= c.MaxTTL:
		return fmt.Errorf("USHER_TEAMS_SESSION_EXPIRY_MARGIN must be ≥ 0 and below USHER_TEAMS_SESSION_MAX_TTL, got %s", c.ExpiryMargin)
	case c.LockTTL < time.Second:
		return fmt.Errorf("USHER_TEAMS_LOGIN_LOCK_TTL must be ≥ 1s, got %s", c.LockTTL)
	case c.WaitTimeout < c.LockTTL:
		return fmt.Errorf("USHER_TEAMS_LOGIN_WAIT_TIMEOUT must be ≥ USHER_TEAMS_LOGIN_LOCK_TTL (%s), got %s", c.LockTTL, c.WaitTimeout)
	case c.FailureTTL < time.Second:
		return fmt.Errorf("USHER_TEAMS_LOGIN_FAILURE_TTL must be ≥ 1s, got %s", c.FailureTTL)
	case c.RedisTimeout < 10*time.Millisecond:
		return fmt.Errorf("USHER_REDIS_TIMEOUT must be ≥ 10ms, got %s", c.RedisTimeout)
	}
	return nil
}
