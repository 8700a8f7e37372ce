#!/usr/bin/env bash
# sockit listen and sockit connect, the netcat pair, end to end: 50 MB of random
# bytes arrive byte-exact in both directions over TCP/IPv4, TCP/IPv6, a Unix socket
# and an abstract Unix socket; stdin EOF half-closes (and --no-shutdown does not);
# listen -k serves several clients at once and broadcasts stdin to all of them; -m,
# -4/-6, dual-stack, UDP both ways, -v, -w, -i, -q, -x and --json. Every wait is
# bounded; every process dies with the script.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

big=$work/big.bin
big_size=$((50 * 1024 * 1024))
head -c $big_size /dev/urandom >"$big"
big_sha=$(sha256sum <"$big" | cut -d' ' -f1)

# start_listen NAME STDIN ARGS...: runs `sockit listen -v ARGS...` with stdin from
# STDIN (stdout NAME.listen.out, stderr NAME.listen.err), waits for its "listening
# on" line and sets listen_pid, listen_addr and listen_port (empty for unix:).
start_listen() {
    local name=$1 input=$2
    shift 2
    spawn 50 "$sockit" listen -v "$@" <"$input" >"$work/$name.listen.out" 2>"$work/$name.listen.err"
    listen_pid=$spawn_pid
    listen_addr=""
    listen_port=""
    wait_match "$work/$name.listen.err" '^listening on ' || return 1
    listen_addr=${matched#listening on }
    listen_addr=${listen_addr% (IPv6 and IPv4)}
    listen_port=$(port_of "$listen_addr") || true # none for unix:
}

# signal_child PID SIG: sends SIG to the command spawn started under timeout as PID.
signal_child() {
    kill -"$2" "$(pgrep -P "$1" | head -n 1)" 2>/dev/null
}

# millis: the monotonic-enough wall clock in milliseconds, for elapsed times.
millis() { echo $(($(date +%s%N) / 1000000)); }

# ---- 50 MB both ways, every family -----------------------------------------------------
# transfer FAMILY DIRECTION: DIRECTION to_listener sends $big from connect's stdin
# to listen's stdout, to_connector from listen's stdin to connect's stdout. The
# sender's stdin is a file for TCP and a pipe for Unix sockets, as both happen.
transfer() {
    local family=$1 direction=$2 name listen_host=() connect_host=() listen_in connect_in
    name=transfer_50mb_${direction}_over_$family
    case $family in
    tcp4) listen_host=(127.0.0.1 0) ;;
    tcp6) listen_host=(::1 0) ;;
    unix) listen_host=("unix:$work/$name.sock") ;;
    abstract) listen_host=("unix:@sockit-e2e-$$-$direction") ;;
    esac
    listen_in=/dev/null
    connect_in=/dev/null
    if [ "$direction" = to_listener ]; then connect_in=$big; else listen_in=$big; fi
    if ! start_listen "$name" "$listen_in" "${listen_host[@]}"; then
        fail "$name" "listen did not say 'listening on'"
        return
    fi
    case $family in
    tcp4) connect_host=(127.0.0.1 "$listen_port") ;;
    tcp6) connect_host=(::1 "$listen_port") ;;
    *) connect_host=("${listen_host[0]}") ;;
    esac
    local t0 sender_in=$connect_in
    t0=$(millis)
    if [ "$family" = unix ] || [ "$family" = abstract ]; then
        timeout 50 "$sockit" connect "${connect_host[@]}" < <(cat "$sender_in") \
            >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    else
        timeout 50 "$sockit" connect "${connect_host[@]}" <"$sender_in" \
            >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    fi
    local connect_rc=$?
    wait_exit "$listen_pid" 20
    local listen_rc=$exit_rc received quiet got_sha
    received=$work/$name.listen.out
    quiet=$work/$name.connect.out
    if [ "$direction" = to_connector ]; then
        received=$work/$name.connect.out
        quiet=$work/$name.listen.out
    fi
    got_sha=$(sha256sum <"$received" | cut -d' ' -f1)
    if [ "$connect_rc" -ne 0 ] || [ "$listen_rc" -ne 0 ]; then
        fail "$name" "exit codes: connect $connect_rc, listen $listen_rc (want 0 and 0)"
    elif [ "$got_sha" != "$big_sha" ]; then
        fail "$name" "received $(stat -c %s "$received") bytes, sha256 differs from the $big_size sent"
    elif [ -s "$quiet" ]; then
        fail "$name" "the other side printed $(stat -c %s "$quiet") bytes, want none"
    else
        pass "$name"
        echo "    ($(($(millis) - t0)) ms)"
    fi
    rm -f "$received"
}
for family in tcp4 tcp6 unix abstract; do
    transfer $family to_listener
    transfer $family to_connector
