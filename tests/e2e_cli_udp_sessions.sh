#!/usr/bin/env bash
# Issue 15, item 10: `sockit listen -u -k`, a datagram listener that serves many peers
# at once. Python UDP (and Unix datagram) peers each send, and each gets every stdin
# line (a broadcast: the old -u answered only the last sender, which fails these);
# every datagram reaches stdout whole; a peer silent past -i is expired (said, and it
# gets no more broadcasts) while an active one keeps its session; -m drops a new
# peer's datagrams while the table is full; --deny and --conn-rate keep senders out;
# IPv6 and dual-stack peers; a 65507-byte datagram each way; a failed send ends that
# session only; SIGTERM ends it at once with 0, a closed stdout with 0, -w with 1.
# stdin comes from a FIFO that the peers' script writes, so the test says when a line
# goes out. Loopback only: 127.0.0.2 and 127.0.0.3 are sources on lo.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

millis() { echo $(($(date +%s%N) / 1000000)); }

# udpk.py SCENARIO ADDR FIFO OUT ERR: plays the peers of one scenario against the
# listener at ADDR ("127.0.0.1:PORT", "[::1]:PORT", "unix:PATH"), writing stdin lines
# into FIFO and reading the listener's stdout (OUT) and stderr (ERR) files. Prints
# "ok", or each thing that was wrong, and exits 1 then.
cat >"$work/udpk.py" <<'PY'
import os, re, socket, sys, time

scenario, addr, fifo, out_path, err_path = sys.argv[1:6]
problems = []

def check(ok, what):
    if not ok:
        problems.append(what)
    return ok

def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""

def wait_for(path, pred, secs=10):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if pred(read(path)):
            return True
        time.sleep(0.05)
    return False

def err_lines():
    return read(err_path).decode(errors="replace").splitlines()

def wait_err(regex, secs=10, count=1):
    return wait_for(err_path, lambda d: len(re.findall(regex, d.decode(errors="replace"), re.M)) >= count, secs)

def feed(line):
    with open(fifo, "wb", buffering=0) as f:
        f.write(line)

if addr.startswith("unix:"):
    family, dest = socket.AF_UNIX, addr[5:]
elif addr.startswith("["):
    family, dest = socket.AF_INET6, (addr[1:addr.index("]")], int(addr.rsplit(":", 1)[1]))
else:
    family, dest = socket.AF_INET, (addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1]))

def peer(host=None, fam=None):
    fam = fam or family
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if host is not None:
        s.bind(host if fam == socket.AF_UNIX else (host, 0))
    elif fam != socket.AF_UNIX:
        s.bind(("::1" if fam == socket.AF_INET6 else "127.0.0.1", 0))
    return s

def port(s):
    return s.getsockname()[1]

def received(s, secs):
    """Every datagram s gets until secs pass without one."""
    got = []
    s.settimeout(secs)
    while True:
        try:
            got.append(s.recv(70000))
        except socket.timeout:
            return got

def expect(s, want, who, quiet=0.3):
    """s gets exactly the datagrams of want (the first within 5 s), then nothing."""
    got = []
    for _ in want:
        s.settimeout(5)
        try:
            got.append(s.recv(70000))
        except socket.timeout:
            break
    got += received(s, quiet)
    short = [g[:40] + (b"..." if len(g) > 40 else b"") for g in got]
    return check(got == want, f"{who} got {short}, want {[w[:40] for w in want]}")

def on_stdout(*datagrams):
    need = sum(len(d) for d in datagrams)
    return wait_for(out_path, lambda d: len(d) >= need)

def whole(data, datagrams):
    """data is the datagrams one after the other, in some order, none cut."""
    rest = data
    left = list(datagrams)
    while rest:
        for d in left:
            if rest.startswith(d):
                rest = rest[len(d):]
                left.remove(d)
                break
        else:
            return False
    return not left

