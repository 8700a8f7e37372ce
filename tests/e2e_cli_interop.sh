#!/usr/bin/env bash
# sockit listen and sockit connect against other netcats: ncat (nmap's) and socat
# listen while sockit connects, and sockit listens while they connect, over TCP/IPv4,
# TCP/IPv6, Unix and abstract sockets and UDP. A 4 MiB random file must arrive
# byte-exact each way; half-close must reach a program that reads to EOF before it
# answers. Every wait is bounded; every process dies with the script.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

for tool in ncat socat; do
    if ! command -v $tool >/dev/null; then
        echo "$suite: $tool is missing (scripts/deps.sh installs it)" >&2
        exit 1
    fi
done

file=$work/file.bin
file_size=$((4 * 1024 * 1024))
head -c $file_size /dev/urandom >"$file"
file_sha=$(sha256sum <"$file" | cut -d' ' -f1)

# same_file NAME RECEIVED: PASS if RECEIVED holds exactly $file, else FAIL.
same_file() {
    local got
    got=$(sha256sum <"$2" | cut -d' ' -f1)
    if [ "$got" = "$file_sha" ]; then
        pass "$1"
    else
        fail "$1" "received $(stat -c %s "$2") bytes, sha256 differs from the $file_size sent"
    fi
}

# start_listen NAME STDIN ARGS...: `sockit listen -v ARGS...`; sets listen_pid and
# listen_port (empty for unix:) from its "listening on" line.
start_listen() {
    local name=$1 input=$2
    shift 2
    spawn 30 "$sockit" listen -v "$@" <"$input" >"$work/$name.listen.out" 2>"$work/$name.listen.err"
    listen_pid=$spawn_pid
    listen_port=""
    wait_match "$work/$name.listen.err" '^listening on ' || return 1
    listen_port=$(port_of "${matched% (IPv6 and IPv4)}") || true
}

# start_other NAME STDIN PROTO CMD...: runs a foreign listener (stdout NAME.other.out)
# and sets other_pid, and other_port from its bound socket (PROTO tcp, udp or unix:
# for unix, wait for the path given as PROTO=unix:PATH).
start_other() {
    local name=$1 input=$2 proto=$3
    shift 3
    spawn 30 "$@" <"$input" >"$work/$name.other.out" 2>"$work/$name.other.err"
    other_pid=$spawn_pid
    other_port=""
    case $proto in
    tcp | udp)
        bound_port "$other_pid" "$proto" || return 1
        other_port=$found_port
        ;;
    unix:*)
        local i
        for ((i = 0; i < 100; i++)); do
            [ -S "${proto#unix:}" ] && return 0
            sleep 0.1
        done
        return 1
        ;;
    esac
}

# run_sockit NAME STDIN ARGS...: `sockit ARGS...` in the foreground (stdout
# NAME.sockit.out); sets sockit_rc.
run_sockit() {
    local name=$1 input=$2
    shift 2
    timeout 20 "$sockit" "$@" <"$input" >"$work/$name.sockit.out" 2>"$work/$name.sockit.err"
    sockit_rc=$?
}

# check_both NAME RECEIVED OTHER_RC: sockit and the other side exited 0, RECEIVED
# holds the file.
check_both() {
    if [ "$sockit_rc" -ne 0 ] || [ "$3" -ne 0 ]; then
        fail "$1" "exit codes: sockit $sockit_rc, other side $3 (want 0 and 0)"
    else
        same_file "$1" "$2"
    fi
}

# ---- ncat listens, sockit connects -------------------------------------------------------
name=ncat_listener_receives_a_file_from_sockit_connect
if start_other $name /dev/null tcp ncat --recv-only -l 127.0.0.1 0; then
    run_sockit $name "$file" connect 127.0.0.1 "$other_port"
    wait_exit "$other_pid" 10
    check_both $name "$work/$name.other.out" "$exit_rc"
else
    fail $name "ncat did not listen"
fi

name=ncat_listener_sends_a_file_to_sockit_connect
if start_other $name "$file" tcp ncat --send-only -l 127.0.0.1 0; then
    run_sockit $name /dev/null connect 127.0.0.1 "$other_port"
    wait_exit "$other_pid" 10
    check_both $name "$work/$name.sockit.out" "$exit_rc"
else
    fail $name "ncat did not listen"
fi

name=ncat_ipv6_listener_receives_a_file_from_sockit_connect
if start_other $name /dev/null tcp ncat -6 --recv-only -l ::1 0; then
    run_sockit $name "$file" connect ::1 "$other_port"
    wait_exit "$other_pid" 10
    check_both $name "$work/$name.other.out" "$exit_rc"
