package zoomtoken

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/usherhq/usher/shared/secret"
)

// MaxResponseBytes caps the callback's answer; a longer one is invalid.
const MaxResponseBytes = 64 << 10

// Tokens are what zoom_tokens_url answered. They are secrets: fresh for every
// join attempt, never cached, stored or logged.
type Tokens struct {
	// ZAK is always set.
	ZAK secret.String
	// OnBehalf may be a comma-separated list, kept as given.
	OnBehalf     secret.String
	Join         secret.String
	AppPrivilege secret.String
}

// LogValue names the tokens present ("zak,onbehalf"), never their values.
// (The names are the value, not attribute keys: logging.Redact blanks keys
// that mention a token.)
func (t Tokens) LogValue() slog.Value {
	var present []string
	for _, p := range []struct {
		name string
		v    secret.String
	}{{"zak", t.ZAK}, {"onbehalf", t.OnBehalf}, {"join", t.Join}, {"app_privilege", t.AppPrivilege}} {
		if !p.v.Empty() {
			present = append(present, p.name)
		}
	}
	return slog.StringValue(strings.Join(present, ","))
}

// Answer fields.
const (
	fieldZAK          = "zak_token"
	fieldOnBehalf     = "onbehalf_token"
	fieldJoin         = "join_token"
	fieldAppPrivilege = "app_privilege_token"
)

// invalid says why an answer was refused: a reason constant and the field.
// It never carries any part of the body (a JSON syntax error would quote it).
type invalid struct {
	reason string
	field  string
}

// parseTokens reads a callback answer strictly: one JSON object (no trailing
// commas, comments or second value), no duplicate token key, zak_token a
// string that is not blank, the other tokens strings or null when present.
// Unknown keys are ignored, as Attendee does. Values are kept untrimmed.
func parseTokens(body []byte) (Tokens, *invalid) {
	if !json.Valid(body) {
		return Tokens{}, &invalid{reason: ReasonNotJSON}
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Tokens{}, &invalid{reason: ReasonNotObject}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if _, err := dec.Token(); err != nil { // '{'
		return Tokens{}, &invalid{reason: ReasonNotJSON}
	}
	var t Tokens
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Tokens{}, &invalid{reason: ReasonNotJSON}
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Tokens{}, &invalid{reason: ReasonNotJSON}
		}
		dst := t.field(key)
		if dst == nil {
			continue
		}
		if seen[key] {
			return Tokens{}, &invalid{reason: ReasonDuplicateKey, field: key}
		}
		seen[key] = true
		raw = bytes.TrimSpace(raw)
		if string(raw) == "null" {
			continue
		}
		if len(raw) == 0 || raw[0] != '"' {
			return Tokens{}, &invalid{reason: ReasonTokenNotAString, field: key}
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Tokens{}, &invalid{reason: ReasonTokenNotAString, field: key}
		}
		// Blank counts as absent (Attendee trims to decide, uses the original).
		if strings.TrimSpace(s) != "" {
			*dst = secret.String(s)
		}
	}
	if t.ZAK.Empty() {
		return Tokens{}, &invalid{reason: ReasonZAKMissing, field: fieldZAK}
	}
	return t, nil
}

func (t *Tokens) field(key string) *secret.String {
	switch key {
	case fieldZAK:
		return &t.ZAK
	case fieldOnBehalf:
		return &t.OnBehalf
	case fieldJoin:
		return &t.Join
	case fieldAppPrivilege:
		return &t.AppPrivilege
	}
	return nil
}
