#!/usr/bin/env bash
# Issue 15, item 7: who `sockit listen` lets in. --allow and --deny with addresses
# and CIDR ranges (127.0.0.1 against 127.0.0.2, /8 against /32, ::1, IPv4 clients
# of a dual-stack listener), in every mode: one client, -k, --chat, -u (datagrams
# dropped), from the command line and from files. A refused client is reset at once
# and never gets a byte of stdin; -v and --json say so. --conn-rate N/SECS refuses
# the N+1-th connection of a source within the window and takes one again after it
# (windows long enough that a slow machine cannot blur them). Bad rules are one
# line and exit 2. Loopback only: 127.0.0.2 is a source on lo.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

l=("$sockit" listen)

# probe.py SRC HOST PORT: connects from SRC (port 0), sends "from SRC", shuts down
# its write side and reads for up to 3 s; prints "reset", "eof" or "timeout" and
# what it got ("reset ''", "eof 'secret\n'").
cat >"$work/probe.py" <<'PY'
import socket, sys
src, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.bind((src, 0))
s.settimeout(5)
got, how = b"", "eof"
try:
    # The reset can come before connect has returned (connect then reports it).
    s.connect((host, port))
    s.sendall(b"from " + src.encode() + b"\n")
    s.shutdown(socket.SHUT_WR)
    s.settimeout(3)
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
except (ConnectionResetError, BrokenPipeError):
    how = "reset"
except socket.timeout:
    how = "timeout"
print(how, repr(got.decode()))
PY
probe() { timeout 10 python3 "$work/probe.py" "$@" 2>&1; }