else
    fail $name "ncat did not listen"
fi

name=ncat_unix_listener_receives_a_file_from_sockit_connect
sock=$work/ncat.sock
if start_other $name /dev/null "unix:$sock" ncat --recv-only -lU "$sock"; then
    run_sockit $name "$file" connect "unix:$sock"
    wait_exit "$other_pid" 10
    check_both $name "$work/$name.other.out" "$exit_rc"
else
    fail $name "ncat did not listen on $sock"
fi

name=ncat_udp_listener_gets_each_line_as_a_datagram
if start_other $name /dev/null udp ncat -u --recv-only -l 127.0.0.1 0; then
    printf 'one\ntwo\n' | timeout 10 "$sockit" connect -u -q 0.5 127.0.0.1 "$other_port" \
        >"$work/$name.sockit.out" 2>"$work/$name.sockit.err"
    sockit_rc=$?
    if [ "$sockit_rc" -ne 0 ]; then
        fail $name "exit code $sockit_rc, want 0"
    elif ! wait_match "$work/$name.other.out" '^two$' 5 ||
        [ "$(cat "$work/$name.other.out")" != "one"$'\n'"two" ]; then
        fail $name "ncat printed [$(cat "$work/$name.other.out")], want one and two"
    else
        pass $name
    fi
    kill_tree "$other_pid"
else
    fail $name "ncat did not bind"
fi

# ---- socat listens, sockit connects ------------------------------------------------------
name=socat_listener_receives_a_file_from_sockit_connect
if start_other $name /dev/null tcp socat -u TCP-LISTEN:0,bind=127.0.0.1 STDOUT; then
    run_sockit $name "$file" connect 127.0.0.1 "$other_port"
    wait_exit "$other_pid" 10
    check_both $name "$work/$name.other.out" "$exit_rc"
else
    fail $name "socat did not listen"
fi

# wc -c answers only after reading to EOF: the count comes back only if sockit's
# stdin EOF half-closed the connection and sockit then kept reading. (socat, since
# ncat --sh-exec drops the connection at EOF instead of passing it on to wc.)
name=socat_exec_sees_sockit_half_close_and_answers
if start_other $name /dev/null tcp socat -t 5 TCP-LISTEN:0,bind=127.0.0.1 EXEC:'wc -c'; then
    run_sockit $name "$file" connect 127.0.0.1 "$other_port"
    wait_exit "$other_pid" 10
    if [ "$sockit_rc" -ne 0 ] || [ "$(cat "$work/$name.sockit.out")" != "$file_size" ]; then
        fail $name "exit code $sockit_rc, stdout [$(cat "$work/$name.sockit.out")], want 0 and $file_size"
    else
        pass $name
    fi
else
    fail $name "socat did not listen"
fi

name=socat_unix_listener_sends_a_file_to_sockit_connect
sock=$work/socat.sock
if start_other $name "$file" "unix:$sock" socat -u STDIN "UNIX-LISTEN:$sock"; then
    run_sockit $name /dev/null connect "unix:$sock"
    wait_exit "$other_pid" 10
    check_both $name "$work/$name.sockit.out" "$exit_rc"
else
    fail $name "socat did not listen on $sock"
fi

# ---- sockit listens, ncat and socat connect ----------------------------------------------
name=sockit_listen_receives_a_file_from_ncat
if start_listen $name /dev/null 127.0.0.1 0; then
    timeout 20 ncat --send-only 127.0.0.1 "$listen_port" <"$file" >/dev/null 2>"$work/$name.ncat.err"
    other_rc=$?
    wait_exit "$listen_pid" 10
    sockit_rc=$exit_rc
    check_both $name "$work/$name.listen.out" "$other_rc"
else
    fail $name "sockit did not listen"
fi

name=sockit_listen_sends_a_file_to_ncat
if start_listen $name "$file" 127.0.0.1 0; then
    timeout 20 ncat --recv-only 127.0.0.1 "$listen_port" </dev/null >"$work/$name.ncat.out" \
        2>"$work/$name.ncat.err"
    other_rc=$?
    wait_exit "$listen_pid" 10
    sockit_rc=$exit_rc
    check_both $name "$work/$name.ncat.out" "$other_rc"
else
    fail $name "sockit did not listen"
fi

name=sockit_ipv6_listen_receives_a_file_from_ncat
if start_listen $name /dev/null ::1 0; then
    timeout 20 ncat -6 --send-only ::1 "$listen_port" <"$file" >/dev/null 2>"$work/$name.ncat.err"
    other_rc=$?
    wait_exit "$listen_pid" 10
    sockit_rc=$exit_rc
    check_both $name "$work/$name.listen.out" "$other_rc"
