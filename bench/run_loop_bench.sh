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
# The program prints its own heading line first; the rest is the section's body.
heading=$(head -n 1 "$out" | sed 's/^## //')
sed '1d;$d' "$out" >"$out.body"
"$(dirname "$0")/report_section.sh" "$report" "$heading" "$out.body"
rm -f "$out.body"
echo "run_loop_bench: wrote the loop section of $report and $results/loop.json"