# start_listen NAME STDIN ARGS...: `sockit listen -v ARGS...` (stdout NAME.out,
# stderr NAME.err); sets listen_pid and listen_port once it listens.
start_listen() {
    local name=$1 input=$2
    shift 2
    spawn 40 "${l[@]}" -v "$@" <"$input" >"$work/$name.out" 2>"$work/$name.err"
    listen_pid=$spawn_pid
    listen_port=""
    wait_match "$work/$name.err" '^listening on ' || return 1
    local addr=${matched#listening on }
    listen_port=$(port_of "${addr% (IPv6 and IPv4)}")
}

stop_listen() {
    kill -TERM "$(pgrep -P "$listen_pid" | head -n 1)" 2>/dev/null
    wait_exit "$listen_pid" 10
}

# expect_probe NAME WANT SRC HOST PORT: probe's answer matches the regex WANT.
expect_probe() {
    local name=$1 want=$2 got
    shift 2
    got=$(probe "$@")
    if [[ $got =~ $want ]]; then return 0; fi
    fail "$name" "client from $1 got [$got], want [$want]"
    return 1
}

printf 'secret\n' >"$work/secret.txt"

# ---- one client: the refused one gets nothing, the next allowed one the data ---------------
name=allow_32_refuses_the_neighbour_and_serves_the_host
if start_listen $name "$work/secret.txt" --allow 127.0.0.1 127.0.0.1 0; then
    if expect_probe $name "^reset ''$" 127.0.0.2 127.0.0.1 "$listen_port" &&
        expect_probe $name "^eof 'secret\\\\n'$" 127.0.0.1 127.0.0.1 "$listen_port"; then
        wait_exit "$listen_pid" 10
        if [ "$exit_rc" -ne 0 ]; then
            fail $name "listen exit code $exit_rc"
        elif ! grep -qE '^refused 127\.0\.0\.2:[0-9]+: not in --allow$' "$work/$name.err"; then
            fail $name "no 'refused' line"
        elif [ "$(grep -c '^connection from' "$work/$name.err")" -ne 1 ]; then
            fail $name "want exactly one 'connection from'"
        elif [ "$(cat "$work/$name.out")" != "from 127.0.0.1" ]; then
            fail $name "listen printed [$(cat "$work/$name.out")]"
        else
            pass $name
        fi
    fi
else
    fail $name "listen did not start"
fi

name=refused_clients_do_not_stop_w
t0=$(date +%s)
if start_listen $name /dev/null -w 2 --deny 127.0.0.2 127.0.0.1 0; then
    expect_probe $name "^reset ''$" 127.0.0.2 127.0.0.1 "$listen_port"
    wait_exit "$listen_pid" 10
    if [ "$exit_rc" -ne 1 ]; then
        fail $name "exit code $exit_rc, want 1 (no client within -w)"
    elif [ $(($(date +%s) - t0)) -gt 8 ]; then
        fail $name "-w 2 took more than 8 s"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

# ---- -k: CIDR ranges and precedence -----------------------------------------------------------
# k_case NAME EXPECT1 EXPECT2 RULES...: listen -k with RULES; a client from 127.0.0.1
# and one from 127.0.0.2 are served (ok) or reset (no), as EXPECT1 and EXPECT2 say.
k_case() {
    local name=$1 want1=$2 want2=$3 src want ok=1 pattern
    shift 3
    if ! start_listen "$name" /dev/null -k "$@" 127.0.0.1 0; then
        fail "$name" "listen did not start"
        return
    fi
    for src in 127.0.0.1 127.0.0.2; do
        want=$want1
        [ $src = 127.0.0.2 ] && want=$want2
        pattern="^eof ''$"
        [ "$want" = no ] && pattern="^reset ''$"
        expect_probe "$name" "$pattern" $src 127.0.0.1 "$listen_port" || ok=0
    done
    stop_listen
    [ $ok -eq 1 ] || return
    for src in 127.0.0.1 127.0.0.2; do
        want=$want1
        [ $src = 127.0.0.2 ] && want=$want2
        if [ "$want" = ok ] && ! grep -qx "from $src" "$work/$name.out"; then
            fail "$name" "$src was not served"
            return
        fi
        if [ "$want" = no ] && ! grep -qE "^refused ${src//./\\.}:[0-9]+: " "$work/$name.err"; then
            fail "$name" "no 'refused' line for $src"
            return
        fi
        if [ "$want" = no ] && grep -q "from $src" "$work/$name.out"; then
            fail "$name" "$src was refused but its bytes came through"
            return
        fi
    done
    pass "$name"
}
k_case deny_32_refuses_one ok no --deny 127.0.0.2/32
k_case deny_8_covers_the_range no no --deny 127.0.0.0/8
k_case allow_8_takes_the_range ok ok --allow 127.0.0.0/8
k_case allow_32_takes_one ok no --allow 127.0.0.1/32
k_case deny_wins_over_allow ok no --allow 127.0.0.0/8 --deny 127.0.0.2
k_case comma_lists_and_repeats ok ok --allow 10.0.0.0/8,127.0.0.1 --allow 127.0.0.2
k_case allow_of_the_other_family_only no no --allow ::1
name=deny_match_is_named
if grep -qE '^refused 127\.0\.0\.2:[0-9]+: matches --deny 127\.0\.0\.2/32$' \
    "$work/deny_wins_over_allow.err"; then pass $name; else fail $name "no rule in the line"; fi

# ---- IPv6, and IPv4 clients of a dual-stack listener ----------------------------------------
name=ipv6_rules
if start_listen $name /dev/null -k --allow ::1 ::1 0; then
    expect_probe $name "^eof ''$" ::1 ::1 "$listen_port" && {
        stop_listen
        if grep -qx "from ::1" "$work/$name.out"; then pass $name; else fail $name "::1 not served"; fi
    }
else
    fail $name "listen did not start"
fi
name=ipv6_deny
if start_listen $name /dev/null -k --deny ::1/128 ::1 0; then
    expect_probe $name "^reset ''$" ::1 ::1 "$listen_port" && {
        stop_listen
        if grep -qE '^refused \[::1\]:[0-9]+: matches --deny ::1/128$' "$work/$name.err"; then
            pass $name
        else fail $name "no refused line"; fi
    }
else
    fail $name "listen did not start"
fi
name=dualstack_ipv4_clients_match_ipv4_rules
if start_listen $name /dev/null -k --allow 127.0.0.1 0 && grep -q 'IPv6 and IPv4' "$work/$name.err"; then
    ok=1
    expect_probe $name "^eof ''$" 127.0.0.1 127.0.0.1 "$listen_port" || ok=0
    expect_probe $name "^reset ''$" 127.0.0.2 127.0.0.1 "$listen_port" || ok=0
    expect_probe $name "^reset ''$" ::1 ::1 "$listen_port" || ok=0
    stop_listen
    if [ $ok -eq 1 ]; then
        if grep -qE '^connection from 127\.0\.0\.1:' "$work/$name.err" &&
            grep -qE '^refused \[::1\]:[0-9]+: not in --allow$' "$work/$name.err"; then
            pass $name
        else fail $name "lines do not say it"; fi
    fi
else
    echo "SKIP $name: no dual-stack listener here"
fi

# ---- --json, --chat, -u ---------------------------------------------------------------------------
name=json_denied_event
spawn 20 "${l[@]}" -k --json --deny 127.0.0.2 127.0.0.1 0 </dev/null >"$work/$name.out" \
    2>"$work/$name.err"
listen_pid=$spawn_pid
if wait_match "$work/$name.err" '"event":"bound"'; then
    listen_port=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["port"])' "$matched")
    expect_probe $name "^reset ''$" 127.0.0.2 127.0.0.1 "$listen_port" && {
        stop_listen
        if why=$(json_check "$work/$name.err" "bound denied exit" "denied.reason=deny" \
            "denied.rule=127.0.0.2/32" "denied.datagram=False" "denied.peer=*" 2>&1); then
            pass $name
        else fail $name "$why"; fi
    }
