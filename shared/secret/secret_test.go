package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := String("zak-0123456789")
	type holder struct {
		Token String `json:"token"`
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "zak", s, "holder", holder{s})
	j, _ := json.Marshal(holder{s})
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", s), "%s": fmt.Sprintf("%s", s), "%q": fmt.Sprintf("%q", s),
		"%#v": fmt.Sprintf("%#v", holder{s}), "%+v": fmt.Sprintf("%+v", holder{s}),
		"json": string(j), "slog": logs.String(), "error": fmt.Errorf("call with %v", s).Error(),
	} {
		if strings.Contains(out, "0123456789") {
			t.Errorf("%s reveals the secret: %s", name, out)
		}
	}
	if s.Reveal() != "zak-0123456789" || s.Empty() || !String("").Empty() {
		t.Error("Reveal or Empty wrong")
	}
}

func TestRedactURLHidesCredentials(t *testing.T) {
	t.Parallel()
	if got := RedactURL("nats://usher:s3cr3t@nats.example:4222"); strings.Contains(got, "s3cr3t") || strings.Contains(got, "usher:") || !strings.Contains(got, "nats.example:4222") {
		t.Fatalf("RedactURL = %q", got)
	}
	if got := RedactURL("nats://127.0.0.1:4333"); got != "nats://127.0.0.1:4333" {
		t.Fatalf("RedactURL of a plain URL = %q", got)
	}
	if got := RedactURL("::%zz"); strings.Contains(got, "%zz") {
		t.Fatalf("RedactURL of garbage = %q", got)
	}
}