done
rm -f "$big"

# ---- half-close ------------------------------------------------------------------------
name=stdin_eof_half_closes_and_the_answer_still_arrives
if peer $name eof-answer 4 5; then
    out=$(printf 'abc' | timeout 10 "$sockit" connect -v 127.0.0.1 "$peer_port" 2>"$work/$name.err")
    rc=$?
    wait_exit "$peer_pid" 5
    if [ $rc -ne 0 ] || [ "$out" != "got 3 bytes: abc" ]; then
        fail $name "exit code $rc, stdout [$out]; want 0 and [got 3 bytes: abc]"
    elif ! grep -qE '^eof 0\.[0-4][0-9] 3 abc$' "$work/$name.peer"; then
        fail $name "the server did not see EOF right after the data"
    elif [ "$(cat "$work/$name.err")" != "connected to 127.0.0.1:$peer_port
closed by peer 127.0.0.1:$peer_port" ]; then
        fail $name "-v did not say 'connected to 127.0.0.1:$peer_port', then 'closed by peer ...'"
    else
        pass $name
    fi
else
    fail $name "python peer did not start"
fi

name=no_shutdown_keeps_the_write_side_open_until_q_expires
if peer $name eof-answer 4 5; then
    t0=$(millis)
    out=$(printf 'abc' | timeout 10 "$sockit" connect --no-shutdown -q 1 127.0.0.1 "$peer_port" \
        2>"$work/$name.err")
    rc=$?
    ms=$(($(millis) - t0))
    wait_exit "$peer_pid" 8
    # The server may only see EOF when the client closes after -q's second.
    eof=$(grep -E '^(no-)?eof ' "$work/$name.peer")
    if [ $rc -ne 0 ] || [ -n "$out" ]; then
        fail $name "exit code $rc, stdout [$out]; want 0 and nothing (the answer comes too late)"
    elif [ $ms -lt 900 ] || [ $ms -gt 4000 ]; then
        fail $name "connect exited after $ms ms, want about 1000 (-q 1)"
    elif [[ $eof =~ ^eof\ 0\.[0-8] ]]; then
        fail $name "the server saw EOF before -q expired: [$eof]"
    elif ! [[ $eof =~ (^no-eof|^eof\ [0-9.]+)\ 3\ abc$ ]]; then
        fail $name "server said [$eof]"
    else
        pass $name
    fi
else
    fail $name "python peer did not start"
fi

# ---- listen: one client without -k -----------------------------------------------------
cat >"$work/one_client.py" <<'PY'
import socket, sys
port = int(sys.argv[1])
a = socket.create_connection(("127.0.0.1", port), timeout=5)
print("client port", a.getsockname()[1], flush=True)
a.sendall(b"first\n")
a.recv(1)  # the listener's stdin is empty: EOF here means it half-closed
try:
    socket.create_connection(("127.0.0.1", port), timeout=5)
    print("second client: connected")
except ConnectionRefusedError:
    print("second client: refused")
a.close()
PY
name=listen_without_k_serves_one_client_and_refuses_the_next
if start_listen $name /dev/null 127.0.0.1 0; then
    timeout 10 python3 "$work/one_client.py" "$listen_port" >"$work/$name.client" 2>&1
    wait_exit "$listen_pid" 5
    client_port=$(sed -n 's/^client port //p' "$work/$name.client")
    if [ "$exit_rc" -ne 0 ] || [ "$(cat "$work/$name.listen.out")" != first ]; then
        fail $name "listen exit code $exit_rc, want 0 having printed 'first'"
    elif ! grep -qx 'second client: refused' "$work/$name.client"; then
        fail $name "a second client was not refused"
    elif [ "$listen_addr" != "127.0.0.1:$listen_port" ] ||
        ! grep -qx "connection from 127.0.0.1:$client_port" "$work/$name.listen.err"; then
        fail $name "-v did not say 'listening on 127.0.0.1:$listen_port' and 'connection from 127.0.0.1:$client_port'"
    else
        pass $name
    fi
else
    fail $name "listen did not say 'listening on'"
fi

# ---- listen -k: several clients, stdin broadcast -------------------------------------
cat >"$work/clients.py" <<'PY'
import socket, sys, threading
family, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hosts = ["::1" if family == "6" or (family == "mixed" and i % 2) else "127.0.0.1" for i in range(n)]
socks = [socket.create_connection((hosts[i], port), timeout=10) for i in range(n)]
for i, s in enumerate(socks):
    s.sendall(b"hello from client %d\n" % i)
print("sent", flush=True)
results = [b""] * n
def read(i):
    try:
        while not results[i].endswith(b"\n"):
            chunk = socks[i].recv(100)
            if not chunk:
                break
            results[i] += chunk
    except OSError as e:
        results[i] += str(e).encode()
threads = [threading.Thread(target=read, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for i, r in enumerate(results):
    print(f"client {i} got {r!r}", flush=True)
PY

# keep_clients NAME FAMILY N LISTEN_ARGS...: N python clients of `listen -k` each
# send a line, then a line written to listen's stdin must reach every one of them.
keep_clients() {
    local name=$1 family=$2 n=$3 fifo
    shift 3
    fifo=$work/$name.fifo
    mkfifo "$fifo"
    exec 3<>"$fifo" # held open: listen's stdin stays open until we close it
    if ! start_listen "$name" "$fifo" -k "$@"; then
        fail "$name" "listen did not say 'listening on'"
        exec 3>&-
        return 1
    fi
    spawn 20 python3 "$work/clients.py" "$family" "$listen_port" "$n" >"$work/$name.clients" 2>&1
    local clients_pid=$spawn_pid i want=""
    if ! wait_match "$work/$name.clients" '^sent$' ||
        ! wait_match "$work/$name.listen.out" "^hello from client $((n - 1))\$"; then
        fail "$name" "the clients' lines did not reach listen's stdout"
        exec 3>&-
        return 1
    fi
    # Every client is connected once its line was printed; only then broadcast.
    for ((i = 0; i < n; i++)); do
        wait_match "$work/$name.listen.out" "^hello from client $i\$" 5 || break
    done
    echo "to everyone" >&3
    wait_exit "$clients_pid" 10
    for ((i = 0; i < n; i++)); do want+="client $i got b'to everyone\\n'"$'\n'; done
    if [ "$(sort "$work/$name.listen.out")" != "$(for ((i = 0; i < n; i++)); do
        echo "hello from client $i"
    done)" ]; then
        fail "$name" "listen's stdout is not exactly one line per client"
    elif [ "$(cat "$work/$name.clients")" != "sent"$'\n'"${want%$'\n'}" ]; then
        fail "$name" "not every client got the broadcast"
    elif [ "$(grep -c '^connection from ' "$work/$name.listen.err")" -ne "$n" ]; then
        fail "$name" "-v did not say 'connection from' $n times"
    else
        pass "$name"
    fi
}

name=listen_k_relays_every_client_and_broadcasts_stdin
if keep_clients $name 4 3 127.0.0.1 0; then
    # Still listening after those clients left: a late client is served too.
    name=listen_k_serves_a_client_after_others_left
    printf 'late\n' | timeout 10 "$sockit" connect 127.0.0.1 "$listen_port" >"$work/$name.out" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && wait_match "$work/listen_k_relays_every_client_and_broadcasts_stdin.listen.out" '^late$' 5; then
        pass $name
    else
        fail $name "connect exit code $rc, or 'late' never reached listen's stdout"
    fi
    name=listen_k_exits_0_on_sigterm
    signal_child "$listen_pid" TERM
    wait_exit "$listen_pid" 5
    if [ "$exit_rc" -eq 0 ]; then pass $name; else fail $name "exit code $exit_rc, want 0 within 5 s"; fi
fi
exec 3>&-

# Without HOST: one dual-stack socket that takes IPv4 and IPv6 clients.
name=listen_without_host_is_dual_stack
if keep_clients $name mixed 4 0; then
    name=listen_without_host_says_it_is_dual_stack
    if grep -qE '^listening on \[::\]:[0-9]+ \(IPv6 and IPv4\)$' \
        "$work/listen_without_host_is_dual_stack.listen.err" &&
        grep -qE '^connection from 127\.0\.0\.1:[0-9]+$' \
            "$work/listen_without_host_is_dual_stack.listen.err" &&
        grep -qE '^connection from \[::1\]:[0-9]+$' \
            "$work/listen_without_host_is_dual_stack.listen.err"; then
        pass $name
    else
        fail $name "want 'listening on [::]:PORT (IPv6 and IPv4)' and connections from 127.0.0.1 and [::1]"
        sed 's/^/    /' "$work/listen_without_host_is_dual_stack.listen.err"
    fi
fi
exec 3>&-
signal_child "$listen_pid" TERM

# -m 1: a second client waits in the backlog until the first leaves.
cat >"$work/max_clients.py" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
a = socket.create_connection(("127.0.0.1", port), timeout=5)
a.sendall(b"A\n")
time.sleep(0.3)
b = socket.create_connection(("127.0.0.1", port), timeout=5)
b.sendall(b"B\n")
print("both sent", flush=True)
time.sleep(1)
print("closing A", flush=True)
a.close()
b.settimeout(5)
b.shutdown(socket.SHUT_WR)
print("B got EOF" if b.recv(10) == b"" else "B got data", flush=True)
PY
name=listen_k_m_1_serves_the_second_client_after_the_first
mkfifo "$work/$name.fifo"
exec 3<>"$work/$name.fifo"
if start_listen $name "$work/$name.fifo" -k -m 1 127.0.0.1 0; then
    spawn 20 python3 "$work/max_clients.py" "$listen_port" >"$work/$name.client" 2>&1
    client_pid=$spawn_pid
    wait_match "$work/$name.client" '^both sent$' 5
    sleep 0.5
    early=$(cat "$work/$name.listen.out")
    wait_exit "$client_pid" 10
    if [ "$early" != A ]; then
        fail $name "with the first client connected, listen printed [$early], want only [A]"
    elif ! wait_match "$work/$name.listen.out" '^B$' 5; then
        fail $name "the second client was never served"
    elif ! grep -qx 'B got EOF' "$work/$name.client"; then
        fail $name "the second client was not closed after its EOF"
    else
        pass $name
    fi
    signal_child "$listen_pid" TERM
else
    fail $name "listen did not say 'listening on'"
fi
exec 3>&-

# ---- -4 and -6 -------------------------------------------------------------------------
cat >"$work/try_connect.py" <<'PY'
import socket, sys
for host in sys.argv[2:]:
    try:
        socket.create_connection((host, int(sys.argv[1])), timeout=5).close()
        print(host, "connected")
    except OSError as e:
        print(host, type(e).__name__)
PY
for v in 4 6; do
    shown='0\.0\.0\.0'
    [ $v = 6 ] && shown='\[::\]'
    name=listen_${v}_binds_ipv${v}_only
    if start_listen $name /dev/null -k "-$v" 0; then
        timeout 10 python3 "$work/try_connect.py" "$listen_port" 127.0.0.1 ::1 >"$work/$name.client" 2>&1
        if [ $v = 4 ]; then want="127.0.0.1 connected"$'\n'"::1 ConnectionRefusedError"; else
            want="127.0.0.1 ConnectionRefusedError"$'\n'"::1 connected"
        fi
        if ! [[ $(head -n 1 "$work/$name.listen.err") =~ ^listening\ on\ $shown:[0-9]+$ ]]; then
            fail $name "want 'listening on $shown:PORT' without dual-stack"
        elif [ "$(cat "$work/$name.client")" != "$want" ]; then
            fail $name "clients: [$(cat "$work/$name.client")], want [$want]"
        else
            pass $name
        fi
        signal_child "$listen_pid" TERM
    else
        fail $name "listen did not say 'listening on'"
    fi
done
name=connect_4_refuses_an_ipv6_address
expect_error $name 1 \
    '^sockit: connect to \[::1\]:9: Host has no address in the requested family \(only IPv4 addresses were looked up: -4\)$' \
    "$sockit" connect -4 ::1 9
name=connect_6_refuses_an_ipv4_address
expect_error $name 1 \
    '^sockit: connect to 127\.0\.0\.1:9: Host has no address in the requested family \(only IPv6 addresses were looked up: -6\)$' \
    "$sockit" connect -6 127.0.0.1 9

# ---- UDP ---------------------------------------------------------------------------------
name=udp_connect_sends_each_line_as_one_datagram
if peer $name udp-record; then
    out=$(printf 'one\ntwo\n\nthree' | timeout 10 "$sockit" connect -u -q 1 127.0.0.1 "$peer_port" \
        2>"$work/$name.err")
    rc=$?
    got=$(grep '^datagram ' "$work/$name.peer")
    want="datagram b'one\\n'
datagram b'two\\n'
datagram b'\\n'
datagram b'three'"
    if [ $rc -ne 0 ]; then
        fail $name "exit code $rc, want 0"
    elif [ "$got" != "$want" ]; then
        fail $name "the server got [$got], want [$want]"
    elif [ "$out" != "ack 1"$'\n'"ack 2"$'\n'"ack 3"$'\n'"ack 4" ]; then
        fail $name "connect printed [$out], want the four acks"
    else
        pass $name
    fi
    kill_tree "$peer_pid"
else
    fail $name "python peer did not start"
fi

cat >"$work/udp_senders.py" <<'PY'
import select, socket, sys, time
port = int(sys.argv[1])
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.sendto(b"from A\n", ("127.0.0.1", port))
time.sleep(0.3)
b.sendto(b"from B\n", ("127.0.0.1", port))
print("sent", flush=True)
got = {}
end = time.monotonic() + 8
while "B" not in got and time.monotonic() < end:
    ready, _, _ = select.select([a, b], [], [], 0.2)
    for s in ready:
        got["A" if s is a else "B"] = s.recv(100)
time.sleep(0.5)  # anything for A would be here by now
ready, _, _ = select.select([a], [], [], 0)
if ready:
    got["A"] = a.recv(100)
for k in "AB":
    print(k, got.get(k))
PY
name=udp_listen_replies_to_the_last_sender
mkfifo "$work/$name.fifo"
exec 3<>"$work/$name.fifo"
if start_listen $name "$work/$name.fifo" -u 127.0.0.1 0; then
    spawn 20 python3 "$work/udp_senders.py" "$listen_port" >"$work/$name.client" 2>&1
    client_pid=$spawn_pid
    if wait_match "$work/$name.listen.out" '^from B$'; then echo "reply" >&3; fi
    wait_exit "$client_pid" 10
    if [ "$(cat "$work/$name.listen.out")" != "from A"$'\n'"from B" ]; then
        fail $name "listen printed [$(cat "$work/$name.listen.out")], want both datagrams"
    elif [ "$(grep -E '^[AB] ' "$work/$name.client")" != "A None"$'\n'"B b'reply\\n'" ]; then
        fail $name "want the reply at B (the last sender) only"
    else
        pass $name
    fi
    signal_child "$listen_pid" TERM
    wait_exit "$listen_pid" 5
    name=udp_listen_exits_0_on_sigterm
    if [ "$exit_rc" -eq 0 ]; then pass $name; else fail $name "exit code $exit_rc, want 0"; fi
else
    fail $name "listen did not say 'listening on'"
fi
exec 3>&-

# sockit to sockit, both ways, over UDP/IPv6 and Unix datagram sockets.
udp_pair() {
    local name=$1 host=$2 connect_host=()
    mkfifo "$work/$name.lfifo" "$work/$name.cfifo"
    exec 3<>"$work/$name.lfifo" 4<>"$work/$name.cfifo"
    if ! start_listen "$name" "$work/$name.lfifo" -u "$host" ${3:+"$3"}; then
        fail "$name" "listen did not say 'listening on'"
        exec 3>&- 4>&-
        return
    fi
    connect_host=("$host")
    [ -n "$listen_port" ] && connect_host+=("$listen_port")
    spawn 20 "$sockit" connect -u "${connect_host[@]}" <"$work/$name.cfifo" \
        >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    local connect_pid=$spawn_pid
    echo ping >&4
    if ! wait_match "$work/$name.listen.out" '^ping$' 5; then
        fail "$name" "ping did not reach listen"
    else
        echo pong >&3
        if ! wait_match "$work/$name.connect.out" '^pong$' 5; then
            fail "$name" "pong did not come back to connect"
        else
            pass "$name"
        fi
    fi
    exec 3>&- 4>&-
    signal_child "$connect_pid" TERM
    signal_child "$listen_pid" TERM
}
udp_pair udp_ping_pong_over_ipv6 ::1 0
udp_pair udp_ping_pong_over_a_unix_datagram_socket "unix:$work/dgram.sock"
udp_pair udp_ping_pong_over_an_abstract_datagram_socket "unix:@sockit-e2e-$$-dgram"

# ---- timeouts ----------------------------------------------------------------------------
name=connect_w_gives_up_on_a_blackholed_address
if peer $name blackhole; then
    t0=$(millis)
    timeout 20 "$sockit" connect -w 1 127.0.0.1 "$peer_port" </dev/null >"$work/$name.out" \
        2>"$work/$name.err"
    rc=$?
    ms=$(($(millis) - t0))
    if [ $rc -ne 1 ]; then
        fail $name "exit code $rc, want 1"
    elif [ $ms -lt 800 ] || [ $ms -gt 4000 ]; then
        fail $name "gave up after $ms ms, want about 1000"
    elif ! grep -qE "^sockit: connect to 127\\.0\\.0\\.1:$peer_port.*[Tt]imed out" "$work/$name.err"; then
        fail $name "want 'sockit: connect to 127.0.0.1:$peer_port ...: Timed out' on stderr"
    else
        pass $name
    fi
    kill_tree "$peer_pid"
else
    fail $name "python peer did not start"
fi

name=listen_w_gives_up_when_nobody_connects
t0=$(millis)
timeout 10 "$sockit" listen -w 0.5 127.0.0.1 0 </dev/null >"$work/$name.out" 2>"$work/$name.err"
rc=$?
ms=$(($(millis) - t0))
if [ $rc -ne 1 ] || [ $ms -lt 400 ] || [ $ms -gt 3000 ]; then
    fail $name "exit code $rc after $ms ms, want 1 after about 500"
elif ! grep -qE '^sockit: .*[Tt]imed out' "$work/$name.err"; then
    fail $name "want a 'Timed out' message"
else
    pass $name
fi

# -i: a connection where nothing moves is closed after SECS (stdin open, peer silent).
name=connect_i_closes_an_idle_connection
mkfifo "$work/$name.fifo"
exec 3<>"$work/$name.fifo"
if peer $name hold-tcp; then
    t0=$(millis)
    timeout 10 "$sockit" connect -i 1 --json 127.0.0.1 "$peer_port" <"$work/$name.fifo" \
        >"$work/$name.out" 2>"$work/$name.err"
    rc=$?
    ms=$(($(millis) - t0))
    if [ $rc -ne 0 ] || [ $ms -lt 900 ] || [ $ms -gt 4000 ]; then
        fail $name "exit code $rc after $ms ms, want 0 after about 1000"
    elif ! why=$(json_check "$work/$name.err" "connected closed exit" "closed.reason=idle" 2>&1); then
        fail $name "$why"
    else
        pass $name
    fi
    kill_tree "$peer_pid"
else
    fail $name "python peer did not start"
fi
exec 3>&-

name=listen_i_closes_an_idle_client
mkfifo "$work/$name.fifo"
exec 3<>"$work/$name.fifo"
if start_listen $name "$work/$name.fifo" -i 1 127.0.0.1 0; then
    spawn 10 python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.settimeout(5)
t = time.monotonic()
print("closed" if s.recv(1) == b"" else "data", round(time.monotonic() - t, 1))' "$listen_port" \
        >"$work/$name.client" 2>&1
    client_pid=$spawn_pid
    wait_exit "$listen_pid" 5
    listen_rc=$exit_rc
    wait_exit "$client_pid" 5
    if [ "$listen_rc" -ne 0 ]; then
        fail $name "listen exit code $listen_rc, want 0"
    elif ! grep -qE '^closed (0\.9|1\.[0-9]|2\.[0-9])$' "$work/$name.client"; then
        fail $name "the client was not closed after about 1 s"
    elif ! grep -qE '^idle timeout, closed 127\.0\.0\.1:[0-9]+$' "$work/$name.listen.err"; then
        fail $name "-v did not say 'idle timeout, closed 127.0.0.1:PORT'"
    else
        pass $name
    fi
else
    fail $name "listen did not say 'listening on'"
fi
exec 3>&-

# ---- -x ----------------------------------------------------------------------------------
name=x_dumps_both_directions_in_hex_on_stderr
if peer $name eof-answer 4 5; then
    out=$(printf 'hello' | timeout 10 "$sockit" connect -x 127.0.0.1 "$peer_port" 2>"$work/$name.err")
    rc=$?
    if [ $rc -ne 0 ] || [ "$out" != "got 5 bytes: hello" ]; then
        fail $name "exit code $rc, stdout [$out]: -x must not touch the data"
    elif ! grep -qE '^> 00000000  68 65 6c 6c 6f .*\|hello\|$' "$work/$name.err"; then
        fail $name "no '> 00000000  68 65 6c 6c 6f ... |hello|' line for what was sent"
    elif ! grep -qE '^< 00000000  67 6f 74 20 35 20 62 79  74 65 73 3a 20 68 65 6c  \|got 5 bytes: hel\|$' \
        "$work/$name.err" || ! grep -qE '^< 00000010  6c 6f 0a .*\|lo\.\|$' "$work/$name.err"; then
        fail $name "the received bytes are not dumped 16 per line with offsets"
    else
        pass $name
    fi
else
    fail $name "python peer did not start"
fi

# ---- --json ------------------------------------------------------------------------------
name=listen_and_connect_json_events_parse
spawn 20 "$sockit" listen --json 127.0.0.1 0 </dev/null >"$work/$name.listen.out" \
    2>"$work/$name.listen.err"
listen_pid=$spawn_pid
if wait_match "$work/$name.listen.err" '"event":"bound"' && [[ $matched =~ \"port\":([0-9]+) ]]; then
    port=${BASH_REMATCH[1]}
    out=$(printf 'abc' | timeout 10 "$sockit" connect --json 127.0.0.1 "$port" 2>"$work/$name.connect.err")
    rc=$?
    wait_exit "$listen_pid" 5
    if [ $rc -ne 0 ] || [ "$exit_rc" -ne 0 ] || [ -n "$out" ]; then
        fail $name "exit codes connect $rc, listen $exit_rc; connect stdout [$out]"
    elif [ "$(cat "$work/$name.listen.out")" != abc ]; then
        fail $name "--json must leave stdout to the data"
    elif ! why=$(json_check "$work/$name.listen.err" "bound connected closed exit" \
        "bound.address=127.0.0.1:$port" "bound.port=$port" "bound.dualstack=False" \
        "connected.accepted=True" "connected.peer=*" "closed.reason=peer" \
        "exit.bytes_in=3" "exit.bytes_out=0" 2>&1); then
        fail $name "listen: $why"
    elif ! why=$(json_check "$work/$name.connect.err" "connected closed exit" \
        "connected.peer=127.0.0.1:$port" "connected.accepted=False" "closed.reason=peer" \
        "exit.bytes_in=0" "exit.bytes_out=3" 2>&1); then
        fail $name "connect: $why"
    else
        pass $name
    fi
else
    fail $name "no bound event"
fi

name=connect_json_reports_refused_as_an_error_event
closed_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
timeout 10 "$sockit" connect --json 127.0.0.1 "$closed_port" </dev/null >"$work/$name.out" \
    2>"$work/$name.err"
rc=$?
if [ $rc -ne 1 ]; then
    fail $name "exit code $rc, want 1"
elif ! why=$(json_check "$work/$name.err" "error exit" "error.code=ECONNREFUSED" \
    "exit.reason=error" 2>&1); then
    fail $name "$why (with --json, stderr carries only events)"
else
    pass $name
fi

finish