else
    fail $name "no bound event"
fi

name=chat_never_relays_to_or_from_a_refused_client
if start_listen $name /dev/null --chat --deny 127.0.0.2 127.0.0.1 0; then
    # A member who stays 3 s and prints what it hears.
    spawn 10 python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
time.sleep(3)
s.settimeout(1)
got = b""
try:
    while True:
        c = s.recv(4096)
        if not c:
            break
        got += c
except OSError:
    pass
print(repr(got.decode()))' "$listen_port" </dev/null >"$work/$name.member" 2>&1
    member=$spawn_pid
    sleep 0.5
    ok=1
    expect_probe $name "^reset ''$" 127.0.0.2 127.0.0.1 "$listen_port" || ok=0
    expect_probe $name "^eof ''$" 127.0.0.3 127.0.0.1 "$listen_port" || ok=0
    wait_exit "$member" 10
    stop_listen
    heard=$(cat "$work/$name.member")
    if [ $ok -eq 0 ]; then
        :
    elif [[ $heard == *"from 127.0.0.2"* ]]; then
        fail $name "the refused client's line reached the chat: $heard"
    elif [[ $heard != *"> from 127.0.0.3"* ]]; then
        fail $name "the allowed client's line did not: $heard"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=udp_datagrams_from_a_refused_address_are_dropped
if start_listen $name /dev/null -u --deny 127.0.0.2 127.0.0.1 0; then
    python3 - "$listen_port" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
bad = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
bad.bind(("127.0.0.2", 0))
good = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
good.bind(("127.0.0.1", 0))
for i in range(3):
    bad.sendto(b"bad %d\n" % i, ("127.0.0.1", port))
time.sleep(0.2)
good.sendto(b"good\n", ("127.0.0.1", port))
time.sleep(0.3)
PY
    sleep 0.3
    stop_listen
    if [ "$(cat "$work/$name.out")" != good ]; then
        fail $name "listen printed [$(cat "$work/$name.out")], want [good]"
    elif [ "$(grep -c '^dropped datagrams from 127\.0\.0\.2:[0-9]*: matches --deny' "$work/$name.err")" -ne 1 ]; then
        fail $name "want one 'dropped datagrams' line for three datagrams"
    elif ! grep -qE '^connection from 127\.0\.0\.1:' "$work/$name.err"; then
        fail $name "the allowed sender was not seen"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

# ---- rule files ---------------------------------------------------------------------------------
printf '# lab hosts\n127.0.0.1   # this one\n\n10.0.0.0/8, 192.168.0.0/16\n' >"$work/allow.rules"
printf '127.0.0.0/8\n' >"$work/deny.rules"
k_case allowfile_rules ok no --allowfile "$work/allow.rules"
k_case denyfile_rules no no --denyfile "$work/deny.rules"
printf '127.0.0.1\n10.0.0.0/33\n' >"$work/bad.rules"
expect_error allowfile_bad_rule_names_its_line 2 \
    "^sockit listen: --allowfile $work/bad.rules: line 2: '10\\.0\\.0\\.0/33': prefix length /33" \
    "${l[@]}" --allowfile "$work/bad.rules" 127.0.0.1 0
# A NUL byte is a binary file, said so, not a line cut short or (/dev/zero) a read
# that never ends.
printf '127.0.0.1\n10.0\0.0.1\n' >"$work/binary.rules"
expect_error allowfile_nul_byte 2 "^sockit listen: --allowfile $work/binary.rules: line 2: a NUL byte" \
    "${l[@]}" --allowfile "$work/binary.rules" 127.0.0.1 0
expect_error allowfile_dev_zero 2 "^sockit listen: --allowfile /dev/zero: line 1: a NUL byte" \
    "${l[@]}" --allowfile /dev/zero 127.0.0.1 0
