// Package botdoc is the bot document ingest keeps in the BOTS bucket
// (<project>.<bot_id>): the request a bot was created from, its state and its
// events, as projected from the EVENTS stream. It also renders the document
// as the API's bot object (Attendee's shape) and as a protobuf Bot, and
// builds the bot's join job.
package botdoc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/topology"
)

// Doc is a bot document.
type Doc struct {
	ID         string `json:"id"`
	Project    string `json:"project"`
	Platform   string `json:"platform"`
	MeetingURL string `json:"meeting_url"`
	Simulated  bool   `json:"simulated,omitempty"`
	BotName    string `json:"bot_name"`
	// Metadata is nil when the request had none.
	Metadata map[string]string `json:"metadata,omitempty"`
	// JoinAt is nil for an immediate bot.
	JoinAt       *time.Time `json:"join_at,omitempty"`
	JoinDeadline time.Time  `json:"join_deadline"`
	// DeduplicationKey is empty when not given; DedupKey is its index key.
	DeduplicationKey string `json:"deduplication_key,omitempty"`
	DedupKey         string `json:"dedup_index_key,omitempty"`
	// MsgIDKey is the index key of the NATS request's Nats-Msg-Id.
	MsgIDKey      string           `json:"msg_id_index_key,omitempty"`
	ZoomTokensURL string           `json:"zoom_tokens_url,omitempty"`
	Teams         botrequest.Teams `json:"teams_settings"`
	Leave         botrequest.Leave `json:"automatic_leave_settings"`
	State         botstate.State   `json:"state"`
	SubCode       string           `json:"sub_code,omitempty"`
	CreatedAt     time.Time        `json:"created_at"`
	LastSeq       uint64           `json:"last_seq"`
	Events        []Event          `json:"events,omitempty"`
}

