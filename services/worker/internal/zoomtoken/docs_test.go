package zoomtoken

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README's Go verifier is the one the test server runs, and its test
// vector is the one TestSignTestVector checks: the docs cannot drift.
func TestReadmeVerifierAndVectorMatchTheTests(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "docs", "zoom-tokens.md"))
	if err != nil {
		t.Fatalf("read docs/zoom-tokens.md: %v", err)
	}
	src, err := os.ReadFile("main_test.go")
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
	inDoc, inTest := fn(string(doc)), fn(string(src))
	if inDoc == "" || inDoc != inTest {
		t.Errorf("the Go verifier in docs/zoom-tokens.md differs from main_test.go's:\n--- doc\n%s\n--- test\n%s", inDoc, inTest)
	}
	if !strings.Contains(string(doc), "X-Usher-Signature: v1="+docVectorHex) {
		t.Errorf("docs/zoom-tokens.md does not publish the test vector v1=%s", docVectorHex)
	}
}