def broadcast():
    peers = [peer() for _ in range(3)]
    # Two lines in one datagram: stdout must show it whole, not interleaved.
    msgs = [b"hello from %d\nsecond line of %d\n" % (i, i) for i in range(3)]
    for p, m in zip(peers, msgs):
        p.sendto(m, dest)
    check(on_stdout(*msgs), "the three datagrams did not all reach stdout")
    check(whole(read(out_path), msgs), f"stdout is not the three datagrams whole: {read(out_path)!r}")
    for p in peers:
        check(wait_err(rf"^connection from 127\.0\.0\.1:{port(p)}$"), f"no 'connection from' for port {port(p)}")
    feed(b"to all 1\n")
    feed(b"to all 2\n")
    for i, p in enumerate(peers):
        expect(p, [b"to all 1\n", b"to all 2\n"], f"peer {i}")

def stdin_waits():
    # The line is written before anyone has sent: it waits for the first session.
    feed(b"early line\n")
    time.sleep(0.5)
    a, b = peer(), peer()
    a.sendto(b"a is here\n", dest)
    expect(a, [b"early line\n"], "the first peer")
    b.sendto(b"b is here\n", dest)
    check(on_stdout(b"a is here\n", b"b is here\n"), "the peers' datagrams did not reach stdout")
    feed(b"for both\n")
    expect(a, [b"for both\n"], "the first peer, later")
    expect(b, [b"for both\n"], "the second peer")

def idle():
    a, b = peer(), peer()
    a.sendto(b"a hello\n", dest)
    b.sendto(b"b hello\n", dest)
    b_silent = time.monotonic()  # b's last datagram
    check(on_stdout(b"a hello\n", b"b hello\n"), "the hellos did not reach stdout")
    feed(b"before\n")
    expect(a, [b"before\n"], "a, before the expiry")
    expect(b, [b"before\n"], "b, before the expiry")
    # a keeps talking (every 0.2 s, well inside -i 1); b is silent.
    expired = rf"^idle timeout, closed 127\.0\.0\.1:{port(b)}$"
    end = b_silent + 10
    while time.monotonic() < end and not re.search(expired, read(err_path).decode(), re.M):
        a.sendto(b"a keepalive\n", dest)
        time.sleep(0.2)
    took = time.monotonic() - b_silent
    if check(re.search(expired, read(err_path).decode(), re.M), "b was never expired (no 'idle timeout, closed' line)"):
        check(took >= 0.9, f"b was expired after {took:.2f} s of silence, -i is 1")
    check(not re.search(rf"^idle timeout, closed 127\.0\.0\.1:{port(a)}$", read(err_path).decode(), re.M),
          "a was expired although it kept sending")
    feed(b"after\n")
    expect(a, [b"after\n"], "a, after b's expiry")
    expect(b, [], "b, after its expiry", quiet=0.5)
    # b's next datagram begins a new session, which gets the next line.
    b.sendto(b"b again\n", dest)
    check(wait_err(rf"^connection from 127\.0\.0\.1:{port(b)}$", count=2), "b's return was not a new session")
    a.sendto(b"a still\n", dest)
    feed(b"welcome back\n")
    expect(a, [b"welcome back\n"], "a, after b came back")
    expect(b, [b"welcome back\n"], "b, after it came back")

def full():
    a, b, c = peer(), peer(), peer()
    a.sendto(b"from a\n", dest)
    b.sendto(b"from b\n", dest)
    check(on_stdout(b"from a\n", b"from b\n"), "a and b did not reach stdout")
    for i in range(3):
        c.sendto(b"from c %d\n" % i, dest)
    # Sent after c's, so read after them: once it is out, c's were dealt with.
    a.sendto(b"a after c\n", dest)
    check(wait_for(out_path, lambda d: b"a after c\n" in d), "a's last datagram did not reach stdout")
    check(b"from c" not in read(out_path), "a datagram of c, the third peer, reached stdout")
    said = [l for l in err_lines() if l.startswith("dropped datagram from")]
    check(said == [f"dropped datagram from 127.0.0.1:{port(c)}: all 2 sessions in use (-m), 1 dropped so far"],
          f"want one 'dropped datagram' line for c's three, got {said}")
    feed(b"to sessions\n")
    expect(a, [b"to sessions\n"], "a")
    expect(b, [b"to sessions\n"], "b")
    expect(c, [], "c, the dropped peer", quiet=0.5)

