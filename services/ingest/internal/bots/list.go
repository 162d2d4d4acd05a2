package bots

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/ids"
)

// PageSize is the number of bots in a list page (fixed, as in Attendee).
const PageSize = 25

// Filter selects bots in a list; the zero Filter selects all.
type Filter struct {
	// States keeps bots in any of these states.
	States []botstate.State
	// MeetingURL keeps bots with exactly this stored (normalised) URL.
	MeetingURL string
	// DeduplicationKey keeps bots with exactly this key, in any state.
	DeduplicationKey string
	// JoinAtAfter and JoinAtBefore keep bots whose join_at is strictly
	// after/before; bots without join_at drop out.
	JoinAtAfter, JoinAtBefore *time.Time
}

func (f Filter) empty() bool {
	return len(f.States) == 0 && f.MeetingURL == "" && f.DeduplicationKey == "" && f.JoinAtAfter == nil && f.JoinAtBefore == nil
}

func (f Filter) match(d *botdoc.Doc) bool {
	switch {
	case len(f.States) > 0 && !slices.Contains(f.States, d.State):
		return false
	case f.MeetingURL != "" && d.MeetingURL != f.MeetingURL:
		return false
	case f.DeduplicationKey != "" && d.DeduplicationKey != f.DeduplicationKey:
		return false
	case f.JoinAtAfter != nil && (d.JoinAt == nil || !d.JoinAt.After(*f.JoinAtAfter)):
		return false
	case f.JoinAtBefore != nil && (d.JoinAt == nil || !d.JoinAt.Before(*f.JoinAtBefore)):
		return false
	}
	return true
}

// Cursor is a position in a list: the page of bots older (Newer false) or
// newer (Newer true) than the bot ID.
type Cursor struct {
	Newer bool
	ID    string
}

// Encode renders the cursor as an opaque URL-safe string.
func (c Cursor) Encode() string {
	dir := "o"
	if c.Newer {
		dir = "n"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(dir + "|" + c.ID))
}

// DecodeCursor reads a cursor made by Encode; anything else is ErrInvalidCursor.
func DecodeCursor(s string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrInvalidCursor
	}
	dir, id, ok := strings.Cut(string(raw), "|")
	if !ok || (dir != "o" && dir != "n") || !ids.ValidBotID(id) {
		return Cursor{}, ErrInvalidCursor
	}
	return Cursor{Newer: dir == "n", ID: id}, nil
}

// Page is one page of a list, newest bot first.
type Page struct {
	Bots []*botdoc.Doc
	// Next leads to older bots, Previous to newer ones; nil when there are none.
	Next, Previous *Cursor
}

// List returns a page of the project's bots, newest first (bot ids are
// time-ordered, so the BOTS keys <project>.<bot_id> sorted descending are the
// order). It reads every key of the project and only the documents it needs.
func (s *Service) List(ctx context.Context, project string, f Filter, cur *Cursor) (Page, error) {
	all, err := s.botIDs(ctx, project)
	if err != nil {
		return Page{}, err
	}
	l := lister{s: s, project: project, f: f, ids: all}
	var page Page
	if cur != nil && cur.Newer {
		// ids[:end] are newer than the cursor; the page is the PageSize of
		// them nearest to it.
		end, _ := slices.BinarySearchFunc(all, cur.ID, func(id, target string) int { return strings.Compare(target, id) })
		docs, first, err := l.collect(ctx, end-1, -1)
		if err != nil {
			return Page{}, err
		}
		slices.Reverse(docs)
		page.Bots = docs
		if len(docs) > 0 {
			if page.Previous, err = l.cursorIf(ctx, first-1, -1, Cursor{Newer: true, ID: docs[0].ID}); err != nil {
				return Page{}, err
			}
			if page.Next, err = l.cursorIf(ctx, end, 1, Cursor{ID: docs[len(docs)-1].ID}); err != nil {
				return Page{}, err
			}
		}
		return page, nil
	}
	start := 0
	if cur != nil {
		// ids[start:] are older than the cursor.
		start, _ = slices.BinarySearchFunc(all, cur.ID, func(id, target string) int { return strings.Compare(target, id) })
		if start < len(all) && all[start] == cur.ID {
			start++
		}
	}
	docs, last, err := l.collect(ctx, start, 1)
	if err != nil {
		return Page{}, err
	}
	page.Bots = docs
	if len(docs) > 0 {
		if page.Next, err = l.cursorIf(ctx, last+1, 1, Cursor{ID: docs[len(docs)-1].ID}); err != nil {
			return Page{}, err
		}
		if cur != nil {
			if page.Previous, err = l.cursorIf(ctx, start-1, -1, Cursor{Newer: true, ID: docs[0].ID}); err != nil {
				return Page{}, err
			}
		}
	}
	return page, nil
}

// botIDs returns the project's bot ids, newest first.
func (s *Service) botIDs(ctx context.Context, project string) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lister, err := s.kv.ListKeysFiltered(ctx, project+".*")
	if err != nil {
		return nil, unavailable("list bots", err)
	}
	var out []string
	prefix := project + "."
	for key := range lister.Keys() {
		if id, ok := strings.CutPrefix(key, prefix); ok && ids.ValidBotID(id) {
			out = append(out, id)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, unavailable("list bots", err)
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out, nil
}

// lister walks a project's ids applying a filter.
type lister struct {
	s       *Service
	project string
	f       Filter
	ids     []string
}

// collect walks from index i in direction step (1: older, -1: newer) and
// returns up to PageSize matching documents and the index of the last one.
func (l *lister) collect(ctx context.Context, i, step int) ([]*botdoc.Doc, int, error) {
	var docs []*botdoc.Doc
	last := i
	for ; i >= 0 && i < len(l.ids) && len(docs) < PageSize; i += step {
		doc, err := l.s.Get(ctx, l.project, l.ids[i])
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the keys were listed
		}
		if err != nil {
			return nil, 0, err
		}
		if l.f.match(doc) {
			docs = append(docs, doc)
			last = i
		}
	}
	return docs, last, nil
}

// cursorIf returns &c when a matching bot exists from index i in direction step.
func (l *lister) cursorIf(ctx context.Context, i, step int, c Cursor) (*Cursor, error) {
	if l.f.empty() {
		if i >= 0 && i < len(l.ids) {
			return &c, nil
		}
		return nil, nil
	}
	for ; i >= 0 && i < len(l.ids); i += step {
		doc, err := l.s.Get(ctx, l.project, l.ids[i])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if l.f.match(doc) {
			return &c, nil
		}
	}
	return nil, nil
}
