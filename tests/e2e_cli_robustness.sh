#!/usr/bin/env bash
# sockit connect when its surroundings are odd: stdin or stdout closed by the caller
# (the socket must not take their descriptor numbers and talk to itself), and a huge
# -i (must mean "no limit", not an overflowed "close at once"). Every wait is bounded.
set -uo pipefail

build=${SOCKIT_BUILD_DIR:?SOCKIT_BUILD_DIR must name the build directory}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
passed=0
failed=0
check() { # NAME CONDITION-RESULT MESSAGE
    if [ "$2" -eq 0 ]; then
        echo "PASS $1"
        passed=$((passed + 1))
    else
        echo "FAIL $1: $3"
        failed=$((failed + 1))
    fi
}

# A server that says hello, then reports what it received within 1.5 s (EOF: b'').
cat >"$work/server.py" <<'PY'
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
c.sendall(b"hello-from-server\n")
c.settimeout(float(sys.argv[1]))
try:
    print(repr(c.recv(100)), flush=True)
except socket.timeout:
    print("nothing", flush=True)
time.sleep(float(sys.argv[2]))
c.sendall(b"late\n")
c.close()
PY
start_server() { # RECV_TIMEOUT LATE_DELAY
    # Emptied here: the job's own redirection truncates later, and the loop below
    # could read the previous server's port.
    : >"$work/server.out"
    timeout 20 python3 "$work/server.py" "$1" "$2" >"$work/server.out" &
    for _ in $(seq 50); do
        port=$(head -n 1 "$work/server.out")
        [ -n "$port" ] && return 0
        sleep 0.1
    done
    return 1
}

start_server 2 0
timeout 10 "$build/sockit" connect 127.0.0.1 "$port" <&- >"$work/out" 2>"$work/err"
rc=$?
wait
got=$(sed -n 2p "$work/server.out")
[ "$rc" -eq 0 ] && [ "$got" = "b''" ] && grep -qx 'hello-from-server' "$work/out"
check closed_stdin_reads_as_empty_input $? "rc $rc, server got [$got], stdout [$(cat "$work/out")]"

start_server 2 0
(
    printf 'from-client\n'
    sleep 1
) | timeout 10 "$build/sockit" connect 127.0.0.1 "$port" >&- 2>"$work/err"
rc=$?
wait
got=$(sed -n 2p "$work/server.out")
[ "$got" = "b'from-client\\n'" ]
check closed_stdout_never_echoes_the_server_back $? "server got [$got] (rc $rc)"

# -i 1e300: the server answers after 1.5 s of silence; the data must arrive.
start_server 0.1 1.5
sleep 3 | timeout 10 "$build/sockit" connect -i 1e300 127.0.0.1 "$port" >"$work/out" 2>"$work/err"
wait
grep -qx 'late' "$work/out"
check huge_idle_timeout_means_no_limit $? "stdout [$(cat "$work/out")], stderr [$(cat "$work/err")]"

echo "e2e_cli_robustness: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