def deny():
    bad, good1, good2 = peer("127.0.0.2"), peer(), peer()
    bad.sendto(b"bad 1\n", dest)
    bad.sendto(b"bad 2\n", dest)
    good1.sendto(b"good 1\n", dest)
    good2.sendto(b"good 2\n", dest)
    check(on_stdout(b"good 1\n", b"good 2\n"), "the allowed peers did not reach stdout")
    check(b"bad" not in read(out_path), f"the denied peer reached stdout: {read(out_path)!r}")
    check(wait_err(rf"^dropped datagrams from 127\.0\.0\.2:{port(bad)}: matches --deny 127\.0\.0\.2/32$"),
          "no 'dropped datagrams' line for the denied peer")
    feed(b"secret\n")
    expect(good1, [b"secret\n"], "the first allowed peer")
    expect(good2, [b"secret\n"], "the second allowed peer")
    expect(bad, [], "the denied peer", quiet=0.5)

def rate():
    a, c = peer(), peer("127.0.0.3")
    a.sendto(b"a1\n", dest)
    a.sendto(b"a2\n", dest)  # the same session: not a new one to count
    check(on_stdout(b"a1\n", b"a2\n"), "a's two datagrams did not reach stdout")
    check(wait_err(rf"^idle timeout, closed 127\.0\.0\.1:{port(a)}$"), "a's session did not expire")
    a.sendto(b"a3\n", dest)  # a second session within the minute: over 1/60
    c.sendto(b"c1\n", dest)  # another source, counted apart
    check(wait_for(out_path, lambda d: b"c1\n" in d), "the other source's datagram did not reach stdout")
    check(b"a3" not in read(out_path), "a's datagram over the rate reached stdout")
    check(wait_err(rf"^dropped datagrams from 127\.0\.0\.1:{port(a)}: over --conn-rate 1/60$"),
          "no 'over --conn-rate' line")

def families():
    # ADDR is [::1]:PORT: two IPv6 peers; or the dual-stack wildcard: IPv4 and IPv6.
    dual = scenario == "dualstack"
    peers = [peer(fam=socket.AF_INET), peer(fam=socket.AF_INET6)] if dual else [peer(), peer()]
    names = ["127.0.0.1:%d" % port(peers[0]) if dual else "[::1]:%d" % port(peers[0]),
             "[::1]:%d" % port(peers[1])]
    for i, p in enumerate(peers):
        p.sendto(b"from %d\n" % i, ("127.0.0.1" if p.family == socket.AF_INET else "::1", dest[1]))
    check(on_stdout(b"from 0\n", b"from 1\n"), "the peers' datagrams did not reach stdout")
    for n in names:
        check(wait_err("^connection from " + re.escape(n) + "$"), f"no 'connection from {n}'")
    feed(b"to both\n")
    for n, p in zip(names, peers):
        expect(p, [b"to both\n"], n)

def big():
    a, b = peer(), peer()
    payload = bytes(i % 251 for i in range(65507))
    a.sendto(payload, dest)
    check(wait_for(out_path, lambda d: len(d) >= 65507), "the 65507-byte datagram did not reach stdout")
    data = read(out_path)
    check(data == payload, f"stdout has {len(data)} bytes, not the datagram whole")
    b.sendto(b"b\n", dest)
    check(wait_for(out_path, lambda d: d.endswith(b"b\n")), "b's datagram did not reach stdout")
    line = b"x" * 65506 + b"\n"
    feed(line)
    expect(a, [line], "a, for the 65507-byte line")
    expect(b, [line], "b, for the 65507-byte line")

