#!/usr/bin/env bash
# Issue 15, item 11: `sockit forward ADDR ADDR`, socat's core, on sockit_relay.
# stdio, TCP, UDP, Unix, TLS, files and commands joined both ways; half-close (a peer
# that answers only after its input ended still gets through); 16 MiB through
# an echo with nothing lost; -k serving clients at once, each with its own command;
# descriptors the loop cannot watch (/dev/null, a regular file) through the pump;
# -i; SIGTERM within 1 s; the bad addresses and options, each one line. Loopback
# only.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

f=("$sockit" forward)

# fwd.py MODE PORTFILE [ARG]: a TCP server on 127.0.0.1 (its port written to
# PORTFILE) that serves clients as MODE says:
#   upper   read to the end, then answer it in capitals (needs the half-close)
#   echo    echo every client, each in its own thread
#   sink F  read one client to the end into file F, send nothing
#   banner  send "banner\n" and close
#   silent  accept and say nothing for 20 s
cat >"$work/fwd.py" <<'PY'
import os, socket, sys, threading, time
mode, portfile = sys.argv[1], sys.argv[2]
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
tmp = portfile + ".tmp"
open(tmp, "w").write("%d\n" % s.getsockname()[1])
os.rename(tmp, portfile)
def upper(c):
    data = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        data += chunk
    c.sendall(data.upper())
    c.close()
def echo(c):
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        c.sendall(chunk)
    c.shutdown(socket.SHUT_WR)
    c.close()
while True:
    c, _ = s.accept()
    if mode == "upper":
        threading.Thread(target=upper, args=(c,), daemon=True).start()
    elif mode == "echo":
        threading.Thread(target=echo, args=(c,), daemon=True).start()
    elif mode == "sink":
        with open(sys.argv[3], "wb") as out:
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                out.write(chunk)
        c.close()
    elif mode == "banner":
        c.sendall(b"banner\n")
        c.close()
    elif mode == "silent":
        time.sleep(20)
PY

# client.py HOST PORT TEXT [HOLD]: connects (HOST "unix:PATH" for a Unix socket),
# holds the connection HOLD seconds, sends TEXT and a newline, shuts its write side down and
# prints everything it receives.
cat >"$work/client.py" <<'PY'
import socket, sys, time
host, port, text = sys.argv[1], sys.argv[2], sys.argv[3].encode() + b"\n"
hold = float(sys.argv[4]) if len(sys.argv) > 4 else 0
if host.startswith("unix:"):
    s = socket.socket(socket.AF_UNIX)
    s.connect(host[5:])
else:
    s = socket.create_connection((host, int(port)))
s.settimeout(10)
time.sleep(hold)
s.sendall(text)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
sys.stdout.write(got.decode())
PY

# bulk.py PORT N: sends N random bytes through an echo while reading, and says
# "ok N" when the same bytes came back.
cat >"$work/bulk.py" <<'PY'
import hashlib, os, socket, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
data = os.urandom(n)
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(30)
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
h, got = hashlib.sha256(), 0
while True:
    chunk = s.recv(1 << 20)
    if not chunk:
        break
    h.update(chunk)
    got += len(chunk)
t.join()
print("ok %d" % got if h.digest() == hashlib.sha256(data).digest() else "differ %d" % got)
PY

# server NAME MODE [ARG]: starts fwd.py; sets server_port.
server() {
    local name=$1 mode=$2
    shift 2
    rm -f "$work/$name.port"
    spawn 60 python3 "$work/fwd.py" "$mode" "$work/$name.port" "$@" </dev/null >/dev/null 2>&1
    local i
    for ((i = 0; i < 100; i++)); do
        [ -s "$work/$name.port" ] && break
        sleep 0.1
    done
    server_port=$(cat "$work/$name.port" 2>/dev/null)
}

# forward NAME SECS ARGS...: starts sockit forward -v ARGS in the background
# (stderr in NAME.err), waits for "listening on", sets fwd_pid and fwd_port.
forward() {
    local name=$1 secs=$2
    shift 2
    : >"$work/$name.err"
    spawn "$secs" "${f[@]}" -v "$@" </dev/null >"$work/$name.out" 2>"$work/$name.err"
    fwd_pid=$spawn_pid
    fwd_port=""
    wait_match "$work/$name.err" '^listening on ' || return 1
    fwd_port=$(port_of "${matched% (IPv6 and IPv4)}") || true
}

