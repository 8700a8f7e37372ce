#!/usr/bin/env bash
# Issue 15, item 6: connect's local end and port check. `connect -s ADDR` and
# `-p PORT` bind what the peer then sees (python3's accept and recvfrom tell), over
# TCP, IPv6, UDP and TLS, and -p can be used again at once after a run that left
# its port in TIME_WAIT; bad values, a source of the other family and a port in use
# are one line and exit 2 or 1. `connect -z` reports exactly the ports that listen
# (a range whose other ports are bound but not listening, so nobody else takes
# them), bounds each port by -w, and exits 0 when one connected, 1 when none did.
# Loopback only.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

c=("$sockit" connect)

# A python peer for these tests: prints "port N" then one line per client.
cat >"$work/who.py" <<'PY'
import socket, sys, time
mode, host = sys.argv[1], sys.argv[2]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
def say(*w):
    print(*w, flush=True)
if mode == "tcp":
    # Accepts clients for 20 s; prints each one's address and what it sent.
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen(8)
    say("port", s.getsockname()[1])
    s.settimeout(20)
    while True:
        try:
            conn, peer = s.accept()
        except socket.timeout:
            break
        conn.settimeout(5)
        data = b""
        try:
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        say("peer", peer[0], peer[1], data.decode(errors="replace").strip())
        conn.close()
elif mode == "udp":
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host, 0))
    say("port", s.getsockname()[1])
    s.settimeout(20)
    data, peer = s.recvfrom(65536)
    say("peer", peer[0], peer[1], data.decode(errors="replace").strip())
elif mode == "free":
    # A port nobody uses now on host (bound, read, released).
    s = socket.socket(fam, socket.SOCK_STREAM)
    if host == "::":
        # The wildcard of both families: free on every IPv4 and IPv6 address.
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((host, 0))
    say(s.getsockname()[1])
elif mode == "range":
    # Ten consecutive ports of host, all bound; only the 3rd and the 6th listen. The
    # others refuse connections, and stay bound so that no one else listens there.
    # Below the ephemeral range (32768 on), where connections running beside this
    # test take ports between our bind and listen; the listens are tried too.
    start = 20000 + (int(time.time() * 1000) % 120) * 100
    for base in list(range(start, 32760, 10)) + list(range(20000, start, 10)):
        socks = []
        try:
            for p in range(base, base + 10):
                t = socket.socket(fam, socket.SOCK_STREAM)
                socks.append(t)
                t.bind((host, p))
            socks[2].listen(8)
            socks[5].listen(8)
            break
        except OSError:
            for t in socks:
                t.close()
    say("base", base)
    time.sleep(30)
PY

