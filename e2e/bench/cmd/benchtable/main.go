// Command benchtable prints `make bench`'s table from the raw `go test
// -bench` outputs of a run: every figure next to its baseline measured in
// the same run, the ratio, the target and whether it was met.
//
//	benchtable bench-results/20260101-120000/*.txt
//
// It exits 0 when targets are missed (benchmarks are not tests) and 1 only
// when it cannot read or parse its input.
package main

import (
	"fmt"
	"os"

	"github.com/usherhq/usher/e2e/bench/internal/report"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtable <go test -bench output>...")
		os.Exit(2)
	}
	res := report.Results{}
	for _, path := range os.Args[1:] {
		if err := parseFile(res, path); err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
	}
	if err := report.Print(os.Stdout, res.Rows(report.Figures())); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func parseFile(res report.Results, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := res.Parse(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