# ---- stdio and TCP: the half-close gets the answer through ----
server up upper
out=$(printf 'hello' | timeout 10 "${f[@]}" - "tcp:127.0.0.1:$server_port" 2>"$work/stdio.err")
rc=$?
if [ "$rc" -eq 0 ] && [ "$out" = "HELLO" ]; then pass stdio_tcp_half_close; else fail stdio "rc $rc out [$out]"; fi

# ---- -v names what was typed on one line, a newline in a command escaped ----
out=$(printf 'two lines' | timeout 10 "${f[@]}" -v - $'system:tr a-z A-Z\n# a second line' 2>"$work/twolines.err")
rc=$?
if [ "$rc" -ne 0 ] || [ "$out" != "TWO LINES" ]; then
    fail verbose_lines_are_one_line "rc $rc out [$out]"
elif grep -q '^# a second line' "$work/twolines.err" ||
    ! grep -q "^running 'tr a-z A-Z\\\\n# a second line' (pid " "$work/twolines.err" ||
    ! grep -q '^forwarding stdio <-> system:tr a-z A-Z\\n# a second line$' "$work/twolines.err"; then
    fail verbose_lines_are_one_line "-v log: $(head -c 400 "$work/twolines.err")"
else
    pass verbose_lines_are_one_line
fi

# ---- /dev/null as stdin and a regular file as stdout (the pump thread) ----
server ban banner
timeout 10 "${f[@]}" - "tcp:127.0.0.1:$server_port" </dev/null >"$work/banner.txt" 2>"$work/pump.err"
rc=$?
if [ "$rc" -eq 0 ] && [ "$(cat "$work/banner.txt")" = "banner" ]; then
    pass stdio_unwatchable_descriptors
else
    fail pump "rc $rc, file [$(cat "$work/banner.txt")]"
fi

# ---- file: to TCP, and TCP to create: ----
head -c 1048576 /dev/urandom >"$work/src.bin"
server sk sink "$work/sunk.bin"
timeout 20 "${f[@]}" "file:$work/src.bin" "tcp:127.0.0.1:$server_port" 2>"$work/file.err"
rc=$?
sleep 0.3
if [ "$rc" -eq 0 ] && cmp -s "$work/src.bin" "$work/sunk.bin"; then pass file_to_tcp; else fail file "rc $rc, files differ"; fi

if forward create 20 "tcp-listen:127.0.0.1:0" "create:$work/created.bin"; then
    python3 - "$fwd_port" "$work/src.bin" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(open(sys.argv[2], "rb").read())
s.shutdown(socket.SHUT_WR)
s.settimeout(10)
assert s.recv(10) == b""  # create: sends nothing
PY
    wait_exit "$fwd_pid" 10
    if [ "$exit_rc" -eq 0 ] && cmp -s "$work/src.bin" "$work/created.bin"; then
        pass tcp_to_create
    else
        fail create "rc $exit_rc, files differ"
    fi
else
    fail create "no listening line"
fi

# ---- -k: clients at once, each with its own command ----
if forward keep 40 -k "tcp-listen:127.0.0.1:0" "system:tr a-z A-Z; echo \$\$"; then
    python3 "$work/client.py" 127.0.0.1 "$fwd_port" "first" 1.5 >"$work/k1.out" &
    k1=$!
    sleep 0.3
    a=$(timeout 5 python3 "$work/client.py" 127.0.0.1 "$fwd_port" "second")
    b=$(timeout 5 python3 "$work/client.py" 127.0.0.1 "$fwd_port" "third")
    wait "$k1"
    c=$(cat "$work/k1.out")
    pa=$(sed -n 2p <<<"$a") pb=$(sed -n 2p <<<"$b") pc=$(sed -n 2p <<<"$c")
    if [[ $a == SECOND* && $b == THIRD* && $c == FIRST* ]] && [ -n "$pa" ] && [ "$pa" != "$pb" ] &&
        [ "$pa" != "$pc" ] && [ "$pb" != "$pc" ]; then
        pass keep_open_concurrent_commands # the second and third were served while the first held on
    else
        fail keep "got [$a] [$b] [$c]"
    fi
    # No zombie is left once the sessions are over (sockit itself is found first:
    # a check of nobody's children would pass whatever happened).
    sleep 0.5
    zombies=0
    spid=$(pgrep -P "$fwd_pid" -x sockit | head -n 1)
    for p in $(pgrep -P "${spid:-0}" 2>/dev/null); do
        grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && zombies=$((zombies + 1))
    done
    if [ -n "$spid" ] && [ "$zombies" -eq 0 ]; then
        pass keep_open_reaps_commands
    else
        fail keep "sockit pid [$spid], $zombies zombies"
    fi
    t0=$(date +%s%N)
    kill -TERM "$(pgrep -P "$fwd_pid" | head -n 1)" 2>/dev/null
    wait_exit "$fwd_pid" 5
    ms=$((($(date +%s%N) - t0) / 1000000))
    if [ "$exit_rc" -eq 0 ] && [ "$ms" -lt 1000 ]; then
        pass sigterm_stops_within_1s
    else
        fail keep "SIGTERM: rc $exit_rc after $ms ms"
    fi
