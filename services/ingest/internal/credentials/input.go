package credentials

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/usherhq/usher/services/ingest/internal/httpjson"
	"github.com/usherhq/usher/shared/secret"
)

// Input bounds.
const (
	// MaxEmailLength is the longest address RFC 5321 allows.
	MaxEmailLength = 254
	// MaxPasswordLength is the longest password Microsoft Entra ID accepts.
	MaxPasswordLength = 256
	// MaxBodyBytes bounds a PUT body.
	MaxBodyBytes = 64 << 10
)

// putInput is a validated PUT body.
type putInput struct {
	Email    string
	Password secret.String
}

// putFields are the PUT body's fields, in the order errors are reported.
func putFields() []string { return []string{"email", "password"} }

// parsePut validates a PUT body. Field errors use Attendee's shape
// ({"field": ["message"]}) and messages; the password is never echoed.
func parsePut(body []byte) (putInput, httpjson.FieldErrors, error) {
	var raw map[string]json.RawMessage
	if len(bytes.TrimSpace(body)) == 0 {
		raw = map[string]json.RawMessage{}
	} else if err := json.Unmarshal(body, &raw); err != nil {
		var probe any
		if json.Unmarshal(body, &probe) == nil {
			// Valid JSON, but not an object.
			return putInput{}, httpjson.FieldErrors{"non_field_errors": {fmt.Sprintf("Invalid data. Expected a dictionary, but got %s.", jsonKind(probe))}}, nil
		}
		return putInput{}, nil, fmt.Errorf("JSON parse error - %s", sanitizeJSONError(err))
	}
	errs := httpjson.FieldErrors{}
	var in putInput

	if email, ok := stringField(raw, "email", errs); ok {
		email = strings.TrimSpace(email)
		switch {
		case email == "":
			errs.Add("email", "This field may not be blank.")
		case utf8.RuneCountInString(email) > MaxEmailLength:
			errs.Add("email", fmt.Sprintf("Ensure this field has no more than %d characters.", MaxEmailLength))
		case !validEmail(email):
			errs.Add("email", "Enter a valid email address.")
		default:
			in.Email = email
		}
	}
	// Passwords are not trimmed: spaces can be part of them.
	if pw, ok := stringField(raw, "password", errs); ok {
		switch {
		case pw == "":
			errs.Add("password", "This field may not be blank.")
		case utf8.RuneCountInString(pw) > MaxPasswordLength:
			errs.Add("password", fmt.Sprintf("Ensure this field has no more than %d characters.", MaxPasswordLength))
		default:
			in.Password = secret.String(pw)
		}
	}
	if errs.Empty() {
		var unknown []string
		for k := range raw {
			if !slices.Contains(putFields(), k) {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			// The bot API's wording (ingest/internal/botrequest).
			errs.Add("non_field_errors", "Unexpected field(s): "+strings.Join(unknown, ", ")+". Allowed fields are: "+strings.Join(putFields(), ", "))
		}
	}
	if !errs.Empty() {
		return putInput{}, errs, nil
	}
	return in, nil, nil
}

// stringField reads a required string field, recording Attendee's messages
// for missing, null and non-string values.
func stringField(raw map[string]json.RawMessage, name string, errs httpjson.FieldErrors) (string, bool) {
	v, ok := raw[name]
	if !ok {
		errs.Add(name, "This field is required.")
		return "", false
	}
	if string(bytes.TrimSpace(v)) == "null" {
		errs.Add(name, "This field may not be null.")
		return "", false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		errs.Add(name, "Not a valid string.")
		return "", false
	}
	return s, true
}

// validEmail accepts a bare address (no display name, no angle brackets)
// with a dotted domain, the way Microsoft sign-in names look.
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	domain := s[at+1:]
	return at > 0 && strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case string:
		return "str"
	case float64:
		return "int"
	case bool:
		return "bool"
	default:
		return "NoneType"
	}
}

// sanitizeJSONError keeps the parser's position but never quotes the body,
// which may hold a password.
func sanitizeJSONError(err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	return "invalid JSON"
}
