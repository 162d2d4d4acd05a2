// Package report turns the output of `go test -bench` runs into the table
// `make bench` prints: each figure next to its baseline measured in the
// same run, the ratio, the target and whether it was met.
package report

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Metrics are one benchmark's reported values, by unit (ns/op and every
// b.ReportMetric unit).
type Metrics map[string]float64

// Results are the benchmark lines of a run, by package and benchmark name.
type Results map[Key]Metrics

// Key names a benchmark: its package import path and its name without the
// GOMAXPROCS suffix ("BenchmarkPipeline").
type Key struct {
	Pkg, Name string
}

// String is "pkg.Name".
func (k Key) String() string { return k.Pkg + "." + k.Name }

// Parse reads `go test -bench` output and adds its benchmark lines to res.
// A benchmark that appears twice (-count) keeps its last line.
func (res Results) Parse(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	pkg := ""
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if p, ok := strings.CutPrefix(text, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		name, m, ok, err := parseLine(text)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if ok {
			res[Key{Pkg: pkg, Name: name}] = m
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read benchmark output: %w", err)
	}
	return nil
}

// parseLine parses "BenchmarkX-2  10  123 ns/op  4.5 unit ...". ok is false
// for any other line (logs, PASS, a "--- BENCH" header).
func parseLine(text string) (name string, m Metrics, ok bool, err error) {
	fields := strings.Fields(text)
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "Benchmark") {
		return "", nil, false, nil
	}
	if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
		return "", nil, false, nil // "BenchmarkX" alone: a log line, not a result
	}
	name = fields[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	pairs := fields[2:]
	if len(pairs)%2 != 0 {
		return "", nil, false, fmt.Errorf("benchmark %s: odd number of value/unit fields: %q", name, text)
	}
	m = make(Metrics, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		v, err := strconv.ParseFloat(pairs[i], 64)
		if err != nil {
			return "", nil, false, fmt.Errorf("benchmark %s: value %q: %w", name, pairs[i], err)
		}
		m[pairs[i+1]] = v
	}
	return name, m, true, nil
}
