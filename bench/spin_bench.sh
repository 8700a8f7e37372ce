#!/usr/bin/env bash
# Round trips at 1 connection with the spin option: sockit echo (SOCKIT_EVENTS) and
# the libuv peer, with and without the generator spinning, interleaved (for each
# repeat: for each setup), 64-byte echo for 3 s after 0.5 s of warm-up, server on
# core 0, generator on core 1. Prints a markdown table of medians.
#   bench/spin_bench.sh BUILD_DIR [REPEATS] [SPIN_US]
set -euo pipefail
build=${1:?usage: bench/spin_bench.sh BUILD_DIR [REPEATS] [SPIN_US]}
repeats=${2:-3}
spin=${3:-100}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

setups=("libuv|bench/libuv_server --mode echo --port 0|"
    "libuv, generator spinning|bench/libuv_server --mode echo --port 0|--spin $spin"
    "sockit echo|sockit echo 127.0.0.1 0|"
    "sockit echo, generator spinning|sockit echo 127.0.0.1 0|--spin $spin"
    "sockit echo --spin, generator spinning|sockit echo --spin $spin 127.0.0.1 0|--spin $spin")

one() { # server command, generator options: prints requests/s
    # shellcheck disable=SC2086
    taskset -c 0 "$build"/$1 >"$work/out" 2>/dev/null &
    local pid=$! port="" i
    for ((i = 0; i < 100; i++)); do
        port=$(sed -n 's/^Listening on .*:\([0-9]*\)$/\1/p' "$work/out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { kill "$pid"; echo 0; return; }
    # shellcheck disable=SC2086
    taskset -c 1 "$build/sockit" bench -c 1 -d 3 --warmup 0.5 $2 --json 127.0.0.1 "$port" |
        python3 -c 'import json,sys; print(round(json.load(sys.stdin)["requests_per_s"]))'
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
}

for ((r = 0; r < repeats; r++)); do
    for i in "${!setups[@]}"; do
        IFS='|' read -r label server gen <<<"${setups[$i]}"
        echo "$i $(one "$server" "$gen")" >>"$work/results"
        echo "rep $((r + 1)) $label: $(tail -n 1 "$work/results" | cut -d' ' -f2) req/s" >&2
    done
done
python3 - "$work/results" "$spin" "$repeats" "${setups[@]}" <<'PY'
import statistics, sys
path, spin, repeats, setups = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
runs = {}
for line in open(path):
    i, v = line.split()
    runs.setdefault(int(i), []).append(int(v))
med = {i: statistics.median(v) for i, v in runs.items()}
base = med[1]  # libuv with the generator spinning
print(f"Echo 64 B over 1 connection, round trips per second: median of {repeats} interleaved "
      f"runs, spin {spin} µs (`bench/spin_bench.sh BUILD {repeats} {spin}`).\n")
print("| setup | round trips/s, median (min–max) | vs libuv, generator spinning |")
print("|---|---|---|")
for i, s in enumerate(setups):
    v = runs[i]
    print(f"| {s.split('|')[0]} | {med[i]:,.0f} ({min(v):,}–{max(v):,}) | {med[i] / base:.2f}× |")
PY