else
    fail $name "sockit did not listen"
fi

name=sockit_unix_listen_receives_a_file_from_ncat
sock=$work/sockit.sock
if start_listen $name /dev/null "unix:$sock"; then
    timeout 20 ncat --send-only -U "$sock" <"$file" >/dev/null 2>"$work/$name.ncat.err"
    other_rc=$?
    wait_exit "$listen_pid" 10
    sockit_rc=$exit_rc
    check_both $name "$work/$name.listen.out" "$other_rc"
else
    fail $name "sockit did not listen"
fi

name=sockit_listen_receives_a_file_from_socat
if start_listen $name /dev/null 127.0.0.1 0; then
    timeout 20 socat -u STDIN "TCP:127.0.0.1:$listen_port" <"$file" 2>"$work/$name.socat.err"
    other_rc=$?
    wait_exit "$listen_pid" 10
    sockit_rc=$exit_rc
    check_both $name "$work/$name.listen.out" "$other_rc"
else
    fail $name "sockit did not listen"
fi

name=sockit_listen_sends_a_file_to_socat
if start_listen $name "$file" 127.0.0.1 0; then
    timeout 20 socat -u "TCP:127.0.0.1:$listen_port" STDOUT >"$work/$name.socat.out" \
        2>"$work/$name.socat.err"
    other_rc=$?
    wait_exit "$listen_pid" 10
    sockit_rc=$exit_rc
    check_both $name "$work/$name.socat.out" "$other_rc"
else
    fail $name "sockit did not listen"
fi

name=sockit_abstract_listen_receives_a_file_from_socat
if start_listen $name /dev/null "unix:@sockit-interop-$$"; then
    timeout 20 socat -u STDIN "ABSTRACT-CONNECT:sockit-interop-$$" <"$file" 2>"$work/$name.socat.err"
    other_rc=$?
    wait_exit "$listen_pid" 10
    sockit_rc=$exit_rc
    check_both $name "$work/$name.listen.out" "$other_rc"
else
    fail $name "sockit did not listen"
fi

# A conversation, not a transfer: socat's bidirectional mode with sockit listen -u.
name=sockit_udp_listen_talks_with_socat_both_ways
mkfifo "$work/$name.lfifo" "$work/$name.sfifo"
exec 3<>"$work/$name.lfifo" 4<>"$work/$name.sfifo"
if start_listen $name "$work/$name.lfifo" -u 127.0.0.1 0; then
    spawn 20 socat - "UDP:127.0.0.1:$listen_port" <"$work/$name.sfifo" >"$work/$name.socat.out" \
        2>"$work/$name.socat.err"
    socat_pid=$spawn_pid
    echo "ping from socat" >&4
    if ! wait_match "$work/$name.listen.out" '^ping from socat$' 5; then
        fail $name "socat's datagram did not reach sockit's stdout"
    else
        echo "pong from sockit" >&3
        if wait_match "$work/$name.socat.out" '^pong from sockit$' 5; then
            pass $name
        else
            fail $name "sockit's reply did not reach socat"
        fi
    fi
    kill_tree "$socat_pid"
else
    fail $name "sockit did not listen"
fi
exec 3>&- 4>&-

# The same with ncat connecting over TCP, interactively: ncat's lines reach sockit's
# stdout and sockit's stdin reaches ncat, with both still connected.
name=sockit_listen_talks_with_ncat_both_ways
mkfifo "$work/$name.lfifo" "$work/$name.nfifo"
exec 3<>"$work/$name.lfifo" 4<>"$work/$name.nfifo"
if start_listen $name "$work/$name.lfifo" 127.0.0.1 0; then
    spawn 20 ncat 127.0.0.1 "$listen_port" <"$work/$name.nfifo" >"$work/$name.ncat.out" \
        2>"$work/$name.ncat.err"
    ncat_pid=$spawn_pid
    echo "hello from ncat" >&4
    if ! wait_match "$work/$name.listen.out" '^hello from ncat$' 5; then
        fail $name "ncat's line did not reach sockit's stdout"
    else
        echo "hello from sockit" >&3
        if wait_match "$work/$name.ncat.out" '^hello from sockit$' 5; then
            pass $name
        else
            fail $name "sockit's line did not reach ncat"
        fi
    fi
    kill_tree "$ncat_pid"
else
    fail $name "sockit did not listen"
fi
exec 3>&- 4>&-

finish
