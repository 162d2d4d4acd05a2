package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Package import paths of the benchmarks the table reads.
const (
	PkgE2E        = "github.com/usherhq/usher/e2e/bench"
	PkgWorkerApp  = "github.com/usherhq/usher/services/worker/app"
	PkgDrivers    = "github.com/usherhq/usher/services/worker/internal/drivers"
	PkgZoomToken  = "github.com/usherhq/usher/services/worker/internal/zoomtoken"
	PkgTeamsJoin  = "github.com/usherhq/usher/services/worker/internal/teamsjoin"
	PkgIngestApp  = "github.com/usherhq/usher/services/ingest/app"
	benchPipeline = "BenchmarkPipeline"
)

// Ref is one reported value: a benchmark's metric and how to print it.
type Ref struct {
	Pkg, Bench, Unit string
	// Format prints the value ("%.0f jobs/s").
	Format string
	// Label follows the value in the baseline column ("raw JetStream").
	Label string
}

// Ratio is Num/Den, scaled and printed with Format ("%.1f%%", "%.2f×").
type Ratio struct {
	Num, Den Ref
	Scale    float64
	Format   string
}

// Figure is one row of the table.
type Figure struct {
	Name     string
	Value    Ref
	Baseline *Ref
	Ratio    *Ratio
	// Target is printed as is; Met decides it from the value and the ratio
	// (nil: informational, no target).
	Target string
	Met    func(value, ratio float64) bool
}

// Status of a row.
const (
	StatusMet     = "met"
	StatusMissed  = "MISSED"
	StatusNoGoal  = "-"
	StatusMissing = "NOT MEASURED"
)

// Row is a figure as measured.
type Row struct {
	Figure                         string
	Value, Baseline, Ratio, Target string
	Status                         string
}