else
    fail keep "no listening line"
fi

# ---- the first side is opened first: nothing it sends is lost while the second
# waits for its client (a file, a server that speaks first) ----
if forward first 20 "file:$work/src.bin" "tcp-listen:127.0.0.1:0"; then
    sleep 0.5 # the file side is open and has bytes to give long before anyone comes
    timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.shutdown(socket.SHUT_WR)
out = open(sys.argv[2], "wb")
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    out.write(chunk)
' "$fwd_port" "$work/late.bin"
    wait_exit "$fwd_pid" 10
    if [ "$exit_rc" -eq 0 ] && cmp -s "$work/src.bin" "$work/late.bin"; then
        pass file_waits_for_the_second_side
    else
        fail first "rc $exit_rc, $(stat -c %s "$work/late.bin" 2>/dev/null) bytes of 1048576"
    fi
else
    fail first "no listening line"
fi
server ban2 banner
if forward speaks 20 "tcp:127.0.0.1:$server_port" "tcp-listen:127.0.0.1:0"; then
    sleep 0.5 # the banner has arrived at the first side by now
    got=$(timeout 5 python3 "$work/client.py" 127.0.0.1 "$fwd_port" "")
    if [ "$got" = "banner" ]; then pass server_speaks_first; else fail speaks "[$got]"; fi
else
    fail speaks "no listening line"
fi

# ---- SIGTERM while commands run: none outlives sockit ----
if forward term 30 -k "tcp-listen:127.0.0.1:0" "system:exec sleep 31.25"; then
    python3 -c '
import socket, sys, time
a = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
b = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
time.sleep(3)
' "$fwd_port" &
    holder=$!
    for _ in $(seq 50); do
        [ "$(pgrep -c -f '^sleep 31.25')" -ge 2 ] && break
        sleep 0.1
    done
    running=$(pgrep -c -f '^sleep 31.25')
    kill -TERM "$(pgrep -P "$fwd_pid" -x sockit)" 2>/dev/null
    wait_exit "$fwd_pid" 5
    left=$(pgrep -c -f '^sleep 31.25')
    wait "$holder" 2>/dev/null
    if [ "$running" -ge 2 ] && [ "$exit_rc" -eq 0 ] && [ "$left" -eq 0 ]; then
        pass sigterm_ends_running_commands
    else
        fail term "commands running $running, exit $exit_rc, left $left"
    fi
else
    fail term "no listening line"
fi

# ---- 16 MiB through an echo: backpressure both ways, nothing lost ----
server ech echo
if forward bulk 60 -k "tcp-listen:127.0.0.1:0" "tcp:127.0.0.1:$server_port"; then
    got=$(timeout 50 python3 "$work/bulk.py" "$fwd_port" 16777216)
    if [ "$got" = "ok 16777216" ]; then pass bulk_16MiB_through_echo; else fail bulk "[$got]"; fi
else
    fail bulk "no listening line"
fi

# ---- Unix listener to TCP ----
if forward unix 30 -k "unix-listen:$work/fwd.sock" "tcp:127.0.0.1:$server_port"; then
    got=$(timeout 5 python3 "$work/client.py" "unix:$work/fwd.sock" 0 "over unix")
    if [ "$got" = "over unix" ]; then pass unix_listen_to_tcp; else fail unix "[$got]"; fi
