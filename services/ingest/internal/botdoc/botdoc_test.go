package botdoc_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/meetingurl"
)

var created = time.Date(2026, 8, 21, 9, 0, 1, 482913000, time.UTC)

func newDoc(t *testing.T, joinAt *time.Time) *botdoc.Doc {
	t.Helper()
	m, err := meetingurl.Parse("https://meet.google.com/abc-defg-hij", meetingurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec := botrequest.Spec{Meeting: m, BotName: "Bot", JoinAt: joinAt, DeduplicationKey: "k",
		Teams: botrequest.Teams{LoginMode: "always"}, Leave: botrequest.Leave{WaitingRoomTimeoutSeconds: 900, OnlyParticipantTimeoutSeconds: 60}}
	return botdoc.New(spec, "acme", "bot_0000000000000001", created, 10*time.Minute)
}

func event(seq uint64, from, to botstate.State, sub string) *usherv1.BotEvent {
	return &usherv1.BotEvent{BotId: "bot_0000000000000001", Project: "acme", Seq: seq, OldState: string(from), NewState: string(to),
		SubCode: sub, At: timestamppb.New(created.Add(time.Duration(seq) * time.Second))}
}

func TestApplyIsOrderedAndIdempotent(t *testing.T) {
	t.Parallel()
	d := newDoc(t, nil)
	if _, o := d.Apply(event(2, botstate.Joining, botstate.Joined, "")); o != botdoc.Gap {
		t.Fatalf("seq 2 first: %s, want gap", o)
	}
	d1, o := d.Apply(event(1, botstate.Ready, botstate.Joining, ""))
	if o != botdoc.Applied || d1.LastSeq != 1 || d1.State != botstate.Joining || len(d1.Events) != 1 {
		t.Fatalf("seq 1: %s, %+v", o, d1)
	}
	if d.LastSeq != 0 || len(d.Events) != 0 || d.State != botstate.Ready {
		t.Fatalf("Apply changed the original document: %+v", d)
	}
	if _, o := d1.Apply(event(1, botstate.Ready, botstate.Joining, "")); o != botdoc.Duplicate {
		t.Fatalf("seq 1 again: %s, want duplicate", o)
	}
	d2, _ := d1.Apply(event(2, botstate.Joining, botstate.Failed, botstate.SubMeetingNotFound))
	d2b, _ := d1.Apply(event(2, botstate.Joining, botstate.Joined, ""))
	if d2.Events[1].NewState != botstate.Failed || d2b.Events[1].NewState != botstate.Joined || d2.SubCode != botstate.SubMeetingNotFound {
		t.Fatalf("two documents derived from one share their events: %+v / %+v", d2.Events, d2b.Events)
	}
}

// TestAsOfGoesBackToAnEvent: a leave that finds leaving and ended applied
// in one write answers with the document as leaving left it.
func TestAsOfGoesBackToAnEvent(t *testing.T) {
	t.Parallel()
	d := newDoc(t, nil)
	for _, ev := range []*usherv1.BotEvent{
		event(1, botstate.Ready, botstate.Joining, ""),
		event(2, botstate.Joining, botstate.Leaving, botstate.SubUserRequested),
		event(3, botstate.Leaving, botstate.Ended, botstate.SubUserRequested),
	} {
		d, _ = d.Apply(ev)
	}
	past := d.AsOf(2)
	if past.State != botstate.Leaving || past.SubCode != botstate.SubUserRequested || past.LastSeq != 2 || len(past.Events) != 2 {
		t.Fatalf("as of 2: %s/%s at %d with %d events", past.State, past.SubCode, past.LastSeq, len(past.Events))
	}
	if d.State != botstate.Ended || len(d.Events) != 3 {
		t.Fatalf("AsOf changed the document: %+v", d)
	}
	if d.AsOf(3) != d || d.AsOf(7) != d {
		t.Fatal("a document not past seq is not returned as it is")
	}
	if again, _ := past.Apply(event(3, botstate.Leaving, botstate.Failed, "")); d.Events[2].NewState != botstate.Ended || again.State != botstate.Failed {
		t.Fatal("the past document shares its events with the present one")
	}
}

func TestViewIsAttendeeShaped(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 8, 22, 13, 0, 0, 0, time.UTC)
	d := newDoc(t, &at)
	if d.State != botstate.Scheduled || !d.JoinDeadline.Equal(at.Add(10*time.Minute)) {
		t.Fatalf("scheduled doc = %+v", d)
	}
	d, _ = d.Apply(event(1, botstate.Scheduled, botstate.Joining, ""))
	d, _ = d.Apply(event(2, botstate.Joining, botstate.Leaving, botstate.SubUserRequested))
	raw, err := json.Marshal(d.View())
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"id", "metadata", "meeting_url", "state", "events", "transcription_state", "recording_state", "join_at", "deduplication_key", "bot_name", "sub_code", "created_at"}
	if got := topLevelKeys(t, raw); !reflect.DeepEqual(got, keys) {
		t.Fatalf("keys = %v, want %v", got, keys)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": "bot_0000000000000001", "metadata": nil, "meeting_url": "https://meet.google.com/abc-defg-hij",
		"state": "leaving", "transcription_state": nil, "recording_state": nil,
		"join_at": "2026-08-22T13:00:00Z", "deduplication_key": "k", "bot_name": "Bot",
		"sub_code": "user_requested", "created_at": "2026-08-21T09:00:01.482913Z",
		"events": []any{
			map[string]any{"type": "join_requested", "created_at": "2026-08-21T09:00:02.482913Z", "seq": 1.0, "old_state": "scheduled", "new_state": "joining"},
			map[string]any{"type": "leave_requested", "created_at": "2026-08-21T09:00:03.482913Z", "sub_type": "user_requested", "seq": 2.0,
				"old_state": "joining", "new_state": "leaving", "sub_code": "user_requested"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("view =\n%v\nwant\n%v", got, want)
	}
}

func TestJobCarriesTheRequest(t *testing.T) {
	t.Parallel()
	d := newDoc(t, nil)
	job := d.Job()
	if job.GetBotId() != d.ID || job.GetProject() != "acme" || job.GetPlatform() != usherv1.Platform_PLATFORM_MEET ||
		job.GetMeetingUrl() != d.MeetingURL || job.GetBotName() != "Bot" || job.GetJoinAt() != nil ||
		!job.GetJoinDeadline().AsTime().Equal(created.Add(10*time.Minute)) ||
		job.GetAutomaticLeaveSettings().GetWaitingRoomTimeoutSeconds() != 900 ||
		job.GetTeamsSettings().GetLoginMode() != "always" || job.GetCallbackSettings() != nil {
		t.Fatalf("job = %v", job)
	}
}

func TestFormatTime(t *testing.T) {
	t.Parallel()
	for in, want := range map[time.Time]string{
		time.Date(2026, 8, 21, 9, 0, 0, 0, time.UTC):                    "2026-08-21T09:00:00Z",
		time.Date(2026, 8, 21, 9, 0, 1, 482913999, time.UTC):            "2026-08-21T09:00:01.482913Z",
		time.Date(2026, 8, 21, 11, 0, 0, 0, time.FixedZone("", 2*3600)): "2026-08-21T09:00:00Z",
		time.Date(2026, 8, 21, 9, 0, 0, 500, time.UTC):                  "2026-08-21T09:00:00Z",
	} {
		if got := botdoc.FormatTime(in); got != want {
			t.Errorf("FormatTime(%v) = %q, want %q", in, got, want)
		}
	}
}

// topLevelKeys lists an object's keys in the order they are written.
func topLevelKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