// Figures are the rows of `make bench`, issue 2's goals first.
func Figures() []Figure {
	pipeline := func(unit, format string) Ref {
		return Ref{Pkg: PkgE2E, Bench: benchPipeline, Unit: unit, Format: format}
	}
	floor := func(unit, format string) Ref {
		return Ref{Pkg: PkgE2E, Bench: "BenchmarkPipelineFloor", Unit: unit, Format: format}
	}
	perBotFloor := func(unit, format string) Ref {
		return Ref{Pkg: PkgE2E, Bench: "BenchmarkPipelineFloorPerBot", Unit: unit, Format: format}
	}
	claim := func(unit, label string) Ref {
		return Ref{Pkg: PkgE2E, Bench: "BenchmarkClaimLatency", Unit: unit, Format: "%.2f ms", Label: label}
	}
	burst := func(unit, label string) Ref {
		return Ref{Pkg: PkgE2E, Bench: "BenchmarkScheduledBurst", Unit: unit, Format: "%.3f s", Label: label}
	}
	density := func(unit, label string) Ref {
		return Ref{Pkg: PkgDrivers, Bench: "BenchmarkDensity", Unit: unit, Format: "%.1f bots/GiB", Label: label}
	}
	callback := func(unit, label string) Ref {
		return Ref{Pkg: PkgZoomToken, Bench: "BenchmarkCallbackOverhead", Unit: unit, Format: "%.0f µs", Label: label}
	}
	teams := func(unit, label string) Ref {
		return Ref{Pkg: PkgTeamsJoin, Bench: "BenchmarkTimeToJoined", Unit: unit, Format: "%.0f ms", Label: label}
	}
	times := func(num, den Ref) *Ratio { return &Ratio{Num: num, Den: den, Scale: 1, Format: "%.2f×"} }
	rawRate := pipeline("raw_msgs/s", "%.0f msgs/s")
	rawRate.Label = "raw JetStream work queue"
	anon := teams("anon_p50_ms", "anonymous join p50")
	bareP50 := callback("bare-p50-µs", "bare net/http POST p50 (the call it saves)")
	breaker := Ref{Pkg: PkgZoomToken, Bench: "BenchmarkBreakerOpenDecision", Unit: "p99-µs", Format: "%.1f µs"}
	ingest := func(bench, unit, format string) Ref {
		return Ref{Pkg: PkgIngestApp, Bench: bench, Unit: unit, Format: format}
	}
	share := func(num Ref) *Ratio { return &Ratio{Num: num, Den: rawRate, Scale: 100, Format: "%.1f%%"} }

	joined := pipeline("joined_jobs/s", "%.0f jobs/s")
	shared := density("shared_bots/GiB", "")
	perBot := density("per_bot_bots/GiB", "browser per bot")
	warm := teams("warm_p50_ms", "")
	cold := teams("cold_p50_ms", "")
	natsCreate := ingest("BenchmarkNATSCreate", "creates/s", "%.0f creates/s")
	httpCreate := ingest("BenchmarkHTTPCreate", "creates/s", "%.0f creates/s")
	projected := ingest("BenchmarkProjector", "events/s", "%.0f events/s")
	workQueue := Ref{Pkg: PkgWorkerApp, Bench: "BenchmarkJetStreamWorkQueue", Unit: "msgs/s", Format: "%.0f msgs/s"}
	return []Figure{
		{Name: "pipeline: NATS request → joined in KV BOTS (instant driver)", Value: joined, Baseline: &rawRate,
			Ratio: share(joined), Target: "≥ 10% of raw", Met: func(_, r float64) bool { return r >= 10 }},
		{Name: "pipeline: one round's share of raw, lowest (highest)", Value: pipeline("min_round_pct_of_raw", "%.1f%%"),
			Baseline: ptr(pipeline("max_round_pct_of_raw", "%.1f%% in the highest round"))},
		{Name: "pipeline: CPU per bot (per raw message)", Value: pipeline("cpu_µs/bot", "%.0f µs"),
			Baseline: ptr(pipeline("raw_cpu_µs/msg", "%.1f µs per raw message")),
			Ratio:    times(pipeline("cpu_µs/bot", ""), pipeline("raw_cpu_µs/msg", ""))},
		{Name: "design floor: the pipeline's JetStream operations alone, batched", Value: floor("floor_cpu_µs/bot", "%.0f µs per bot"),
			Baseline: ptr(floor("raw_cpu_µs/msg", "%.1f µs per raw message")),
			Ratio:    &Ratio{Num: floor("raw_cpu_µs/msg", ""), Den: floor("floor_cpu_µs/bot", ""), Scale: 100, Format: "%.1f%% of raw rate"}},
		{Name: "design floor: the same, one bot at a time (synchronous, unbatched)", Value: perBotFloor("floor_cpu_µs/bot", "%.0f µs per bot"),
			Baseline: ptr(perBotFloor("raw_cpu_µs/msg", "%.1f µs per raw message")),
			Ratio:    &Ratio{Num: perBotFloor("raw_cpu_µs/msg", ""), Den: perBotFloor("floor_cpu_µs/bot", ""), Scale: 100, Format: "%.1f%% of raw rate"}},
		{Name: "pipeline: cores busy (this process / other processes)", Value: pipeline("cores_busy", "%.2f cores"),
			Baseline: ptr(pipeline("other_cores_busy", "%.2f cores used by other processes"))},
		{Name: "claim latency p99 at 1,000 jobs/s (stored → lease held)", Value: claim("claim_p99_ms", ""),
			Baseline: ptr(claim("raw_p99_ms", "JetStream delivery p99")),
			Ratio:    times(claim("claim_p99_ms", ""), claim("raw_p99_ms", "")),
			Target:   "< 10 ms", Met: func(v, _ float64) bool { return v < 10 }},
		{Name: "claim latency p50 at 1,000 jobs/s", Value: claim("claim_p50_ms", ""),
			Baseline: ptr(claim("raw_p50_ms", "JetStream delivery p50")),
			Ratio:    times(claim("claim_p50_ms", ""), claim("raw_p50_ms", ""))},
		{Name: "scheduled burst: joining lateness p99 (one join_at)", Value: burst("late_p99_s", ""),
			Baseline: ptr(burst("fired_p99_s", "JetStream scheduler fire p99")),
			Ratio:    times(burst("late_p99_s", ""), burst("fired_p99_s", "")),
			Target:   "< 2 s", Met: func(v, _ float64) bool { return v < 2 }},
		{Name: "scheduled burst: joining lateness p50", Value: burst("late_p50_s", ""),
			Baseline: ptr(burst("fired_p50_s", "JetStream scheduler fire p50")),
			Ratio:    times(burst("late_p50_s", ""), burst("fired_p50_s", ""))},
		{Name: "density: bots per GiB, one browser (context per bot)", Value: shared, Baseline: &perBot,
			Ratio: times(shared, perBot), Target: "≥ 3×", Met: func(_, r float64) bool { return r >= 3 }},
		{Name: "zoom callback client overhead p99", Value: callback("overhead-p99-µs", ""),
			Baseline: ptr(callback("bare-p99-µs", "bare net/http POST p99")),
			Ratio:    times(callback("client-p99-µs", ""), callback("bare-p99-µs", "")),
			Target:   "≤ 1 ms", Met: func(v, _ float64) bool { return v <= 1000 }},
		{Name: "zoom breaker-open decision p99", Value: breaker, Baseline: &bareP50,
			Ratio: times(breaker, bareP50), Target: "≤ 50 µs", Met: func(v, _ float64) bool { return v <= 50 }},
		{Name: "teams join p50, signed in with a warm session", Value: warm, Baseline: &anon,
			Ratio: times(warm, anon), Target: "≤ 1.2× anonymous", Met: func(_, r float64) bool { return r <= 1.2 }},
		{Name: "teams join p50, signed in with a cold login", Value: cold, Baseline: &anon, Ratio: times(cold, anon)},
		{Name: "teams logins per 100 bots on one account",
			Value:  Ref{Pkg: PkgTeamsJoin, Bench: "BenchmarkLoginsPer100Bots", Unit: "logins/100bots", Format: "%.0f"},
			Target: "1", Met: func(v, _ float64) bool { return v <= 1 }},
		{Name: "ingest alone: NATS creates (64 in flight)", Value: natsCreate, Baseline: &rawRate, Ratio: share(natsCreate)},
		{Name: "ingest alone: HTTP creates (64 in flight)", Value: httpCreate, Baseline: &rawRate, Ratio: share(httpCreate)},
		{Name: "ingest alone: projector events applied", Value: projected, Baseline: &rawRate, Ratio: share(projected)},
		{Name: "raw JetStream, worker's BenchmarkJetStreamWorkQueue", Value: workQueue, Baseline: &rawRate, Ratio: share(workQueue)},
	}
}

