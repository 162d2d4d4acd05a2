// Package attend is the bot's life in its meeting, written once for every
// platform: join through the platform's driver.Joiner (identity + page
// steps), report the waiting room, stay until the meeting is over for the
// bot or it is told to leave, leave, and end. Handler implements
// jobs.Handler; the runtime around it owns leases, acks and retries.
package attend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/jobs"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/metrics"
	"github.com/usherhq/usher/shared/topology"
)

// DefaultWaitingRoomTimeout applies when the job does not set
// automatic_leave_settings.waiting_room_timeout_seconds.
const DefaultWaitingRoomTimeout = 900 * time.Second

// Config of the lifecycle.
type Config struct {
	// LeaveTimeout bounds leaving a meeting (Meeting.Leave). Default 15s.
	LeaveTimeout time.Duration `env:"USHER_WORKER_LEAVE_TIMEOUT" default:"15s"`
	// CrashRetryDelay is the redelivery delay of a bot whose browser crashed
	// before it joined. Default 2s.
	CrashRetryDelay time.Duration `env:"USHER_WORKER_CRASH_RETRY_DELAY" default:"2s"`
	// EventTimeout bounds publishing one event. Default 5s.
	EventTimeout time.Duration `env:"USHER_WORKER_EVENT_TIMEOUT" default:"5s"`
}

// Validate names the bad field.
func (c Config) Validate() error {
	switch {
	case c.LeaveTimeout <= 0:
		return fmt.Errorf("USHER_WORKER_LEAVE_TIMEOUT must be > 0, got %s", c.LeaveTimeout)
	case c.CrashRetryDelay <= 0:
		return fmt.Errorf("USHER_WORKER_CRASH_RETRY_DELAY must be > 0, got %s", c.CrashRetryDelay)
	case c.EventTimeout <= 0:
		return fmt.Errorf("USHER_WORKER_EVENT_TIMEOUT must be > 0, got %s", c.EventTimeout)
	}
	return nil
}

// Defaults returns the documented defaults.
func Defaults() Config {
	return Config{LeaveTimeout: 15 * time.Second, CrashRetryDelay: 2 * time.Second, EventTimeout: 5 * time.Second}
}

// Stop causes of the lifecycle's own timers.
var (
	errWaitingRoomTimeout = errors.New("waiting room timeout")
	errMaxDuration        = errors.New("max duration reached")
)

// Handler runs a bot's meeting lifecycle.
type Handler struct {
	cfg     Config
	joiners map[usherv1.Platform]driver.Joiner
	log     *slog.Logger
	joins   *prometheus.HistogramVec
}

// New returns a Handler joining through joiners (one per platform).
func New(cfg Config, joiners map[usherv1.Platform]driver.Joiner, log *slog.Logger, reg prometheus.Registerer) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Handler{
		cfg:     cfg,
		joiners: joiners,
		log:     log,
		joins: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usher_worker_join_duration_seconds",
			Help:    "Time to get a bot into its meeting (identity, pages, waiting room), by platform and result (joined, failed, stopped).",
			Buckets: metrics.SlowBuckets,
		}, []string{"platform", "result"}),
	}, nil
}

// Handle implements jobs.Handler.
func (h *Handler) Handle(ctx context.Context, bot *jobs.Bot) error {
	platform := bot.Job().GetPlatform()
	joiner := h.joiners[platform]
	if joiner == nil {
		return jobs.Permanent(botstate.SubInternalError, fmt.Errorf("no joiner for platform %s on this worker", topology.PlatformToken(platform)))
	}
	rejoin := false
	for {
		m, err := h.join(ctx, bot, joiner, rejoin)
		if err != nil || m == nil {
			return err
		}
		err = h.attend(ctx, bot, m)
		if !lostMeeting(err) {
			return err
		}
		if rejoin {
			return jobs.Permanent(botstate.SubBrowserCrashed, err)
		}
		select {
		case <-bot.LeaveRequested():
			return h.transition(ctx, bot, botstate.Ended, bot.LeaveSubCode(), nil)
		default:
		}
		rejoin = true
		bot.Log().Warn("meeting lost (browser crash or page lost): rejoining", "error", err)
		if err := h.transition(ctx, bot, botstate.Joining, "", crashMeta(err)); err != nil {
			return err
		}
	}
}

