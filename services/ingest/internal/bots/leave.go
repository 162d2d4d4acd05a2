package bots

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/services/ingest/internal/botindex"
	"github.com/usherhq/usher/shared/botcontrol"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/topology"
)

// decisionAttempts bounds how often a leave or delete re-reads the bot after
// losing a race with another event writer.
const decisionAttempts = 4

// Leave asks the bot to leave its meeting (design.md "Leave"). The worker
// holding the bot answers the LeaveCommand after emitting leaving; when no
// worker holds it (ready, scheduled, or between workers) ingest ends the bot
// itself with sub_code user_requested, and purges a scheduled bot's schedule.
// A finished bot gives a *StateError. The document returned shows the new
// state (read back once the projector applied it, as of that event, or
// built from the event).
func (s *Service) Leave(ctx context.Context, project, id string) (*botdoc.Doc, error) {
	doc, err := s.Get(ctx, project, id)
	if err != nil {
		return nil, err
	}
	var refused *LeaveRefusedError
	for attempt := range decisionAttempts {
		cur, err := s.events.Last(ctx, project, id, doc.InitialState())
		if err != nil {
			s.metrics.leaves.WithLabelValues(leaveUnavailable).Inc()
			return nil, unavailable(fmt.Sprintf("read events of bot %s", id), err)
		}
		switch {
		case cur.State.Terminal():
			s.metrics.leaves.WithLabelValues(leaveTerminal).Inc()
			return nil, &StateError{Op: "leave", State: cur.State}
		case cur.State == botstate.Leaving:
			s.metrics.leaves.WithLabelValues(leaveAlready).Inc()
			return s.awaitProjection(ctx, doc, cur.Seq, nil), nil
		}
		reply, err := s.sendLeave(ctx, project, id)
		switch {
		case err == nil && reply.GetAccepted():
			s.metrics.leaves.WithLabelValues(leaveWorker).Inc()
			ev := &usherv1.BotEvent{
				Seq: reply.GetSeq(), OldState: string(cur.State), NewState: reply.GetState(),
				SubCode: botstate.SubUserRequested, At: timestamppb.Now(),
			}
			return s.awaitProjection(ctx, doc, reply.GetSeq(), ev), nil
		case err == nil:
			state := botstate.State(reply.GetState())
			if state.Terminal() {
				s.metrics.leaves.WithLabelValues(leaveTerminal).Inc()
				return nil, &StateError{Op: "leave", State: state}
			}
			// The worker cannot take it now (it is letting the bot go, lost
			// its lease, or lost a race): decide again in a moment.
			refused = &LeaveRefusedError{State: state, Reason: reply.GetError()}
			if !sleep(ctx, time.Duration(attempt+1)*100*time.Millisecond) {
				return nil, ctx.Err()
			}
			continue
		case errors.Is(err, nats.ErrNoResponders):
			// Nobody holds the bot (no lease, a hand-off, or a worker that is
			// gone or no longer serves it): end it here. A worker that claims its job
			// later sees the terminal state and acks without joining.
			next, ev, err := s.events.Publish(ctx, cur, botevents.Change{
				To:          botstate.Ended,
				SubCode:     botstate.SubUserRequested,
				BotMetadata: doc.Metadata,
			})
			if errors.Is(err, botevents.ErrConflict) || errors.Is(err, botevents.ErrIllegalTransition) {
				continue // a worker just moved the bot: decide again
			}
			if err != nil {
				s.metrics.leaves.WithLabelValues(leaveUnavailable).Inc()
				return nil, unavailable(fmt.Sprintf("end bot %s", id), err)
			}
			s.metrics.leaves.WithLabelValues(leaveNoWorker).Inc()
			if doc.JoinAt != nil {
				s.purgeSchedule(ctx, id)
			}
			return s.awaitProjection(ctx, doc, next.Seq, ev), nil
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			s.metrics.leaves.WithLabelValues(leaveTimeout).Inc()
			return nil, fmt.Errorf("leave bot %s: %w", id, ErrWorkerTimeout)
		default:
			s.metrics.leaves.WithLabelValues(leaveUnavailable).Inc()
			return nil, unavailable(fmt.Sprintf("send leave to bot %s", id), err)
		}
	}
	if refused != nil {
		s.metrics.leaves.WithLabelValues(leaveRefused).Inc()
		return nil, refused
	}
	s.metrics.leaves.WithLabelValues(leaveUnavailable).Inc()
	return nil, fmt.Errorf("leave bot %s: %w: its state keeps changing", id, ErrUnavailable)
}

