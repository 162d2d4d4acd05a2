#!/usr/bin/env bash
# `make bench`: every performance figure of Usher next to its baseline
# measured in the same run, on this machine, with its target.
#
# Runs the Go benchmarks one package at a time (the machine is small: never
# two at once), keeps their raw output in bench-results/<timestamp>/, then
# prints the table (e2e/bench/cmd/benchtable). A missed target is reported,
# never an error: benchmarks are not tests. A benchmark that fails to run
# (build error, failure, no result line) makes the script exit 1, after the
# table.
#
#   BENCH_ONLY=regex   run only the steps whose name matches (e.g. 'pipeline|burst')
#   BENCH_PROFILE=1    also write a CPU profile of the pipeline's measured phase
#                      (pipeline.cpu.pprof, and its top functions in pipeline.cpu.top.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export USHER_CHROMIUM_BIN=${USHER_CHROMIUM_BIN:-/usr/bin/chromium}

out="bench-results/$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
ln -sfn "$(basename "$out")" bench-results/latest
only=${BENCH_ONLY:-}
pipeline_args=()
if [ "${BENCH_PROFILE:-}" = 1 ]; then
  pipeline_args=(-args "-pipeline.cpuprofile=$PWD/$out/pipeline.cpu.pprof")
fi

failed=()
began=$(date +%s)

# step NAME PACKAGE BENCH_REGEX BENCHTIME TIMEOUT [go test args...]
# Every benchmark the regex names must print a result line.
step() {
  local name=$1 pkg=$2 regex=$3 benchtime=$4 timeout=$5
  shift 5
  if [ -n "$only" ] && ! [[ $name =~ $only ]]; then
    return 0
  fi
  local file="$out/$name.txt" t0 rc=0
  t0=$(date +%s)
  echo "==> $name: go test -bench '$regex' -benchtime $benchtime $pkg $*"
  "$GO" test -run '^$' -bench "$regex" -benchtime "$benchtime" -count 1 -timeout "$timeout" "$pkg" "$@" >"$file" 2>&1 || rc=$?
  # Show the result and log lines, not the noise.
  grep -E '^(Benchmark|--- (FAIL|SKIP)|FAIL|panic)|_test\.go:[0-9]+:|^        [^ ]' "$file" | sed 's/^/    /' || true
  local want
  for want in $(tr '|' ' ' <<<"${regex//[\^\$()]/}"); do
    if ! grep -qE "^${want}(-[0-9]+)?[[:space:]]+[0-9]+" "$file"; then
      echo "    $want printed no result"
      if [ "$rc" = 0 ]; then rc=1; fi
    fi
  done
  echo "    ($(( $(date +%s) - t0 )) s, raw output: $file)"
  if [ "$rc" != 0 ]; then
    failed+=("$name")
    echo "    FAILED TO RUN: $name (exit $rc) — see $file"
  fi
}

# Issue 2, end to end: the whole fleet in one process (e2e/bench).
step pipeline        ./e2e/bench '^BenchmarkPipeline$'       3x 10m "${pipeline_args[@]}"
step pipeline-floor  ./e2e/bench '^(BenchmarkPipelineFloor|BenchmarkPipelineFloorPerBot)$' 2x 10m
step claim-latency   ./e2e/bench '^BenchmarkClaimLatency$'   1x 10m
step scheduled-burst ./e2e/bench '^BenchmarkScheduledBurst$' 1x 10m
# The components' own benchmarks. The worker's claim latency and throughput
# are measured alone here (one worker, 4,096 slots, jobs published straight
# on JOBS) beside e2e/bench's end-to-end figures.
step jetstream-raw   ./services/worker/app '^BenchmarkJetStreamWorkQueue$' 200000x 5m
step worker-app      ./services/worker/app '^(BenchmarkClaimLatency|BenchmarkPipelineThroughput|BenchmarkBotsInMeetings)$' 2000x 10m
step ingest          ./services/ingest/app '^(BenchmarkNATSCreate|BenchmarkHTTPCreate)$' 10000x 5m
step projector       ./services/ingest/app '^BenchmarkProjector$' 20000x 5m
step zoom-callback   ./services/worker/internal/zoomtoken '^(BenchmarkCallbackOverhead|BenchmarkBreakerOpenDecision)$' 2s 5m
step density         ./services/worker/internal/drivers '^BenchmarkDensity$' 1x 10m
step teams-join      ./services/worker/internal/teamsjoin '^BenchmarkTimeToJoined$' 15x 10m
step teams-logins    ./services/worker/internal/teamsjoin '^BenchmarkLoginsPer100Bots$' 1x 10m

if [ "${BENCH_PROFILE:-}" = 1 ] && [ -f "$out/pipeline.cpu.pprof" ]; then
  prof="$out/pipeline.cpu.pprof"
  {
    echo "## CPU time by JetStream stream and consumer (nats-server's pprof labels)"
    "$GO" tool pprof -tags "$prof"
    echo "## Usher and NATS functions by cumulative CPU time"
    "$GO" tool pprof -top -cum -nodecount=60 -focus='usherhq|nats-io' "$prof"
    echo "## Functions by own CPU time"
    "$GO" tool pprof -top -nodecount=40 "$prof"
  } >"$out/pipeline.cpu.top.txt" 2>/dev/null || true
  echo "==> pipeline CPU profile (last round's measured phase): $prof; summary: $out/pipeline.cpu.top.txt"
fi

echo
echo "==> Usher benchmarks, $(date -u +'%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(( $(date +%s) - began )) s; raw output in $out/"
echo
"$GO" run ./e2e/bench/cmd/benchtable "$out"/*.txt | tee "$out/table.txt"

if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "FAILED TO RUN (${#failed[@]}): ${failed[*]} — raw output in $out/" >&2
  exit 1
fi