// join gets the bot into its meeting. A nil meeting with a nil error means
// the bot ended (a leave command during the join).
func (h *Handler) join(ctx context.Context, bot *jobs.Bot, joiner driver.Joiner, rejoin bool) (driver.Meeting, error) {
	start := time.Now()
	platform := topology.PlatformToken(bot.Job().GetPlatform())
	joinCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopLeave := bot.OnLeave(func() { cancel(jobs.ErrLeaveRequested) })
	defer stopLeave()
	wr := &waitingRoom{h: h, bot: bot, cancel: cancel, rejoin: rejoin}
	defer wr.stop()

	m, err := joiner.Join(joinCtx, bot.Job(), wr)
	wr.stop()
	cause := context.Cause(joinCtx)
	if err == nil {
		// Admitted just as the waiting-room timer fired: keep the meeting.
		if joinCtx.Err() != nil && !errors.Is(cause, errWaitingRoomTimeout) {
			h.joins.WithLabelValues(platform, "stopped").Observe(time.Since(start).Seconds())
			defer closeMeeting(bot, m)
			return nil, h.stopInMeeting(ctx, bot, m, cause)
		}
		if err := h.joined(ctx, bot); err != nil {
			h.joins.WithLabelValues(platform, "stopped").Observe(time.Since(start).Seconds())
			defer closeMeeting(bot, m)
			if errors.Is(err, jobs.ErrLeaveRequested) || errors.Is(err, jobs.ErrDraining) || errors.Is(err, jobs.ErrHandOff) || errors.Is(err, jobs.ErrLeaseLost) {
				return nil, h.stopInMeeting(ctx, bot, m, err)
			}
			h.leaveMeeting(ctx, bot, m)
			return nil, err
		}
		h.joins.WithLabelValues(platform, "joined").Observe(time.Since(start).Seconds())
		bot.Log().Info("bot joined", "join_seconds", time.Since(start).Seconds())
		return m, nil
	}

	h.joins.WithLabelValues(platform, "failed").Observe(time.Since(start).Seconds())
	switch {
	case errors.Is(cause, jobs.ErrLeaveRequested):
		return nil, h.transition(ctx, bot, botstate.Ended, bot.LeaveSubCode(), nil)
	case errors.Is(cause, errWaitingRoomTimeout):
		return nil, jobs.Permanent(botstate.SubWaitingRoomTimeout, err)
	case ctx.Err() != nil:
		return nil, context.Cause(ctx)
	}
	var je *driver.JoinError
	if errors.As(err, &je) {
		return nil, jobs.PermanentMeta(je.SubCode, map[string]string{"step": je.Step}, err)
	}
	if errors.Is(err, driver.ErrBrowserCrashed) {
		return nil, jobs.Retry(h.cfg.CrashRetryDelay, botstate.SubBrowserCrashed, err)
	}
	// Failure and RetryError values from the joiner pass as they are; any
	// other error is retried with the runtime's backoff.
	return nil, err
}

// attend keeps the bot in its meeting until it is over for the bot.
func (h *Handler) attend(ctx context.Context, bot *jobs.Bot, m driver.Meeting) error {
	defer closeMeeting(bot, m)
	stayCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopLeave := bot.OnLeave(func() { cancel(jobs.ErrLeaveRequested) })
	defer stopLeave()
	if s := bot.Job().GetAutomaticLeaveSettings().GetMaxDurationSeconds(); s > 0 {
		t := time.AfterFunc(time.Duration(s)*time.Second, func() { cancel(errMaxDuration) })
		defer t.Stop()
	}

	end, err := m.Wait(stayCtx)
	switch {
	case err == nil:
		return h.ended(ctx, bot, m, end)
	case lostMeeting(err):
		return err
	case stayCtx.Err() != nil:
		cause := context.Cause(stayCtx)
		if errors.Is(cause, errMaxDuration) {
			return h.leave(ctx, bot, m, botstate.SubAutoLeaveMaxDuration)
		}
		return h.stopInMeeting(ctx, bot, m, cause)
	}
	h.leaveMeeting(ctx, bot, m)
	return fmt.Errorf("meeting of bot %s: %w", bot.Job().GetBotId(), err)
}

// ended records how the meeting ended for the bot.
func (h *Handler) ended(ctx context.Context, bot *jobs.Bot, m driver.Meeting, end driver.End) error {
	bot.Log().Info("meeting over for the bot", "reason", string(end.Reason), "detail", end.Detail)
	switch end.Reason {
	case driver.EndRemoved:
		return h.transition(ctx, bot, botstate.Ended, botstate.SubRemovedFromMeeting, nil)
	case driver.EndAlone:
		return h.leave(ctx, bot, m, botstate.SubAutoLeaveAlone)
	default:
		return h.transition(ctx, bot, botstate.Ended, botstate.SubMeetingEnded, nil)
	}
}

