#!/usr/bin/env bash
# examples/selector_echo_server.c (sockit_selector) and its twin
# examples/python/selector_echo_server.py (Python's selectors) tested against each
# other: the C server echoes several python3 clients at once, one of them pushing 8 MB
# before reading with a 64 KB receive buffer (so the server's sends meet a full
# socket and it must wait for EVENT_WRITE); the Python server echoes
# the C client `sockit connect`; both print the same lines for the same clients; both
# close open connections and exit 0 within 1 s of SIGTERM or SIGINT; both reject bad
# arguments with the same message. Every wait is bounded; servers die with us.
set -uo pipefail

# shellcheck source=tests/e2e_common.bash
. "$(dirname "$0")/e2e_common.bash"
src_dir=${SOCKIT_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
c_server=("$build/selector_echo_server")
py_server=(python3 "$src_dir/examples/python/selector_echo_server.py")
for prog in "$build/selector_echo_server" "$build/sockit"; do
    if [ ! -x "$prog" ]; then
        echo "e2e_selector_echo: $prog is missing: build the project first" >&2
        exit 1
    fi
done

cat >"$work/clients.py" <<'EOF'
import socket, sys, threading, time

TIMEOUT = 10

def tcp(port):
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)

def expect(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {len(got)} bytes {got[:60]!r}, "
                             f"want {len(want)} bytes {want[:60]!r}")

def recv_exactly(s, n):
    parts, got = [], 0
    while got < n:
        b = s.recv(min(65536, n - got))
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)

def exchange(s, data):
    s.sendall(data)
    return recv_exactly(s, len(data))

def run_clients(n, body):
    errors = []
    def wrap(i):
        try:
            body(i)
        except Exception as e:  # any failure of any client fails the scenario
            errors.append(f"client {i}: {type(e).__name__}: {e}")
    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(3 * TIMEOUT)
    if any(t.is_alive() for t in threads):
        errors.append("a client did not finish")
    return errors

def concurrent(port):
    """8 clients connected at once (a barrier after their first line: a server that
    served one at a time would fail it), 20 lines each and a 10000-byte line; client
    0 also sends 8 MB before reading any of it back."""
    n = 8
    barrier = threading.Barrier(n, timeout=TIMEOUT)
    def body(i):
        if i == 0:
            # A small receive buffer, so the server's sends meet a full socket.
            s = socket.socket()
            s.settimeout(TIMEOUT)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.connect(("127.0.0.1", port))
        else:
            s = tcp(port)
        with s:
            for j in range(20):
                line = f"client {i} line {j}\n".encode()
                expect(exchange(s, line), line, f"line {j}")
                if j == 0:
                    barrier.wait()
            big = b"x" * 10000 + b"\n"
            expect(exchange(s, big), big, "10000-byte line")
            if i == 0:
                blob = bytes(range(256)) * 4096 * 8
                sender = threading.Thread(target=s.sendall, args=(blob,))
                sender.start()
                time.sleep(0.5)  # both directions' buffers fill meanwhile
                got = recv_exactly(s, len(blob))
                sender.join(TIMEOUT)
                expect(got, blob, "8 MB sent before reading")
            s.shutdown(socket.SHUT_WR)
            expect(s.recv(1), b"", "end of stream after ours")
    return run_clients(n, body)

def sequential(port):
    """Two clients, one after the other; each waits for the server's close, so the
    server's lines come in one order."""
    for name in ("A", "B"):
        with tcp(port) as s:
            for line in (f"hello from {name}\n".encode(), b"bye\n"):
                expect(exchange(s, line), line, f"client {name}")
            s.shutdown(socket.SHUT_WR)
            expect(s.recv(1), b"", f"client {name}: end of stream")
    return []

def idle(port):
    """Connected and answered, then idle: stopping the server closes us (EOF); we
    print 'ready' once connected so the test knows when to signal."""
    with tcp(port) as s:
        expect(exchange(s, b"ping\n"), b"ping\n", "ping")
        print("ready", flush=True)
        s.settimeout(5)
        expect(s.recv(1), b"", "end of stream when the server stops")
    return []

