package botrequest

import (
	"strings"
)

// NonFieldErrors is the key of errors about the request as a whole, as in
// Attendee (Django REST Framework).
const NonFieldErrors = "non_field_errors"

// FieldError is one validation failure. Field is the top-level request field
// (or NonFieldErrors); Message says what is wrong and, for nested settings,
// names the nested key.
type FieldError struct {
	Field   string
	Message string
}

// Errors are every validation failure of one request, in field order. It is
// an error so that callers can return it as one.
type Errors []FieldError

// Error lists the failures on one line.
func (e Errors) Error() string {
	var b strings.Builder
	b.WriteString("invalid bot request: ")
	for i, fe := range e {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fe.Field)
		b.WriteString(": ")
		b.WriteString(fe.Message)
	}
	return b.String()
}

// Has reports whether field already has an error.
func (e Errors) Has(field string) bool {
	for _, fe := range e {
		if fe.Field == field {
			return true
		}
	}
	return false
}

// ByField groups the messages by field: Attendee's {"field": ["msg", ...]} body.
func (e Errors) ByField() map[string][]string {
	out := make(map[string][]string, len(e))
	for _, fe := range e {
		out[fe.Field] = append(out[fe.Field], fe.Message)
	}
	return out
}

func (e *Errors) add(field, msg string) { *e = append(*e, FieldError{Field: field, Message: msg}) }

// ParseError is a body that is not JSON at all. Attendee answers it with
// {"detail": "JSON parse error - <reason>"}.
type ParseError struct {
	Reason string
}

// Error describes the refusal.
func (e *ParseError) Error() string { return "JSON parse error - " + e.Reason }

// EncodingError is a NATS request body that is not a CreateBotRequest protobuf.
type EncodingError struct {
	Reason string
}

// Error describes the refusal.
func (e *EncodingError) Error() string {
	return "the request is not a usher.v1.CreateBotRequest protobuf message (or set Content-Type: application/json): " + e.Reason
}
