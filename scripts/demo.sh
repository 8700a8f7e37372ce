#!/usr/bin/env bash
# Runs the reference flows of sockit's examples and of the sockit command, and prints
# each exchange:
#   scripts/demo.sh BUILD_DIR
# Every server takes a free port (port 0) and serves one request, so the demo never
# collides with something already on 12345 and never leaves a process behind. The
# C programs are shown talking to each other, then to their Python twins, then the
# sockit command runs the same flows from the terminal.
set -uo pipefail

if [ $# -ne 1 ]; then
    echo "usage: scripts/demo.sh BUILD_DIR" >&2
    exit 2
fi
build=$1
root=$(cd "$(dirname "$0")/.." && pwd)
py="$root/examples/python"
for prog in tcp_server tcp_client udp_server udp_client sockit; do
    if [ ! -x "$build/$prog" ]; then
        echo "demo: $build/$prog is missing: run 'make build' first" >&2
        exit 1
    fi
done

work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
failures=0

# show TITLE SERVER_CMD... -- CLIENT_CMD...: one exchange, the server's lines then the
# client's, each prefixed with who said it. The server command asks for a free port
# and one request; the client command gets the port the server printed as its last
# argument.
show() {
    local title=$1 server=() client=() port="" line=""
    shift
    while [ "$1" != "--" ]; do
        server+=("$1")
        shift
    done
    shift
    client=("$@")
    echo
    echo "== $title"
    # Emptied here, not by the redirection below: that one runs in the background job,
    # and the loop could read the last exchange's port before it does.
    : >"$work/server.out"
    : >"$work/client.out"
    timeout 20 "${server[@]}" >"$work/server.out" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do # 100 x 0.1 s
        line=$(head -n 1 "$work/server.out" 2>/dev/null)
        [[ $line =~ ^Listening\ on\ .*:([0-9]+)$ ]] && port=${BASH_REMATCH[1]} && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        sed 's/^/   server | /' "$work/server.out"
        echo "   demo: the server did not start" >&2
        failures=$((failures + 1))
        return
    fi
    echo "   \$ ${server[*]##*/} &      # a free port, one request"
    echo "   \$ ${client[*]##*/} $port"
    timeout 10 "${client[@]}" "$port" >"$work/client.out" 2>&1
    local client_rc=$?
    wait "$server_pid"
    local server_rc=$?
    server_pid=""
    sed 's/^/   server | /' "$work/server.out"
    sed 's/^/   client | /' "$work/client.out"
    if [ "$client_rc" -ne 0 ] || [ "$server_rc" -ne 0 ]; then
        echo "   demo: exit codes: client $client_rc, server $server_rc" >&2
        failures=$((failures + 1))
    fi
}

echo "sockit demo: the four reference programs (examples/*.c), on free ports of 127.0.0.1"
show "TCP: tcp_client -> tcp_server" "$build/tcp_server" 0 1 -- "$build/tcp_client"
show "UDP: udp_client -> udp_server" "$build/udp_server" 0 1 -- "$build/udp_client"
if command -v python3 >/dev/null 2>&1; then
    show "TCP: Python tcp_client.py -> C tcp_server" "$build/tcp_server" 0 1 -- \
        python3 "$py/tcp_client.py"
    show "TCP: C tcp_client -> Python tcp_server.py" python3 "$py/tcp_server.py" 0 1 -- \
        "$build/tcp_client"
    show "UDP: Python udp_client.py -> C udp_server" "$build/udp_server" 0 1 -- \
        python3 "$py/udp_client.py"
    show "UDP: C udp_client -> Python udp_server.py" python3 "$py/udp_server.py" 0 1 -- \
        "$build/udp_client"
fi
echo
echo "The same flows from a terminal, with the sockit command ($build/sockit):"
show "TCP: sockit tcp-client -> sockit tcp-server" \
    "$build/sockit" tcp-server --port 0 --count 1 -- "$build/sockit" tcp-client --port
show "UDP: sockit udp-client -> sockit udp-server" \
    "$build/sockit" udp-server --port 0 --count 1 -- "$build/sockit" udp-client --port
echo
if [ "$failures" -ne 0 ]; then
    echo "demo: $failures exchange(s) failed" >&2
    exit 1
fi
echo "All exchanges done. By hand, on the default port 12345:"
echo "   $build/tcp_server &    then    $build/tcp_client"
echo "The sockit command is $build/sockit; to type just 'sockit':"
echo "   export PATH=\"$(cd "$build" && pwd):\$PATH\"    (or: sudo make install)"
echo "   sockit --help"
