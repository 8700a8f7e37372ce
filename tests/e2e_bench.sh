#!/usr/bin/env bash
# `sockit bench` end to end, for correctness, not speed: it notices a server that
# alters, drops or adds a byte; its counts equal what a counting server saw; lost UDP
# datagrams count as timeouts; it stops on time and on a signal; bad arguments get
# one clear line and exit 2; the progress line appears only on a terminal; the JSON
# result has the fields of sockit(1). Then every bench peer that is built gets a short
# run in each of its modes. The peers with odd behaviours are tests/bench_peers/*.py.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

peers_dir=$source_dir/tests/bench_peers
export PYTHONDONTWRITEBYTECODE=1 # the peers import peerlib: no __pycache__ in the tree

# A port that was just free: bound by us, then closed.
closed_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')

# start_peer NAME CMD...: starts a peer that follows the bench peer convention (stdout
# in NAME.peer) and sets peer_pid and peer_port. Returns 1 if it does not say
# "Listening on 127.0.0.1:PORT" within 10 s.
start_peer() {
    local name=$1
    shift
    spawn 60 "$@" </dev/null >"$work/$name.peer" 2>"$work/$name.peer_err"
    peer_pid=$spawn_pid
    peer_port=""
    wait_match "$work/$name.peer" '^Listening on 127\.0\.0\.1:[0-9]+$' || return 1
    peer_port=$(port_of "$matched")
}

# test_peer NAME SCRIPT ARGS...: start_peer for tests/bench_peers/SCRIPT.
test_peer() {
    local name=$1 script=$2
    shift 2
    start_peer "$name" python3 "$peers_dir/$script" "$@"
}

# child_of PID: the process that PID (a spawn, that is timeout) runs.
child_of() {
    local kids
    read -r kids _ <"/proc/$1/task/$1/children" 2>/dev/null
    echo "${kids:-$1}"
}

# stop_peer NAME: stops the peer with one SIGTERM, sets peer_rc to its exit status
# and, from a counting peer's last line, counted_connections, counted_bytes and
# counted_datagrams (-1 when missing). The signal goes to the peer itself: timeout,
# signalled, would send it on to the peer and again to the peer's whole group.
stop_peer() {
    local line
    kill -TERM "$(child_of "$peer_pid")" 2>/dev/null
    wait_exit "$peer_pid" 5
    peer_rc=$exit_rc
    line=$(tail -n 1 "$work/$1.peer")
    counted_connections=-1 counted_bytes=-1 counted_datagrams=-1
    if [[ $line =~ ^connections=([0-9]+)\ bytes=([0-9]+)\ datagrams=([0-9]+)$ ]]; then
        counted_connections=${BASH_REMATCH[1]}
        counted_bytes=${BASH_REMATCH[2]}
        counted_datagrams=${BASH_REMATCH[3]}
    fi
}

# bench NAME SECS ARGS...: runs `sockit bench ARGS` (killed after SECS) with stdout in
# NAME.out and stderr in NAME.err; sets bench_rc and bench_ms, its wall time.
bench() {
    local name=$1 secs=$2 start
    shift 2
    start=$(date +%s%N)
    timeout "$secs" "$sockit" bench "$@" </dev/null >"$work/$name.out" 2>"$work/$name.err"
    bench_rc=$?
    bench_ms=$((($(date +%s%N) - start) / 1000000))
}

# json_expect NAME EXPR...: NAME.out is exactly one line holding one JSON object, and
# each python EXPR holds with that object's fields as variables (e.g. 'requests ==
# 1000'); an EXPR 'fields: NAME...' says the object has those fields. Prints the first
# that does not hold, with the values it names, and returns 1.
json_expect() {
    python3 - "$work/$1.out" "${@:2}" <<'PY'
import json, re, sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
if len(lines) != 2 or lines[1] != "":
    sys.exit(f"stdout has {len(lines) - 1} lines, want exactly one JSON line")
try:
    result = json.loads(lines[0])
except ValueError as e:
    sys.exit(f"stdout is not JSON ({e})")
if not isinstance(result, dict):
    sys.exit("stdout is not a JSON object")
for expr in sys.argv[2:]:
    if expr.startswith("fields:"):
        missing = [k for k in expr[7:].split() if k not in result]
        if missing:
            sys.exit(f"fields missing: {' '.join(missing)}")
        continue
    try:
        ok = eval(expr, {"result": result}, dict(result))
    except Exception as e:
        ok, why = False, f"{type(e).__name__}: {e}"
    else:
        why = ", ".join(f"{k}={result[k]!r}" for k in re.findall(r"[a-z_0-9]+", expr)
                        if k in result)
    if not ok:
        sys.exit(f"want {expr}; got {why}")
PY
}

