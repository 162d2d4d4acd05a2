package botrequest

import (
	"fmt"
	"strings"
)

// PythonJSONLen is len(json.dumps(m)) in Python, which Attendee uses to bound
// metadata: ", " and ": " separators and ASCII escaping, so "é" counts 6
// characters and a character outside the BMP 12. Key order does not matter.
func PythonJSONLen(m map[string]string) int {
	n := 2
	first := true
	for k, v := range m {
		if !first {
			n += 2
		}
		first = false
		n += pyStringLen(k) + 2 + pyStringLen(v)
	}
	return n
}

func pyStringLen(s string) int {
	n := 2
	for _, r := range s {
		switch {
		case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t' || r == '\b' || r == '\f':
			n += 2
		case r < 0x20:
			n += 6
		case r < 0x80:
			n++
		case r < 0x10000:
			n += 6
		default:
			n += 12 // a surrogate pair
		}
	}
	return n
}

// pyRepr quotes s the way Python's repr quotes a str, as jsonschema's
// messages (which Attendee returns) do: 'value'.
func pyRepr(s string) string {
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

// additionalProperties is jsonschema's message for unexpected keys, which
// Attendee returns for its settings objects.
func additionalProperties(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = pyRepr(n)
	}
	verb := "was"
	if len(names) > 1 {
		verb = "were"
	}
	return fmt.Sprintf("Additional properties are not allowed (%s %s unexpected)", strings.Join(quoted, ", "), verb)
}
