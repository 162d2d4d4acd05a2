// Package logging builds Usher's structured JSON logger. Secrets are kept
// out twice: secret.String values redact themselves, and any attribute whose
// key names a secret (password, token, cookie, authorization, api_key...) is
// replaced by [REDACTED] whatever its type.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/usherhq/usher/shared/secret"
)

// Config of the logger.
type Config struct {
	// Level is debug, info, warn or error. Default info.
	Level string `env:"USHER_LOG_LEVEL" default:"info"`
	// Format is json or text. Default json.
	Format string `env:"USHER_LOG_FORMAT" default:"json"`
}

// Validate names a bad field.
func (c Config) Validate() error {
	if _, err := parseLevel(c.Level); err != nil {
		return err
	}
	if c.Format != "json" && c.Format != "text" {
		return fmt.Errorf("USHER_LOG_FORMAT must be json or text, got %q", c.Format)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("USHER_LOG_LEVEL must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// New returns a logger writing to w, tagged with the service name.
func New(w io.Writer, cfg Config, service string) *slog.Logger {
	level, err := parseLevel(cfg.Level)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: Redact}
	var h slog.Handler
	if cfg.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("service", service)
}

// sensitive are substrings of attribute keys whose values are never logged.
var sensitive = []string{"password", "passwd", "secret", "token", "zak", "cookie", "authorization", "api_key", "apikey", "credential", "session_blob"}

// Sensitive reports whether an attribute key names a secret.
func Sensitive(key string) bool {
	k := strings.ToLower(key)
	for _, s := range sensitive {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// Redact is a slog ReplaceAttr that blanks attributes whose key names a secret.
func Redact(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindGroup && Sensitive(a.Key) {
		return slog.String(a.Key, secret.Redacted)
	}
	return a
}

// Discard is a logger that drops everything, for tests that do not look at logs.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
