package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/drivers"
	"github.com/usherhq/usher/services/worker/internal/teamsaccounts"
	"github.com/usherhq/usher/services/worker/internal/teamsjoin"
	"github.com/usherhq/usher/services/worker/internal/teamslogin"
	"github.com/usherhq/usher/services/worker/internal/teamssession"
	"github.com/usherhq/usher/services/worker/internal/zoomjoin"
	"github.com/usherhq/usher/services/worker/internal/zoomtoken"
	"github.com/usherhq/usher/shared/sealbox"
)

// BrowserConfig configures browser mode: the Chromium engine, the platform
// drivers, and the identities — Zoom ZAKs from the customer's callback and
// Teams sessions from stored accounts.
type BrowserConfig struct {
	Browser       browser.Config
	Drivers       drivers.Config
	Zoom          zoomtoken.Config
	Seal          sealbox.Config
	TeamsAccounts teamsaccounts.Config
	TeamsSession  teamssession.Config
	TeamsLogin    teamslogin.Config
	TeamsJoin     teamsjoin.Config
}

// Validate names the first bad variable.
func (c BrowserConfig) Validate() error {
	for _, v := range []interface{ Validate() error }{c.Browser, c.Drivers, c.Zoom, c.TeamsAccounts, c.TeamsSession, c.TeamsLogin, c.TeamsJoin} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if c.Seal.Keys.Empty() {
		return errors.New("USHER_SECRET_KEYS must be set in browser mode (kid:base64 32-byte key,...): Teams credentials and sessions are sealed with it")
	}
	if _, err := c.Seal.Ring(); err != nil {
		return err
	}
	return nil
}

// ErrBrowserOptions is wrapped when browser mode cannot be assembled.
var ErrBrowserOptions = errors.New("browser mode")

// BrowserJoiners is the JoinerFactory of browser mode: it starts Chromium
// (one per worker, a context per bot, at least one per slot), builds the
// Zoom, Teams and Meet drivers, and the Zoom and Teams identity joiners.
// Meet joins anonymously. The returned close stops them after the bots are gone.
func BrowserJoiners(cfg BrowserConfig, slots int, opts ...zoomtoken.Option) JoinerFactory {
	return func(ctx context.Context, env Env) (map[usherv1.Platform]driver.Joiner, func() error, error) {
		ring, err := cfg.Seal.Ring()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrBrowserOptions, err)
		}
		bcfg := cfg.Browser
		// A Teams login holds a context for a moment beside the bots' own.
		bcfg.MaxContexts = max(bcfg.MaxContexts, slots+1)
		engine := browser.New(bcfg, env.Log, env.Registry)
		if err := engine.Start(ctx); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrBrowserOptions, err)
		}
		tokens, err := zoomtoken.New(cfg.Zoom, env.Log, env.Registry, opts...)
		if err != nil {
			_ = engine.Close()
			return nil, nil, fmt.Errorf("%w: %w", ErrBrowserOptions, err)
		}
		// go-redis logs through a process-wide logger; route it to slog.
		redis.SetLogger(teamssession.RedisLogger(env.Log))
		sessions, err := teamssession.New(cfg.TeamsSession, ring, env.Log, env.Registry)
		if err != nil {
			tokens.Close()
			_ = engine.Close()
			return nil, nil, fmt.Errorf("%w: %w", ErrBrowserOptions, err)
		}
		byPlatform := drivers.New(engine, cfg.Drivers, env.Log, env.Registry)
		accounts := teamsaccounts.New(cfg.TeamsAccounts, env.Topology.TeamsAccounts, env.Topology.AccountLeases, ring, env.Log, env.Registry)
		login := teamslogin.New(cfg.TeamsLogin, engine, env.Topology.Screenshots, env.Log, env.Registry)
		joiners := map[usherv1.Platform]driver.Joiner{
			usherv1.Platform_PLATFORM_ZOOM:  zoomjoin.New(tokens, byPlatform[usherv1.Platform_PLATFORM_ZOOM], env.Log),
			usherv1.Platform_PLATFORM_TEAMS: teamsjoin.New(cfg.TeamsJoin, byPlatform[usherv1.Platform_PLATFORM_TEAMS], accounts, sessions, login, env.Log),
			usherv1.Platform_PLATFORM_MEET:  driver.Anonymous{Driver: byPlatform[usherv1.Platform_PLATFORM_MEET]},
		}
		closeAll := func() error {
			tokens.Close()
			return errors.Join(sessions.Close(), engine.Close())
		}
		return joiners, closeAll, nil
	}
}