# who NAME MODE HOST: starts who.py (output in NAME.who) and sets who_port.
who() {
    spawn 30 python3 -u "$work/who.py" "$2" "$3" </dev/null >"$work/$1.who" 2>&1
    who_port=""
    wait_match "$work/$1.who" '^port [0-9]+$' || return 1
    who_port=${matched#port }
}

free_port() { python3 "$work/who.py" free "$1"; }

# expect_peer NAME REGEX: who.py's "peer HOST PORT DATA" line for NAME matches REGEX.
expect_peer() {
    if ! wait_match "$work/$1.who" '^peer ' 5; then
        fail "$1" "the listener saw no client"
    elif ! [[ $matched =~ $2 ]]; then
        fail "$1" "the listener saw [$matched], want [$2]"
    else
        pass "$1"
    fi
}

# ---- -s and -p: what the peer sees -------------------------------------------------------
name=source_address_is_what_the_peer_sees
who $name tcp 127.0.0.1 || fail $name "no listener"
echo hello | timeout 10 "${c[@]}" -s 127.0.0.2 127.0.0.1 "$who_port" >"$work/$name.out" \
    2>"$work/$name.err"
expect_peer $name '^peer 127\.0\.0\.2 [0-9]+ hello$'

name=source_address_and_port_are_what_the_peer_sees
who $name tcp 127.0.0.1 || fail $name "no listener"
port=$(free_port 127.0.0.2)
echo hello | timeout 10 "${c[@]}" -s 127.0.0.2 -p "$port" 127.0.0.1 "$who_port" \
    >"$work/$name.out" 2>"$work/$name.err"
expect_peer $name "^peer 127\\.0\\.0\\.2 $port hello\$"

name=source_port_alone_binds_the_wildcard
who $name tcp 127.0.0.1 || fail $name "no listener"
port=$(free_port 127.0.0.1)
echo hello | timeout 10 "${c[@]}" --source-port "$port" 127.0.0.1:"$who_port" \
    >"$work/$name.out" 2>"$work/$name.err"
expect_peer $name "^peer 127\\.0\\.0\\.1 $port hello\$"

# -q 0 closes first, so the connection's TIME_WAIT is on connect's side, on -p's port.
name=source_port_is_usable_again_at_once
who $name tcp 127.0.0.1 || fail $name "no listener"
port=$(free_port 127.0.0.1)
ok=1
for run in 1 2 3; do
    if ! echo "run $run" | timeout 10 "${c[@]}" -q 0 -p "$port" 127.0.0.1 "$who_port" \
        >"$work/$name.out" 2>"$work/$name.err"; then
        ok=0
        fail $name "run $run failed"
        break
    fi
    wait_match "$work/$name.who" "^peer 127\\.0\\.0\\.1 $port run $run\$" 5 || {
        ok=0
        fail $name "run $run: the listener did not see port $port"
        break
    }
done
[ $ok -eq 1 ] && pass $name

name=source_ipv6_address_and_port
who $name tcp ::1 || fail $name "no listener"
port=$(free_port ::1)
echo hello | timeout 10 "${c[@]}" -s ::1 -p "$port" ::1 "$who_port" >"$work/$name.out" \
    2>"$work/$name.err"
expect_peer $name "^peer ::1 $port hello\$"

name=source_port_with_6_binds_the_ipv6_wildcard
who $name tcp ::1 || fail $name "no listener"
# Free on the wildcard, not just on ::1: -6 -p binds [::]:PORT.
port=$(free_port ::)
echo hello | timeout 10 "${c[@]}" -6 -p "$port" ::1 "$who_port" >"$work/$name.out" \
    2>"$work/$name.err"
expect_peer $name "^peer ::1 $port hello\$"

name=udp_source_address_and_port
who $name udp 127.0.0.1 || fail $name "no listener"
port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 0)); print(s.getsockname()[1])')
echo hello | timeout 10 "${c[@]}" -u -q 0.2 -s 127.0.0.2 -p "$port" 127.0.0.1 "$who_port" \
    >"$work/$name.out" 2>"$work/$name.err"
expect_peer $name "^peer 127\\.0\\.0\\.2 $port hello\$"

# TLS with -p: the one-at-a-time connect, then the handshake in the same deadline.
name=tls_with_source_port
mkdir -p "$work/pki"
if "$sockit" tls-cert --out "$work/pki" >/dev/null 2>&1; then
    spawn 20 "$sockit" listen -v --cert "$work/pki/cert.pem" --key "$work/pki/key.pem" \
        127.0.0.1 0 </dev/null >"$work/$name.listen.out" 2>"$work/$name.listen.err"
    lpid=$spawn_pid
    if wait_match "$work/$name.listen.err" '^listening on '; then
        lport=$(port_of "${matched#listening on }")
        port=$(free_port 127.0.0.2)
        echo secret | timeout 10 "${c[@]}" -w 5 --ca "$work/pki/cert.pem" -s 127.0.0.2 -p "$port" \
            127.0.0.1 "$lport" >"$work/$name.out" 2>"$work/$name.err"
        rc=$?
        wait_exit "$lpid" 10
        if [ $rc -ne 0 ]; then
            fail $name "connect exit code $rc"
        elif ! grep -q "^connection from 127\\.0\\.0\\.2:$port\$" "$work/$name.listen.err"; then
            fail $name "listen did not see 127.0.0.2:$port"
        elif [ "$(cat "$work/$name.listen.out")" != secret ]; then
            fail $name "listen got [$(cat "$work/$name.listen.out")]"
        else
            pass $name
        fi
    else
        fail $name "listen did not start"
    fi
else
    echo "SKIP $name: no TLS in this build"
fi

# ---- -s and -p errors: one line each ----------------------------------------------------------
expect_error source_not_an_address 2 "^sockit connect: -s 'abc': not a numeric IPv4 or IPv6" \
    "${c[@]}" -s abc 127.0.0.1 9
expect_error source_bad_ipv4 2 "^sockit connect: -s '1\\.2\\.3\\.4\\.5': not a numeric" \
    "${c[@]}" -s 1.2.3.4.5 127.0.0.1 9