# ---- bad usage ---------------------------------------------------------------------------
# expect_usage NAME PATTERN ARGS...: `sockit bench ARGS` exits 2 at once, nothing on
# stdout, stderr is "sockit bench: <PATTERN>" then the usage line. The target is a
# closed port, so arguments wrongly taken fail fast with exit 1, never hang.
expect_usage() {
    local name=$1 pattern=$2
    shift 2
    timeout 10 "$sockit" bench "$@" </dev/null >"$work/$name.out" 2>"$work/$name.err"
    local rc=$? first second
    first=$(sed -n 1p "$work/$name.err")
    second=$(sed -n 2p "$work/$name.err")
    if [ "$rc" -ne 2 ]; then
        fail "$name" "exit code $rc, want 2"
    elif [ -s "$work/$name.out" ]; then
        fail "$name" "want nothing on stdout"
    elif ! [[ $first =~ ^sockit\ bench:\ $pattern ]]; then
        fail "$name" "stderr [$first] does not match [sockit bench: $pattern]"
    elif ! [[ $second =~ ^usage:\ sockit\ bench\  ]]; then
        fail "$name" "second stderr line [$second] is not the usage line"
    else
        pass "$name"
    fi
}

t=(127.0.0.1 "$closed_port")
expect_usage bench_c_zero "-c '0': " -c 0 "${t[@]}"
expect_usage bench_c_not_a_number "-c 'abc': " -c abc "${t[@]}"
expect_usage bench_c_missing_value "option '-c' needs a value\$" -c
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then
    echo "SKIP bench_c_over_the_fd_limit: the hard RLIMIT_NOFILE is unlimited"
else
    # Over the hard limit on any machine: 30000 here (limit 20000), the limit itself
    # where it is higher (the sockets come on top of stdin, stdout and stderr).
    conns=$((hard < 30000 ? 30000 : hard))
    expect_usage bench_c_over_the_fd_limit "-c '?$conns'?: .*\\b$hard\\b" -c "$conns" "${t[@]}"
fi
expect_usage bench_m_zero "-m '0': " -m 0 "${t[@]}"
expect_usage bench_udp_m_below_the_sequence_number "-m '4': " -u -m 4 "${t[@]}"
expect_usage bench_udp_m_over_a_datagram "-m '65508': " -u -m 65508 "${t[@]}"
expect_usage bench_mode_unknown "--mode 'foo': " --mode foo "${t[@]}"
# Two options that exclude each other: the line names one of them.
expect_usage bench_udp_connect_mode "(-u|--mode)\\b" -u --mode connect "${t[@]}"
expect_usage bench_pipeline_zero "--pipeline '0': " --pipeline 0 "${t[@]}"
expect_usage bench_rate_zero "--rate '0': " --rate 0 "${t[@]}"
expect_usage bench_rate_not_a_number "--rate 'abc': " --rate abc "${t[@]}"
expect_usage bench_t_zero "-t '0': " -t 0 "${t[@]}"
expect_usage bench_t_more_than_c "-t '3': " -t 3 -c 2 "${t[@]}"
expect_usage bench_d_zero "-d '0': " -d 0 "${t[@]}"
expect_usage bench_d_not_a_number "-d 'abc': " -d abc "${t[@]}"
expect_usage bench_n_not_a_number "-n 'abc': " -n abc "${t[@]}"
expect_usage bench_timeout_not_a_number "--timeout 'abc': " --timeout abc "${t[@]}"
expect_usage bench_warmup_not_a_number "--warmup 'abc': " --warmup abc "${t[@]}"
expect_usage bench_port_zero "port '0': " 127.0.0.1 0
expect_usage bench_port_65536 "port '65536': " 127.0.0.1 65536
expect_usage bench_port_abc "port 'abc': " 127.0.0.1 abc
missing="(missing .*PORT|expected HOST PORT)"
expect_usage bench_missing_host_and_port "$missing" -n 1
expect_usage bench_missing_port "$missing" 127.0.0.1
expect_usage bench_unknown_option "unknown option '--frob'\$" --frob "${t[@]}"
expect_usage bench_unexpected_argument ".*'extra'" "${t[@]}" extra

