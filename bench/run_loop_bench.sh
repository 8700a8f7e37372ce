#!/usr/bin/env bash
# Runs bench/loop_bench.c pinned to one core and puts its section into REPORT.md
# (replacing the one from an earlier run) and its figures into loop.json.
#   bench/run_loop_bench.sh BUILD_DIR RESULTS_DIR [loop_bench options]
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bench/run_loop_bench.sh BUILD_DIR RESULTS_DIR [--quick] [--repeats N]" >&2
    exit 2
fi
build=$1 results=$2
shift 2
mkdir -p "$results"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
pin=()
command -v taskset >/dev/null 2>&1 && pin=(taskset -c 0)
"${pin[@]}" "$build/bench/loop_bench" "$@" >"$out"
tail -n 1 "$out" >"$results/loop.json"
report="$results/REPORT.md"
section=$(sed '$d' "$out")
if [ -f "$report" ]; then
    # Everything before an earlier loop section, then this one.
    kept=$(awk '/^## The loop \(bench\/loop_bench.c\)/{exit} {print}' "$report")
    printf '%s\n\n%s\n' "$kept" "$section" >"$report"
else
    printf '%s\n' "$section" >"$report"
fi
echo "run_loop_bench: wrote the loop section of $report and $results/loop.json"
