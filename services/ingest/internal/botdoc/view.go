package botdoc

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/botstate"
)

// View is the API's bot object: Attendee's nine keys in Attendee's order
// (transcription_state and recording_state are null: Usher does not record),
// then Usher's bot_name, sub_code and created_at.
type View struct {
	ID                 string            `json:"id"`
	Metadata           map[string]string `json:"metadata"`
	MeetingURL         string            `json:"meeting_url"`
	State              string            `json:"state"`
	Events             []EventView       `json:"events"`
	TranscriptionState *string           `json:"transcription_state"`
	RecordingState     *string           `json:"recording_state"`
	JoinAt             *string           `json:"join_at"`
	DeduplicationKey   *string           `json:"deduplication_key"`
	BotName            string            `json:"bot_name"`
	SubCode            *string           `json:"sub_code"`
	CreatedAt          string            `json:"created_at"`
}

// EventView is one item of the bot object's events: Attendee's type,
// created_at and sub_type (only when there is a sub-code), then Usher's seq,
// states, sub_code and metadata.
type EventView struct {
	Type      string            `json:"type"`
	CreatedAt string            `json:"created_at"`
	SubType   string            `json:"sub_type,omitempty"`
	Seq       uint64            `json:"seq"`
	OldState  string            `json:"old_state"`
	NewState  string            `json:"new_state"`
	SubCode   string            `json:"sub_code,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// View renders the document as the API's bot object.
func (d *Doc) View() View {
	v := View{
		ID:         d.ID,
		Metadata:   d.Metadata,
		MeetingURL: d.MeetingURL,
		State:      string(d.State),
		Events:     make([]EventView, 0, len(d.Events)),
		BotName:    d.BotName,
		CreatedAt:  FormatTime(d.CreatedAt),
	}
	for _, e := range d.Events {
		v.Events = append(v.Events, EventView{
			Type:      botstate.EventType(e.OldState, e.NewState),
			CreatedAt: FormatTime(e.At),
			SubType:   e.SubCode,
			Seq:       e.Seq,
			OldState:  string(e.OldState),
			NewState:  string(e.NewState),
			SubCode:   e.SubCode,
			Metadata:  e.Metadata,
		})
	}
	if d.JoinAt != nil {
		s := FormatTime(*d.JoinAt)
		v.JoinAt = &s
	}
	if d.DeduplicationKey != "" {
		k := d.DeduplicationKey
		v.DeduplicationKey = &k
	}
	if d.SubCode != "" {
		c := d.SubCode
		v.SubCode = &c
	}
	return v
}

// FormatTime renders t as Attendee does: UTC, a Z suffix, microseconds only
// when they are not zero (2026-08-21T09:00:01.482913Z, 2026-08-21T09:00:00Z).
func FormatTime(t time.Time) string {
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05.000000Z")
}

// Proto renders the document as a protobuf Bot.
func (d *Doc) Proto() *usherv1.Bot {
	b := &usherv1.Bot{
		Id:               d.ID,
		Project:          d.Project,
		MeetingUrl:       d.MeetingURL,
		Platform:         d.Platform,
		BotName:          d.BotName,
		Metadata:         d.Metadata,
		DeduplicationKey: d.DeduplicationKey,
		State:            string(d.State),
		SubCode:          d.SubCode,
		CreatedAt:        timestamppb.New(d.CreatedAt),
	}
	if d.JoinAt != nil {
		b.JoinAt = timestamppb.New(*d.JoinAt)
	}
	for _, e := range d.Events {
		b.Events = append(b.Events, &usherv1.BotEvent{
			BotId:       d.ID,
			Project:     d.Project,
			Seq:         e.Seq,
			OldState:    string(e.OldState),
			NewState:    string(e.NewState),
			SubCode:     e.SubCode,
			At:          timestamppb.New(e.At),
			BotMetadata: d.Metadata,
			Metadata:    e.Metadata,
		})
	}
	return b
}