name=bench_help_prints_its_usage
timeout 10 "$sockit" bench --help </dev/null >"$work/$name.out" 2>"$work/$name.err"
rc=$?
if [ $rc -ne 0 ]; then
    fail $name "exit code $rc, want 0"
elif [ -s "$work/$name.err" ]; then
    fail $name "want nothing on stderr"
elif ! [[ $(head -n 1 "$work/$name.out") =~ ^usage:\ sockit\ bench\  ]]; then
    fail $name "stdout does not start with 'usage: sockit bench '"
else
    pass $name
fi
name=top_level_help_lists_bench
if timeout 10 "$sockit" --help >"$work/$name.out" 2>&1 && grep -qE '^  bench ' "$work/$name.out"; then
    pass $name
else
    fail $name "'sockit --help' does not list bench"
fi

# ---- an unreachable target ---------------------------------------------------------------
name=bench_refused_exits_1_at_once
bench $name 10 -d 5 127.0.0.1 "$closed_port"
if [ $bench_rc -ne 1 ]; then
    fail $name "exit code $bench_rc, want 1"
elif [ $bench_ms -ge 3000 ]; then
    fail $name "took $bench_ms ms, want an immediate stop"
elif ! grep -qE "^sockit: .*127\\.0\\.0\\.1:$closed_port.*Connection refused" "$work/$name.err"; then
    fail $name "no 'sockit: connect to 127.0.0.1:$closed_port...: Connection refused' on stderr"
else
    pass $name
fi

# ---- corruption --------------------------------------------------------------------------
# The fault falls at byte 1000 of each connection: the middle of message 16 of 64 bytes,
# so even with one message in flight the bytes after it no longer match.
for fault in alter drop add; do
    name=bench_reports_a_server_that_${fault}s_a_byte_as_corrupt
    if ! test_peer $name faulty_echo_server.py --fault $fault --at 1000; then
        fail $name "faulty_echo_server.py did not start"
        continue
    fi
    extra=()
    [ $fault = alter ] && extra=(--pipeline 4)
    bench $name 15 --json -n 300 -c 2 -m 64 -d 5 --timeout 1 "${extra[@]}" 127.0.0.1 "$peer_port"
    if [ $bench_rc -ne 1 ]; then
        fail $name "exit code $bench_rc, want 1"
    elif ! why=$(json_expect $name 'errors_corrupt >= 1' 'errors >= errors_corrupt' 2>&1); then
        fail $name "$why"
    else
        pass $name
    fi
    stop_peer "$name"
done

# ---- counts ------------------------------------------------------------------------------
# The result's fields, as sockit(1) lists them (server_cpu_* only with --server-pid).
fields="event mode proto target connections threads msg_bytes pipeline rate duration_s
requests requests_per_s bytes_out bytes_in mb_per_s_out mb_per_s_in latency_us_p50
latency_us_p90 latency_us_p99 latency_us_p999 latency_us_max latency_us_mean errors
errors_connect errors_reset errors_closed errors_corrupt errors_timeout errors_unanswered
errors_unconnected errors_other
cpu_percent cpu_user_s cpu_sys_s interrupted"

