// Package botevents writes and reads bot events on the EVENTS stream.
//
// Every event of a bot goes to usher.events.<project>.<bot_id> with a per-bot
// seq (1, 2, 3, ...) and is published with JetStream's
// Nats-Expected-Last-Subject-Sequence: a writer states which event it
// believes is the bot's last, and the server refuses the write if another
// writer (a second worker, or ingest handling a leave) got there first. So a
// bot's events are totally ordered, gap-free, and never written by two
// writers that disagree about its state. Nats-Msg-Id "ev:<bot_id>:<seq>"
// makes a retried publish land once.
package botevents

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/pubacks"
	"github.com/usherhq/usher/shared/topology"
)

// ErrConflict means another writer published an event for the bot since the
// cursor was read: read Last again and decide anew.
var ErrConflict = errors.New("bot event conflict: another writer moved the bot")

// ErrIllegalTransition is returned for a transition botstate forbids.
var ErrIllegalTransition = errors.New("illegal bot state transition")

// Cursor is what a writer knows about a bot's latest event.
type Cursor struct {
	Project string
	BotID   string
	// State is the bot's current state.
	State botstate.State
	// Seq is the per-bot seq of the last event (0 when there is none).
	Seq uint64
	// StreamSeq is the EVENTS stream sequence of the last event (0 when none).
	StreamSeq uint64
}

// Store publishes and reads bot events.
type Store struct {
	js     jetstream.JetStream
	events jetstream.Stream
}

// New returns a Store on the EVENTS stream (a handle from topology.Ensure,
// whose AllowDirect lets Last use direct gets).
func New(js jetstream.JetStream, events jetstream.Stream) *Store {
	return &Store{js: js, events: events}
}

