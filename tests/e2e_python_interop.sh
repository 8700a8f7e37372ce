#!/usr/bin/env bash
# sockit's C examples and Python's own socket module talk to each other: a C server
# answers a Python client and a Python server answers a C client, for TCP and UDP,
# with exactly the reference flow's lines on both sides. The Python pair runs too, so
# a difference between the twins shows up as a failure of its own.
# Every wait is bounded; servers die with us.
set -uo pipefail

# shellcheck source=tests/e2e_common.bash
. "$(dirname "$0")/e2e_common.bash"

for prog in tcp_server tcp_client udp_server udp_client; do
    if [ ! -x "$build/$prog" ]; then
        echo "e2e_python_interop: $build/$prog is missing: build the project first" >&2
        exit 1
    fi
done
src_dir=${SOCKIT_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
py="$src_dir/examples/python"

exchange python_tcp_client_gets_reply_from_c_tcp_server tcp \
    "$build/tcp_server" -- python3 "$py/tcp_client.py"
exchange c_tcp_client_gets_reply_from_python_tcp_server tcp \
    python3 "$py/tcp_server.py" -- "$build/tcp_client"
exchange python_udp_client_gets_reply_from_c_udp_server udp \
    "$build/udp_server" -- python3 "$py/udp_client.py"
exchange c_udp_client_gets_reply_from_python_udp_server udp \
    python3 "$py/udp_server.py" -- "$build/udp_client"
exchange python_twins_say_the_same_over_tcp tcp \
    python3 "$py/tcp_server.py" -- python3 "$py/tcp_client.py"
exchange python_twins_say_the_same_over_udp udp \
    python3 "$py/udp_server.py" -- python3 "$py/udp_client.py"

# same_usage_error NAME ARG: the C program and its Python twin reject ARG with the same
# exit code and the same line on stderr.
same_usage_error() {
    local prog=$1 arg=$2 name="${1}_twins_reject_port_$2_alike"
    timeout 10 "$build/$prog" "$arg" >/dev/null 2>"$work/$name.c.err"
    local c_rc=$?
    timeout 10 python3 "$py/$prog.py" "$arg" >/dev/null 2>"$work/$name.py.err"
    local py_rc=$?
    if [ "$c_rc" -ne 2 ] || [ "$py_rc" -ne 2 ]; then
        fail "$name" "exit codes: C $c_rc, Python $py_rc (want 2 and 2)"
    elif ! cmp -s "$work/$name.c.err" "$work/$name.py.err"; then
        fail "$name" "stderr differs"
    else
        pass "$name"
    fi
}
for prog in tcp_server tcp_client udp_server udp_client; do
    same_usage_error "$prog" abc
    same_usage_error "$prog" 65536
done

echo "e2e_python_interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