scenario, port = sys.argv[1], int(sys.argv[2])
try:
    errors = globals()[scenario](port)
except Exception as e:
    errors = [f"{type(e).__name__}: {e}"]
for e in errors[:10]:
    print(e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF

# launch NAME CMD...: runs a server in the background, sets server_pid and port.
launch() {
    local name=$1 line=""
    shift
    : >"$work/$name.server.out" # not left to the job: a stale port could be read
    "$@" >"$work/$name.server.out" 2>"$work/$name.server.err" &
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
    fail "$name" "did not print 'Listening on 127.0.0.1:PORT' within 10 s"
    return 1
}

# stop_within_1s NAME SIGNAL: the server exits with status 0 less than 1 s after
# SIGNAL (it takes milliseconds; 1 s is the margin). Waits at most 5 s.
stop_within_1s() {
    local name=$1 sig=$2 start elapsed_ms rc
    start=$(date +%s%N)
    kill "-$sig" "$server_pid"
    for _ in $(seq 250); do # 250 x 0.02 s
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.02
    done
    elapsed_ms=$((($(date +%s%N) - start) / 1000000))
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid"
        wait "$server_pid" 2>/dev/null
        fail "$name" "still running 5 s after SIG$sig"
        return 1
    fi
    wait "$server_pid"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$name" "exit status $rc after SIG$sig, want 0"
        return 1
    elif [ "$elapsed_ms" -ge 1000 ]; then
        fail "$name" "took $elapsed_ms ms to stop after SIG$sig, want < 1000"
        return 1
    fi
}

# await_exit NAME: a server told to serve N connections exits 0 by itself.
await_exit() {
    local name=$1 rc
    for _ in $(seq 100); do # 100 x 0.05 s
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid"
        wait "$server_pid" 2>/dev/null
        fail "$name" "still running 5 s after its last connection closed"
        return 1
    fi
    wait "$server_pid"
    rc=$?
    [ "$rc" -eq 0 ] || { fail "$name" "exit status $rc, want 0"; return 1; }
}

# drive NAME SCENARIO: runs a client scenario against $port, bounded.
drive() {
    if ! timeout 60 python3 "$work/clients.py" "$2" "$port" >"$work/$1.client.out" \
        2>"$work/$1.client.err"; then
        fail "$1" "client scenario '$2' failed"
        return 1
    fi
}

no_stderr() {
    if [ -s "$work/$1.server.err" ]; then
        fail "$1" "unexpected output on stderr"
        return 1
    fi
}

# The kernel picks the ports: compare them as PORT.
normalised() { sed -E 's/127\.0\.0\.1:[0-9]+/127.0.0.1:PORT/' "$work/$1.server.out"; }

# --- several clients at once, then SIGTERM ----------------------------------------
for twin in c py; do
    name=${twin}_server_echoes_concurrent_python_clients_then_stops_on_sigterm
    [ "$twin" = c ] && server=("${c_server[@]}") || server=("${py_server[@]}")
    launch "$name" "${server[@]}" 0 && drive "$name" concurrent &&
        stop_within_1s "$name" TERM && no_stderr "$name" && pass "$name"
done

# --- the C client against the Python server --------------------------------------
name=py_server_echoes_the_sockit_connect_client
input=$'first line\nsecond line\n'"$(head -c 3000 /dev/zero | tr '\0' 'z')"$'\nlast\n'
if launch "$name" "${py_server[@]}" 0; then
    printf '%s' "$input" | timeout 10 "$build/sockit" connect 127.0.0.1 "$port" \
        >"$work/$name.client.out" 2>"$work/$name.client.err"
    client_rc=$?
    if [ "$client_rc" -ne 0 ]; then
        fail "$name" "sockit connect exited $client_rc"
    elif [ "$(cat "$work/$name.client.out"; echo .)" != "$input." ]; then
        fail "$name" "the echo differs from what was sent"
    elif stop_within_1s "$name" TERM && no_stderr "$name"; then
        pass "$name"
    fi
fi

# --- the same lines from both servers --------------------------------------------
name=c_and_py_servers_print_the_same_lines_and_exit_after_n_connections
want="Listening on 127.0.0.1:PORT
Accepted 127.0.0.1:PORT
Echoing 13 bytes to 127.0.0.1:PORT
Echoing 4 bytes to 127.0.0.1:PORT
Closing 127.0.0.1:PORT
Accepted 127.0.0.1:PORT
Echoing 13 bytes to 127.0.0.1:PORT
Echoing 4 bytes to 127.0.0.1:PORT
Closing 127.0.0.1:PORT"
ok=1
for twin in c py; do
    [ "$twin" = c ] && server=("${c_server[@]}") || server=("${py_server[@]}")
    if ! { launch "$name.$twin" "${server[@]}" 0 2 && drive "$name.$twin" sequential &&
        await_exit "$name.$twin" && no_stderr "$name.$twin"; }; then
        ok=0
    elif [ "$(normalised "$name.$twin")" != "$want" ]; then
        fail "$name" "the $twin server said [$(normalised "$name.$twin")], want [$want]"
        ok=0
    fi
done
[ "$ok" -eq 1 ] && pass "$name"

# --- SIGINT with a connection open -----------------------------------------------
name=c_and_py_servers_close_open_connections_and_exit_on_sigint
ok=1
for twin in c py; do
    [ "$twin" = c ] && server=("${c_server[@]}") || server=("${py_server[@]}")
    n="$name.$twin"
    launch "$n" "${server[@]}" 0 || { ok=0; continue; }
    timeout 20 python3 "$work/clients.py" idle "$port" >"$work/$n.client.out" \
        2>"$work/$n.client.err" &
    client_pid=$!
    pids+=("$client_pid")
    for _ in $(seq 100); do # until the client is connected and answered
        [ -s "$work/$n.client.out" ] && break
        sleep 0.1
    done
    if ! stop_within_1s "$n" INT; then
        ok=0
        continue
    fi
    if ! wait "$client_pid"; then
        fail "$n" "the idle client did not see the connection close"
        ok=0
    elif [ "$(normalised "$n" | tail -n 1)" != "Stopping on SIGINT" ]; then
        fail "$n" "last line [$(normalised "$n" | tail -n 1)], want [Stopping on SIGINT]"
        ok=0
    fi
done
[ "$ok" -eq 1 ] && [ "$(normalised "$name.c")" = "$(normalised "$name.py")" ] && pass "$name"
[ "$ok" -eq 1 ] && [ "$(normalised "$name.c")" != "$(normalised "$name.py")" ] &&
    fail "$name" "C said [$(normalised "$name.c")], Python [$(normalised "$name.py")]"

# --- bad arguments ---------------------------------------------------------------
for args in "abc" "65536" "0 x" "0 -1" "1 2 3"; do
    name="both_reject_arguments_${args// /_}_alike"
    # shellcheck disable=SC2086 # the arguments are split on purpose
    timeout 10 "${c_server[@]}" $args >"$work/$name.c.out" 2>"$work/$name.c.err"
    c_rc=$?
    # shellcheck disable=SC2086
    timeout 10 "${py_server[@]}" $args >"$work/$name.py.out" 2>"$work/$name.py.err"
    py_rc=$?
    if [ "$c_rc" -ne 2 ] || [ "$py_rc" -ne 2 ]; then
        fail "$name" "exit status C $c_rc, Python $py_rc, want 2 and 2"
    elif [ -s "$work/$name.c.out" ] || [ "$(wc -l <"$work/$name.c.err")" -ne 1 ]; then
        fail "$name" "want no stdout and one line on stderr"
    elif ! cmp -s "$work/$name.c.err" "$work/$name.py.err"; then
        fail "$name" "C said [$(cat "$work/$name.c.err")], Python [$(cat "$work/$name.py.err")]"
    else
        pass "$name"
    fi
done

echo "e2e_selector_echo: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
