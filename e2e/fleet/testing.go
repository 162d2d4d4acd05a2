package fleet

import (
	"bufio"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartTest starts a fleet for one test (its JetStream files in
// t.TempDir()) and closes it when the test is over. Tests that need a fleet
// of their own — one whose browser they kill, one with production settings —
// use it instead of their package's shared fleet.
func StartTest(tb testing.TB, opts Options) *Fleet {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := Start(ctx, tb.TempDir(), opts)
	if err != nil {
		tb.Fatalf("start fleet: %v", err)
	}
	tb.Cleanup(f.Close)
	return f
}

// MetricValue finds the sample of metric name whose labels include every
// label="value" pair given (as "label=value") in a /metrics text.
func MetricValue(text, name string, labels ...string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		var lbls string
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			lbls, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // another metric with this prefix
		}
		ok := true
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if !strings.Contains(","+lbls+",", ","+k+"="+strconv.Quote(v)+",") {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		return v, true
	}
	return 0, false
}
