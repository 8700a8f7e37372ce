#!/usr/bin/env bash
# The four reference programs in C talk to each other over loopback and print exactly
# what the Python originals print; their usage and connection errors are one line on
# stderr with the documented exit code. Every wait is bounded; servers die with us.
set -uo pipefail

# shellcheck source=tests/e2e_common.bash
. "$(dirname "$0")/e2e_common.bash"

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
