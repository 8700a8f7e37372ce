#!/usr/bin/env bash
# Issue 9, items 22 and 23: whatever address the tool prints, it reads back, in every
# subcommand that takes a host and a port ([v6], [v6]:port, host:port, a listener's
# lone port), and a Unix peer without a name is shown by who it is (SO_PEERCRED).
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

# listen_then_connect NAME LISTEN_ARGS...: `listen -v LISTEN_ARGS`, then `connect` to
# the address exactly as "listening on" printed it (one operand); a line must cross.
listen_then_connect() {
    local name=$1 addr
    shift
    spawn 20 "$sockit" listen -v "$@" </dev/null >"$work/$name.listen.out" 2>"$work/$name.listen.err"
    local listen_pid=$spawn_pid
    if ! wait_match "$work/$name.listen.err" '^listening on '; then
        fail "$name" "listen did not say 'listening on'"
        kill_tree "$listen_pid"
        return
    fi
    addr=${matched#listening on }
    addr=${addr% (IPv6 and IPv4)}
    # A wildcard is where to listen, not where to connect: the loopback of its family.
    addr=${addr/#\[::\]/[::1]}
    addr=${addr/#0.0.0.0/127.0.0.1}
    echo "read back" | timeout 10 "$sockit" connect "$addr" >"$work/$name.connect.out" \
        2>"$work/$name.connect.err"
    local rc=$?
    wait_exit "$listen_pid" 5
    if [ $rc -ne 0 ] || [ "$exit_rc" -ne 0 ]; then
        fail "$name" "connect $addr: exit code $rc, listen $exit_rc; want 0 and 0"
    elif [ "$(cat "$work/$name.listen.out")" != "read back" ]; then
        fail "$name" "the line did not reach listen"
    else
        pass "$name"
    fi
}
listen_then_connect listen_bracketed_ipv6_then_connect_to_what_it_printed '[::1]' 0
listen_then_connect listen_bracketed_ipv6_with_port_then_connect_to_it '[::1]:0'
listen_then_connect listen_host_colon_port_then_connect_to_it 127.0.0.1:0
listen_then_connect listen_bare_ipv6_then_connect_to_it ::1 0
listen_then_connect listen_lone_port_then_connect_to_it 0

# The reference pair: --host takes [v6] and [v6]:port too.
for kind in tcp udp; do
    name=${kind}_server_and_client_read_back_bracketed_ipv6
    spawn 20 "$sockit" $kind-server --host '[::1]' --port 0 --count 1 </dev/null \
        >"$work/$name.server" 2>&1
    server_pid=$spawn_pid
    if wait_match "$work/$name.server" '^Listening on \[::1\]:[0-9]+$'; then
        addr=${matched#Listening on }
        out=$(timeout 10 "$sockit" $kind-client --host "$addr" 2>&1)
        rc=$?
        wait_exit "$server_pid" 5
        if [ $rc -eq 0 ] && [[ $out =~ ^Hello\ from\ (UDP\ )?server!$ ]] && [ "$exit_rc" -eq 0 ]; then
            pass $name
        else
            fail $name "client --host $addr: exit code $rc [$out], server $exit_rc"
        fi
    else
        fail $name "no 'Listening on [::1]:PORT'"
    fi
done

name=bench_reads_host_colon_port
spawn 30 python3 "$source_dir/tests/bench_peers/counting_server.py" --mode echo </dev/null \
    >"$work/$name.peer" 2>&1
peer_pid=$spawn_pid
if wait_match "$work/$name.peer" '^Listening on 127\.0\.0\.1:[0-9]+$'; then
    timeout 20 "$sockit" bench --json -n 20 -c 2 -d 10 "${matched#Listening on }" \
        >"$work/$name.out" 2>"$work/$name.err"
    rc=$?
    if [ $rc -eq 0 ] && grep -q '"requests":20,' "$work/$name.out"; then pass $name; else
        fail $name "exit code $rc"
    fi
else
    fail $name "counting_server.py did not start"
fi
kill_tree "$peer_pid"
wait "$peer_pid" 2>/dev/null

# ---- item 23: an unnamed Unix client, by pid and uid ----------------------------------
name=unnamed_unix_peer_is_shown_by_pid_and_uid
sock=$work/named.sock
spawn 20 "$sockit" listen -v "unix:$sock" </dev/null >"$work/$name.out" 2>"$work/$name.err"
listen_pid=$spawn_pid
if wait_match "$work/$name.err" '^listening on '; then
    client=$(timeout 10 python3 -c 'import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"hi\n")
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(os.getpid(), os.getuid())' "$sock")
    wait_exit "$listen_pid" 5
    read -r pid uid <<<"$client"
    if grep -qx "connection from unix:(unnamed, pid $pid, uid $uid)" "$work/$name.err" &&
        grep -qx "closed by peer unix:(unnamed, pid $pid, uid $uid)" "$work/$name.err"; then
        pass $name
    else
        fail $name "want 'connection from unix:(unnamed, pid $pid, uid $uid)' (python's)"
    fi
else
    fail $name "listen did not say 'listening on'"
fi

name=unnamed_unix_datagram_sender_is_said_to_be_unnamed
spawn 20 "$sockit" listen -u -v -i 1 "unix:$work/dgram.sock" </dev/null >"$work/$name.out" \
    2>"$work/$name.err"
listen_pid=$spawn_pid
if wait_match "$work/$name.err" '^listening on '; then
    timeout 10 python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"hi\n", sys.argv[1])' "$work/dgram.sock"
    wait_exit "$listen_pid" 5
    if grep -qx 'connection from unix:(unnamed)' "$work/$name.err"; then pass $name; else
        fail $name "want 'connection from unix:(unnamed)'"
    fi
else
    fail $name "listen did not say 'listening on'"
fi

finish