name=bench_echo_counts_match_the_server
if test_peer $name counting_server.py --mode echo; then
    bench $name 30 --json -n 1000 -c 10 --pipeline 4 -m 100 -d 20 127.0.0.1 "$peer_port"
    stop_peer $name
    if [ $bench_rc -ne 0 ]; then
        fail $name "exit code $bench_rc, want 0"
    elif ! why=$(json_expect $name 'requests == 1000' 'bytes_out == 100000' \
        'bytes_in == 100000' 'errors == 0' 2>&1); then
        fail $name "$why"
    elif [ "$counted_bytes" -ne 100000 ]; then
        fail $name "the server saw $counted_bytes bytes, want 1000 x 100 = 100000"
    else
        pass $name
    fi
    name2=bench_echo_opens_c_connections
    if [ "$counted_connections" -eq 10 ]; then
        pass $name2
    else
        fail $name2 "the server saw $counted_connections connections, want 10 (-c 10)"
    fi

    name2=bench_json_result_has_the_fields_of_the_manual
    cp "$work/$name.out" "$work/$name2.out"
    if why=$(json_expect $name2 "fields: $fields" 'event == "result"' 'mode == "echo"' \
        'proto == "tcp"' "target == '127.0.0.1:$peer_port'" 'connections == 10' \
        'threads == 1' 'msg_bytes == 100' 'pipeline == 4' 'rate == 0' \
        'interrupted is False' 'duration_s > 0' 'requests_per_s > 0' \
        'type(requests) is int and type(errors) is int and type(bytes_in) is int' \
        'errors == errors_connect + errors_reset + errors_closed + errors_corrupt + errors_timeout + errors_unanswered + errors_unconnected + errors_other' \
        '0 < latency_us_p50 <= latency_us_p90 <= latency_us_p99 <= latency_us_p999 <= latency_us_max' \
        '0 < latency_us_mean <= latency_us_max' 'cpu_percent >= 0' \
        '"server_cpu_s" not in result' 2>&1); then
        pass $name2
    else
        fail $name2 "$why"
    fi
else
    fail $name "counting_server.py did not start"
fi

name=bench_threads_2_counts_match_the_server
if test_peer $name counting_server.py --mode echo; then
    bench $name 30 --json -t 2 -n 1000 -c 10 --pipeline 4 -m 100 -d 20 127.0.0.1 "$peer_port"
    stop_peer $name
    if [ $bench_rc -ne 0 ]; then
        fail $name "exit code $bench_rc, want 0"
    elif ! why=$(json_expect $name 'threads == 2' 'requests == 1000' 'bytes_out == 100000' \
        'errors == 0' 2>&1); then
        fail $name "$why"
    elif [ "$counted_bytes" -ne 100000 ]; then
        fail $name "the server saw $counted_bytes bytes, want 1000 x 100 = 100000"
    else
        pass $name
    fi
else
    fail $name "counting_server.py did not start"
fi

name=bench_connect_counts_match_the_server
if test_peer $name counting_server.py --mode oneshot; then
    server=$(child_of "$peer_pid")
    bench $name 30 --json --mode connect -n 200 -c 5 -d 20 --server-pid "$server" \
        127.0.0.1 "$peer_port"
    stop_peer $name
    if [ $bench_rc -ne 0 ]; then
        fail $name "exit code $bench_rc, want 0"
    elif ! why=$(json_expect $name 'requests == 200' 'mode == "connect"' 'errors == 0' \
        'server_cpu_s >= 0' '"server_cpu_us_per_request" in result' 2>&1); then
        fail $name "$why"
    elif [ "$counted_connections" -ne 200 ]; then
        fail $name "the server saw $counted_connections connections, want 200"
    elif [ "$counted_bytes" -ne $((200 * 13)) ]; then
        fail $name "the server saw $counted_bytes bytes, want 200 x 'Hello server!' = 2600"
    else
        pass $name
    fi
else
    fail $name "counting_server.py did not start"
fi

name=bench_connect_expect_mismatch_is_corrupt
if test_peer $name counting_server.py --mode oneshot; then
    bench $name 15 --json --mode connect --expect "Hello from elsewhere!" -n 20 -c 2 -d 5 \
        127.0.0.1 "$peer_port"
    if [ $bench_rc -ne 1 ]; then
        fail $name "exit code $bench_rc, want 1"
    elif ! why=$(json_expect $name 'errors_corrupt >= 1' 2>&1); then
        fail $name "$why"
    else
        pass $name
    fi
    stop_peer "$name"
else
    fail $name "counting_server.py did not start"
fi

