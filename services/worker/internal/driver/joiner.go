package driver

import (
	"context"
	"time"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
)

// Joiner gets a bot into its meeting: it obtains the bot's identity for the
// platform (a fresh ZAK, a Teams session) and drives the platform's Driver.
// The worker's lifecycle holds one Joiner per platform. Errors follow the
// jobs package: jobs.Permanent / jobs.Retry values decide the job's fate, a
// *JoinError names a sub-code, anything else is retried.
type Joiner interface {
	Join(ctx context.Context, job *usherv1.JoinJob, w Watcher) (Meeting, error)
}

// Anonymous joins without an identity: the bot enters under its display name.
type Anonymous struct {
	Driver Driver
}

// Join implements Joiner.
func (a Anonymous) Join(ctx context.Context, job *usherv1.JoinJob, w Watcher) (Meeting, error) {
	return a.Driver.Join(ctx, RequestFor(job), w)
}

// DefaultAloneTimeout applies when the request does not set
// automatic_leave_settings.only_participant_timeout_seconds.
const DefaultAloneTimeout = 60 * time.Second

// RequestFor builds the anonymous JoinRequest of a job.
func RequestFor(job *usherv1.JoinJob) JoinRequest {
	alone := DefaultAloneTimeout
	if s := job.GetAutomaticLeaveSettings().GetOnlyParticipantTimeoutSeconds(); s > 0 {
		alone = time.Duration(s) * time.Second
	}
	return JoinRequest{
		BotID:        job.GetBotId(),
		Project:      job.GetProject(),
		BotName:      job.GetBotName(),
		Platform:     job.GetPlatform(),
		MeetingURL:   job.GetMeetingUrl(),
		Simulated:    job.GetSimulated(),
		AloneTimeout: alone,
	}
}
