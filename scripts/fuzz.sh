#!/usr/bin/env bash
# make fuzz: builds the libFuzzer targets (fuzz/fuzz_*.c; clang, in BUILD/fuzz) and
# runs each for FUZZ_SECONDS (60 by default) from its corpus (fuzz/corpus/NAME, read
# only: what the run finds goes to BUILD/fuzz/found/NAME), then prints a table of
# executions and crashes per target and keeps it in BUILD/fuzz/report.md. A crash
# leaves its input in BUILD/fuzz/crashes/ and makes the exit status 1.
# FUZZ_MERGE=1 adds the inputs that reached new code to fuzz/corpus/NAME.
# FUZZ_ONLY="lines cli_args" runs only those.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}/fuzz
secs=${FUZZ_SECONDS:-60}
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSOCKIT_FUZZ=ON -DSOCKIT_TESTS=OFF >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >"$build/build.log" 2>&1 || { tail -40 "$build/build.log"; exit 1; }
mkdir -p "$build/found" "$build/crashes" "$build/logs"
report=$build/report.md
{
    echo "| target | seconds | executions | executions/s | crashes |"
    echo "|---|---:|---:|---:|---:|"
} >"$report"
status=0
for bin in "$build"/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    short=${name#fuzz_}
    if [ -n "${FUZZ_ONLY:-}" ] && ! [[ " $FUZZ_ONLY " == *" $short "* ]]; then
        continue
    fi
    corpus=fuzz/corpus/$short
    [ "$short" = http ] && corpus=fuzz/corpus/http
    found=$build/found/$short
    mkdir -p "$found"
    dirs=("$found")
    [ -d "$corpus" ] && dirs+=("$corpus")
    log=$build/logs/$short.log
    # fuzz_lines reads at most 3 + 1024 bytes; longer inputs would be wasted runs.
    limits=()
    [ "$short" = lines ] && limits=(-max_len=1027)
    echo "fuzzing $name for ${secs}s" >&2
    "$bin" -max_total_time="$secs" "${limits[@]}" -close_fd_mask=3 -print_final_stats=1 \
        -artifact_prefix="$build/crashes/$short-" "${dirs[@]}" </dev/null >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    time_s=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    crashes=$(find "$build/crashes" -name "$short-*" | wc -l)
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "$name: exit $rc, see $log" >&2
        grep -m 3 -E "invariant broken|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error" "$log" >&2
    fi
    echo "| $name | $secs | ${runs:-?} | ${time_s:-?} | $crashes |" >>"$report"
    if [ "${FUZZ_MERGE:-0}" = 1 ] && [ -d "$corpus" ]; then
        "$bin" -merge=1 -close_fd_mask=3 "$corpus" "$found" </dev/null >"$build/logs/$short.merge.log" 2>&1
    fi
done
cat "$report"
exit $status
