// Package zoomjoin is the worker's driver.Joiner for Zoom: when a bot's job
// names a callback_settings.zoom_tokens_url it fetches fresh tokens from it
// (package zoomtoken) and joins signed in; without one it joins anonymously.
// Every callback outcome becomes a jobs.Permanent / jobs.Retry value with its
// public sub-code.
package zoomjoin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/jobs"
	"github.com/usherhq/usher/services/worker/internal/zoomtoken"
	"github.com/usherhq/usher/shared/botstate"
)

// TokenSource fetches fresh Zoom tokens for one join attempt;
// *zoomtoken.Client is one.
type TokenSource interface {
	Fetch(ctx context.Context, r zoomtoken.Request) (zoomtoken.Tokens, error)
}

// Joiner joins Zoom meetings, signed in when the job asks for it.
type Joiner struct {
	tokens TokenSource
	driver driver.Driver
	log    *slog.Logger
}

// New returns a Joiner driving d (the Zoom driver) with tokens from tokens.
func New(tokens TokenSource, d driver.Driver, log *slog.Logger) *Joiner {
	return &Joiner{tokens: tokens, driver: d, log: log}
}

// Join implements driver.Joiner. Tokens are fetched on every call (never
// cached: a ZAK lives minutes and a retried job may come hours later) and
// handed to the driver only.
func (j *Joiner) Join(ctx context.Context, job *usherv1.JoinJob, w driver.Watcher) (driver.Meeting, error) {
	if p := job.GetPlatform(); p != usherv1.Platform_PLATFORM_ZOOM {
		return nil, jobs.Permanent(botstate.SubInvalidJob, fmt.Errorf("zoom joiner given a %s job", p))
	}
	req := driver.RequestFor(job)
	tokensURL := job.GetCallbackSettings().GetZoomTokensUrl()
	if tokensURL == "" {
		j.log.Debug("zoom join anonymous", "bot_id", req.BotID, "project", req.Project)
		return j.join(ctx, req, w)
	}
	t, err := j.tokens.Fetch(ctx, zoomtoken.Request{
		URL:        tokensURL,
		BotID:      job.GetBotId(),
		Project:    job.GetProject(),
		MeetingURL: job.GetMeetingUrl(),
		Metadata:   job.GetMetadata(),
	})
	if err != nil {
		return nil, tokenFailure(err)
	}
	req.Zoom = &driver.ZoomIdentity{
		ZAK:               t.ZAK,
		OnBehalfToken:     t.OnBehalf,
		JoinToken:         t.Join,
		AppPrivilegeToken: t.AppPrivilege,
	}
	j.log.Debug("zoom join signed in", "bot_id", req.BotID, "project", req.Project, "identity", t)
	return j.join(ctx, req, w)
}

func (j *Joiner) join(ctx context.Context, req driver.JoinRequest, w driver.Watcher) (driver.Meeting, error) {
	m, err := j.driver.Join(ctx, req, w)
	if err != nil {
		return nil, fmt.Errorf("join zoom meeting: %w", err)
	}
	return m, nil
}

// tokenFailure decides a job's fate from a callback failure: transient kinds
// (5xx, timeouts, connection errors, an open breaker) are retried after the
// delay the client chose, with the sub-code the bot fails with if its join
// deadline passes first; the others fail the bot now, with the status and
// reason in the event's metadata. An error that is not a *zoomtoken.Error is
// the context ending: the lifecycle knows why and decides.
func tokenFailure(err error) error {
	var e *zoomtoken.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("fetch zoom tokens: %w", err)
	}
	if e.Transient() {
		return jobs.Retry(e.RetryAfter, e.SubCode(), err)
	}
	return jobs.PermanentMeta(e.SubCode(), e.Meta(), err)
}
