// Package teamssession caches signed-in Microsoft sessions (the cookie jar
// after login) in Redis, sealed with sealbox, one per project and account,
// for as long as the cookies live. A miss is filled by exactly one worker in
// the fleet: it takes a Redis lock (SET NX PX with a random token, renewed
// while it logs in, released with a compare-and-delete) and logs in; the
// others poll the cache until the session appears, the holder's refusal is
// shared (wrong password, locked...), or their wait deadline passes. When
// Redis is unreachable the cache steps aside: every bot logs in (collapsed
// per account inside one worker), and logs and metrics say so.
package teamssession

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/shared/sealbox"
)

// LoginFunc signs an account in and returns its cookies. It runs while the
// caller holds the account's login lock.
type LoginFunc func(ctx context.Context) ([]driver.Cookie, error)

// SharedFailure is implemented by login errors that can be about the
// account rather than the attempt (wrong password, locked, MFA, captcha):
// a non-empty code is shared with the workers waiting for the same login, which then fail with
// *PeerFailure instead of trying the password again: no lock-out storm.
type SharedFailure interface {
	error
	SharedFailure() string
}

// PeerFailure is returned to a worker that waited for another worker's
// login of the account, which was refused.
type PeerFailure struct {
	// Code is what the failing worker shared (a sub_code).
	Code string
}

func (e *PeerFailure) Error() string {
	return "another worker's login of this account was refused: " + e.Code
}

// ErrWaitTimeout: another worker held the login lock for longer than
// WaitTimeout. Retry later.
var ErrWaitTimeout = errors.New("timed out waiting for another worker's teams login")

// Cache is the fleet-wide session cache.
type Cache struct {
	cfg              Config
	rdb              *redis.Client
	ring             *sealbox.Ring
	log              *slog.Logger
	m                *metrics
	now              func() time.Time
	compareAndDelete *redis.Script
	compareAndExtend *redis.Script
	// local collapses concurrent logins of one account inside this worker
	// when Redis is down.
	local singleflight.Group

	upMu sync.Mutex
	up   bool
}

// New returns a cache; it does not contact Redis (an unreachable Redis is
// a degraded mode, not a start-up failure). Close releases the client.
func New(cfg Config, ring *sealbox.Ring, log *slog.Logger, reg prometheus.Registerer) (*Cache, error) {
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, cfg.Validate()
	}
	opts.DialTimeout = cfg.RedisTimeout
	opts.ReadTimeout = cfg.RedisTimeout
	opts.WriteTimeout = cfg.RedisTimeout
	opts.PoolTimeout = cfg.RedisTimeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = 1
	opts.DialerRetries = 1
	return &Cache{
		cfg: cfg, rdb: redis.NewClient(opts), ring: ring, log: log, m: newMetrics(reg), now: time.Now, up: true,
		compareAndDelete: redis.NewScript(compareAndDeleteLua),
		compareAndExtend: redis.NewScript(compareAndExtendLua),
	}, nil
}

// Close closes the Redis client.
func (c *Cache) Close() error { return c.rdb.Close() }

func (c *Cache) sessionKey(k Key) string {
	return c.cfg.KeyPrefix + "teams:session:" + k.Project + ":" + k.AccountID
}
func (c *Cache) lockKey(k Key) string {
	return c.cfg.KeyPrefix + "teams:lock:" + k.Project + ":" + k.AccountID
}
func (c *Cache) failKey(k Key) string {
	return c.cfg.KeyPrefix + "teams:loginfail:" + k.Project + ":" + k.AccountID
}

// Lua scripts: compare-and-delete and compare-and-extend on a token, so a
// worker only ever touches the lock (or the session) it holds.
const (
	compareAndDeleteLua = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`
	compareAndExtendLua = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`
)

// failure is the shared verdict of a refused login.
type failure struct {
	Code               string `json:"code"`
	CredentialsVersion string `json:"credentials_version"`
}

// Get returns the account's session: from the cache; else after logging in
// with login under the fleet-wide lock; else, while another worker holds
// the lock, once that worker has stored it. Errors: login's own error (this
// worker logged in), *PeerFailure (the peer's login was refused),
// ErrWaitTimeout, or ctx's error.
func (c *Cache) Get(ctx context.Context, k Key, login LoginFunc) (*Session, error) {
	s, err := c.read(ctx, k)
	if err != nil {
		return c.bypass(ctx, k, login, "get", err)
	}
	if s != nil {
		c.m.hits.Inc()
		s.Source = FromCache
		return s, nil
	}
	c.m.misses.Inc()

	start := c.now()
	deadline := start.Add(c.cfg.WaitTimeout)
	backoff := 20 * time.Millisecond
	for {
		token := newToken()
		got, err := c.tryLock(ctx, k, token)
		if err != nil {
			return c.bypass(ctx, k, login, "lock", err)
		}
		if got {
			c.m.lockWait.WithLabelValues("acquired").Observe(c.now().Sub(start).Seconds())
			return c.loginLocked(ctx, k, token, login)
		}
		// Another worker is logging in: wait for its session or its verdict.
		s, f, err := c.readWithFailure(ctx, k)
		if err != nil {
			return c.bypass(ctx, k, login, "wait", err)
		}
		if s != nil {
			c.m.lockWait.WithLabelValues("session").Observe(c.now().Sub(start).Seconds())
			s.Source = FromPeer
			return s, nil
		}
		if f != nil && f.CredentialsVersion == k.CredentialsVersion {
			c.m.lockWait.WithLabelValues("failure").Observe(c.now().Sub(start).Seconds())
			return nil, &PeerFailure{Code: f.Code}
		}
		if c.now().After(deadline) {
			c.m.lockWait.WithLabelValues("timeout").Observe(c.now().Sub(start).Seconds())
			return nil, fmt.Errorf("account %s after %s: %w", k, c.cfg.WaitTimeout, ErrWaitTimeout)
		}
		if err := sleep(ctx, jitter(backoff)); err != nil {
			return nil, err
		}
		backoff = min(backoff*2, 250*time.Millisecond)
	}
}