// stopInMeeting handles a stop cause with the bot in its meeting.
func (h *Handler) stopInMeeting(ctx context.Context, bot *jobs.Bot, m driver.Meeting, cause error) error {
	switch {
	case errors.Is(cause, jobs.ErrLeaveRequested):
		// The runtime recorded leaving when it accepted the command.
		h.leaveMeeting(ctx, bot, m)
		return h.transition(ctx, bot, botstate.Ended, bot.LeaveSubCode(), nil)
	case errors.Is(cause, jobs.ErrLeaseLost):
		// Stop at once: the meeting is closed by the caller, nothing is written.
		return cause
	default:
		// Draining: out of the meeting before another worker rejoins.
		h.leaveMeeting(ctx, bot, m)
		return cause
	}
}

// leave goes through leaving (sub_code = why) and ends the bot.
func (h *Handler) leave(ctx context.Context, bot *jobs.Bot, m driver.Meeting, subCode string) error {
	if err := h.transition(ctx, bot, botstate.Leaving, subCode, nil); err != nil && bot.State() != botstate.Leaving {
		h.leaveMeeting(ctx, bot, m)
		return err
	}
	h.leaveMeeting(ctx, bot, m)
	return h.transition(ctx, bot, botstate.Ended, subCode, nil)
}

// leaveMeeting leaves the way a person would, bounded by LeaveTimeout.
func (h *Handler) leaveMeeting(ctx context.Context, bot *jobs.Bot, m driver.Meeting) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.LeaveTimeout)
	defer cancel()
	if err := m.Leave(lctx); err != nil {
		bot.Log().Warn("leave meeting failed; closing it", "error", err)
	}
}

func (h *Handler) transition(ctx context.Context, bot *jobs.Bot, to botstate.State, subCode string, meta map[string]string) error {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.EventTimeout)
	defer cancel()
	return bot.Transition(ectx, to, subCode, meta)
}

// joined records the join (and acks the job) with a context that a stop
// signal racing the join cannot cut short: the runtime refuses what it must.
func (h *Handler) joined(ctx context.Context, bot *jobs.Bot) error {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.EventTimeout)
	defer cancel()
	return bot.Joined(ectx)
}

func closeMeeting(bot *jobs.Bot, m driver.Meeting) {
	if err := m.Close(); err != nil {
		bot.Log().Warn("close meeting failed", "error", err)
	}
}

// lostMeeting reports whether the bot lost its meeting to its browser (a
// crash, or a page that stopped showing the meeting): it rejoins once.
func lostMeeting(err error) bool {
	return errors.Is(err, driver.ErrBrowserCrashed) || errors.Is(err, driver.ErrPageLost)
}

// crashMeta marks a rejoin after a lost meeting. The reaper relies on
// reason browser_crashed (the job was acked already); cause tells a lost
// page from a crashed browser.
func crashMeta(err error) map[string]string {
	meta := map[string]string{"reason": botstate.SubBrowserCrashed}
	if errors.Is(err, driver.ErrPageLost) && !errors.Is(err, driver.ErrBrowserCrashed) {
		meta["cause"] = "page_lost"
	}
	return meta
}

// waitingRoom is the join's driver.Watcher: it records waiting_room and
// starts the waiting-room timer the first time the bot is lobbied.
type waitingRoom struct {
	h      *Handler
	bot    *jobs.Bot
	cancel context.CancelCauseFunc
	rejoin bool

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

// WaitingRoom implements driver.Watcher.
func (w *waitingRoom) WaitingRoom(ctx context.Context) {
	var meta map[string]string
	if w.rejoin {
		// Marks a rejoin whose job was already acked, for the reaper.
		meta = crashMeta(nil)
	}
	if w.bot.State() != botstate.WaitingRoom {
		if err := w.h.transition(ctx, w.bot, botstate.WaitingRoom, "", meta); err != nil {
			w.bot.Log().Warn("waiting room not recorded", "error", err)
		}
	}
	timeout := DefaultWaitingRoomTimeout
	if s := w.bot.Job().GetAutomaticLeaveSettings().GetWaitingRoomTimeoutSeconds(); s > 0 {
		timeout = time.Duration(s) * time.Second
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer == nil && !w.stopped {
		w.timer = time.AfterFunc(timeout, func() { w.cancel(errWaitingRoomTimeout) })
	}
}

func (w *waitingRoom) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
}
