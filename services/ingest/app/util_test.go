package app_test

import "strings"

func repeat(s string, n int) string { return strings.Repeat(s, n) }

// containsAll reports whether text has every line.
func containsAll(text string, lines ...string) bool {
	for _, l := range lines {
		if !strings.Contains(text, l) {
			return false
		}
	}
	return true
}

// grep keeps the lines of text that contain one of the needles.
func grep(text string, needles ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, n := range needles {
			if strings.Contains(l, n) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
