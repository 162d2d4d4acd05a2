package botdoc

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/usherhq/usher/services/ingest/internal/botrequest"
)

// The projector rewrites a bot's document for every batch of its events and
// ingest writes one for every bot it creates: Marshal is on the pipeline's
// hot path. It writes byte for byte what encoding/json writes for a Doc
// (field order, omitempty, sorted map keys, HTML-safe string escapes, RFC
// 3339 times), without reflection; TestMarshalMatchesEncodingJSON holds it
// to that for every field, so a field added to Doc, Event, botrequest.Teams
// or botrequest.Leave must be added here too.

// errTimeRange is encoding/json's refusal of a time it cannot write as RFC 3339.
var errTimeRange = errors.New("time outside the RFC 3339 range")

// Marshal encodes the document for the bucket.
func (d *Doc) Marshal() ([]byte, error) {
	b, err := d.appendJSON(make([]byte, 0, 512+192*len(d.Events)))
	if err != nil {
		return nil, fmt.Errorf("encode bot document %s: %w", d.ID, err)
	}
	return b, nil
}

func (d *Doc) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = appendKey(b, `{"id":`, d.ID)
	b = appendKey(b, `,"project":`, d.Project)
	b = appendKey(b, `,"platform":`, d.Platform)
	b = appendKey(b, `,"meeting_url":`, d.MeetingURL)
	if d.Simulated {
		b = append(b, `,"simulated":true`...)
	}
	b = appendKey(b, `,"bot_name":`, d.BotName)
	if len(d.Metadata) > 0 {
		b = appendStringMap(append(b, `,"metadata":`...), d.Metadata)
	}
	if d.JoinAt != nil {
		if b, err = appendTime(append(b, `,"join_at":`...), *d.JoinAt); err != nil {
			return nil, err
		}
	}
	if b, err = appendTime(append(b, `,"join_deadline":`...), d.JoinDeadline); err != nil {
		return nil, err
	}
	b = appendKeyOmitEmpty(b, `,"deduplication_key":`, d.DeduplicationKey)
	b = appendKeyOmitEmpty(b, `,"dedup_index_key":`, d.DedupKey)
	b = appendKeyOmitEmpty(b, `,"msg_id_index_key":`, d.MsgIDKey)
	b = appendKeyOmitEmpty(b, `,"zoom_tokens_url":`, d.ZoomTokensURL)
	b = appendTeams(append(b, `,"teams_settings":`...), d.Teams)
	b = appendLeave(append(b, `,"automatic_leave_settings":`...), d.Leave)
	b = appendKey(b, `,"state":`, string(d.State))
	b = appendKeyOmitEmpty(b, `,"sub_code":`, d.SubCode)
	if b, err = appendTime(append(b, `,"created_at":`...), d.CreatedAt); err != nil {
		return nil, err
	}
	b = strconv.AppendUint(append(b, `,"last_seq":`...), d.LastSeq, 10)
	if len(d.Events) > 0 {
		b = append(b, `,"events":[`...)
		for i := range d.Events {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = d.Events[i].appendJSON(b); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

func (e *Event) appendJSON(b []byte) ([]byte, error) {
	b = strconv.AppendUint(append(b, `{"seq":`...), e.Seq, 10)
	b = appendKey(b, `,"old_state":`, string(e.OldState))
	b = appendKey(b, `,"new_state":`, string(e.NewState))
	b = appendKeyOmitEmpty(b, `,"sub_code":`, e.SubCode)
	b, err := appendTime(append(b, `,"at":`...), e.At)
	if err != nil {
		return nil, err
	}
	if len(e.Metadata) > 0 {
		b = appendStringMap(append(b, `,"metadata":`...), e.Metadata)
	}
	return append(b, '}'), nil
}

// appendTeams writes botrequest.Teams, whose fields have no JSON tags.
func appendTeams(b []byte, t botrequest.Teams) []byte {
	b = strconv.AppendBool(append(b, `{"UseLogin":`...), t.UseLogin)
	b = appendKey(b, `,"LoginMode":`, t.LoginMode)
	if t.LoginGroupName == nil {
		b = append(b, `,"LoginGroupName":null`...)
	} else {
		b = appendKey(b, `,"LoginGroupName":`, *t.LoginGroupName)
	}
	return append(b, '}')
}

// appendLeave writes botrequest.Leave, whose fields have no JSON tags.
func appendLeave(b []byte, l botrequest.Leave) []byte {
	b = strconv.AppendUint(append(b, `{"WaitingRoomTimeoutSeconds":`...), uint64(l.WaitingRoomTimeoutSeconds), 10)
	b = strconv.AppendUint(append(b, `,"MaxDurationSeconds":`...), uint64(l.MaxDurationSeconds), 10)
	b = strconv.AppendUint(append(b, `,"OnlyParticipantTimeoutSeconds":`...), uint64(l.OnlyParticipantTimeoutSeconds), 10)
	return append(b, '}')
}

func appendKey(b []byte, key, s string) []byte {
	return appendString(append(b, key...), s)
}

func appendKeyOmitEmpty(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendKey(b, key, s)
}

// appendStringMap writes m with its keys sorted, as encoding/json does.
func appendStringMap(b []byte, m map[string]string) []byte {
	b = append(b, '{')
	var small [8]string // most metadata has a few keys: sort them on the stack
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = appendString(append(b, ':'), m[k])
	}
	return append(b, '}')
}

// appendTime writes t as time.Time.MarshalJSON does (RFC 3339 with
// nanoseconds, trailing zeros dropped), refusing what it refuses.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if t.Location() != time.UTC {
		// Zoned times are rare (a join_at given with an offset): let the
		// time package apply its own checks.
		v, err := t.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return append(b, v...), nil
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("%w: year %d", errTimeRange, y)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string the way encoding/json does with
// HTML escaping (json.Marshal's default): ", \ and control characters
// escaped, <, > and & as \u003c, \u003e, \u0026, U+2028 and U+2029 escaped,
// invalid UTF-8 replaced by \ufffd.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
