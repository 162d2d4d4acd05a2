package teamsaccount

import (
	"encoding/json"
	"errors"
	"fmt"
)

// JSON names of the fields workers write (docs/teams.md §8), for Patch.
const (
	FieldStatus          = "status"
	FieldStatusChangedAt = "status_changed_at"
	FieldLastUsedAt      = "last_used_at"
	FieldLastLoginAt     = "last_login_at"
	FieldLastFailureCode = "last_failure_code"
	FieldLastFailureAt   = "last_failure_at"
	FieldScreenshot      = "screenshot"
)

// Patch returns the stored record data with fields (JSON name → value) set
// and every other field left exactly as stored, including fields this
// version does not know, so a writer that owns some fields never drops
// another writer's.
func Patch(data []byte, fields map[string]any) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("decode account record: %w", err)
	}
	if obj == nil {
		return nil, errors.New("decode account record: not a JSON object")
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
