package botdoc_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/usherhq/usher/services/ingest/internal/botdoc"
	"github.com/usherhq/usher/services/ingest/internal/botrequest"
	"github.com/usherhq/usher/shared/botstate"
)

// tricky exercises every escape encoding/json makes: quotes, backslashes,
// control characters, HTML characters, U+2028/U+2029, invalid UTF-8, and
// characters it leaves alone (DEL, non-ASCII).
const tricky = "a\"b\\c\nd\re\tf\bg\fh\x01\x1f<i>&j\x7f é 日本 \u2028\u2029 \xff\xfe end"

// fillAll sets every field reachable from v to a non-zero value, so that a
// field added to Doc (or to a type it embeds) without a line in Marshal
// makes the encoders disagree.
func fillAll(t *testing.T, v reflect.Value, n int) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString(tricky[n%len(tricky):] + tricky[:n%len(tricky)])
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1<<(v.Type().Bits()-1) + uint64(n))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-1 << (v.Type().Bits() - 2))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillAll(t, v.Elem(), n+1)
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String || v.Type().Elem().Kind() != reflect.String {
			t.Fatalf("fillAll: map type %s", v.Type())
		}
		v.Set(reflect.ValueOf(map[string]string{"zeta": tricky, "alpha": "1", "<&>\u2028": "", "Beta": "x"}))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fillAll(t, s.Index(i), n+i+1)
		}
		v.Set(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 8, 21, 9, 0, 1, 482913000+n, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillAll(t, v.Field(i), n+i)
			}
		}
	default:
		t.Fatalf("fillAll: no filler for %s (%s): teach it and Marshal about the new field", v.Type(), v.Kind())
	}
}

func TestMarshalMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	full := &botdoc.Doc{}
	fillAll(t, reflect.ValueOf(full).Elem(), 0)

	scheduled := newDoc(t, nil)
	at := time.Date(2026, 8, 22, 15, 30, 0, 0, time.FixedZone("CEST", 2*3600))
	scheduled.JoinAt = &at
	scheduled.Simulated = true
	group := "g<1>"
	scheduled.Teams.LoginGroupName = &group

	ready := newDoc(t, nil)
	ready.Metadata = map[string]string{} // empty, not nil: omitted too
	joined, _ := ready.Apply(event(1, botstate.Ready, botstate.Joining, ""))
	joined, _ = joined.Apply(event(2, botstate.Joining, botstate.Joined, ""))
	joined.Events[1].Metadata = map[string]string{"reason": "redelivered", "a": tricky}
	failed, _ := joined.Apply(event(3, botstate.Joined, botstate.Failed, botstate.SubWorkerLost))

	for name, d := range map[string]*botdoc.Doc{
		"every field set": full, "scheduled with an offset": scheduled, "new": newDoc(t, nil),
		"ready, empty metadata": ready, "joined": joined, "failed": failed, "zero": {},
	} {
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("%s: encoding/json: %v", name, err)
		}
		got, err := d.Marshal()
		if err != nil {
			t.Fatalf("%s: Marshal: %v", name, err)
		}
		if string(got) != string(want) {
			t.Errorf("%s: Marshal wrote\n%s\nencoding/json writes\n%s", name, got, want)
		}
	}
}

func TestMarshalRefusesWhatEncodingJSONRefuses(t *testing.T) {
	t.Parallel()
	for _, tm := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("bad", 24*3600)),
	} {
		d := newDoc(t, nil)
		d.JoinAt = &tm
		if _, err := json.Marshal(d); err == nil {
			t.Fatalf("encoding/json accepts %v", tm)
		}
		if _, err := d.Marshal(); err == nil {
			t.Errorf("Marshal accepted join_at %v, which encoding/json refuses", tm)
		}
		d.JoinAt = nil
		d.CreatedAt = tm
		if _, err := d.Marshal(); err == nil {
			t.Errorf("Marshal accepted created_at %v, which encoding/json refuses", tm)
		}
	}
}

// BenchmarkMarshal encodes a joined bot's document, as the projector does
// once per batch of the bot's events.
func BenchmarkMarshal(b *testing.B) {
	m := botrequest.Spec{BotName: "Usher bench bot", Metadata: map[string]string{"bench": "1"}}
	d := botdoc.New(m, "e2e", "bot_0000000000000001", created, 10*time.Minute)
	d, _ = d.Apply(event(1, botstate.Ready, botstate.Joining, ""))
	d, _ = d.Apply(event(2, botstate.Joining, botstate.Joined, ""))
	b.Run("botdoc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.Marshal(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