func ptr(r Ref) *Ref { return &r }

// lookup returns a reference's value.
func (res Results) lookup(r Ref) (float64, bool) {
	m, ok := res[Key{Pkg: r.Pkg, Name: r.Bench}]
	if !ok {
		return 0, false
	}
	v, ok := m[r.Unit]
	return v, ok
}

// Rows measures every figure against res. A figure whose value is missing
// is NOT MEASURED; one whose baseline is missing still shows its value.
func (res Results) Rows(figs []Figure) []Row {
	rows := make([]Row, 0, len(figs))
	for _, f := range figs {
		row := Row{Figure: f.Name, Baseline: StatusNoGoal, Ratio: StatusNoGoal, Target: StatusNoGoal, Status: StatusNoGoal}
		if f.Target != "" {
			row.Target = f.Target
		}
		v, ok := res.lookup(f.Value)
		if !ok {
			row.Value, row.Status = StatusMissing, StatusMissing
			rows = append(rows, row)
			continue
		}
		row.Value = fmt.Sprintf(f.Value.Format, v)
		if f.Baseline != nil {
			row.Baseline = "not measured"
			if bv, ok := res.lookup(*f.Baseline); ok {
				row.Baseline = strings.TrimSpace(fmt.Sprintf(f.Baseline.Format, bv) + " " + f.Baseline.Label)
			}
		}
		ratio, haveRatio := 0.0, false
		if f.Ratio != nil {
			num, okN := res.lookup(f.Ratio.Num)
			den, okD := res.lookup(f.Ratio.Den)
			if okN && okD && den != 0 {
				ratio, haveRatio = f.Ratio.Scale*num/den, true
				row.Ratio = fmt.Sprintf(f.Ratio.Format, ratio)
			}
		}
		if f.Met != nil {
			switch {
			case f.Ratio != nil && !haveRatio:
				row.Status = StatusMissing // the goal is on a ratio we cannot form
			case f.Met(v, ratio):
				row.Status = StatusMet
			default:
				row.Status = StatusMissed
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// Print writes rows as an aligned table, then one line naming the missed
// targets and one naming what was not measured.
func Print(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, " figure\t value\t baseline (same run)\t ratio\t target\t met?\t")
	fmt.Fprintln(tw, " ------\t -----\t -------------------\t -----\t ------\t ----\t")
	var missed, missing []string
	for _, r := range rows {
		fmt.Fprintf(tw, " %s\t %s\t %s\t %s\t %s\t %s\t\n", r.Figure, r.Value, r.Baseline, r.Ratio, r.Target, r.Status)
		switch r.Status {
		case StatusMissed:
			missed = append(missed, r.Figure)
		case StatusMissing:
			missing = append(missing, r.Figure)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(missed) == 0 {
		fmt.Fprintln(w, "\nTargets: every measured target met.")
	} else {
		fmt.Fprintf(w, "\nTargets MISSED (%d): %s\n", len(missed), strings.Join(missed, "; "))
	}
	if len(missing) > 0 {
		_, err := fmt.Fprintf(w, "NOT MEASURED (%d, see the raw output): %s\n", len(missing), strings.Join(missing, "; "))
		return err
	}
	return nil
}
