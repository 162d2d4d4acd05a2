// Package teamsaccount defines the stored record of a Teams bot account:
// the JSON value kept in the JetStream KV bucket TEAMS_ACCOUNTS under
// "<project>.<account_id>" (docs/teams.md §8). Ingest's credentials API
// writes the credentials; workers patch only the fields they own (status,
// usage, last failure, screenshot) and leave every other field as stored.
// The JSON shape is the contract between the two: stored records must keep
// decoding, so change field names or encodings only with a migration.
package teamsaccount

import (
	"encoding/json"
	"fmt"
	"time"
)

// Account statuses. Only StatusOK accounts are chosen for a bot; the others
// wait until their credentials are PUT again.
const (
	// StatusOK: usable.
	StatusOK = "ok"
	// StatusInvalid: Microsoft refused the password (or the user name).
	StatusInvalid = "invalid"
	// StatusLocked: Microsoft says the account is locked.
	StatusLocked = "locked"
	// StatusMFARequired: Microsoft asked for a second factor.
	StatusMFARequired = "mfa_required"
)

// Statuses lists every status, for metrics.
func Statuses() []string { return []string{StatusOK, StatusInvalid, StatusLocked, StatusMFARequired} }

// Record is the stored document of one Teams bot account. Ingest writes the
// credentials; workers write status and usage with a compare-and-set on the
// revision, and only while CredentialsVersion is the one they logged in with.
// The field order is the order of the stored JSON.
type Record struct {
	ID      string `json:"id"`
	Project string `json:"project"`
	Email   string `json:"email"`
	// SealedPassword is a sealbox blob bound to PasswordContext(Project, ID).
	SealedPassword string `json:"sealed_password"`
	// CredentialsVersion changes on every PUT, so a worker's verdict about
	// an old password never lands on a new one.
	CredentialsVersion string    `json:"credentials_version"`
	Status             string    `json:"status"`
	StatusChangedAt    time.Time `json:"status_changed_at,omitzero"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
	LastUsedAt         time.Time `json:"last_used_at,omitzero"`
	LastLoginAt        time.Time `json:"last_login_at,omitzero"`
	// LastFailureCode is the sub_code of the last failed login.
	LastFailureCode string    `json:"last_failure_code,omitempty"`
	LastFailureAt   time.Time `json:"last_failure_at,omitzero"`
	// Screenshot names the object in SCREENSHOTS holding the page of the
	// last failed login (password field blanked); empty when none.
	Screenshot string `json:"screenshot,omitempty"`
}

// Decode reads a stored record. Fields it does not know are ignored; a
// writer that must keep them (a worker, an older replica) writes with Patch.
func Decode(data []byte) (Record, error) {
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, fmt.Errorf("decode account record: %w", err)
	}
	return rec, nil
}