for p in abc 0 65536 -1; do
    expect_error "source_port_${p}_is_bad_usage" 2 "^sockit connect: -p '$p': not a whole number 1-65535" \
        "${c[@]}" -p "$p" 127.0.0.1 9
done
expect_error source_of_the_other_family 2 \
    '^sockit connect: -s ::1: an IPv6 source cannot reach 127\.0\.0\.1, an IPv4 address$' \
    "${c[@]}" -s ::1 127.0.0.1 9
expect_error source_of_the_other_family_v4_to_v6 2 \
    '^sockit connect: -s 127\.0\.0\.1: an IPv4 source cannot reach ::1, an IPv6 address$' \
    "${c[@]}" -s 127.0.0.1 ::1 9
expect_error source_against_6 2 '^sockit connect: -s 127\.0\.0\.1 is IPv4, and -6 asks for' \
    "${c[@]}" -6 -s 127.0.0.1 localhost 9
expect_error source_with_unix 2 '^sockit connect: -s: a unix: socket has no IP address' \
    "${c[@]}" -s 127.0.0.1 "unix:$work/none.sock"
expect_error source_port_with_unix 2 '^sockit connect: -p: a unix: socket has no IP address' \
    "${c[@]}" -p 4000 "unix:$work/none.sock"
expect_error source_not_of_this_host 1 \
    '^sockit: -s 192\.0\.2\.1: bind to 192\.0\.2\.1:0: Cannot assign requested address$' \
    "${c[@]}" -s 192.0.2.1 127.0.0.1 9
expect_error listen_has_no_source 2 "^sockit listen: unknown option '-s'" \
    "$sockit" listen -s 127.0.0.1 0

name=source_port_in_use
who $name tcp 127.0.0.1 || fail $name "no listener"
expect_error $name 1 "^sockit: bind to 127\\.0\\.0\\.1:$who_port: Address already in use\$" \
    "${c[@]}" -s 127.0.0.1 -p "$who_port" 127.0.0.1 "$who_port"
expect_error source_port_in_use_wildcard 1 "^sockit: bind to 0\\.0\\.0\\.0:$who_port: Address already in use\$" \
    "${c[@]}" -p "$who_port" 127.0.0.1 "$who_port"
# who.py udp holds its port until it hears a datagram.
name=udp_source_port_in_use
who $name udp 127.0.0.1 || fail $name "no listener"
expect_error $name 1 "^sockit: bind to 127\\.0\\.0\\.1:$who_port: Address already in use\$" \
    "${c[@]}" -u -s 127.0.0.1 -p "$who_port" 127.0.0.1 9

# ---- -z: the port check -------------------------------------------------------------------
name=scan_reports_exactly_the_listening_ports
spawn 40 python3 -u "$work/who.py" range 127.0.0.1 </dev/null >"$work/range.who" 2>&1
if ! wait_match "$work/range.who" '^base [0-9]+$' 30; then
    fail $name "no port range"
    finish
    exit
