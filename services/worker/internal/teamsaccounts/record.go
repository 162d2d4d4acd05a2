package teamsaccounts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Account statuses, as ingest's credentials API shows them. Only StatusOK
// accounts are chosen; the others wait for their credentials to be PUT again.
const (
	StatusOK          = "ok"
	StatusInvalid     = "invalid"
	StatusLocked      = "locked"
	StatusMFARequired = "mfa_required"
)

// record is the stored document of an account in TEAMS_ACCOUNTS, key
// "<project>.<account_id>", written by ingest's credentials package (the
// JSON shape is the contract documented in docs/teams.md). The worker reads
// it whole but writes only the fields it owns (status, usage, last failure,
// screenshot), through a JSON object, so a field it does not know survives.
type record struct {
	ID                 string    `json:"id"`
	Project            string    `json:"project"`
	Email              string    `json:"email"`
	SealedPassword     string    `json:"sealed_password"`
	CredentialsVersion string    `json:"credentials_version"`
	Status             string    `json:"status"`
	LastUsedAt         time.Time `json:"last_used_at,omitzero"`
	LastLoginAt        time.Time `json:"last_login_at,omitzero"`
}

func decodeRecord(data []byte) (record, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return record{}, fmt.Errorf("decode account record: %w", err)
	}
	return r, nil
}

// patch sets fields of a stored record, leaving the others as they are.
func patch(data []byte, fields map[string]any) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("decode account record: %w", err)
	}
	for k, v := range fields {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", k, err)
		}
		obj[k] = b
	}
	return json.Marshal(obj)
}

// accountKey is a record's key in TEAMS_ACCOUNTS.
func accountKey(project, id string) string { return project + "." + id }

// PasswordContext binds a sealed password to its project and account (the
// same context ingest seals with).
func PasswordContext(project, id string) string {
	return "teams-password/" + project + "/" + id
}

// ScreenshotName is the object name of an account's failed-login screenshot
// in SCREENSHOTS (the name ingest serves).
func ScreenshotName(project, id string) string { return project + "." + id }

// meetingToken turns a meeting URL into one KV key token.
func meetingToken(meetingURL string) string {
	sum := sha256.Sum256([]byte(meetingURL))
	return hex.EncodeToString(sum[:16])
}
