package credentials

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Account statuses. An account other than StatusOK is never chosen for a
// bot until its credentials are PUT again.
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

// Record is the stored document of one Teams bot account in the
// TEAMS_ACCOUNTS bucket, key "<project>.<account_id>". Ingest writes the
// credentials; workers write status and usage with a compare-and-set on the
// revision, and only while CredentialsVersion is the one they logged in
// with. The JSON shape is a contract with the worker's teamsaccounts
// package (documented in docs/teams.md); change both together.
type Record struct {
	ID      string `json:"id"`
	Project string `json:"project"`
	Email   string `json:"email"`
	// SealedPassword is a sealbox blob bound to PasswordContext(project, id).
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

// AccountIDPrefix starts every account id.
const AccountIDPrefix = "acct_"

// AccountID is the id of an email's account: derived from the address
// (case-insensitive), so PUT of the same email updates one record even when
// two requests race.
func AccountID(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return AccountIDPrefix + hex.EncodeToString(sum[:8])
}

// ValidAccountID reports whether s has the shape of an account id.
func ValidAccountID(s string) bool {
	rest, ok := strings.CutPrefix(s, AccountIDPrefix)
	if !ok || len(rest) != 16 {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil && strings.ToLower(rest) == rest
}

// Key is the record's key in TEAMS_ACCOUNTS.
func Key(project, id string) string { return project + "." + id }

// ScreenshotName is the object name of an account's failed-login screenshot.
func ScreenshotName(project, id string) string { return project + "." + id }

// PasswordContext binds a sealed password to its project and account.
func PasswordContext(project, id string) string {
	return "teams-password/" + project + "/" + id
}

func newCredentialsVersion() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b[:])
}