// sleep waits d, or less if ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// sendLeave asks the worker holding the bot (named by its lease) to leave;
// botcontrol.ErrNotHeld (a nats.ErrNoResponders) when no worker holds it.
func (s *Service) sendLeave(ctx context.Context, project, id string) (*usherv1.ControlReply, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.LeaveTimeout)
	defer cancel()
	return botcontrol.Leave(rctx, s.nc, s.leases, project, id, botstate.SubUserRequested)
}

// awaitProjection returns the bot once the projector has applied event seq,
// waiting up to ProjectionWait. If the projector is slower, it returns the
// latest document with ev applied (or, without ev, as it is).
func (s *Service) awaitProjection(ctx context.Context, doc *botdoc.Doc, seq uint64, ev *usherv1.BotEvent) *botdoc.Doc {
	if doc.LastSeq >= seq {
		return doc.AsOf(seq)
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.ProjectionWait)
	defer cancel()
	latest := doc
	if w, err := s.kv.Watch(wctx, doc.Key()); err == nil {
		defer func() { _ = w.Stop() }()
	wait:
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					break wait
				}
				if e == nil || e.Operation() != jetstream.KeyValuePut {
					continue
				}
				d, err := botdoc.Unmarshal(e.Value())
				if err != nil {
					break wait
				}
				latest = d
				if d.LastSeq >= seq {
					// The bot may have moved on already (a quick leave's
					// leaving and ended share one write): answer with the
					// state this request produced.
					return d.AsOf(seq)
				}
			case <-wctx.Done():
				break wait
			}
		}
	}
	if ev != nil {
		if next, outcome := latest.Apply(ev); outcome == botdoc.Applied {
			return next
		}
		cp := *latest
		cp.State, cp.SubCode = botstate.State(ev.GetNewState()), ev.GetSubCode()
		return &cp
	}
	return latest
}

func (s *Service) purgeSchedule(ctx context.Context, id string) {
	if err := s.jobs.Purge(ctx, jetstream.WithPurgeSubject(topology.ScheduleSubject(id))); err != nil {
		// Harmless if it fires: the worker sees the finished bot and acks.
		s.log.Warn("purge schedule", "bot_id", id, "error", err)
	}
}

// Delete deletes a scheduled bot: it ends the bot (so a schedule that fires
// anyway is acked unjoined), purges its schedule, and deletes its document
// and index keys. A bot in any other state gives a *StateError.
func (s *Service) Delete(ctx context.Context, project, id string) error {
	doc, err := s.Get(ctx, project, id)
	if err != nil {
		return err
	}
	for range decisionAttempts {
		cur, err := s.events.Last(ctx, project, id, doc.InitialState())
		if err != nil {
			return unavailable(fmt.Sprintf("read events of bot %s", id), err)
		}
		if cur.State != botstate.Scheduled {
			return &StateError{Op: "delete", State: cur.State}
		}
		_, _, err = s.events.Publish(ctx, cur, botevents.Change{
			To:          botstate.Ended,
			SubCode:     botstate.SubUserRequested,
			Meta:        map[string]string{"reason": "deleted"},
			BotMetadata: doc.Metadata,
		})
		if errors.Is(err, botevents.ErrConflict) {
			continue
		}
		if err != nil {
			return unavailable(fmt.Sprintf("end bot %s", id), err)
		}
		s.purgeSchedule(ctx, id)
		if err := s.kv.Delete(ctx, doc.Key()); err != nil {
			return unavailable(fmt.Sprintf("delete bot %s", id), err)
		}
		for _, key := range []string{doc.DedupKey, doc.MsgIDKey} {
			if key == "" {
				continue
			}
			if err := botindex.Release(ctx, s.kv, key, id); err != nil {
				s.log.Warn("release index of deleted bot", "bot_id", id, "error", err)
			}
		}
		s.metrics.deletes.Inc()
		return nil
	}
	return fmt.Errorf("delete bot %s: %w: its state keeps changing", id, ErrUnavailable)
}
