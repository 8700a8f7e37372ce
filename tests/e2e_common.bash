# Shared by the e2e_*.sh tests that run the reference programs: a work directory
# cleaned up on exit with every background process, PASS/FAIL counting, starting a
# server on a free port, and one reference exchange. Sourced, never run (its name
# does not match the e2e_*.sh glob that CTest registers).
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
    # Emptied before the job starts: its own redirection truncates later, and the
    # loop below could read a port left by an earlier server of the same name.
    : >"$work/$name.server.out"
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
