#!/usr/bin/env bash
# The four reference programs in C talk to each other over loopback and print exactly
# what the Python originals print; their usage and connection errors are one line on
# stderr with the documented exit code. Every wait is bounded; servers die with us.
set -uo pipefail

build=${SOCKIT_BUILD_DIR:?SOCKIT_BUILD_DIR must name the build directory}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
pass() {
    echo "PASS $1"
    passed=$((passed + 1))
}
fail() {
    echo "FAIL $1: $2"
    for f in "$work/$1".*; do [ -s "$f" ] && sed "s|^|    ${f##*/}: |" "$f"; done
    failed=$((failed + 1))
}

# start_server NAME CMD...: runs CMD in the background (bounded by timeout) and sets
# server_pid and port, the port read back from its "Listening on" line.
start_server() {
    local name=$1 line=""
    shift
    timeout 20 "$@" >"$work/$name.server.out" 2>"$work/$name.server.err" &
    server_pid=$!
    pids+=("$server_pid")
    port=""
    for _ in $(seq 100); do # 100 x 0.1 s
        line=$(head -n 1 "$work/$name.server.out" 2>/dev/null)
        if [[ $line =~ ^Listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]]; then
            port=${BASH_REMATCH[1]}
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

# exchange NAME tcp|udp SERVER... -- CLIENT...: the server (port 0, one request) and
# the client (on the printed port) must say exactly the reference flow's lines.
exchange() {
    local name=$1 kind=$2 server=() client=()
    shift 2
    while [ "$1" != "--" ]; do
        server+=("$1")
        shift
    done
    shift
    client=("$@")
    if ! start_server "$name" "${server[@]}" 0 1; then
        fail "$name" "server did not print 'Listening on 127.0.0.1:PORT' within 10 s"
        return
    fi
    timeout 10 "${client[@]}" "$port" >"$work/$name.client.out" 2>"$work/$name.client.err"
    local client_rc=$?
    # Having answered, the server exits at once; one that did not get the request
    # would wait forever, so it gets 5 s and is then stopped (exit 143).
    for _ in $(seq 50); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$server_pid" 2>/dev/null
    wait "$server_pid"
    local server_rc=$?

    local expect_server expect_client
    if [ "$kind" = tcp ]; then
        expect_server="Listening on 127.0.0.1:$port
Connected to 127.0.0.1:PEER
Received: Hello server!"
        expect_client="Hello from server!"
    else
        expect_server="Listening on 127.0.0.1:$port
Received from 127.0.0.1:PEER: Hello UDP server!"
        expect_client="Hello from UDP server!"
    fi
    # The client's own port is the kernel's choice: compare it as PEER.
    local got_server got_client
    got_server=$(sed -E 's/^(Connected to|Received from) 127\.0\.0\.1:[0-9]+/\1 127.0.0.1:PEER/' \
        "$work/$name.server.out")
    got_client=$(cat "$work/$name.client.out")
    if [ "$client_rc" -ne 0 ] || [ "$server_rc" -ne 0 ]; then
        fail "$name" "exit codes: client $client_rc, server $server_rc (want 0 and 0)"
    elif [ "$got_server" != "$expect_server" ]; then
        fail "$name" "server said [$got_server], want [$expect_server]"
    elif [ "$got_client" != "$expect_client" ]; then
        fail "$name" "client said [$got_client], want [$expect_client]"
    elif [ -s "$work/$name.server.err" ] || [ -s "$work/$name.client.err" ]; then
        fail "$name" "unexpected output on stderr"
    else
        pass "$name"
    fi
}

# expect_error NAME WANT_RC PATTERN CMD...: CMD exits WANT_RC, prints nothing on
# stdout and exactly one line on stderr, matching the regex PATTERN.
expect_error() {
    local name=$1 want_rc=$2 pattern=$3
    shift 3
    timeout 10 "$@" >"$work/$name.out" 2>"$work/$name.err"
    local rc=$? err
    err=$(cat "$work/$name.err")
    if [ "$rc" -ne "$want_rc" ]; then
        fail "$name" "exit code $rc, want $want_rc"
    elif [ -s "$work/$name.out" ] || [ "$(wc -l <"$work/$name.err")" -ne 1 ]; then
        fail "$name" "want no stdout and one line on stderr"
    elif ! [[ $err =~ $pattern ]]; then
        fail "$name" "stderr [$err] does not match [$pattern]"
    else
        pass "$name"
    fi
}

for prog in tcp_server tcp_client udp_server udp_client; do
    if [ ! -x "$build/$prog" ]; then
        echo "e2e_examples: $build/$prog is missing: build the project first" >&2
        exit 1
    fi
done

exchange tcp_client_gets_reply_from_tcp_server tcp "$build/tcp_server" -- "$build/tcp_client"
# The server above served its one connection and exited, so its port is closed now.
closed_port=$port
exchange udp_client_gets_reply_from_udp_server udp "$build/udp_server" -- "$build/udp_client"

expect_error tcp_client_reports_refused_connection 1 \
    "^tcp_client: connect to localhost:$closed_port.*Connection refused$" \
    "$build/tcp_client" "$closed_port"
for prog in tcp_server tcp_client udp_server udp_client; do
    expect_error "${prog}_rejects_bad_port" 2 "^$prog: port 'abc': " "$build/$prog" abc
    expect_error "${prog}_rejects_port_above_65535" 2 "^$prog: port '65536': " \
        "$build/$prog" 65536
done
expect_error tcp_server_rejects_bad_count 2 "^tcp_server: count 'x': not a positive number$" \
    "$build/tcp_server" 0 x
expect_error udp_server_rejects_zero_count 2 "^udp_server: count '0': not a positive number$" \
    "$build/udp_server" 0 0

echo "e2e_examples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