expect_error allowfile_missing 1 "^sockit: --denyfile $work/none.rules: No such file or directory\$" \
    "${l[@]}" --denyfile "$work/none.rules" 127.0.0.1 0

# ---- --conn-rate ------------------------------------------------------------------------------
# Three per minute: the fourth within the minute is refused (a minute's refill
# between them is 3/60 of a connection a second, far from one), another source is
# counted apart.
name=conn_rate_refuses_the_n_plus_first
if start_listen $name /dev/null -k --conn-rate 3/60 127.0.0.1 0; then
    ok=1
    for i in 1 2 3; do expect_probe $name "^eof ''$" 127.0.0.1 127.0.0.1 "$listen_port" || ok=0; done
    expect_probe $name "^reset ''$" 127.0.0.1 127.0.0.1 "$listen_port" || ok=0
    expect_probe $name "^eof ''$" 127.0.0.2 127.0.0.1 "$listen_port" || ok=0
    stop_listen
    if [ $ok -eq 1 ]; then
        if grep -qE '^refused 127\.0\.0\.1:[0-9]+: over --conn-rate 3/60$' "$work/$name.err" &&
            [ "$(grep -c '^connection from' "$work/$name.err")" -eq 4 ]; then
            pass $name
        else fail $name "want 4 connections and one refused line"; fi
    fi
else
    fail $name "listen did not start"
fi

# One per 3 s: the second at once is refused, one after 4 s is taken again.
name=conn_rate_takes_one_again_after_the_window
if start_listen $name /dev/null -k --conn-rate 1/3 127.0.0.1 0; then
    ok=1
    expect_probe $name "^eof ''$" 127.0.0.1 127.0.0.1 "$listen_port" || ok=0
    expect_probe $name "^reset ''$" 127.0.0.1 127.0.0.1 "$listen_port" || ok=0
    sleep 4
    expect_probe $name "^eof ''$" 127.0.0.1 127.0.0.1 "$listen_port" || ok=0
    stop_listen
    [ $ok -eq 1 ] && pass $name
else
    fail $name "listen did not start"
fi

# ---- bad rules and combinations: one line, exit 2 -----------------------------------------------
expect_error allow_prefix_33 2 "^sockit listen: --allow '10\\.0\\.0\\.0/33': prefix length /33 is out of range 0-32 for IPv4\$" \
    "${l[@]}" --allow 10.0.0.0/33 127.0.0.1 0
expect_error deny_host_name 2 "^sockit listen: --deny 'abc': not an IPv4 or IPv6 address \\(host names are not looked up" \
    "${l[@]}" --deny abc 127.0.0.1 0
expect_error allow_prefix_129 2 "^sockit listen: --allow '::1/129': prefix length /129 is out of range 0-128 for IPv6\$" \
    "${l[@]}" --allow ::1/129 127.0.0.1 0
expect_error allow_stray_comma 2 "^sockit listen: --allow '127\\.0\\.0\\.1,': empty rule" \
    "${l[@]}" --allow 127.0.0.1, 127.0.0.1 0
expect_error rules_with_unix 2 '^sockit listen: --deny: the clients of a unix: socket have no IP address$' \
    "${l[@]}" --deny 127.0.0.1 "unix:$work/x.sock"
expect_error conn_rate_without_k 2 '^sockit listen: --conn-rate: limits the clients of -k' \
    "${l[@]}" --conn-rate 5 127.0.0.1 0
expect_error conn_rate_with_u 2 '^sockit listen: --conn-rate: a datagram listener \(-u\)' \
    "${l[@]}" -u --conn-rate 5 127.0.0.1 0
expect_error conn_rate_zero_window 2 "^sockit listen: --conn-rate '5/0': SECS must be more than 0\$" \
    "${l[@]}" -k --conn-rate 5/0 127.0.0.1 0
expect_error conn_rate_zero 2 "^sockit listen: --conn-rate '0': not a whole number 1-1000000\$" \
    "${l[@]}" -k --conn-rate 0 127.0.0.1 0
expect_error conn_rate_bad_secs 2 "^sockit listen: --conn-rate 'x': not a number of seconds" \
    "${l[@]}" -k --conn-rate 5/x 127.0.0.1 0
expect_error connect_has_no_allow 2 "^sockit connect: unknown option '--allow' \\(an option of listen\\)\$" \
    "$sockit" connect --allow 127.0.0.1 127.0.0.1 9

finish
