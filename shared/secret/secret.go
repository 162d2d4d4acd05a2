// Package secret gives secrets a type that cannot leak by accident: printing,
// logging or JSON-encoding a secret.String shows "[REDACTED]". Only Reveal
// returns the value, so every place that uses it is easy to find.
package secret

import (
	"fmt"
	"log/slog"
	"net/url"
)

// Redacted is what a secret looks like anywhere but Reveal.
const Redacted = "[REDACTED]"

// String is a secret string: a password, a ZAK, a cookie, an API key.
type String string

// Reveal returns the secret itself. Call it only where the value must be used.
func (s String) Reveal() string { return string(s) }

// Empty reports whether the secret is empty.
func (s String) Empty() bool { return s == "" }

// String implements fmt.Stringer without revealing the value.
func (s String) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v) without revealing the value.
func (s String) GoString() string { return Redacted }

// Format makes every fmt verb print [REDACTED].
func (s String) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue implements slog.LogValuer.
func (s String) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON keeps secrets out of JSON output.
func (s String) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText keeps secrets out of text encodings.
func (s String) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// RedactURL returns raw with any password (and user name) in its userinfo
// replaced, so a URL can be logged or put in an error: nats://u:p@host → nats://REDACTED@host.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable URL]"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	return u.String()
}