// loginLocked logs in while holding the lock, stores the session, shares a
// refusal, and releases the lock on every path.
func (c *Cache) loginLocked(ctx context.Context, k Key, token string, login LoginFunc) (*Session, error) {
	defer c.unlock(k, token)
	// A peer may have finished between our read and our lock: its session
	// is used, its refusal is not tried again.
	if s, f, err := c.readWithFailure(ctx, k); err == nil {
		if s != nil {
			s.Source = FromPeer
			return s, nil
		}
		if f != nil && f.CredentialsVersion == k.CredentialsVersion {
			return nil, &PeerFailure{Code: f.Code}
		}
	}
	stopRenew := c.renewLock(k, token)
	cookies, err := login(ctx)
	stopRenew()
	if err != nil {
		if sf, ok := errors.AsType[SharedFailure](err); ok && sf.SharedFailure() != "" {
			c.shareFailure(k, sf.SharedFailure())
		}
		return nil, err
	}
	return c.store(ctx, k, cookies), nil
}

// store caches a fresh session (best effort: a Redis error leaves it uncached).
func (c *Cache) store(ctx context.Context, k Key, cookies []driver.Cookie) *Session {
	now := c.now()
	s := &Session{Cookies: cookies, CreatedAt: now.UTC(), Source: FromLogin}
	ttl := cacheTTL(cookies, now, c.cfg.MaxTTL, c.cfg.ExpiryMargin)
	if ttl <= 0 {
		c.log.Warn("teams session not cached: its cookies expire too soon", "project", k.Project, "account_id", k.AccountID)
		return s
	}
	s.ExpiresAt = now.Add(ttl).UTC()
	plain, err := encodeSession(s)
	if err != nil {
		c.log.Error("encode teams session", "err", err)
		return s
	}
	blob, err := c.ring.Seal(plain, k.sealContext())
	clear(plain)
	if err != nil {
		c.log.Error("seal teams session", "err", err)
		return s
	}
	// The fleet wants this session even if this bot just gave up.
	err = c.try(context.WithoutCancel(ctx), "store", func(ctx context.Context) error {
		pipe := c.rdb.TxPipeline()
		pipe.Set(ctx, c.sessionKey(k), blob, ttl)
		pipe.Del(ctx, c.failKey(k))
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		return s
	}
	s.blob = blob
	return s
}

// Invalidate drops a session that turned out not to work (the join bounced
// to the login page), unless the cache already holds a newer one.
func (c *Cache) Invalidate(ctx context.Context, k Key, s *Session) {
	c.m.invalidations.Inc()
	if s == nil || s.blob == "" {
		return
	}
	err := c.try(ctx, "invalidate", func(ctx context.Context) error {
		return c.compareAndDelete.Run(ctx, c.rdb, []string{c.sessionKey(k)}, s.blob).Err()
	})
	if err != nil {
		return
	}
	c.log.Info("teams session invalidated", "project", k.Project, "account_id", k.AccountID)
}

// read returns the cached session, nil on a miss. A session that no longer
// opens (its key was rotated out, or it was tampered with) is a miss, and
// is deleted.
func (c *Cache) read(ctx context.Context, k Key) (*Session, error) {
	var blob string
	err := c.try(ctx, "get", func(ctx context.Context) error {
		var err error
		blob, err = c.rdb.Get(ctx, c.sessionKey(k)).Result()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return c.open(ctx, k, blob), nil
}

func (c *Cache) readWithFailure(ctx context.Context, k Key) (*Session, *failure, error) {
	var vals []any
	err := c.try(ctx, "get", func(ctx context.Context) error {
		var err error
		vals, err = c.rdb.MGet(ctx, c.sessionKey(k), c.failKey(k)).Result()
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	var s *Session
	if blob, ok := vals[0].(string); ok {
		s = c.open(ctx, k, blob)
	}
	var f *failure
	if raw, ok := vals[1].(string); ok {
		f = &failure{}
		if json.Unmarshal([]byte(raw), f) != nil {
			f = nil
		}
	}
	return s, f, nil
}

func (c *Cache) open(ctx context.Context, k Key, blob string) *Session {
	plain, err := c.ring.Open(blob, k.sealContext())
	if err != nil {
		c.log.Warn("cached teams session does not open, dropping it", "project", k.Project, "account_id", k.AccountID, "err", err)
		_ = c.try(ctx, "invalidate", func(ctx context.Context) error {
			return c.compareAndDelete.Run(ctx, c.rdb, []string{c.sessionKey(k)}, blob).Err()
		})
		return nil
	}
	s, err := decodeSession(plain)
	clear(plain)
	if err != nil {
		c.log.Warn("cached teams session does not decode, ignoring it", "project", k.Project, "account_id", k.AccountID, "err", err)
		return nil
	}
	if !s.ExpiresAt.IsZero() && !c.now().Before(s.ExpiresAt) {
		return nil
	}
	s.blob = blob
	return s
}

// tryLock takes the lock with SET NX PX. A retried SET whose first attempt
// did land finds the lock taken — by itself: the token tells.
func (c *Cache) tryLock(ctx context.Context, k Key, token string) (bool, error) {
	retried := false
	err := c.try(ctx, "lock", func(ctx context.Context) error {
		if retried {
			if cur, err := c.rdb.Get(ctx, c.lockKey(k)).Result(); err == nil && cur == token {
				return nil
			}
		}
		retried = true
		return c.rdb.Do(ctx, "SET", c.lockKey(k), token, "NX", "PX", c.cfg.LockTTL.Milliseconds()).Err()
	})
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return err == nil, err
}

// renewLock extends the lock every LockTTL/3 while the login runs, so a
// slow login keeps it and a dead worker's lock still expires within
// LockTTL. The returned func stops the renewal and waits for it.
func (c *Cache) renewLock(k Key, token string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(c.cfg.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RedisTimeout)
				err := c.compareAndExtend.Run(ctx, c.rdb, []string{c.lockKey(k)}, token, c.cfg.LockTTL.Milliseconds()).Err()
				cancel()
				if err != nil {
					c.failed("lock", err)
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// unlock releases the lock if it is still ours. It runs on every path out
// of a login, with its own deadline (the bot's context may be done).
func (c *Cache) unlock(k Key, token string) {
	// Not the bot's context: the lock must go even when the bot's is done.
	// If Redis does not answer, the lock expires after LockTTL anyway.
	_ = c.try(context.Background(), "unlock", func(ctx context.Context) error {
		return c.compareAndDelete.Run(ctx, c.rdb, []string{c.lockKey(k)}, token).Err()
	})
}

func (c *Cache) shareFailure(k Key, code string) {
	b, _ := json.Marshal(failure{Code: code, CredentialsVersion: k.CredentialsVersion})
	_ = c.try(context.Background(), "store", func(ctx context.Context) error {
		return c.rdb.Set(ctx, c.failKey(k), b, c.cfg.FailureTTL).Err()
	})
}

// bypass logs in without the cache, because Redis did not answer. Logins
// of one account are still collapsed inside this worker.
func (c *Cache) bypass(ctx context.Context, k Key, login LoginFunc, op string, cause error) (*Session, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	c.m.bypassed.Inc()
	c.log.Warn("teams session cache unavailable, logging in without it", "project", k.Project, "account_id", k.AccountID, "op", op, "err", cause)
	ch := c.local.DoChan(k.String(), func() (any, error) {
		cookies, err := login(ctx)
		if err != nil {
			return nil, err
		}
		return cookies, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return &Session{Cookies: r.Val.([]driver.Cookie), CreatedAt: c.now().UTC(), Source: FromLogin}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// redisAttempts bounds tries of one Redis command: a hiccup (a slow
// answer on a loaded host) must not send the whole fleet to the login page,
// while a Redis that is really gone is given up on within about
// redisAttempts × RedisTimeout.
const redisAttempts = 3

// try runs one idempotent Redis command, each attempt bounded by
// RedisTimeout, retrying failures with a short backoff. redis.Nil is an
// answer, not a failure. The last failure counts as Redis being unreachable.
func (c *Cache) try(ctx context.Context, op string, f func(ctx context.Context) error) error {
	backoff := 25 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.cfg.RedisTimeout)
		err := f(actx)
		cancel()
		if err == nil || errors.Is(err, redis.Nil) {
			c.ok()
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == redisAttempts {
			c.failed(op, err)
			return err
		}
		if serr := sleep(ctx, backoff); serr != nil {
			return serr
		}
		backoff *= 2
	}
}

// ok and failed track whether Redis answers, for the gauge and for one log
// line per change rather than one per call.
func (c *Cache) ok() {
	c.upMu.Lock()
	defer c.upMu.Unlock()
	if !c.up {
		c.up = true
		c.log.Info("teams session cache reachable again")
	}
	c.m.up.Set(1)
}

func (c *Cache) failed(op string, err error) {
	c.m.errors.WithLabelValues(op).Inc()
	c.upMu.Lock()
	defer c.upMu.Unlock()
	if c.up {
		c.up = false
		c.log.Warn("teams session cache unreachable", "op", op, "err", err)
	}
	c.m.up.Set(0)
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b[:])
}

func jitter(d time.Duration) time.Duration {
	return d/2 + mrand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
