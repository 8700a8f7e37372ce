#!/usr/bin/env bash
# examples/chat_server.c and its asyncio twin examples/python/chat_server.py, driven
# by the same python3 clients over loopback: joins, a line reaching every other
# client, a line over the limit dropping its sender, a last line without newline,
# leaves, and SIGTERM stopping the server with exit status 0 within 5 s. Both servers
# must say exactly the same things (addresses aside). Every wait is bounded.
set -uo pipefail

build=${SOCKIT_BUILD_DIR:?SOCKIT_BUILD_DIR must name the build directory}
src=${SOCKIT_SOURCE_DIR:?SOCKIT_SOURCE_DIR must name the source directory}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
[ -x "$build/chat_server" ] || { echo "e2e_chat: $build/chat_server is missing" >&2; exit 1; }

cat >"$work/clients.py" <<'PY'
import socket, sys, time

port = int(sys.argv[1])
log = []

def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rb")
    return s, f

def line(f):
    got = f.readline()
    if not got:
        raise SystemExit("expected a line, got end of stream")
    return got.decode().rstrip("\n")

def name(s):
    h, p = s.getsockname()[:2]
    return f"{h}:{p}"

a, fa = connect(); A = name(a)
assert line(fa) == f"welcome, you are {A}"
b, fb = connect(); B = name(b)
assert line(fb) == f"welcome, you are {B}"
assert line(fa) == f"* {B} joined"
c, fc = connect(); C = name(c)
assert line(fc) == f"welcome, you are {C}"
assert line(fa) == f"* {C} joined"
assert line(fb) == f"* {C} joined"

a.sendall(b"hello, room\n")
assert line(fb) == f"{A}: hello, room", "B did not get A's line"
assert line(fc) == f"{A}: hello, room", "C did not get A's line"

# A line over 1024 bytes drops its sender; the others hear that it left.
c.sendall(b"x" * 2000 + b"\n")
try:
    rest = fc.read()
    assert rest == b"", "C got %r after its long line" % rest[:40]
except ConnectionResetError:
    pass
assert line(fa) == f"* {C} left"
assert line(fb) == f"* {C} left"

# A last line without its newline still reaches the others, then B leaves.
b.sendall(b"bye")
b.shutdown(socket.SHUT_WR)
assert line(fa) == f"{B}: bye"
assert line(fa) == f"* {B} left"
assert fb.read() == b""
print("names", A, B, C, flush=True)
# A stays until the server stops: then it reads end of stream (or a reset).
try:
    assert fa.read() == b""
except ConnectionResetError:
    pass
print("closed", flush=True)
PY

passed=0
failed=0
run_one() { # label, command...
    local label=$1
    shift
    : >"$work/$label.out" # not left to the job: a stale port could be read
    "$@" 0 >"$work/$label.out" 2>"$work/$label.err" &
    local pid=$!
    pids+=("$pid")
    local port=""
    for _ in $(seq 100); do
        port=$(sed -n 's/^Listening on .*:\([0-9]*\)$/\1/p' "$work/$label.out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        echo "FAIL $label: server did not listen"; cat "$work/$label.err"; failed=$((failed + 1)); return
    fi
    timeout 20 python3 "$work/clients.py" "$port" >"$work/$label.clients" 2>&1 &
    local cpid=$!
    for _ in $(seq 200); do grep -q "^names" "$work/$label.clients" && break; sleep 0.05; done
    local t0=$(date +%s%N)
    kill -TERM "$pid"
    local status=0
    timeout 5 tail --pid="$pid" -f /dev/null || status=124
    wait "$pid"; local rc=$?
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    wait "$cpid"; local crc=$?
    if [ "$crc" -ne 0 ] || ! grep -q "^closed" "$work/$label.clients"; then
        echo "FAIL $label: clients: $(cat "$work/$label.clients")"; failed=$((failed + 1)); return
    fi
    if [ "$status" -ne 0 ] || [ "$rc" -ne 0 ]; then
        echo "FAIL $label: exit status $rc after SIGTERM ($ms ms)"; failed=$((failed + 1)); return
    fi
    # The server's own lines, with the clients' addresses replaced by their roles.
    read -r _ A B C < <(grep "^names" "$work/$label.clients")
    sed -e "s/$A/A/g" -e "s/$B/B/g" -e "s/$C/C/g" "$work/$label.out" | grep -v '^Listening' \
        >"$work/$label.said"
    sed -e "s/$A/A/g" -e "s/$B/B/g" -e "s/$C/C/g" "$work/$label.err" >"$work/$label.warned"
    echo "PASS $label (stopped $ms ms after SIGTERM)"
    passed=$((passed + 1))
}

run_one c "$build/chat_server"
run_one python python3 "$src/examples/python/chat_server.py"

expected=$'joined A\njoined B\njoined C\nleft C\nleft B\nleft A'
for label in c python; do
    [ -f "$work/$label.said" ] || continue
    if [ "$(cat "$work/$label.said")" = "$expected" ]; then
        echo "PASS $label says joined/left in order"; passed=$((passed + 1))
    else
        echo "FAIL $label said:"; cat "$work/$label.said"; failed=$((failed + 1))
    fi
done
if [ -f "$work/c.warned" ] && [ -f "$work/python.warned" ]; then
    if diff "$work/c.warned" "$work/python.warned" >/dev/null; then
        echo "PASS both servers warn alike"; passed=$((passed + 1))
    else
        echo "FAIL the servers' warnings differ:"; diff "$work/c.warned" "$work/python.warned"
        failed=$((failed + 1))
    fi
fi
echo "e2e_chat: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