else
    fail unix "no listening line"
fi

# ---- TLS: a TLS listener in front of a command, and a TLS client to it ----
if "$sockit" tls-cert --cert "$work/c.pem" --key "$work/k.pem" >/dev/null 2>&1 &&
    forward tls 30 -k --cert "$work/c.pem" --key "$work/k.pem" "tls-listen:127.0.0.1:0" "exec:tr a-z A-Z"; then
    got=$(printf 'secret' | timeout 10 "${f[@]}" --ca "$work/c.pem" - "tls:localhost:$fwd_port" 2>"$work/tlsc.err")
    rc=$?
    if [ "$rc" -eq 0 ] && [ "$got" = "SECRET" ]; then pass tls_both_sides; else fail tls "rc $rc [$got] $(cat "$work/tlsc.err")"; fi
    # a client that does not trust the certificate is refused, one line, exit 1
    expect_error tls_untrusted 1 'forward tls:127\.0\.0\.1:[0-9]+: .*(certificate|verify)' \
        "${f[@]}" - "tls:127.0.0.1:$fwd_port"
else
    fail tls "no certificate or no listening line"
fi

# ---- UDP: stdio to a UDP server, and a udp-listen in front of a TCP echo ----
cat >"$work/udp.py" <<'PY'
import socket, sys
mode, portfile = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if mode == "upper":  # answers each datagram: its first 64 bytes in capitals and its length
    s.bind(("127.0.0.1", 0))
    open(portfile, "w").write("%d\n" % s.getsockname()[1])
    while True:
        data, peer = s.recvfrom(65536)
        s.sendto(data[:64].upper() + b" %d\n" % len(data), peer)
else:  # client: sends one datagram to the port, prints the answer
    # A TCP side may answer in pieces (a stream keeps no boundaries; the fault runs
    # cut sends), each its own datagram here: they are joined up to the length sent.
    port = int(open(portfile).read())
    s.settimeout(5)
    s.sendto(b"hello udp", ("127.0.0.1", port))
    got = b""
    while len(got) < len(b"hello udp"):
        got += s.recv(65536)
    print(got.decode())
PY
rm -f "$work/udpup.port"
spawn 60 python3 "$work/udp.py" upper "$work/udpup.port" </dev/null >/dev/null 2>&1
wait_size "$work/udpup.port" 2 10
up=$(cat "$work/udpup.port")
t0=$(date +%s%N)
out=$(printf 'ping' | timeout 10 "${f[@]}" - "udp:127.0.0.1:$up" 2>"$work/udp.err")
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
# the answer comes, then stdin's end ends the session 0.5 s later, cleanly
if [ "$rc" -eq 0 ] && [ "$out" = "PING 4" ] && [ "$ms" -lt 5000 ]; then
    pass stdio_to_udp
else
    fail udp "rc $rc out [$out] after $ms ms"
fi
# 100,000 bytes of stdin leave as datagrams no bigger than UDP carries (a regular
# file: read in 64 KiB pieces, more than a datagram takes)
head -c 100000 /dev/zero | tr '\0' x >"$work/x.txt"
out=$(timeout 10 "${f[@]}" - "udp:127.0.0.1:$up" <"$work/x.txt" 2>>"$work/udp.err")
sizes=$(grep -o '[0-9]*$' <<<"$out" | sort -n | tr '\n' ' ')
total=$(grep -o '[0-9]*$' <<<"$out" | paste -sd+ | bc)
largest=$(grep -o '[0-9]*$' <<<"$out" | sort -n | tail -n 1)
if [ "$total" = "100000" ] && [ "$largest" -le 65507 ]; then
    pass udp_datagrams_at_most_65507
else
    fail udp "sizes [$sizes] total [$total]"
fi
if forward udpl 30 "udp-listen:127.0.0.1:0" "tcp:127.0.0.1:$server_port"; then
    echo "$fwd_port" >"$work/udpl.port"
    got=$(timeout 10 python3 "$work/udp.py" client "$work/udpl.port")
    if [ "$got" = "hello udp" ]; then pass udp_listen_to_tcp; else fail udpl "[$got]"; fi
else
    fail udpl "no listening line"