def unix_peers():
    base = os.path.dirname(dest)
    a, b = peer(os.path.join(base, "ua.sock")), peer(os.path.join(base, "ub.sock"))
    anon = peer()  # bound to no name: cannot be answered
    a.sendto(b"from a\n", dest)
    b.sendto(b"from b\n", dest)
    anon.sendto(b"from anon\n", dest)
    check(on_stdout(b"from a\n", b"from b\n", b"from anon\n"), "the three datagrams did not reach stdout")
    feed(b"one\n")
    expect(a, [b"one\n"], "a")
    expect(b, [b"one\n"], "b")
    # a's socket goes, its name stays: a send to it is refused. That ends a's session,
    # not the listener, and b still gets every line.
    a.close()
    feed(b"two\n")
    expect(b, [b"two\n"], "b after a went")
    check(wait_err(r"^sockit: sendto unix:.*ua\.sock.*Connection refused$"), "the failed send was not said")
    check(wait_err(r"^closed unix:.*ua\.sock$"), "a's session was not closed")
    feed(b"three\n")
    expect(b, [b"three\n"], "b, later")
    check(len([l for l in err_lines() if l == "connection from unix:(unnamed)"]) == 1,
          "want one 'connection from unix:(unnamed)' line")
    check(len([l for l in err_lines() if "ub.sock" in l and l.startswith("connection from")]) == 1,
          "b should have had one session all along")

def json_events():
    a = peer()
    a.sendto(b"a\n", dest)
    check(wait_err(r'"event":"closed".*"reason":"idle"'), "no closed event for the idle session")

def stdout_closes():
    # OUT is a FIFO here: read the first datagram, then go, so the next write fails.
    a = peer()
    r = os.open(out_path, os.O_RDONLY)
    a.sendto(b"first\n", dest)
    got = os.read(r, 100)
    check(got == b"first\n", f"read {got!r} from stdout")
    os.close(r)
    a.sendto(b"second\n", dest)

globals()[{"ipv6": "families", "dualstack": "families", "unix": "unix_peers", "json": "json_events",
           "stdout": "stdout_closes", "stdin": "stdin_waits"}.get(scenario, scenario)]()
print("\n".join(problems) if problems else "ok")
sys.exit(1 if problems else 0)
PY

