package jobs

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/ids"
	"github.com/usherhq/usher/shared/topology"
)

// ErrInvalidJob is wrapped by every decode or validation error of a job.
var ErrInvalidJob = errors.New("invalid join job")

// JobIDs is what could be read of a job, to report an invalid one on its bot.
type JobIDs struct {
	BotID, Project string
}

// Readable reports whether the ids are valid, so the bot can be told it failed.
func (j JobIDs) Readable() bool { return ids.ValidBotID(j.BotID) && topology.ValidProject(j.Project) }

// DecodeJob decodes and checks a JoinJob. On error it also returns the bot
// id and project when they could be read, so the bot can be failed with
// invalid_job instead of being left waiting.
func DecodeJob(data []byte) (*usherv1.JoinJob, JobIDs, error) {
	var job usherv1.JoinJob
	if err := proto.Unmarshal(data, &job); err != nil {
		return nil, scanIDs(data), fmt.Errorf("%w: decode: %w", ErrInvalidJob, err)
	}
	got := JobIDs{BotID: job.GetBotId(), Project: job.GetProject()}
	switch {
	case !ids.ValidBotID(job.GetBotId()):
		return nil, got, fmt.Errorf("%w: bot_id %q is not a bot id", ErrInvalidJob, job.GetBotId())
	case !topology.ValidProject(job.GetProject()):
		return nil, got, fmt.Errorf("%w: project %q is not a project name", ErrInvalidJob, job.GetProject())
	case job.GetPlatform() == usherv1.Platform_PLATFORM_UNSPECIFIED || topology.PlatformToken(job.GetPlatform()) == "unknown":
		return nil, got, fmt.Errorf("%w: platform %d is not zoom, teams or meet", ErrInvalidJob, job.GetPlatform())
	case job.GetMeetingUrl() == "":
		return nil, got, fmt.Errorf("%w: meeting_url is empty", ErrInvalidJob)
	}
	return &job, got, nil
}

// scanIDs reads fields 1 (bot_id) and 2 (project) of a JoinJob that does not
// decode as a whole, stopping at the first malformed field.
func scanIDs(b []byte) JobIDs {
	var out JobIDs
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return out
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return out
			}
			if num == 1 {
				out.BotID = string(v)
			} else {
				out.Project = string(v)
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return out
		}
		b = b[n:]
	}
	return out
}
