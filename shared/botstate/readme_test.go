package botstate

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the sub-code table in the repository's README.md")

const readme = "../../README.md"

// SubCodeTable renders SubCodes as the README's Markdown table.
func subCodeTable() string {
	var b strings.Builder
	b.WriteString("| sub_code | with state | meaning |\n|---|---|---|\n")
	for _, s := range SubCodes {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", s.Code, s.On, s.Meaning)
	}
	return b.String()
}

// TestREADMESubCodeTable keeps the README's public list of sub-codes equal to
// SubCodes. Run `go test ./shared/botstate -run README -args -update` to rewrite it.
func TestREADMESubCodeTable(t *testing.T) {
	raw, err := os.ReadFile(readme)
	if err != nil {
		t.Fatalf("read %s: %v", readme, err)
	}
	text := string(raw)
	const begin, end = "<!-- subcodes:begin -->\n", "<!-- subcodes:end -->"
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q … %q markers", readme, begin, end)
	}
	want := subCodeTable()
	got := text[i+len(begin) : j]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(readme, []byte(text[:i+len(begin)]+want+text[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("README's sub-code table is out of date; run: go test ./shared/botstate -run README -args -update")
}

func TestEverySubCodeIsDocumentedOnce(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range SubCodes {
		if seen[s.Code] || s.Meaning == "" || !s.On.Valid() {
			t.Errorf("sub-code %q: duplicate, undocumented or on an unknown state", s.Code)
		}
		seen[s.Code] = true
	}
}
