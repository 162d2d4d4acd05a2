package bots

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/services/ingest/internal/botindex"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/topology"
)

// undo is what a failed create must take back. Every step is idempotent, so
// an undo can be retried until it is complete.
type undo struct {
	doc        *botdoc.Doc
	docWritten bool
	claims     []claim
	// jobMaybeQueued: the job publish timed out, so the job may be stored.
	jobMaybeQueued bool
}

// rollback undoes a create that answers an error. What cannot be undone now
// (JetStream is away) is retried in the background by Run.
func (s *Service) rollback(ctx context.Context, u undo) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.undo(ctx, u)
	if !u.docWritten {
		// Only index claims to take back (a duplicate, or no JetStream):
		// nothing was created, nothing to report.
		if err != nil {
			s.enqueueUndo(u, err)
		}
		return
	}
	if err != nil {
		s.enqueueUndo(u, err)
		return
	}
	s.metrics.rollbacks.WithLabelValues(rollbackClean).Inc()
	s.log.Warn("create rolled back", "bot_id", u.doc.ID, "project", u.doc.Project)
}

func (s *Service) enqueueUndo(u undo, err error) {
	s.log.Warn("create rollback incomplete, retrying in the background", "bot_id", u.doc.ID, "project", u.doc.Project, "error", err)
	select {
	case s.undos <- u:
	default:
		s.metrics.rollbacks.WithLabelValues(rollbackIncomplete).Inc()
		s.log.Error("create rollback abandoned: retry queue full", "bot_id", u.doc.ID, "project", u.doc.Project)
	}
}

// undo takes the create back. When the job may have been stored although
// its publish failed, a terminal event is written first: the worker that
// claims that job then sees a finished bot and acks it without joining.
func (s *Service) undo(ctx context.Context, u undo) error {
	doc := u.doc
	var errs []error
	if u.jobMaybeQueued {
		cur := botevents.Cursor{Project: doc.Project, BotID: doc.ID, State: doc.InitialState()}
		_, _, err := s.events.Publish(ctx, cur, botevents.Change{
			To:          botstate.Failed,
			SubCode:     botstate.SubInternalError,
			Meta:        map[string]string{"reason": "create_aborted"},
			BotMetadata: doc.Metadata,
		})
		if errors.Is(err, botevents.ErrConflict) {
			err = nil // an earlier attempt (or nobody else: the bot is unknown) wrote it
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("write aborted event: %w", err))
		}
		if doc.JoinAt != nil {
			if err := s.jobs.Purge(ctx, jetstream.WithPurgeSubject(topology.ScheduleSubject(doc.ID))); err != nil {
				errs = append(errs, fmt.Errorf("purge schedule: %w", err))
			}
		}
	}
	if u.docWritten {
		if err := s.kv.Delete(ctx, doc.Key()); err != nil {
			errs = append(errs, fmt.Errorf("delete document: %w", err))
		}
	}
	for _, c := range u.claims {
		if err := botindex.ReleaseRevision(ctx, s.kv, c.key, c.rev); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run retries incomplete rollbacks until ctx is done, then gives each one
// still pending a last attempt. Those that fail are logged: their documents
// stay (in state ready or scheduled, with no job) until a leave ends them.
// Run it until every caller of Create has returned.
func (s *Service) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			s.finishUndos(ctx)
			return nil
		case u := <-s.undos:
			if !s.retryUndo(ctx, u) {
				s.lastUndo(ctx, u)
			}
		}
	}
}

// retryUndo retries u until it completes (true) or ctx is done (false).
func (s *Service) retryUndo(ctx context.Context, u undo) bool {
	backoff := 250 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.undo(actx, u)
		cancel()
		if err == nil {
			if u.docWritten {
				s.metrics.rollbacks.WithLabelValues(rollbackClean).Inc()
				s.log.Warn("create rolled back", "bot_id", u.doc.ID, "project", u.doc.Project)
			}
			return true
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// finishUndos gives every pending rollback a last attempt.
func (s *Service) finishUndos(ctx context.Context) {
	for {
		select {
		case u := <-s.undos:
			s.lastUndo(ctx, u)
		default:
			return
		}
	}
}

func (s *Service) lastUndo(ctx context.Context, u undo) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.undo(ctx, u); err != nil {
		s.metrics.rollbacks.WithLabelValues(rollbackIncomplete).Inc()
		s.log.Error("create rollback abandoned at shutdown", "bot_id", u.doc.ID, "project", u.doc.Project, "error", err)
		return
	}
	if u.docWritten {
		s.metrics.rollbacks.WithLabelValues(rollbackClean).Inc()
	}
}