// Event is one applied bot event.
type Event struct {
	Seq      uint64            `json:"seq"`
	OldState botstate.State    `json:"old_state"`
	NewState botstate.State    `json:"new_state"`
	SubCode  string            `json:"sub_code,omitempty"`
	At       time.Time         `json:"at"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// New builds the document of a bot about to be created.
func New(spec botrequest.Spec, project, id string, now time.Time, joinDeadline time.Duration) *Doc {
	// Stored as shown: the API renders microseconds.
	now = now.UTC().Truncate(time.Microsecond)
	d := &Doc{
		ID:               id,
		Project:          project,
		Platform:         topology.PlatformToken(spec.Meeting.Platform),
		MeetingURL:       spec.Meeting.URL,
		Simulated:        spec.Meeting.Simulated,
		BotName:          spec.BotName,
		Metadata:         spec.Metadata,
		JoinAt:           spec.JoinAt,
		DeduplicationKey: spec.DeduplicationKey,
		ZoomTokensURL:    spec.ZoomTokensURL,
		Teams:            spec.Teams,
		Leave:            spec.Leave,
		State:            botstate.Ready,
		CreatedAt:        now,
	}
	start := now
	if spec.JoinAt != nil {
		d.State = botstate.Scheduled
		start = *spec.JoinAt
	}
	d.JoinDeadline = start.Add(joinDeadline).UTC()
	if spec.DeduplicationKey != "" {
		d.DedupKey = DedupIndexKey(project, spec.DeduplicationKey)
	}
	return d
}

// DedupIndexKey is the BOTS key that holds the bot owning a deduplication
// key: dedup.<project>.<sha256 hex>.
func DedupIndexKey(project, dedupKey string) string {
	return "dedup." + project + "." + hashHex(dedupKey)
}

// MsgIDIndexKey is the BOTS key that remembers which bot a NATS request's
// Nats-Msg-Id created: msgid.<project>.<sha256 hex>.
func MsgIDIndexKey(project, msgID string) string {
	return "msgid." + project + "." + hashHex(msgID)
}

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Key is the document's key in BOTS.
func (d *Doc) Key() string { return topology.BotKey(d.Project, d.ID) }

// InitialState is the state before any event: scheduled for a bot with a
// join_at, else ready.
func (d *Doc) InitialState() botstate.State {
	if d.JoinAt != nil {
		return botstate.Scheduled
	}
	return botstate.Ready
}

// Unmarshal decodes a document read from the bucket.
func Unmarshal(data []byte) (*Doc, error) {
	var d Doc
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decode bot document: %w", err)
	}
	return &d, nil
}

// Outcome is what applying an event did.
type Outcome string

// Outcomes of Apply.
const (
	// Applied: the event was the next one and is now part of the document.
	Applied Outcome = "applied"
	// Duplicate: the event is already applied (a redelivery).
	Duplicate Outcome = "duplicate"
	// Gap: an earlier event has not been applied yet; retry later.
	Gap Outcome = "gap"
)

// Apply returns the document with ev applied, without changing d (which may
// be cached). Only event last_seq+1 applies; see Outcome.
func (d *Doc) Apply(ev *usherv1.BotEvent) (*Doc, Outcome) {
	switch {
	case ev.GetSeq() <= d.LastSeq:
		return d, Duplicate
	case ev.GetSeq() > d.LastSeq+1:
		return d, Gap
	}
	next := *d
	next.Events = append(slices.Clip(d.Events), Event{
		Seq:      ev.GetSeq(),
		OldState: botstate.State(ev.GetOldState()),
		NewState: botstate.State(ev.GetNewState()),
		SubCode:  ev.GetSubCode(),
		At:       ev.GetAt().AsTime().UTC(),
		Metadata: maps.Clone(ev.GetMetadata()),
	})
	next.LastSeq = ev.GetSeq()
	next.State = botstate.State(ev.GetNewState())
	next.SubCode = ev.GetSubCode()
	return &next, Applied
}

// AsOf returns the document as it was when event seq was applied: its
// events up to seq, and the state that event left. A document not past seq
// is returned as it is.
func (d *Doc) AsOf(seq uint64) *Doc {
	if d.LastSeq <= seq {
		return d
	}
	i := slices.IndexFunc(d.Events, func(e Event) bool { return e.Seq > seq })
	if i <= 0 || d.Events[i-1].Seq != seq {
		return d // events before seq are not all here: nothing to go back to
	}
	past := *d
	past.Events = slices.Clip(d.Events[:i])
	past.LastSeq = seq
	past.State, past.SubCode = d.Events[i-1].NewState, d.Events[i-1].SubCode
	return &past
}

// PlatformEnum is the document's platform as the protobuf enum.
func (d *Doc) PlatformEnum() usherv1.Platform {
	for _, p := range []usherv1.Platform{usherv1.Platform_PLATFORM_ZOOM, usherv1.Platform_PLATFORM_TEAMS, usherv1.Platform_PLATFORM_MEET} {
		if topology.PlatformToken(p) == d.Platform {
			return p
		}
	}
	return usherv1.Platform_PLATFORM_UNSPECIFIED
}

// Job is the bot's join job.
func (d *Doc) Job() *usherv1.JoinJob {
	job := &usherv1.JoinJob{
		BotId:        d.ID,
		Project:      d.Project,
		Platform:     d.PlatformEnum(),
		MeetingUrl:   d.MeetingURL,
		BotName:      d.BotName,
		Metadata:     d.Metadata,
		JoinDeadline: timestamppb.New(d.JoinDeadline),
		CreatedAt:    timestamppb.New(d.CreatedAt),
		TeamsSettings: &usherv1.TeamsSettings{
			UseLogin:  d.Teams.UseLogin,
			LoginMode: d.Teams.LoginMode,
		},
		AutomaticLeaveSettings: &usherv1.AutomaticLeaveSettings{
			WaitingRoomTimeoutSeconds:     d.Leave.WaitingRoomTimeoutSeconds,
			MaxDurationSeconds:            d.Leave.MaxDurationSeconds,
			OnlyParticipantTimeoutSeconds: d.Leave.OnlyParticipantTimeoutSeconds,
		},
		Simulated: d.Simulated,
	}
	if d.JoinAt != nil {
		job.JoinAt = timestamppb.New(*d.JoinAt)
	}
	if d.ZoomTokensURL != "" {
		job.CallbackSettings = &usherv1.CallbackSettings{ZoomTokensUrl: d.ZoomTokensURL}
	}
	return job
}
