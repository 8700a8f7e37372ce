#!/usr/bin/env bash
# sockit echo, the echo server on the event-driven server: python3 clients over TCP
# and a Unix socket get back exactly what they sent, 200 at once; a client that
# sends and never reads does not stop the others; --json events; --idle frees a
# silent client; --max-connections holds the next one back; SIGTERM and SIGINT stop
# it with exit status 0 within 1 s even with clients connected; bad usage exits 2
# with a one-line reason. With -u: datagrams over IPv4, IPv6 and a Unix datagram
# socket come back whole to their senders, a 65,507-byte one too, and --json counts
# them.
source "$(dirname "$0")/e2e_cli_common.bash"

start_echo() { # NAME ARGS...: starts sockit echo, sets echo_pid and echo_port
    local name=$1
    shift
    spawn 60 "$sockit" echo "$@" >"$work/$name.out" 2>"$work/$name.err"
    echo_pid=$spawn_pid
    echo_port=""
    if wait_match "$work/$name.out" '(Listening on|"bound")' 10; then
        echo_port=$(sed -n 's/^Listening on .*:\([0-9]*\)$/\1/p; s/.*"port": *\([0-9]*\).*/\1/p' \
            "$work/$name.out" | head -n 1)
    fi
}

stop_echo() { # NAME SIGNAL: the server exits 0 within 1 s of SIGNAL
    local name=$1 sig=$2 t0 ms
    t0=$(date +%s%N)
    # The signal goes to sockit itself, not to the timeout(1) around it: timeout
    # passes a signal on to its child twice (directly and to its process group) and
    # follows it with SIGCONT, and under AddressSanitizer the extra signals can land
    # while LeakSanitizer has the exiting process stopped for its leak check, whose
    # tracer then spins (seen as a stop that took 10 s with the process running).
    local target
    target=$(pgrep -P "$echo_pid" | head -n 1)
    kill "-$sig" "${target:-$echo_pid}"
    # Not stopped after 3 s: where its threads wait (the kernel's view) is kept for the
    # report before waiting up to 7 s more.
    local i child t
    for ((i = 0; i < 30; i++)); do
        kill -0 "$echo_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$echo_pid" 2>/dev/null; then
        child=$(pgrep -P "$echo_pid" | head -n 1)
        {
            for t in /proc/"$child"/task/*; do
                [ -n "$child" ] && echo "thread ${t##*/}: $(cat "$t/wchan" 2>/dev/null)" \
                    "$(awk '{print "state " $3 ", utime " $14 ", stime " $15}' "$t/stat" 2>/dev/null)"
            done
            # Where each thread is, in user space too, when gdb is there to say.
            if [ -n "$child" ] && command -v gdb >/dev/null; then
                timeout 20 gdb -p "$child" -batch -ex "thread apply all bt" 2>/dev/null |
                    grep -E '^(#|Thread)' | head -n 40
            fi
        } >"$work/$name.hung"
    fi
    wait_exit "$echo_pid" 7
    ms=$((($(date +%s%N) - t0) / 1000000))
    if [ "$exit_rc" -ne 0 ]; then
        fail "$name" "exit status $exit_rc after SIG$sig ($ms ms)"
        for f in "$work/${name%-stop}".out "$work/${name%-stop}".err; do
            [ -s "$f" ] && tail -n 5 "$f" | sed "s|^|    ${f##*/}: |"
        done
        [ -s "$work/$name.hung" ] && sed "s|^|    $name.hung: |" "$work/$name.hung"
    elif [ "$ms" -ge 1000 ]; then
        fail "$name" "took $ms ms to stop after SIG$sig"
    else
        pass "$name ($ms ms)"
    fi
}

cat >"$work/clients.py" <<'PY'
import os, socket, sys, threading, time

target, scenario = sys.argv[1], sys.argv[2]

def connect():
    if target.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(target[5:])
    else:
        s = socket.create_connection(("127.0.0.1", int(target)), timeout=5)
    return s

def echo_check(s, payload):
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("closed after %d of %d bytes" % (len(got), len(payload)))
        got += chunk
    if got != payload:
        raise SystemExit("echo differs")

if scenario == "many":
    socks = [connect() for _ in range(200)]
    for i, s in enumerate(socks):
        s.sendall(b"client %d\n" % i)
    for i, s in enumerate(socks):
        want = b"client %d\n" % i
        got = b""
        while len(got) < len(want):
            got += s.recv(100)
        assert got == want, (i, got)
    big = os.urandom(1 << 20)
    echo_check(socks[0], big)
    for s in socks:
        s.close()
