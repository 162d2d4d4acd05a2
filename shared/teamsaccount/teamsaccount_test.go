package teamsaccount_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/shared/teamsaccount"
)

// stored is a record as ingest and the workers have been writing it since
// the first release: every stored record must keep decoding to the same
// values and encoding to the same bytes.
const stored = `{"id":"acct_85790c7522975f24","project":"acme","email":"notetaker@contoso.com",` +
	`"sealed_password":"usb1.2026b.bm9uY2UtY2lwaGVydGV4dC10YWc","credentials_version":"9c1d0e5f7a2b3c4d",` +
	`"status":"mfa_required","status_changed_at":"2026-01-05T11:00:00Z",` +
	`"created_at":"2026-01-05T10:00:00Z","updated_at":"2026-01-05T10:30:00Z",` +
	`"last_used_at":"2026-01-05T10:59:00.123456789Z","last_login_at":"2026-01-05T10:45:00Z",` +
	`"last_failure_code":"teams_login_mfa_required","last_failure_at":"2026-01-05T11:00:00Z",` +
	`"screenshot":"acme.acct_85790c7522975f24"}`

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestStoredRecordDecodesAndEncodesToTheSameBytes(t *testing.T) {
	t.Parallel()
	rec, err := teamsaccount.Decode([]byte(stored))
	if err != nil {
		t.Fatal(err)
	}
	want := teamsaccount.Record{
		ID: "acct_85790c7522975f24", Project: "acme", Email: "notetaker@contoso.com",
		SealedPassword: "usb1.2026b.bm9uY2UtY2lwaGVydGV4dC10YWc", CredentialsVersion: "9c1d0e5f7a2b3c4d",
		Status: teamsaccount.StatusMFARequired, StatusChangedAt: at("2026-01-05T11:00:00Z"),
		CreatedAt: at("2026-01-05T10:00:00Z"), UpdatedAt: at("2026-01-05T10:30:00Z"),
		LastUsedAt: at("2026-01-05T10:59:00.123456789Z"), LastLoginAt: at("2026-01-05T10:45:00Z"),
		LastFailureCode: "teams_login_mfa_required", LastFailureAt: at("2026-01-05T11:00:00Z"),
		Screenshot: "acme.acct_85790c7522975f24",
	}
	if !reflect.DeepEqual(rec, want) {
		t.Fatalf("Decode =\n%+v\nwant\n%+v", rec, want)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != stored {
		t.Fatalf("re-encoded record changed the stored format:\n%s\nwant\n%s", b, stored)
	}
}

func TestFreshRecordOmitsWhatNeverHappened(t *testing.T) {
	t.Parallel()
	now := at("2026-01-05T10:00:00Z")
	rec := teamsaccount.Record{
		ID: "acct_85790c7522975f24", Project: "acme", Email: "notetaker@contoso.com",
		SealedPassword: "usb1.k1.x", CredentialsVersion: "v1", Status: teamsaccount.StatusOK,
		StatusChangedAt: now, CreatedAt: now, UpdatedAt: now,
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"id":"acct_85790c7522975f24","project":"acme","email":"notetaker@contoso.com",` +
		`"sealed_password":"usb1.k1.x","credentials_version":"v1","status":"ok",` +
		`"status_changed_at":"2026-01-05T10:00:00Z","created_at":"2026-01-05T10:00:00Z","updated_at":"2026-01-05T10:00:00Z"}`
	if string(b) != want {
		t.Fatalf("fresh record =\n%s\nwant\n%s", b, want)
	}
	back, err := teamsaccount.Decode(b)
	if err != nil || !reflect.DeepEqual(back, rec) {
		t.Fatalf("round trip = %+v, %v; want %+v", back, err, rec)
	}
}

func TestDecodeIgnoresUnknownFieldsAndRejectsGarbage(t *testing.T) {
	t.Parallel()
	rec, err := teamsaccount.Decode([]byte(`{"id":"acct_85790c7522975f24","status":"ok","field_from_a_later_release":{"x":1}}`))
	if err != nil || rec.ID != "acct_85790c7522975f24" || rec.Status != teamsaccount.StatusOK {
		t.Fatalf("Decode with an unknown field = %+v, %v", rec, err)
	}
	for _, bad := range []string{``, `{"id":`, `{"status":42}`, `{"created_at":"yesterday"}`} {
		if _, err := teamsaccount.Decode([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "decode account record: ") {
			t.Errorf("Decode(%q) err = %v", bad, err)
		}
	}
}

func TestPatchSetsOnlyItsFieldsAndKeepsUnknownOnes(t *testing.T) {
	t.Parallel()
	data := []byte(`{"id":"acct_85790c7522975f24","project":"acme","sealed_password":"usb1.k1.x",` +
		`"credentials_version":"v1","status":"ok","created_at":"2026-01-05T10:00:00Z",` +
		`"field_from_a_later_release":{"nested":[1,2,3]}}`)
	failedAt := at("2026-01-05T11:00:00.5Z")
	out, err := teamsaccount.Patch(data, map[string]any{
		teamsaccount.FieldStatus:          teamsaccount.StatusLocked,
		teamsaccount.FieldStatusChangedAt: failedAt,
		teamsaccount.FieldLastFailureCode: "teams_login_account_locked",
		teamsaccount.FieldLastFailureAt:   failedAt,
		teamsaccount.FieldScreenshot:      teamsaccount.ScreenshotName("acme", "acct_85790c7522975f24"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var before, after map[string]json.RawMessage
	_ = json.Unmarshal(data, &before)
	if err := json.Unmarshal(out, &after); err != nil {
		t.Fatalf("patched record %s: %v", out, err)
	}
	for k, v := range before {
		if k == teamsaccount.FieldStatus {
			continue
		}
		if !bytes.Equal(after[k], v) {
			t.Errorf("patch changed %s: %s -> %s", k, v, after[k])
		}
	}
	rec, err := teamsaccount.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != teamsaccount.StatusLocked || !rec.StatusChangedAt.Equal(failedAt) ||
		rec.LastFailureCode != "teams_login_account_locked" || !rec.LastFailureAt.Equal(failedAt) ||
		rec.Screenshot != "acme.acct_85790c7522975f24" || rec.CredentialsVersion != "v1" {
		t.Fatalf("patched record = %+v", rec)
	}
	if len(after) != len(before)+4 {
		t.Fatalf("patched record has %d fields, want %d: %s", len(after), len(before)+4, out)
	}
}

func TestPatchRejectsWhatIsNotARecord(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{``, `null`, `[]`, `"acct"`, `{"id":`} {
		if out, err := teamsaccount.Patch([]byte(bad), map[string]any{teamsaccount.FieldStatus: teamsaccount.StatusOK}); err == nil {
			t.Errorf("Patch(%q) = %s, want an error", bad, out)
		}
	}
	if _, err := teamsaccount.Patch([]byte(`{}`), map[string]any{teamsaccount.FieldScreenshot: func() {}}); err == nil || !strings.Contains(err.Error(), "encode screenshot") {
		t.Errorf("Patch with an unencodable value: err = %v", err)
	}
}

// The field names workers patch are names of the Record's JSON: a renamed
// struct tag would otherwise make the workers write a field ingest never reads.
func TestPatchFieldsAreRecordFields(t *testing.T) {
	t.Parallel()
	now := at("2026-01-05T10:00:00Z")
	full, _ := json.Marshal(teamsaccount.Record{
		Status: teamsaccount.StatusOK, StatusChangedAt: now, LastUsedAt: now, LastLoginAt: now,
		LastFailureCode: "x", LastFailureAt: now, Screenshot: "x",
	})
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(full, &keys)
	for _, f := range []string{
		teamsaccount.FieldStatus, teamsaccount.FieldStatusChangedAt, teamsaccount.FieldLastUsedAt,
		teamsaccount.FieldLastLoginAt, teamsaccount.FieldLastFailureCode, teamsaccount.FieldLastFailureAt,
		teamsaccount.FieldScreenshot,
	} {
		if _, ok := keys[f]; !ok {
			t.Errorf("field %q is not in the record's JSON %s", f, full)
		}
	}
}

// Ids, keys, object names and sealing contexts name data already stored:
// they must stay exactly as they are.
func TestNamesAreStable(t *testing.T) {
	t.Parallel()
	const id = "acct_85790c7522975f24" // acct_ + sha256("notetaker@contoso.com")[:8]
	for _, email := range []string{"notetaker@contoso.com", "NoteTaker@Contoso.COM", "  notetaker@contoso.com\n"} {
		if got := teamsaccount.AccountID(email); got != id {
			t.Errorf("AccountID(%q) = %s, want %s", email, got, id)
		}
	}
	if got := teamsaccount.AccountID("bot@contoso.com"); got != "acct_2ce11583a0bda51e" {
		t.Errorf("AccountID(bot@contoso.com) = %s", got)
	}
	if teamsaccount.AccountID("bot@contoso.com") == teamsaccount.AccountID("bot2@contoso.com") {
		t.Error("two emails share an account id")
	}
	if got := teamsaccount.Key("acme", id); got != "acme.acct_85790c7522975f24" {
		t.Errorf("Key = %s", got)
	}
	if got := teamsaccount.ScreenshotName("acme", id); got != "acme.acct_85790c7522975f24" {
		t.Errorf("ScreenshotName = %s", got)
	}
	if got := teamsaccount.PasswordContext("acme", id); got != "teams-password/acme/acct_85790c7522975f24" {
		t.Errorf("PasswordContext = %s", got)
	}
	if got := teamsaccount.Statuses(); !reflect.DeepEqual(got, []string{"ok", "invalid", "locked", "mfa_required"}) {
		t.Errorf("Statuses = %v", got)
	}
}

func TestValidAccountID(t *testing.T) {
	t.Parallel()
	if id := teamsaccount.AccountID("bot@contoso.com"); !teamsaccount.ValidAccountID(id) {
		t.Errorf("ValidAccountID(%s) = false", id)
	}
	for _, bad := range []string{"", "nope", "acct_", "acct_XYZ", "acct_0123456789abcdef0", "acct_0123456789abcde",
		"acct_0123456789ABCDEF", "acct_0123456789abcdeg", "ACCT_0123456789abcdef", "..", "acme.acct_0123456789abcdef"} {
		if teamsaccount.ValidAccountID(bad) {
			t.Errorf("ValidAccountID(%q) = true", bad)
		}
	}
}
