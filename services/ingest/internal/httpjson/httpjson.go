// Package httpjson writes the JSON bodies of Usher's HTTP API in the three
// shapes Attendee clients know: {"detail": ...} for framework errors (auth,
// parsing, throttling), {"error": ...} for business rules, and
// {"<field>": ["..."]} for validation.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Write writes v as compact JSON with the status code.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// Detail writes {"detail": msg}.
func Detail(w http.ResponseWriter, status int, msg string) {
	Write(w, status, map[string]string{"detail": msg})
}

// Error writes {"error": msg}.
func Error(w http.ResponseWriter, status int, msg string) {
	Write(w, status, map[string]string{"error": msg})
}

// FieldErrors maps a field name to its messages; it is written as is.
type FieldErrors map[string][]string

// Add appends a message for a field.
func (f FieldErrors) Add(field, msg string) { f[field] = append(f[field], msg) }

// Empty reports whether there are no errors.
func (f FieldErrors) Empty() bool { return len(f) == 0 }