# start_udpk NAME HOSTPORT... -- ARGS...: `sockit listen -u -k -v ARGS HOSTPORT` with
# stdin from the FIFO NAME.fifo (fd 3 holds it open, so it never ends by itself),
# stdout NAME.out, stderr NAME.err; sets listen_pid and listen_addr ("127.0.0.1:PORT",
# "[::1]:PORT" or "unix:PATH") once it listens.
start_udpk() {
    local name=$1 args=()
    shift
    while [ "$1" != "--" ]; do
        args+=("$1")
        shift
    done
    shift
    rm -f "$work/$name.fifo"
    mkfifo "$work/$name.fifo"
    exec 3<>"$work/$name.fifo"
    # Emptied before the job starts (its own redirection truncates later).
    : >"$work/$name.out"
    : >"$work/$name.err"
    spawn 60 "$sockit" listen -u -k -v "$@" "${args[@]}" <"$work/$name.fifo" \
        >"$work/$name.out" 2>"$work/$name.err"
    listen_pid=$spawn_pid
    listen_addr=""
    # With --json, the bound event replaces -v's line.
    wait_match "$work/$name.err" '^listening on |"event":"bound"' || return 1
    if [[ $matched =~ \"address\":\"([^\"]+)\" ]]; then
        listen_addr=${BASH_REMATCH[1]}
    else
        listen_addr=${matched#listening on }
        listen_addr=${listen_addr% (IPv6 and IPv4)}
    fi
}

# stop_udpk NAME: SIGTERM to the listener (timeout's child); it must exit 0 within 1 s.
# Sets stop_ms.
stop_udpk() {
    local child t0
    child=$(pgrep -P "$listen_pid" | head -n 1)
    t0=$(millis)
    [ -n "$child" ] && kill -TERM "$child"
    wait_exit "$listen_pid" 10
    stop_ms=$(($(millis) - t0))
    exec 3>&-
    if [ "$exit_rc" -ne 0 ]; then
        fail "$1" "listen exited $exit_rc after SIGTERM, want 0"
        return 1
    fi
}

# scenario NAME SCENARIO HOSTPORT... -- ARGS...: a listener, the peers of SCENARIO
# against it, then SIGTERM; passes when the peers saw what they should and the
# listener ran all along and exited 0.
scenario() {
    local name=$1 what=$2
    shift 2
    if ! start_udpk "$name" "$@"; then
        fail "$name" "listen did not start"
        kill_tree "$listen_pid"
        return
    fi
    timeout 60 python3 "$work/udpk.py" "$what" "$listen_addr" "$work/$name.fifo" \
        "$work/$name.out" "$work/$name.err" >"$work/$name.peers" 2>&1
    local rc=$?
    if ! kill -0 "$(pgrep -P "$listen_pid" | head -n 1)" 2>/dev/null; then
        wait_exit "$listen_pid" 1
        fail "$name" "the listener stopped during the scenario (exit $exit_rc)"
        return
    fi
    stop_udpk "$name" || return
    if [ $rc -ne 0 ]; then
        fail "$name" "$(head -c 1500 "$work/$name.peers")"
    else
        pass "$name"
    fi
}

scenario broadcast_reaches_every_session_and_stdout_gets_each_datagram_whole broadcast \
    127.0.0.1 0 --
scenario stdin_waits_for_the_first_session stdin 127.0.0.1 0 --
scenario idle_peer_is_expired_active_one_keeps_its_session idle 127.0.0.1 0 -- -i 1
scenario max_sessions_drops_a_new_peer full 127.0.0.1 0 -- -m 2
scenario deny_keeps_a_sender_out deny 127.0.0.1 0 -- --deny 127.0.0.2
scenario conn_rate_limits_new_sessions rate 127.0.0.1 0 -- -i 0.5 --conn-rate 1/60
scenario ipv6_peers ipv6 ::1 0 --
scenario datagram_of_65507_bytes_each_way big 127.0.0.1 0 --
scenario unix_peers_and_a_failed_send_ends_one_session unix "unix:$work/listen.sock" --

name=dualstack_ipv4_and_ipv6_peers
if python3 -c 'import socket; socket.has_dualstack_ipv6() or exit(1)'; then
    scenario $name dualstack 0 --
else
    echo "SKIP $name: no dual-stack socket here"
fi

# ---- --json: a session is a connected event, its expiry a closed one ---------------------------
name=json_session_events
if start_udpk $name 127.0.0.1 0 -- --json -i 0.5; then
    timeout 30 python3 "$work/udpk.py" json "$listen_addr" "$work/$name.fifo" \
        "$work/$name.out" "$work/$name.err" >"$work/$name.peers" 2>&1
    rc=$?
    if stop_udpk $name; then
        if [ $rc -ne 0 ]; then
            fail $name "$(cat "$work/$name.peers")"
        elif why=$(json_check "$work/$name.err" 'bound connected closed exit' closed.reason=idle \
            exit.reason=signal connected.accepted=True 2>&1); then
            pass $name
        else
            fail $name "$why"
        fi
    fi
else
    fail $name "listen did not start"
    kill_tree "$listen_pid"
fi

# ---- SIGTERM, stdout, -w ----------------------------------------------------------------------
name=sigterm_ends_it_at_once_with_0
if start_udpk $name 127.0.0.1 0 --; then
    python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"hi\n", ("127.0.0.1", int(sys.argv[1])))' "$(port_of "$listen_addr")"
    wait_match "$work/$name.err" '^connection from ' 5
    if stop_udpk $name; then
        if [ "$stop_ms" -gt 1000 ]; then
            fail $name "exited $stop_ms ms after SIGTERM, want within 1 s"
        elif ! grep -qE '^interrupted, closed 127\.0\.0\.1:[0-9]+$' "$work/$name.err"; then
            fail $name "the session was not said closed by the signal"
        else
            pass $name
        fi
    fi
else
    fail $name "listen did not start"
fi

name=closed_stdout_ends_it_with_0
rm -f "$work/$name.out"
mkfifo "$work/$name.out"
# A reader for the moment the listener's stdout is opened (else that open blocks),
# dropped at once: nothing is written before the peer script reads.
exec 4<>"$work/$name.out"
rm -f "$work/$name.fifo"
mkfifo "$work/$name.fifo"
exec 3<>"$work/$name.fifo"
: >"$work/$name.err"
spawn 30 "$sockit" listen -u -k -v 127.0.0.1 0 <"$work/$name.fifo" >"$work/$name.out" \
    2>"$work/$name.err"
listen_pid=$spawn_pid
exec 4<&-
if wait_match "$work/$name.err" '^listening on '; then
    listen_addr=${matched#listening on }
    timeout 20 python3 "$work/udpk.py" stdout "$listen_addr" "$work/$name.fifo" \
        "$work/$name.out" "$work/$name.err" >"$work/$name.peers" 2>&1
    rc=$?
    wait_exit "$listen_pid" 10
    exec 3>&-
    if [ $rc -ne 0 ]; then
        fail $name "$(cat "$work/$name.peers")"
    elif [ "$exit_rc" -ne 0 ]; then
        fail $name "exit code $exit_rc after stdout closed, want 0 (124: it kept running)"
    else
        pass $name
    fi
else
    exec 3>&-
    fail $name "listen did not start"
fi

name=w_without_a_datagram_fails
t0=$(millis)
timeout 10 "$sockit" listen -u -k -w 1 127.0.0.1 0 </dev/null >"$work/$name.out" 2>"$work/$name.err"
rc=$?
ms=$(($(millis) - t0))
if [ $rc -ne 1 ]; then
    fail $name "exit code $rc, want 1"
elif ! grep -qx 'sockit: no datagram within 1 s (-w)' "$work/$name.err"; then
    fail $name "no 'no datagram within 1 s (-w)' line"
elif [ $ms -lt 900 ] || [ $ms -gt 8000 ]; then
    fail $name "took $ms ms for -w 1"
else
    pass $name
fi

name=w_json_exit_reason_is_timeout
timeout 10 "$sockit" listen -u -k -w 0.3 --json 127.0.0.1 0 </dev/null >"$work/$name.out" \
    2>"$work/$name.err"
rc=$?
if [ $rc -ne 1 ]; then
    fail $name "exit code $rc, want 1"
elif ! python3 -c 'import json, sys
sys.exit(not any(e.get("event") == "exit" and e.get("reason") == "timeout"
                 for e in map(json.loads, open(sys.argv[1]))))' "$work/$name.err"; then
    fail $name "no exit event with reason timeout"
else
    pass $name
fi

name=w_is_not_met_by_a_denied_datagram
: >"$work/$name.err"
spawn 20 "$sockit" listen -u -k -v -w 1.5 --deny 127.0.0.2 127.0.0.1 0 </dev/null \
    >"$work/$name.out" 2>"$work/$name.err"
listen_pid=$spawn_pid
if wait_match "$work/$name.err" '^listening on '; then
    timeout 10 python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 0))
for _ in range(10):
    s.sendto(b"denied\n", ("127.0.0.1", int(sys.argv[1])))
    time.sleep(0.1)' "$(port_of "${matched#listening on }")"
    wait_exit "$listen_pid" 10
    if [ "$exit_rc" -ne 1 ]; then
        fail $name "exit code $exit_rc, want 1 (denied datagrams are not the first datagram)"
    elif ! grep -qx 'sockit: no datagram within 1.5 s (-w)' "$work/$name.err"; then
        fail $name "no 'no datagram within' line"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

# ---- usage --------------------------------------------------------------------------------------
expect_error q_is_bad_usage_with_u_k 2 '^sockit listen: -q: listen -u -k goes on after stdin ends' \
    "$sockit" listen -u -k -q 1 127.0.0.1 0
expect_error m_is_bad_usage_with_u_alone 2 '^sockit listen: -m: limits the sessions of -u -k' \
    "$sockit" listen -u -m 2 127.0.0.1 0
expect_error conn_rate_is_bad_usage_with_u_alone 2 \
    '^sockit listen: --conn-rate: a datagram listener \(-u\) has no connections to count; with -k' \
    "$sockit" listen -u --conn-rate 2 127.0.0.1 0
name=help_tells_of_sessions
help=$("$sockit" listen --help)
if [[ $help == *"With -u -k: at most MAX sessions (default 4096)"* ]] &&
    [[ $help == *"from its peer (default 60)"* ]]; then
    pass $name
else
    fail $name "listen --help does not tell of -u -k's sessions"
fi

finish