elif scenario == "hog":
    hog = connect()
    hog.setblocking(False)
    sent = 0
    block = b"h" * 65536
    deadline = time.monotonic() + 3
    # It writes and never reads, until the server stops reading it (its replies queue).
    while time.monotonic() < deadline:
        try:
            sent += hog.send(block)
        except BlockingIOError:
            time.sleep(0.05)
            try:
                sent += hog.send(block)
            except BlockingIOError:
                break
    other = connect()
    t0 = time.monotonic()
    echo_check(other, b"still served\n")
    took = time.monotonic() - t0
    assert took < 1.0, "the other client waited %.2f s" % took
    print("hog sent", sent, "other served in %.3f s" % took)
    other.close()
    hog.close()
elif scenario == "idle":
    s = connect()
    t0 = time.monotonic()
    assert s.recv(10) == b""
    took = time.monotonic() - t0
    assert 0.2 <= took < 3.0, took
elif scenario == "max":
    a = connect(); echo_check(a, b"a\n")
    b = connect(); b.sendall(b"b\n")
    b.settimeout(0.5)
    try:
        b.recv(10)
        raise SystemExit("second client served beyond --max-connections 1")
    except socket.timeout:
        pass
    a.close()
    b.settimeout(5)
    got = b""
    while len(got) < 2:
        got += b.recv(10)
    assert got == b"b\n"
    b.close()
elif scenario == "two":
    a, b = connect(), connect()
    echo_check(a, b"over a unix socket\n")
    echo_check(b, b"the other one\n")
    a.close()
    b.close()
elif scenario == "19000":
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = 19000
    if hard < n + 50:
        print("skipped: hard RLIMIT_NOFILE is %d, below %d" % (hard, n + 50))
        sys.exit(0)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks = []
    t0 = time.monotonic()
    for i in range(n):
        socks.append(connect())
    for i, s in enumerate(socks):
        s.sendall(b"%d\n" % i)
    for i, s in enumerate(socks):
        want = b"%d\n" % i
        got = b""
        while len(got) < len(want):
            chunk = s.recv(16)
            if not chunk:
                raise SystemExit("connection %d closed" % i)
            got += chunk
        assert got == want, (i, got)
    print("19000 connections open at once, all answered in %.1f s" % (time.monotonic() - t0))
    for s in socks:
        s.close()
elif scenario in ("udp4", "udp6", "udpunix"):
    socks = []
    for k in range(5):
        if scenario == "udpunix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.bind(os.path.join(os.path.dirname(target[5:]), "client%d.sock" % k))
            s.connect(target[5:])
        else:
            fam = socket.AF_INET if scenario == "udp4" else socket.AF_INET6
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.connect(("127.0.0.1" if scenario == "udp4" else "::1", int(target)))
        s.settimeout(2)
        socks.append(s)
    # 100 rounds of one datagram in flight per socket: every one answered, in order.
    for r in range(100):
        for k, s in enumerate(socks):
            s.send(b"%d:%d" % (k, r))
        for k, s in enumerate(socks):
            got = s.recv(100)
            assert got == b"%d:%d" % (k, r), (k, r, got)
    big = os.urandom(65507 if scenario != "udpunix" else 60000)
    socks[0].send(big)
    assert socks[0].recv(70000) == big, "the big datagram came back different"
    socks[0].send(b"")
    assert socks[0].recv(10) == b"", "the empty datagram"
    print("502 datagrams echoed")
elif scenario == "hold":
    socks = [connect() for _ in range(50)]
    for s in socks:
        echo_check(s, b"x\n")
    print("holding", flush=True)
    time.sleep(30)
PY

# 200 clients at once, and 1 MiB through one of them.
start_echo many 0
if [ -n "$echo_port" ] && timeout 30 python3 "$work/clients.py" "$echo_port" many >"$work/many.clients" 2>&1; then
    pass many
else
    fail many "clients failed"
fi
stop_echo many-stop TERM

# --loops 2: the same 200 clients and 1 MiB, over two loops; and datagrams too.
start_echo loops --loops 2 --json 0
if [ -n "$echo_port" ] && timeout 30 python3 "$work/clients.py" "$echo_port" many >"$work/loops.clients" 2>&1; then
    pass loops
else
    fail loops "clients failed"
fi
stop_echo loops-stop TERM
if json_check "$work/loops.out" "bound $(printf 'connected %.0s' {1..200})exit" \
    'exit.connections=200' >"$work/loops-json.check" 2>&1; then
    pass loops-json
else
    fail loops-json "$(cat "$work/loops-json.check")"
fi
start_echo udploops -u --loops 2 0
if [ -n "$echo_port" ] && timeout 30 python3 "$work/clients.py" "$echo_port" udp4 >"$work/udploops.clients" 2>&1; then
    pass udploops
else
    fail udploops "$(tail -n 3 "$work/udploops.clients")"
fi
stop_echo udploops-stop TERM