name=bench_udp_counts_match_the_server
if test_peer $name counting_server.py -u; then
    bench $name 30 --json -u -n 500 -m 64 -d 20 127.0.0.1 "$peer_port"
    stop_peer $name
    if [ $bench_rc -ne 0 ]; then
        fail $name "exit code $bench_rc, want 0"
    elif ! why=$(json_expect $name 'requests == 500' 'proto == "udp"' 'errors == 0' 2>&1); then
        fail $name "$why"
    elif [ "$counted_datagrams" -ne 500 ] || [ "$counted_bytes" -ne $((500 * 64)) ]; then
        fail $name "the server saw $counted_datagrams datagrams, $counted_bytes bytes; want 500, 32000"
    else
        pass $name
    fi
else
    fail $name "counting_server.py did not start"
fi

name=bench_udp_counts_lost_datagrams_as_timeouts
if test_peer $name lossy_udp_server.py --drop-every 5; then
    bench $name 15 --json -u -c 4 -d 1 --timeout 0.2 127.0.0.1 "$peer_port"
    if [ $bench_rc -ne 1 ]; then
        fail $name "exit code $bench_rc, want 1"
    elif ! why=$(json_expect $name 'errors_timeout > 0' 'requests > 0' 2>&1); then
        fail $name "$why"
    else
        pass $name
    fi
    stop_peer "$name"
else
    fail $name "lossy_udp_server.py did not start"
fi

# ---- stopping ----------------------------------------------------------------------------
# Issue 9, item 14: a run in which nothing was answered is no success. Past -d each
# request still outstanding gets --timeout more, then counts as an error; the run
# ends by -d plus --timeout at the latest, and exits 1, the summary saying why.
name=bench_silent_server_is_an_error_and_the_run_still_ends
if test_peer $name silent_server.py; then
    bench $name 15 -c 10 -d 1 --timeout 0.5 127.0.0.1 "$peer_port"
    if [ $bench_rc -ne 1 ]; then
        fail $name "exit code $bench_rc, want 1 (nothing was answered)"
    elif [ $bench_ms -lt 950 ] || [ $bench_ms -ge 4000 ]; then
        fail $name "took $bench_ms ms, want 1000-4000 (-d 1, then at most --timeout 0.5)"
    elif ! grep -qE '^  requests    0 ' "$work/$name.out" ||
        ! grep -qE '^  errors      [0-9]+: .*unanswered [0-9]+ \(outstanding when the run ended, no reply within --timeout 0\.5 s\)' \
            "$work/$name.out"; then
        fail $name "the summary does not say 'requests 0' and 'unanswered N (outstanding when the run ended ...)'"
    else
        pass $name
    fi
    # The same in JSON.
    name2=bench_silent_server_json_counts_the_unanswered
    bench $name2 15 --json -c 4 -d 1 --timeout 0.5 127.0.0.1 "$peer_port"
    if [ $bench_rc -ne 1 ]; then
        fail $name2 "exit code $bench_rc, want 1"
    elif ! why=$(json_expect $name2 'requests == 0' 'errors_unanswered >= 1' 'errors >= 1' 2>&1); then
        fail $name2 "$why"
    else
        pass $name2
    fi
    stop_peer "$name"
else
    fail $name "silent_server.py did not start"
fi

# A full listen backlog: connections that are never established are errors too.
name=bench_full_backlog_is_a_connect_error
if peer $name blackhole; then
    bench $name 15 -c 3 -d 1 --timeout 0.5 127.0.0.1 "$peer_port"
    if [ $bench_rc -ne 1 ]; then
        fail $name "exit code $bench_rc, want 1 (no connection was established)"
    elif [ $bench_ms -ge 4000 ]; then
        fail $name "took $bench_ms ms, want under 4000"
    elif ! grep -qE '^  errors      [0-9]+: connect [0-9]+ \(not connected within --timeout 0\.5 s\)' \
        "$work/$name.out"; then
        fail $name "the summary does not count connect errors with their reason"
    else
        pass $name
    fi
    kill_tree "$peer_pid"
    wait "$peer_pid" 2>/dev/null
else
    fail $name "python peer did not start"
fi