fi
# nobody at the UDP port: the ICMP error ends it, status 1
python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' >"$work/closed.port"
closed=$(cat "$work/closed.port")
(while :; do printf 'x'; sleep 0.1; done) | timeout 10 "${f[@]}" - "udp:127.0.0.1:$closed" >/dev/null 2>"$work/refused_udp.err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'Connection refused' "$work/refused_udp.err"; then
    pass udp_peer_refuses
else
    fail refused_udp "rc $rc"
fi
# udp-listen to create: a write-only side starts no 0.5 s end: datagrams spread
# over more than a second all reach the file
if forward udpc 20 -i 2 "udp-listen:127.0.0.1:0" "create:$work/udp.log"; then
    timeout 10 python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(4):
    s.sendto(b"line %d\n" % i, ("127.0.0.1", int(sys.argv[1])))
    time.sleep(0.4)
' "$fwd_port"
    wait_exit "$fwd_pid" 10 # -i 2 ends it
    if [ "$(cat "$work/udp.log")" = "$(printf 'line 0\nline 1\nline 2\nline 3')" ]; then
        pass udp_listen_to_create
    else
        fail udpc "file [$(cat "$work/udp.log")]"
    fi
else
    fail udpc "no listening line"
fi
expect_error keep_udp_listen 2 'udp-listen: serves its first sender only' "${f[@]}" -k udp-listen:0 -

# ---- -i: a silent peer ends the session ----
server sil silent
t0=$(date +%s%N)
timeout 10 "${f[@]}" -i 0.5 - "tcp:127.0.0.1:$server_port" <"$work/fwd.py" >/dev/null 2>"$work/idle.err"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
# stdin's whole file goes at once; then nothing moves
if [ "$rc" -eq 1 ] && [ "$ms" -lt 5000 ] && grep -q 'idle for 0.5 s' "$work/idle.err"; then
    pass idle_timeout
else
    fail idle "rc $rc after $ms ms: $(cat "$work/idle.err")"
fi

# ---- bad input: one line each ----
expect_error no_addresses 2 'two addresses are needed' "${f[@]}"
expect_error three_addresses 2 'only two addresses' "${f[@]}" - - -
expect_error unknown_type 2 "'foo:bar': not TYPE:VALUE with a known type" "${f[@]}" foo:bar -
expect_error bare_hostport 2 "'127\.0\.0\.1:80': not TYPE:VALUE" "${f[@]}" 127.0.0.1:80 -
expect_error no_port 2 "'tcp:localhost': no port" "${f[@]}" tcp:localhost -
expect_error bad_port 2 "'tcp:127\.0\.0\.1:65536'" "${f[@]}" tcp:127.0.0.1:65536 -
expect_error port_abc 2 "'tcp:127\.0\.0\.1:abc'" "${f[@]}" tcp:127.0.0.1:abc -
expect_error port_zero 2 "'tcp:127\.0\.0\.1:0': port '0': must be 1-65535" "${f[@]}" - tcp:127.0.0.1:0
expect_error refused 1 'forward tcp:127\.0\.0\.1:1: .*refused' "${f[@]}" - tcp:127.0.0.1:1
expect_error two_stdio 2 'stdio can be one side only' "${f[@]}" - stdio
expect_error keep_needs_listener 2 '-k: the first address must listen' "${f[@]}" -k - tcp:127.0.0.1:1
expect_error keep_second_listens 2 'cannot listen too' "${f[@]}" -k tcp-listen:0 tcp-listen:0
expect_error no_file 1 "forward file:$work/none: open: No such file" "${f[@]}" "file:$work/none" -
expect_error empty_command 2 "'exec:': (a value after the colon is missing|no command)" "${f[@]}" exec: -
expect_error no_program 1 "nosuchprogram" "${f[@]}" "exec:nosuchprogram-xyz" -
expect_error tls_listen_no_cert 2 'tls-listen: needs --cert' "${f[@]}" tls-listen:0 -
expect_error tls_option_unused 2 '--insecure: no tls: or tls-listen: address' "${f[@]}" --insecure - tcp:127.0.0.1:1
expect_error max_clients_zero 2 '-m' "${f[@]}" -k -m 0 tcp-listen:0 tcp:127.0.0.1:1
expect_error unknown_option 2 "unknown option" "${f[@]}" --bogus - -
if "${f[@]}" --help | grep -q 'tcp-listen:\[HOST:\]PORT'; then pass help; else fail help "no address list"; fi

finish
