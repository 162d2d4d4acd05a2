// Package drivers puts the browser drivers together: one driver.Driver per
// platform (Zoom web, Teams, Meet), all sharing the worker's browser engine
// and one set of metrics. The app plugs the map into the lifecycle:
//
//	eng := browser.New(cfg.Browser, log, reg)
//	byPlatform := drivers.New(eng, cfg.Drivers, log, reg)
//	joiners[usherv1.Platform_PLATFORM_MEET] = driver.Anonymous{Driver: byPlatform[usherv1.Platform_PLATFORM_MEET]}
//
// Zoom and Teams joiners wrap their driver with the identity they fetch
// (ZoomIdentity, TeamsIdentity on the JoinRequest).
package drivers

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/drivers/meet"
	"github.com/usherhq/usher/services/worker/internal/drivers/teams"
	"github.com/usherhq/usher/services/worker/internal/drivers/webjoin"
	"github.com/usherhq/usher/services/worker/internal/drivers/zoom"
)

// Config of the browser drivers (USHER_DRIVER_STEP_TIMEOUT,
// USHER_DRIVER_POLL_INTERVAL, USHER_DRIVER_LEAVE_TIMEOUT).
type Config = webjoin.Config

// New returns the browser driver of each platform. It registers the
// drivers' metrics on reg (nil: not exported), so call it once per registry.
func New(opener webjoin.Opener, cfg Config, log *slog.Logger, reg prometheus.Registerer) map[usherv1.Platform]driver.Driver {
	m := webjoin.NewMetrics(reg)
	return map[usherv1.Platform]driver.Driver{
		usherv1.Platform_PLATFORM_ZOOM:  zoom.New(opener, cfg, m, log),
		usherv1.Platform_PLATFORM_TEAMS: teams.New(opener, cfg, m, log),
		usherv1.Platform_PLATFORM_MEET:  meet.New(opener, cfg, m, log),
	}
}
