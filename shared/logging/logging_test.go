package logging

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
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

func TestBufferKeepsEveryLineFromConcurrentLoggers(t *testing.T) {
	t.Parallel()
	var buf Buffer
	log := New(&buf, Config{Level: "info", Format: "json"}, "test")
	const writers, lines = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				log.Info("tick", "writer", w, "line", i, "password", "p@ss-1")
				_ = buf.String() // a test reading while handlers still write
			}
		})
	}
	wg.Wait()
	out := buf.String()
	if got := strings.Count(out, "\n"); got != writers*lines {
		t.Fatalf("buffer holds %d lines, want %d", got, writers*lines)
	}
	for w := range writers {
		if got := strings.Count(out, fmt.Sprintf(`"writer":%d,`, w)); got != lines {
			t.Errorf("writer %d: %d lines, want %d", w, got, lines)
		}
	}
	if strings.Contains(out, "p@ss-1") {
		t.Errorf("buffer holds a secret: %s", out)
	}
}