# Stream mode too: connections never made are errors (review of issue 9, item 14).
name=bench_stream_mode_counts_connections_never_made
if peer $name blackhole; then
    bench $name 15 --mode stream -c 10 -d 1 --timeout 5 127.0.0.1 "$peer_port"
    if [ $bench_rc -ne 1 ]; then
        fail $name "exit code $bench_rc, want 1 (connections were never made)"
    elif ! grep -qE '^  errors      [0-9]+: .*(unconnected|connect) [0-9]+' "$work/$name.out"; then
        fail $name "the summary does not count the connections never made"
    else
        pass $name
    fi
    kill_tree "$peer_pid"
    wait "$peer_pid" 2>/dev/null
else
    fail $name "python peer did not start"
fi

# A healthy server, pipelined: what is in flight at the end is answered in the drain.
name=bench_requests_in_flight_at_the_end_are_answered_not_errors
if test_peer $name counting_server.py --mode echo; then
    bench $name 15 --json -c 4 --pipeline 8 -d 1 127.0.0.1 "$peer_port"
    if [ $bench_rc -ne 0 ]; then
        fail $name "exit code $bench_rc, want 0"
    elif ! why=$(json_expect $name 'requests > 0' 'errors == 0' 2>&1); then
        fail $name "$why"
    else
        pass $name
    fi
    stop_peer "$name"
else
    fail $name "counting_server.py did not start"
fi

# A sink that drains as fast as it is fed must not keep stream mode writing past -d.
name=bench_stream_stops_on_time_against_a_sink
if test_peer $name counting_server.py --mode sink; then
    bench $name 15 --json --mode stream -c 1 -m 65536 -d 1 127.0.0.1 "$peer_port"
    stop_peer $name
    if [ $bench_rc -ne 0 ]; then
        fail $name "exit code $bench_rc, want 0"
    elif [ $bench_ms -lt 950 ] || [ $bench_ms -ge 3000 ]; then
        fail $name "took $bench_ms ms, want 1000-3000"
    elif ! why=$(json_expect $name 'requests > 0' 'interrupted == False' 2>&1); then
        fail $name "$why"
    else
        pass $name
    fi
else
    fail $name "counting_server.py did not start"
fi

# One lost datagram must hold up only its own place in the pipeline, not the socket:
# with 1 in 100 lost and 8 in flight, a run does far more than the ~100 requests a
# second a socket stalled for each 1 s timeout would.
name=bench_udp_pipeline_survives_a_loss
if test_peer $name lossy_udp_server.py --drop-every 100; then
    bench $name 15 --json -u -c 1 --pipeline 8 --timeout 1 -d 2 127.0.0.1 "$peer_port"
    stop_peer $name
    if ! why=$(json_expect $name 'requests > 2000' 'errors_timeout > 0' 2>&1); then
        fail $name "$why"
    else
        pass $name
    fi
else
    fail $name "lossy_udp_server.py did not start"
fi

# SIGINT (with --json) and SIGTERM (text) a second into a 30 s run, side by side.
name=bench_sigint_stops_early_with_the_summary
name_term=bench_sigterm_stops_early_with_the_summary
if test_peer $name counting_server.py --mode echo; then
    spawn 40 "$sockit" bench --json -c 2 -d 30 127.0.0.1 "$peer_port" \
        </dev/null >"$work/$name.out" 2>"$work/$name.err"
    int_pid=$spawn_pid
    spawn 40 "$sockit" bench -c 2 -d 30 127.0.0.1 "$peer_port" \
        </dev/null >"$work/$name_term.out" 2>"$work/$name_term.err"
    term_pid=$spawn_pid
    sleep 1
    kill -INT "$(child_of "$int_pid")"
    kill -TERM "$(child_of "$term_pid")"
    start=$(date +%s%N)
    wait_exit $int_pid 5
    int_rc=$exit_rc
    wait_exit $term_pid 5
    term_rc=$exit_rc
    ms=$((($(date +%s%N) - start) / 1000000))
    if [ $int_rc -eq 124 ]; then
        fail $name "still running 5 s after SIGINT"
    elif ! why=$(json_expect $name 'interrupted is True' 'requests > 0' 'duration_s < 5' 2>&1); then
        fail $name "$why (exit code $int_rc)"
    else
        pass $name
    fi
    if [ $term_rc -eq 124 ]; then
        fail $name_term "still running 5 s after SIGTERM"
    elif ! grep -qi 'interrupted' "$work/$name_term.out" ||
        ! grep -qi 'requests' "$work/$name_term.out"; then
        fail $name_term "no summary saying 'interrupted' on stdout (exit code $term_rc)"
    else
        pass $name_term
    fi
    echo "    (exit codes after SIGINT $int_rc, SIGTERM $term_rc; both done in $ms ms)"
    stop_peer "$name"
