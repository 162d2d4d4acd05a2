package callbacksig

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/shared/secret"
)

// docVectorHex is the test vector published in docs/zoom-tokens.md, computed
// independently with Python's hmac module.
const docVectorHex = "68f50523fa677c0ca1c19e67e7d8a735766dca28bfc66f3534cf13185e8ca7d1"

func TestSignTestVector(t *testing.T) {
	t.Parallel()
	body := []byte(`{"bot_id":"bot_3hG7kPz9QwLm2XyA","bot_metadata":{"customer":"acme"},"callback_type":"zoom_tokens","meeting_url":"https://zoom.us/j/85012345678?pwd=abc123"}`)
	got := Sign([]secret.String{"whsec_usher_test_0123456789"}, 1767225600, body)
	want := "v1=" + docVectorHex
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerifyAcceptsSignedCallsAndRefusesTheRest(t *testing.T) {
	t.Parallel()
	body := []byte(`{"bot_id":"bot_1"}`)
	now := time.Now()
	h := http.Header{}
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(HeaderSignature, Sign([]secret.String{"old-secret-0123456789", "new-secret-0123456789"}, now.Unix(), body))
	for _, s := range []string{"old-secret-0123456789", "new-secret-0123456789"} {
		if err := VerifyUsherCallback(s, h, body, now); err != nil {
			t.Errorf("secret %s during a rotation: %v", s, err)
		}
	}
	if VerifyUsherCallback("other-secret-0123456789", h, body, now) == nil {
		t.Error("another secret verified")
	}
	if VerifyUsherCallback("new-secret-0123456789", h, append(body, ' '), now) == nil {
		t.Error("a changed body verified")
	}
	if VerifyUsherCallback("new-secret-0123456789", h, body, now.Add(MaxAge+time.Second)) == nil {
		t.Error("a replay older than MaxAge verified")
	}
}

// The README's Go verifier is VerifyUsherCallback, and its test vector is
// the one TestSignTestVector checks: the docs cannot drift.
func TestDocsShowThisVerifierAndVector(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "zoom-tokens.md"))
	if err != nil {
		t.Fatalf("read docs/zoom-tokens.md: %v", err)
	}
	src, err := os.ReadFile("callbacksig.go")
	if err != nil {
		t.Fatal(err)
	}
	fn := func(text string) string {
		i := strings.Index(text, "func VerifyUsherCallback(")
		if i < 0 {
			return ""
		}
		j := strings.Index(text[i:], "\n}\n")
		if j < 0 {
			return ""
		}
		return text[i : i+j+2]
	}
	inDoc, inSrc := fn(string(doc)), fn(string(src))
	if inDoc == "" || inDoc != inSrc {
		t.Errorf("the Go verifier in docs/zoom-tokens.md differs from callbacksig.go's:\n--- doc\n%s\n--- source\n%s", inDoc, inSrc)
	}
	if !strings.Contains(string(doc), "X-Usher-Signature: v1="+docVectorHex) {
		t.Errorf("docs/zoom-tokens.md does not publish the test vector v1=%s", docVectorHex)
	}
}
