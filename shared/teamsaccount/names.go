package teamsaccount

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// AccountIDPrefix starts every account id.
const AccountIDPrefix = "acct_"

// AccountID is the id of an email's account: "acct_" and the first 16 hex
// digits of SHA-256 of the address, trimmed and lower-cased. Being derived,
// it is the same in every project and every replica, so a PUT of the same
// email updates one record even when two requests race, and the workers'
// claims hold per Microsoft account. Stored keys, sealed passwords and
// screenshots are named after it: it must never change.
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

// ScreenshotName is the object name of an account's failed-login screenshot
// in SCREENSHOTS.
func ScreenshotName(project, id string) string { return project + "." + id }

// PasswordContext is the additional data a password is sealed with: it binds
// the blob to its project and account, so a blob copied into another record
// does not open.
func PasswordContext(project, id string) string {
	return "teams-password/" + project + "/" + id
}