fi
base=${matched#base }
last=$((base + 9))
timeout 20 "${c[@]}" -z -v 127.0.0.1 "$base-$last" </dev/null >"$work/$name.out" 2>"$work/$name.err"
rc=$?
open=$(grep -E ' open \(connected to ' "$work/$name.err" | awk '{print $3}' | tr '\n' ' ')
closed=$(grep -c ' closed (Connection refused)$' "$work/$name.err")
if [ $rc -ne 0 ]; then
    fail $name "exit code $rc, want 0"
elif [ "$open" != "$((base + 2)) $((base + 5)) " ]; then
    fail $name "open ports [$open], want [$((base + 2)) $((base + 5)) ]"
elif [ "$closed" -ne 8 ]; then
    fail $name "$closed closed ports, want 8"
elif ! grep -qx "2 of 10 ports open" "$work/$name.err"; then
    fail $name "no summary line"
elif [ -s "$work/$name.out" ]; then
    fail $name "stdout is not empty"
else
    pass $name
fi

name=scan_host_colon_range_with_json
timeout 20 "${c[@]}" -z --json "127.0.0.1:$base-$last" </dev/null >"$work/$name.out" \
    2>"$work/$name.err"
rc=$?
got=$(python3 - "$work/$name.err" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
ports = [e for e in ev if e["event"] == "port"]
print(len(ports), " ".join(str(e["port"]) for e in ports if e["state"] == "open"),
      ev[-1]["event"], ev[-1].get("open"), ev[-1].get("ports"),
      all(e["state"] == "closed" and e["peer"] is None for e in ports if e["state"] != "open"))
PY
)
if [ $rc -ne 0 ]; then
    fail $name "exit code $rc"
elif [ "$got" != "10 $((base + 2)) $((base + 5)) exit 2 10 True" ]; then
    fail $name "events say [$got]"
else
    pass $name
fi

name=scan_with_source_port
port=$(free_port 127.0.0.1)
timeout 20 "${c[@]}" -z -v -p "$port" 127.0.0.1 "$base-$last" </dev/null >"$work/$name.out" \
    2>"$work/$name.err"
rc=$?
if [ $rc -eq 0 ] && grep -qx "2 of 10 ports open" "$work/$name.err"; then pass $name; else
    fail $name "exit code $rc"
fi

name=scan_without_v_is_silent
timeout 10 "${c[@]}" -z 127.0.0.1 "$((base + 5))" </dev/null >"$work/$name.out" 2>"$work/$name.err"
rc=$?
if [ $rc -eq 0 ] && [ ! -s "$work/$name.err" ] && [ ! -s "$work/$name.out" ]; then pass $name; else
    fail $name "exit code $rc, or something was said"
fi

name=scan_none_open_exits_1
timeout 10 "${c[@]}" -z -v 127.0.0.1 "$base-$((base + 1))" </dev/null >"$work/$name.out" \
    2>"$work/$name.err"
rc=$?
if [ $rc -eq 1 ] && grep -qx "0 of 2 ports open" "$work/$name.err"; then pass $name; else
    fail $name "exit code $rc, want 1"
fi

# A port that never answers costs -w, no more (margins are wide).
name=scan_w_bounds_each_port
if peer $name blackhole; then
    t0=$(date +%s%N)
    timeout 20 "${c[@]}" -z -v -w 0.5 127.0.0.1 "$peer_port-$((peer_port + 1))" </dev/null \
        >"$work/$name.out" 2>"$work/$name.err"
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    if [ $rc -ne 1 ] && [ $rc -ne 0 ]; then
        fail $name "exit code $rc"
    elif ! grep -qx "127.0.0.1 port $peer_port: no answer within 0.5 s" "$work/$name.err"; then
        fail $name "no 'no answer' line"
    elif [ $ms -gt 8000 ]; then
        fail $name "took $ms ms for two ports at -w 0.5"
    else
        pass $name
    fi
else
    fail $name "no blackhole peer"
fi

expect_error scan_udp_is_refused 2 '^sockit connect: -z: UDP ports cannot be checked by connecting' \
    "${c[@]}" -z -u 127.0.0.1 9
expect_error scan_range_backwards 2 '^sockit connect: port range 20-10: the first port is after the last$' \
    "${c[@]}" -z 127.0.0.1 20-10
expect_error scan_range_past_65535 2 "^sockit connect: port range '20-70000': last port 70000 out of range 1-65535\$" \
    "${c[@]}" -z 127.0.0.1 20-70000
expect_error scan_range_from_0 2 "^sockit connect: port '0': must be 1-65535" \
    "${c[@]}" -z 127.0.0.1 0-10
expect_error scan_range_needs_z 2 "^sockit connect: port '20-30'" "${c[@]}" 127.0.0.1 20-30
expect_error scan_unix_is_refused 2 '^sockit connect: -z: checks the ports of a HOST' \
    "${c[@]}" -z "unix:$work/none.sock"
expect_error scan_tls_is_refused 2 '^sockit connect: -z: connects and closes at once; --tls' \
    "${c[@]}" -z --tls 127.0.0.1 9
expect_error scan_data_options_are_refused 2 '^sockit connect: -z: sends and receives nothing' \
    "${c[@]}" -z -q 1 127.0.0.1 9
# A failure that every port would repeat is said once, and the scan stops.
name=scan_stops_at_a_local_failure
expect_error $name 1 '^sockit: -s 192\.0\.2\.1: bind to 192\.0\.2\.1:0: Cannot assign requested address$' \
    "${c[@]}" -z -v -s 192.0.2.1 127.0.0.1 "$base-$last"
if [ "$(wc -l <"$work/$name.err")" -ne 1 ]; then fail "${name}_in_one_line" "more than one line"; else
    pass "${name}_in_one_line"
fi

finish