# A client that never reads holds up nobody.
start_echo hog 0
if timeout 30 python3 "$work/clients.py" "$echo_port" hog >"$work/hog.clients" 2>&1; then
    pass "hog ($(tail -n 1 "$work/hog.clients"))"
else
    fail hog "clients failed"
fi
stop_echo hog-stop INT

# Over a Unix socket, with --json events.
sock=$work/echo.sock
start_echo unix --json "unix:$sock"
if timeout 30 python3 "$work/clients.py" "unix:$sock" two >"$work/unix.clients" 2>&1; then
    pass unix
else
    fail unix "clients failed"
fi
stop_echo unix-stop TERM
if json_check "$work/unix.out" "bound connected connected exit" 'exit.reason=signal' \
    'exit.connections=2' 'bound.backend=*' >"$work/unix-json.check" 2>&1; then
    pass unix-json
else
    fail unix-json "$(cat "$work/unix-json.check")"
fi

# --json names the loop backend: the one SOCKIT_LOOP_BACKEND asks for.
for backend in epoll poll; do
    SOCKIT_LOOP_BACKEND=$backend start_echo "backend-$backend" --json 0
    stop_echo "backend-$backend-stop" TERM
    if json_check "$work/backend-$backend.out" "bound exit" "bound.backend=$backend" \
        >"$work/backend-$backend.check" 2>&1; then
        pass "backend-$backend"
    else
        fail "backend-$backend" "$(cat "$work/backend-$backend.check")"
    fi
done

# --idle frees a silent client; --max-connections holds the next one back.
start_echo idle --idle 0.3 0
if timeout 10 python3 "$work/clients.py" "$echo_port" idle >"$work/idle.clients" 2>&1; then
    pass idle
else
    fail idle "client not closed by --idle"
fi
stop_echo idle-stop TERM
start_echo max --max-connections 1 0
if timeout 10 python3 "$work/clients.py" "$echo_port" max >"$work/max.clients" 2>&1; then
    pass max
else
    fail max "clients failed"
fi
stop_echo max-stop TERM

# 19,000 connections held at once by one process, every one answered.
start_echo c19000 0
if timeout 100 python3 "$work/clients.py" "$echo_port" 19000 >"$work/c19000.clients" 2>&1; then
    pass "c19000 ($(tail -n 1 "$work/c19000.clients"))"
else
    fail c19000 "clients failed"
fi
stop_echo c19000-stop TERM

# SIGTERM with 50 clients connected and idle.
start_echo hold 0
spawn 40 python3 "$work/clients.py" "$echo_port" hold >"$work/hold.clients" 2>&1
if wait_match "$work/hold.clients" '^holding' 10; then
    stop_echo hold-stop TERM
else
    fail hold "clients did not connect"
fi

# -u: UDP over IPv4 and IPv6 (no HOST: both), a Unix datagram socket with --json.
start_echo udp -u 0
for fam in udp4 udp6; do
    if [ -n "$echo_port" ] && timeout 30 python3 "$work/clients.py" "$echo_port" $fam >"$work/$fam.clients" 2>&1; then
        pass "$fam"
    else
        fail "$fam" "$(tail -n 3 "$work/$fam.clients")"
    fi
done
stop_echo udp-stop TERM
usock=$work/udpecho.sock
start_echo udpunix -u --json "unix:$usock"
if timeout 30 python3 "$work/clients.py" "unix:$usock" udpunix >"$work/udpunix.clients" 2>&1; then
    pass udpunix
else
    fail udpunix "$(tail -n 3 "$work/udpunix.clients")"
fi
stop_echo udpunix-stop TERM
if json_check "$work/udpunix.out" "bound exit" 'exit.reason=signal' 'exit.datagrams=502' \
    'exit.dropped=0' >"$work/udpunix-json.check" 2>&1; then
    pass udpunix-json
else
    fail udpunix-json "$(cat "$work/udpunix-json.check")"
fi
expect_error udp-idle 2 "not to -u" "$sockit" echo -u --idle 5 0

expect_error bad-port-big 2 "65536" "$sockit" echo 65536
expect_error bad-port-abc 2 "abc" "$sockit" echo abc
expect_error bad-idle 2 "--idle" "$sockit" echo --idle -1 0
expect_error bad-max 2 "--max-connections" "$sockit" echo --max-connections 0 0
expect_error bad-option 2 "unknown option" "$sockit" echo --frobnicate 0
expect_error bad-spin 2 "--spin" "$sockit" echo --spin 2000000 0
expect_error bad-loops 2 "--loops" "$sockit" echo --loops 0 0
expect_error missing-port 2 "." "$sockit" echo
if "$sockit" echo --help | grep -q "^usage: sockit echo"; then pass help; else fail help "no usage"; fi
finish