else
    fail $name "counting_server.py did not start"
fi

# ---- issue 9, item 15: --payload line loads the project's own line echo servers ------
for server in threaded_echo_server forking_line_server; do
    name=bench_payload_line_loads_$server
    if [ ! -x "$build/$server" ]; then
        echo "SKIP $name: $build/$server is not built"
        continue
    fi
    if start_peer $name "$build/$server" 0; then
        bench $name 30 --json --payload line -n 200 -c 2 -m 40 -d 20 127.0.0.1 "$peer_port"
        if [ $bench_rc -ne 0 ]; then
            fail $name "exit code $bench_rc, want 0"
        elif ! why=$(json_expect $name 'requests == 200' 'errors == 0' 2>&1); then
            fail $name "$why"
        else
            pass $name
        fi
        stop_peer $name
    else
        fail $name "$server did not say 'Listening on 127.0.0.1:PORT'"
    fi
done
expect_usage bench_payload_unknown "--payload 'words': not random or line\$" --payload words "${t[@]}"
expect_usage bench_payload_line_with_udp "--payload line: a UDP message" -u --payload line "${t[@]}"

# ---- issue 9, item 16: a corrupt reply says why ----------------------------------------
name=bench_udp_against_udp_server_says_why_replies_are_corrupt
if start_peer $name "$sockit" udp-server --host 127.0.0.1 --port 0; then
    bench $name 15 -u -n 10 -d 5 --timeout 0.5 127.0.0.1 "$peer_port"
    if [ $bench_rc -ne 1 ]; then
        fail $name "exit code $bench_rc, want 1"
    elif ! grep -qE '^  errors      [0-9]+: corrupt [0-9]+ \(a reply of 22 bytes to 64-byte requests: not an echo\)' \
        "$work/$name.out"; then
        fail $name "the summary does not say why the replies are corrupt"
    else
        pass $name
    fi
    kill_tree "$peer_pid" # its output holds the binary datagrams: no counts to read
    wait "$peer_pid" 2>/dev/null
else
    fail $name "sockit udp-server did not start"
fi

# ---- output ------------------------------------------------------------------------------
name=bench_text_summary_and_no_progress_without_a_terminal
if test_peer $name counting_server.py --mode echo; then
    bench $name 15 -c 2 -d 1 127.0.0.1 "$peer_port"
    if [ $bench_rc -ne 0 ]; then
        fail $name "exit code $bench_rc, want 0"
    elif grep -q $'\r' "$work/$name.err"; then
        fail $name "a progress line ('\\r') on stderr, which is not a terminal"
    elif ! grep -qi 'requests' "$work/$name.out" || ! grep -qi 'latency' "$work/$name.out" ||
        ! grep -qi 'errors' "$work/$name.out"; then
        fail $name "the summary lacks a line on requests, latency or errors"
    elif [[ $(head -c 1 "$work/$name.out") == "{" ]]; then
        fail $name "JSON on stdout without --json"
    else
        pass $name
    fi
    stop_peer "$name"
else
    fail $name "counting_server.py did not start"
fi

name=bench_progress_line_on_a_terminal
if ! command -v script >/dev/null; then
    echo "SKIP $name: no 'script' (util-linux) to give bench a terminal"
elif test_peer $name counting_server.py --mode echo; then
    # Only stderr is the terminal; the summary goes to a file. The terminal turns "\n"
    # into "\r\n", so a progress line is a "\r" followed by anything but "\n".
    printf -v cmd '%q bench -c 2 -d 2 127.0.0.1 %q >%q' "$sockit" "$peer_port" "$work/$name.out"
    timeout 15 script -qec "$cmd" /dev/null </dev/null >"$work/$name.tty" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        fail $name "exit code $rc, want 0"
    elif ! python3 -c 'import re, sys
