package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/topology"
)

// handOffJob copies job with a fresh join window starting at now: the
// original deadline is long gone for a bot that spent an hour in its meeting.
func handOffJob(job *usherv1.JoinJob, fallback time.Duration, now time.Time) *usherv1.JoinJob {
	next := proto.CloneOf(job)
	window := fallback
	if dl := job.GetJoinDeadline(); dl != nil {
		start := job.GetCreatedAt()
		if job.GetJoinAt() != nil {
			start = job.GetJoinAt()
		}
		if start != nil {
			if w := dl.AsTime().Sub(start.AsTime()); w > 0 {
				window = w
			}
		}
	}
	next.JoinDeadline = timestamppb.New(now.Add(window))
	return next
}

// publishJoinJob publishes a job on its platform's subject.
func publishJoinJob(ctx context.Context, js jetstream.JetStream, job *usherv1.JoinJob, msgID string) error {
	data, err := proto.Marshal(job)
	if err != nil {
		return fmt.Errorf("encode job of bot %s: %w", job.GetBotId(), err)
	}
	// Jobs are protobuf, the default without a Content-Type header.
	msg := &nats.Msg{Subject: topology.JobSubject(job.GetPlatform()), Data: data, Header: nats.Header{}}
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(topology.StreamJobs)); err != nil {
		return fmt.Errorf("publish job of bot %s: %w", job.GetBotId(), err)
	}
	return nil
}
