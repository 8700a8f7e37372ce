#!/usr/bin/env bash
# Compares sockit_server's concurrency modes with Python's ThreadingTCPServer on the
# one-shot flow (connect, "Hello server!", "Hello from server!", close), over
# loopback. For each server: start it on a free port, run oneshot_load against it,
# and read the server's CPU time (its threads, and its children for the processes
# mode) from /proc before and after. Prints a markdown table.
#
# Usage: bench/server_modes.sh BUILD_DIR [SECONDS [CONCURRENCY]]   (defaults 5, 50)
# BUILD_DIR holds oneshot_load and sockit_oneshot_server (in it or in its bench/);
# this script builds nothing. Load client and server share the machine's cores, so
# the numbers compare servers with each other, not with other machines.
set -uo pipefail

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
    echo "usage: bench/server_modes.sh BUILD_DIR [SECONDS [CONCURRENCY]]" >&2
    exit 2
fi
build=$1
seconds=${2:-5}
concurrency=${3:-50}
here=$(cd "$(dirname "$0")" && pwd)
find_exe() {
    local dir
    for dir in "$build/bench" "$build"; do
        [ -x "$dir/$1" ] && echo "$dir/$1" && return 0
    done
    echo "server_modes: $1 not found in $build or $build/bench: build it first" >&2
    return 1
}
load=$(find_exe oneshot_load) || exit 1
server=$(find_exe sockit_oneshot_server) || exit 1
command -v python3 >/dev/null || {
    echo "server_modes: python3 is needed for the baseline" >&2
    exit 1
}
tck=$(getconf CLK_TCK)

work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# cpu_ticks PID: utime+stime+cutime+cstime (fields 14-17 of /proc/PID/stat) of PID,
# plus the same of its children not yet reaped. The command name (field 2) may hold
# spaces, so fields are counted after its closing parenthesis.
stat_ticks() {
    local stat f
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
        echo 0
        return
    }
    read -r -a f <<<"${stat##*") "}"
    # After "pid (comm) ", field 3 (state) is f[0], so fields 14-17 are f[11]-f[14].
    echo $((f[11] + f[12] + f[13] + f[14]))
}
cpu_ticks() {
    local total child kids
    total=$(stat_ticks "$1")
    read -r -a kids <<<"$(cat /proc/"$1"/task/*/children 2>/dev/null | tr '\n' ' ')"
    for child in "${kids[@]}"; do
        total=$((total + $(stat_ticks "$child")))
    done
    echo "$total"
}

# run NAME CMD...: one measurement; appends "NAME RATE CPU_US_PER_CONN" to results.
run() {
    local name=$1 port="" line out conns errors rate before after
    shift
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
    server_pid=$!
    for _ in $(seq 100); do # 100 x 0.1 s
        line=$(head -n 1 "$work/$name.out" 2>/dev/null)
        if [[ $line =~ ^Listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]]; then
            port=${BASH_REMATCH[1]}
            break
        fi
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "server_modes: $name did not start:" >&2
        cat "$work/$name.err" >&2
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
        server_pid=""
        return 1
    fi
    before=$(cpu_ticks "$server_pid")
    out=$(timeout $((seconds + 30)) "$load" -c "$concurrency" -d "$seconds" 127.0.0.1 "$port" \
        2>"$work/$name.load.err")
    # Children that just finished are reaped (and their time counted) by now.
    sleep 0.5
    after=$(cpu_ticks "$server_pid")
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 50); do # 50 x 0.1 s
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=""
    if ! [[ $out =~ connections=([0-9]+)\ errors=([0-9]+)\ seconds=[0-9.]+\ conn_per_s=([0-9.]+) ]]; then
        echo "server_modes: $name: the load client failed:" >&2
        cat "$work/$name.load.err" >&2
        return 1
    fi
    conns=${BASH_REMATCH[1]}
    errors=${BASH_REMATCH[2]}
    rate=${BASH_REMATCH[3]}
    [ "$errors" -gt 0 ] && echo "server_modes: $name: $(cat "$work/$name.load.err")" >&2
    echo "$name $rate $(((after - before) * 1000000 / tck / (conns > 0 ? conns : 1))) $errors" \
        >>"$work/results"
    echo "server_modes: $name: $out" >&2
}

run "python ThreadingTCPServer" python3 "$here/python_threading_server.py"
for mode in sequential threads processes pool; do
    run "sockit $mode" "$server" "$mode"
done
[ -s "$work/results" ] || exit 1

echo
echo "One-shot connections over loopback, $concurrency concurrent clients, ${seconds} s each" \
    "($(nproc) CPUs)."
echo
echo "| server | connections/s | server CPU µs/connection | connections/s vs Python | CPU/connection vs Python | errors |"
echo "|---|---:|---:|---:|---:|---:|"
awk '
    { name = $1; for (i = 2; i <= NF - 3; i++) name = name " " $i
      names[NR] = name; rate[NR] = $(NF - 2); cpu[NR] = $(NF - 1); err[NR] = $NF }
    name ~ /^python/ { prate = $(NF - 2); pcpu = $(NF - 1) }
    END {
        for (i = 1; i <= NR; i++) {
            r = prate > 0 ? sprintf("%.2fx", rate[i] / prate) : "-"
            c = pcpu > 0 && cpu[i] > 0 ? sprintf("%.2fx less", pcpu / cpu[i]) : "-"
            if (names[i] ~ /^python/) { r = "1.00x"; c = "1.00x" }
            printf "| %s | %.0f | %d | %s | %s | %d |\n", names[i], rate[i], cpu[i], r, c, err[i]
        }
    }' "$work/results"