sys.exit(not re.search(rb"\r(?!\n)", open(sys.argv[1], "rb").read()))' "$work/$name.tty"; then
        fail $name "no progress line ('\\r' then text) on the terminal"
    elif ! grep -qi 'requests' "$work/$name.out"; then
        fail $name "no summary on stdout"
    else
        pass $name
    fi
    stop_peer "$name"
else
    fail $name "counting_server.py did not start"
fi

# ---- the bench peers ---------------------------------------------------------------------
# Each built peer answers `sockit bench -n 200` in each of its modes without an error,
# and exits 0 on SIGTERM, as bench/README.md's peer convention says.
python=/usr/bin/python3 # the interpreter uvloop is packaged for
[ -x "$python" ] || python=$(command -v python3)

# smoke NAME ARGS -- PEER...: starts PEER, runs `sockit bench --json -n 200 ARGS` on it.
smoke() {
    local name=$1 args=()
    shift
    while [ "$1" != "--" ]; do
        args+=("$1")
        shift
    done
    shift
    if ! start_peer "$name" "$@"; then
        fail "$name" "the peer did not say 'Listening on 127.0.0.1:PORT'"
        stop_peer "$name"
        return
    fi
    bench "$name" 30 --json -n 200 -d 20 "${args[@]}" 127.0.0.1 "$peer_port"
    stop_peer "$name"
    if [ $bench_rc -ne 0 ]; then
        fail "$name" "bench exit code $bench_rc, want 0"
    elif ! why=$(json_expect "$name" 'requests == 200' 'errors == 0' 2>&1); then
        fail "$name" "$why"
    elif [ "$peer_rc" -ne 0 ]; then
        fail "$name" "the peer's exit code after SIGTERM is $peer_rc, want 0"
    else
        pass "$name"
    fi
}
connect=(--mode connect --expect "Hello from server!")

# built PEER_ID PROGRAM: true if PROGRAM exists; otherwise says which peer is skipped.
built() {
    [ -e "$2" ] && return 0
    echo "SKIP peer_$1: $2 is not built"
    return 1
}
# tcp_peer ID CONNS PEER...: the echo run (CONNS connections) and the one-shot run
# (connect mode) of a TCP peer.
tcp_peer() {
    local id=$1 conns=$2
    shift 2
    built "$id" "$1" || return 0
    smoke "peer_${id}_echo" -c "$conns" -- "$@" --mode echo --port 0
    smoke "peer_${id}_oneshot" "${connect[@]}" -- "$@" --mode oneshot --port 0
}
# udp_peer ID PEER...: the run of a UDP echo peer.
udp_peer() {
    local id=$1
    shift
    built "$id" "$1" || return 0
    smoke "peer_${id}_echo" -u -- "$@" --port 0
}

peers=$source_dir/bench/peers
for peer in epoll_server libuv_server libevent_server; do
    tcp_peer $peer 10 "$build/bench/$peer"
done
# An echo connection holds its worker until it closes: the sequential server and the
# blocking loop serve one at a time, the pool as many as it has threads (2 here).
tcp_peer blocking_server 1 "$build/bench/blocking_server"
tcp_peer sockit_server_sequential 1 "$build/bench/sockit_server" --server sequential
tcp_peer sockit_server_threads 10 "$build/bench/sockit_server" --server threads
tcp_peer sockit_server_processes 10 "$build/bench/sockit_server" --server processes
tcp_peer sockit_server_pool 2 "$build/bench/sockit_server" --server pool --workers 2
tcp_peer python_threading_server 10 "$python" "$peers/python_threading_server.py"
tcp_peer python_asyncio_server 10 "$python" "$peers/python_asyncio_server.py"
if "$python" -c 'import uvloop' 2>/dev/null; then
    tcp_peer python_uvloop_server 10 "$python" "$peers/python_asyncio_server.py" --uvloop
else
    echo "SKIP peer_python_uvloop_server: $python has no uvloop module"
fi
smoke peer_python_reference_server_oneshot "${connect[@]}" -- \
    "$python" "$peers/python_reference_server.py" --port 0
udp_peer udp_recvfrom_server "$build/bench/udp_recvfrom_server"
udp_peer udp_mmsg_server "$build/bench/udp_mmsg_server"
udp_peer sockit_server_udp "$build/bench/sockit_server" -u
udp_peer python_udp_server "$python" "$peers/python_udp_server.py"

finish