// Last returns the cursor after the bot's last event. When the bot has no
// event yet, the cursor has Seq 0 and the given initial state (ready or
// scheduled, which the caller knows from the job or the bot document).
func (s *Store) Last(ctx context.Context, project, botID string, initial botstate.State) (Cursor, error) {
	cur := Cursor{Project: project, BotID: botID, State: initial}
	msg, err := s.events.GetLastMsgForSubject(ctx, topology.EventSubject(project, botID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return cur, nil
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("read last event of bot %s: %w", botID, err)
	}
	var ev usherv1.BotEvent
	if err := proto.Unmarshal(msg.Data, &ev); err != nil {
		return Cursor{}, fmt.Errorf("decode last event of bot %s: %w", botID, err)
	}
	cur.State = botstate.State(ev.GetNewState())
	cur.Seq = ev.GetSeq()
	cur.StreamSeq = msg.Sequence
	return cur, nil
}

// Change is one state change to publish.
type Change struct {
	To      botstate.State
	SubCode string
	// Meta is extra detail for the event; never secrets.
	Meta map[string]string
	// BotMetadata is the metadata given when the bot was created.
	BotMetadata map[string]string
	// At defaults to now.
	At time.Time
}

// Publish appends the change after cur and returns the new cursor. It returns
// ErrConflict when cur is no longer the bot's last event, and
// ErrIllegalTransition when the change is not a legal transition from cur.State.
func (s *Store) Publish(ctx context.Context, cur Cursor, ch Change) (Cursor, *usherv1.BotEvent, error) {
	msg, ev, err := s.message(cur, ch)
	if err != nil {
		return cur, nil, err
	}
	ack, err := s.js.PublishMsg(ctx, msg)
	return settle(cur, ch, ev, ack, err)
}

// Append is a change to publish after Cur.
type Append struct {
	Cur    Cursor
	Change Change
}

// Appended is what became of an Append: what Publish returns.
type Appended struct {
	Cur   Cursor
	Event *usherv1.BotEvent
	Err   error
}

// PublishMany publishes the changes of different bots, each as Publish
// does, every one sent before any is awaited: one round trip for all.
// Outcomes are in the order of apps.
func (s *Store) PublishMany(ctx context.Context, apps []Append) []Appended {
	out := make([]Appended, len(apps))
	sent := make([]*Sent, len(apps))
	futs := make([]jetstream.PubAckFuture, len(apps))
	for i, a := range apps {
		p, err := s.Send(a.Cur, a.Change)
		if err != nil {
			out[i] = Appended{Cur: a.Cur, Err: err}
			continue
		}
		sent[i], futs[i] = p, p.Ack
	}
	for i, r := range pubacks.Await(ctx, futs) {
		if sent[i] == nil {
			continue
		}
		cur, ev, err := sent[i].Settle(r.Ack, r.Err)
		out[i] = Appended{Cur: cur, Event: ev, Err: err}
	}
	return out
}

// Sent is a change published without waiting for the server's answer.
type Sent struct {
	// Prev is the cursor the change was published after.
	Prev Cursor
	// Change is what was published.
	Change Change
	// Ack resolves once the server answered (or the JetStream context's
	// async timeout passed). Read it once, then give the answer to Settle.
	Ack jetstream.PubAckFuture

	store *Store
	ev    *usherv1.BotEvent
}

// Send publishes the change after cur without waiting: what Publish returns
// comes from Settle, given the answer Ack brings. It refuses at once what
// Publish refuses before sending (an illegal transition, an unknown
// sub_code) and an async publish the client cannot take.
func (s *Store) Send(cur Cursor, ch Change) (*Sent, error) {
	msg, ev, err := s.message(cur, ch)
	if err != nil {
		return nil, err
	}
	fut, err := s.js.PublishMsgAsync(msg)
	if err != nil {
		return nil, fmt.Errorf("publish event %d of bot %s: %w", ev.Seq, cur.BotID, err)
	}
	return &Sent{Prev: cur, Change: ch, Ack: fut, store: s, ev: ev}, nil
}

// Settle turns the server's answer to a Send (ack, or err) into what
// Publish returns: the new cursor and the event, ErrConflict when another
// writer got there first, or the error. A duplicate ack re-reads the bot.
func (p *Sent) Settle(ack *jetstream.PubAck, err error) (Cursor, *usherv1.BotEvent, error) {
	return settle(p.Prev, p.Change, p.ev, ack, err)
}

// Check refuses, as Publish does before sending anything, a change that is
// not a legal transition from cur.State (ErrIllegalTransition) or has an
// unknown sub_code.
func Check(cur Cursor, ch Change) error {
	if !botstate.CanTransition(cur.State, ch.To) {
		return fmt.Errorf("%w: %s → %s for bot %s", ErrIllegalTransition, cur.State, ch.To, cur.BotID)
	}
	if !botstate.KnownSubCode(ch.SubCode) {
		return fmt.Errorf("unknown sub_code %q", ch.SubCode)
	}
	return nil
}

// message is the event that appends ch after cur, and how to publish it.
func (s *Store) message(cur Cursor, ch Change) (*nats.Msg, *usherv1.BotEvent, error) {
	if err := Check(cur, ch); err != nil {
		return nil, nil, err
	}
	at := ch.At
	if at.IsZero() {
		at = time.Now()
	}
	ev := &usherv1.BotEvent{
		BotId:       cur.BotID,
		Project:     cur.Project,
		Seq:         cur.Seq + 1,
		OldState:    string(cur.State),
		NewState:    string(ch.To),
		SubCode:     ch.SubCode,
		At:          timestamppb.New(at),
		BotMetadata: ch.BotMetadata,
		Metadata:    ch.Meta,
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return nil, nil, fmt.Errorf("encode event: %w", err)
	}
	// Only the headers the write needs: every header is encoded, scanned by
	// the server, stored and parsed again by every consumer, on the busiest
	// stream. Events are protobuf, the default without a Content-Type.
	//
	// No Nats-Msg-Id: the compare-and-set is the event's guard. JetStream
	// checks the expected sequence before the duplicate window, so a retry
	// of an event that landed is refused as a conflict either way, and an id
	// would only cost the stream its dedupe bookkeeping.
	msg := &nats.Msg{Subject: topology.EventSubject(cur.Project, cur.BotID), Data: data}
	pubacks.ExpectLastSequence(msg, cur.StreamSeq)
	return msg, ev, nil
}

// settle turns a publish's acknowledgement (or error) into Publish's result.
func settle(cur Cursor, ch Change, ev *usherv1.BotEvent, ack *jetstream.PubAck, err error) (Cursor, *usherv1.BotEvent, error) {
	if err != nil {
		if pubacks.WrongLastSequence(err) {
			return cur, nil, fmt.Errorf("publish event %d of bot %s: %w", ev.Seq, cur.BotID, ErrConflict)
		}
		return cur, nil, fmt.Errorf("publish event %d of bot %s: %w", ev.Seq, cur.BotID, err)
	}
	next := Cursor{Project: cur.Project, BotID: cur.BotID, State: ch.To, Seq: ev.Seq, StreamSeq: ack.Sequence}
	return next, ev, nil
}

// Decode decodes an event message body.
func Decode(data []byte) (*usherv1.BotEvent, error) {
	var ev usherv1.BotEvent
	if err := proto.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("decode bot event: %w", err)
	}
	return &ev, nil
}
