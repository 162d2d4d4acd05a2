package logging

import (
	"bytes"
	"strings"
	"testing"

	"github.com/usherhq/usher/shared/secret"
)

func TestLoggerRedactsSecretsByTypeAndByKey(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := New(&buf, Config{Level: "debug", Format: "json"}, "test")
	log.Info("login", "password", "p@ss-1", "session_cookie", "ck-2", "api_key", "ak-3",
		"zak", secret.String("zk-4"), "email", "bot@contoso.com")
	log.With("authorization", "Token tk-5").Debug("request")
	out := buf.String()
	for _, s := range []string{"p@ss-1", "ck-2", "ak-3", "zk-4", "tk-5"} {
		if strings.Contains(out, s) {
			t.Errorf("log reveals %q: %s", s, out)
		}
	}
	if !strings.Contains(out, "bot@contoso.com") || !strings.Contains(out, `"service":"test"`) {
		t.Errorf("log lost ordinary attributes: %s", out)
	}
}

func TestConfigValidateNamesTheVariable(t *testing.T) {
	t.Parallel()
	if err := (Config{Level: "loud", Format: "json"}).Validate(); err == nil || !strings.Contains(err.Error(), "USHER_LOG_LEVEL") {
		t.Errorf("bad level: %v", err)
	}
	if err := (Config{Level: "info", Format: "xml"}).Validate(); err == nil || !strings.Contains(err.Error(), "USHER_LOG_FORMAT") {
		t.Errorf("bad format: %v", err)
	}
}
