#!/usr/bin/env bash
# sockit tcp-server, tcp-client, udp-server and udp-client against the Python
# originals (examples/python/*.py) in both directions, with the reference texts and
# lines; then their options (--reply, --send, --count, --host, port 0) and their
# --json events, which must each parse as JSON. Every wait is bounded.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

# start_server NAME CMD...: runs CMD (stdout to NAME.server.out), waits for its
# "Listening on HOST:PORT" line and sets server_pid and port. Returns 1 if it never
# comes.
start_server() {
    local name=$1
    shift
    spawn 30 "$@" </dev/null >"$work/$name.server.out" 2>"$work/$name.server.err"
    server_pid=$spawn_pid
    port=""
    wait_match "$work/$name.server.out" '^Listening on (127\.0\.0\.1|\[::1\]):[0-9]+$' || return 1
    port=$(port_of "$matched")
    [ "$port" -gt 0 ]
}

# start_json_server NAME CMD...: the same for --json, from the "bound" event.
start_json_server() {
    local name=$1
    shift
    spawn 30 "$@" </dev/null >"$work/$name.server.out" 2>"$work/$name.server.err"
    server_pid=$spawn_pid
    port=""
    wait_match "$work/$name.server.out" '"event":"bound"' || return 1
    [[ $matched =~ \"port\":([0-9]+) ]] && port=${BASH_REMATCH[1]}
    [ -n "$port" ] && [ "$port" -gt 0 ]
}

# check_exchange NAME CLIENT_RC SERVER_RC WANT_SERVER WANT_CLIENT: both exited 0,
# the server said WANT_SERVER (peer ports written as PEER) and the client WANT_CLIENT,
# and nobody wrote to stderr.
check_exchange() {
    local name=$1 client_rc=$2 server_rc=$3 want_server=$4 want_client=$5 got_server got_client
    got_server=$(sed -E 's/^(Connected to|Received from) (127\.0\.0\.1|\[::1\]):[0-9]+/\1 \2:PEER/' \
        "$work/$name.server.out")
    got_client=$(cat "$work/$name.client.out")
    if [ "$client_rc" -ne 0 ] || [ "$server_rc" -ne 0 ]; then
        fail "$name" "exit codes: client $client_rc, server $server_rc (want 0 and 0)"
    elif [ "$got_server" != "$want_server" ]; then
        fail "$name" "server said [$got_server], want [$want_server]"
    elif [ "$got_client" != "$want_client" ]; then
        fail "$name" "client said [$got_client], want [$want_client]"
    elif [ -s "$work/$name.server.err" ] || [ -s "$work/$name.client.err" ]; then
        fail "$name" "unexpected output on stderr"
    else
        pass "$name"
    fi
}

# exchange NAME SERVER... -- CLIENT...: starts the server, runs the client with the
# server's port appended (after "--port" for a sockit client), and waits for both.
# Sets client_rc and server_rc.
exchange() {
    local name=$1 server=() client=()
    shift
    while [ "$1" != "--" ]; do
        server+=("$1")
        shift
    done
    shift
    client=("$@")
    client_rc=99
    server_rc=99
    if ! start_server "$name" "${server[@]}"; then
        : >"$work/$name.client.out"
        return 1
    fi
    if [ "${client[0]}" = "$sockit" ]; then
        client+=(--port "$port")
    else
        client+=("$port")
    fi
    timeout 10 "${client[@]}" </dev/null >"$work/$name.client.out" 2>"$work/$name.client.err"
    client_rc=$?
    wait_exit "$server_pid" 5
    server_rc=$exit_rc
}

py=(python3 -u)
tcp_py_server=("${py[@]}" "$python_examples/tcp_server.py" 0 1)
udp_py_server=("${py[@]}" "$python_examples/udp_server.py" 0 1)

# ---- sockit server, Python client --------------------------------------------------
name=tcp_server_answers_python_tcp_client
exchange $name "$sockit" tcp-server --port 0 --count 1 -- "${py[@]}" "$python_examples/tcp_client.py"
check_exchange $name "$client_rc" "$server_rc" "Listening on 127.0.0.1:$port
Connected to 127.0.0.1:PEER
Received: Hello server!" "Hello from server!"

# Item 29 of issue 9: the reference lines are tcp_server.py's, line for line, whoever
# serves: the sockit server's output equals the Python server's for the same client.
name=tcp_server_prints_the_lines_of_tcp_server_py
exchange ${name}_py "${tcp_py_server[@]}" -- "${py[@]}" "$python_examples/tcp_client.py"
py_lines=$(sed -E 's/127\.0\.0\.1:[0-9]+/ADDR/' "$work/${name}_py.server.out")
exchange $name "$sockit" tcp-server --port 0 --count 1 -- "${py[@]}" "$python_examples/tcp_client.py"
sockit_lines=$(sed -E 's/127\.0\.0\.1:[0-9]+/ADDR/' "$work/$name.server.out")
if [ "$sockit_lines" = "Listening on ADDR
Connected to ADDR
Received: Hello server!" ] && [ "$py_lines" = "$sockit_lines" ]; then
    pass $name
else
    fail $name "sockit printed [$sockit_lines], tcp_server.py [$py_lines]"
fi

# The peer the reference line leaves out is in --json.
name=tcp_server_json_received_names_the_peer
if start_json_server $name "$sockit" tcp-server --port 0 --count 1 --json; then
    timeout 10 "$sockit" tcp-client --port "$port" >/dev/null 2>&1
    wait_exit "$server_pid" 5
    if why=$(json_check "$work/$name.server.out" "bound connected received exit" \
        "received.text=Hello server!" "received.peer=*" 2>&1) &&
        grep -qE '"event":"received","peer":"127\.0\.0\.1:[0-9]+"' "$work/$name.server.out"; then
        pass $name
    else
        fail $name "${why:-no peer in the received event}"
    fi
else
    fail $name "no bound event"
fi

name=udp_server_answers_python_udp_client
exchange $name "$sockit" udp-server --port 0 --count 1 -- "${py[@]}" "$python_examples/udp_client.py"
check_exchange $name "$client_rc" "$server_rc" "Listening on 127.0.0.1:$port
Received from 127.0.0.1:PEER: Hello UDP server!" "Hello from UDP server!"

# ---- Python server, sockit client --------------------------------------------------
name=tcp_client_gets_reply_from_python_tcp_server
exchange $name "${tcp_py_server[@]}" -- "$sockit" tcp-client
check_exchange $name "$client_rc" "$server_rc" "Listening on 127.0.0.1:$port
Connected to 127.0.0.1:PEER
Received: Hello server!" "Hello from server!"

name=udp_client_gets_reply_from_python_udp_server
exchange $name "${udp_py_server[@]}" -- "$sockit" udp-client
check_exchange $name "$client_rc" "$server_rc" "Listening on 127.0.0.1:$port
Received from 127.0.0.1:PEER: Hello UDP server!" "Hello from UDP server!"

# ---- --reply and --send --------------------------------------------------------------
name=tcp_server_reply_option_reaches_python_client
exchange $name "$sockit" tcp-server --port 0 --count 1 --reply "Custom: tcp reply" -- \
    "${py[@]}" "$python_examples/tcp_client.py"
check_exchange $name "$client_rc" "$server_rc" "Listening on 127.0.0.1:$port
Connected to 127.0.0.1:PEER
Received: Hello server!" "Custom: tcp reply"

name=udp_server_reply_option_reaches_python_client
exchange $name "$sockit" udp-server --port 0 --count 1 --reply "Custom: udp reply" -- \
    "${py[@]}" "$python_examples/udp_client.py"
check_exchange $name "$client_rc" "$server_rc" "Listening on 127.0.0.1:$port
Received from 127.0.0.1:PEER: Hello UDP server!" "Custom: udp reply"

name=tcp_client_send_option_reaches_python_server
exchange $name "${tcp_py_server[@]}" -- "$sockit" tcp-client --send "tcp text, with spaces"
check_exchange $name "$client_rc" "$server_rc" "Listening on 127.0.0.1:$port
Connected to 127.0.0.1:PEER
Received: tcp text, with spaces" "Hello from server!"

name=udp_client_send_option_reaches_python_server
exchange $name "${udp_py_server[@]}" -- "$sockit" udp-client --send "udp text, with spaces"
check_exchange $name "$client_rc" "$server_rc" "Listening on 127.0.0.1:$port
Received from 127.0.0.1:PEER: udp text, with spaces" "Hello from UDP server!"

# ---- --count: exactly N requests, then exit 0 by itself ------------------------------
for kind in tcp udp; do
    name=${kind}_server_count_serves_exactly_n_requests_then_exits
    if ! start_server $name "$sockit" $kind-server --port 0 --count 3; then
        fail $name "no 'Listening on' line"
        continue
    fi
    rcs=""
    for i in 1 2 3; do
        timeout 10 "$sockit" $kind-client --port "$port" --send "request $i" \
            >>"$work/$name.client.out" 2>>"$work/$name.client.err"
        rcs+="$? "
    done
    wait_exit "$server_pid" 5
    received=$(grep -cE '^Received( from 127\.0\.0\.1:[0-9]*)?: request [123]$' "$work/$name.server.out")
    if [ "$rcs" != "0 0 0 " ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "client exit codes [$rcs], server exit code $exit_rc; want all 0"
    elif [ "$received" -ne 3 ]; then
        fail $name "server printed $received 'Received from' lines, want 3"
    else
        pass $name
    fi
done

# ---- --host: IPv6 and an explicit IPv4 address ---------------------------------------
for kind in tcp udp; do
    for host in ::1 127.0.0.1; do
        label=ipv6
        shown="\\[::1\\]"
        if [ $host = 127.0.0.1 ]; then
            label=ipv4
            shown="127\\.0\\.0\\.1"
        fi
        name=${kind}_host_option_${label}_binds_and_connects_there
        exchange $name "$sockit" $kind-server --host $host --port 0 --count 1 -- \
            "$sockit" $kind-client --host $host
        if [ "$client_rc" -ne 0 ] || [ "$server_rc" -ne 0 ]; then
            fail $name "exit codes: client $client_rc, server $server_rc (want 0 and 0)"
        elif ! grep -qE "^Listening on $shown:$port\$" "$work/$name.server.out" ||
            ! grep -qE "^(Connected to|Received from) $shown:[0-9]+" "$work/$name.server.out" ||
            ! grep -qE "^Received( from $shown:[0-9]+)?: Hello (UDP )?server!\$" \
                "$work/$name.server.out"; then
            fail $name "server did not listen on and hear from $host"
        elif ! grep -qE '^Hello from (UDP )?server!$' "$work/$name.client.out"; then
            fail $name "client did not print the reply"
        else
            pass $name
        fi
    done
done

# ---- port 0: the printed port is the real one (the exchanges above connected to it),
# and two servers started with port 0 get different ports.
name=port_zero_servers_get_distinct_real_ports
if start_server ${name}_a "$sockit" tcp-server --port 0 && first=$port &&
    start_server ${name}_b "$sockit" tcp-server --port 0 && [ "$first" != "$port" ]; then
    pass $name
else
    fail $name "ports [${first:-}] and [$port]"
fi

# ---- --json ----------------------------------------------------------------------------
name=tcp_json_events_parse_and_name_each_step
if start_json_server $name "$sockit" tcp-server --port 0 --count 1 --json; then
    timeout 10 "$sockit" tcp-client --port "$port" --json >"$work/$name.client.out" \
        2>"$work/$name.client.err"
    client_rc=$?
    wait_exit "$server_pid" 5
    if [ "$client_rc" -ne 0 ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "exit codes: client $client_rc, server $exit_rc"
    elif ! why=$(json_check "$work/$name.server.out" "bound connected received exit" \
        "bound.port=$port" "bound.address=127.0.0.1:$port" "connected.peer=*" \
        "received.text=Hello server!" "received.bytes=13" "exit.reason=count" \
        "exit.requests=1" "exit.bytes_in=13" "exit.bytes_out=18" 2>&1); then
        fail $name "server: $why"
    elif ! why=$(json_check "$work/$name.client.out" "connected reply exit" \
        "connected.peer=127.0.0.1:$port" "reply.text=Hello from server!" "reply.bytes=18" \
        "exit.reason=done" "exit.bytes_out=13" "exit.bytes_in=18" 2>&1); then
        fail $name "client: $why"
    else
        pass $name
    fi
else
    fail $name "no bound event"
fi

name=udp_json_events_parse_and_name_each_step
if start_json_server $name "$sockit" udp-server --port 0 --count 1 --json; then
    timeout 10 "$sockit" udp-client --port "$port" --json >"$work/$name.client.out" \
        2>"$work/$name.client.err"
    client_rc=$?
    wait_exit "$server_pid" 5
    if [ "$client_rc" -ne 0 ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "exit codes: client $client_rc, server $exit_rc"
    elif ! why=$(json_check "$work/$name.server.out" "bound received exit" \
        "bound.port=$port" "received.peer=*" "received.text=Hello UDP server!" \
        "received.bytes=17" "exit.reason=count" "exit.requests=1" 2>&1); then
        fail $name "server: $why"
    elif ! why=$(json_check "$work/$name.client.out" "reply exit" \
        "reply.from=127.0.0.1:$port" "reply.text=Hello from UDP server!" "reply.bytes=22" \
        "exit.reason=done" 2>&1); then
        fail $name "client: $why"
    else
        pass $name
    fi
else
    fail $name "no bound event"
fi

# A received text with quotes, a backslash and a control byte still makes valid JSON.
name=json_escapes_quotes_backslashes_and_control_bytes
if start_json_server $name "$sockit" udp-server --port 0 --count 1 --json; then
    text=$(printf 'say "hi" \\ tab\there')
    timeout 10 "$sockit" udp-client --port "$port" --send "$text" >/dev/null 2>&1
    wait_exit "$server_pid" 5
    if why=$(json_check "$work/$name.server.out" "bound received exit" \
        "received.text=$text" 2>&1); then
        pass $name
    else
        fail $name "$why"
    fi
else
    fail $name "no bound event"
fi

# ---- signals: a server without --count stops cleanly, exit 0, with an exit event -----
for pair in tcp:TERM udp:INT; do
    kind=${pair%:*}
    sig=${pair#*:}
    name=${kind}_server_exits_0_on_sig${sig,,}
    if start_json_server "$name" "$sockit" "$kind-server" --port 0 --json; then
        kill -"$sig" "$(pgrep -P "$server_pid" -x sockit)" 2>/dev/null
        wait_exit "$server_pid" 5
        if [ "$exit_rc" -ne 0 ]; then
            fail "$name" "exit code $exit_rc, want 0 within 5 s"
        elif ! why=$(json_check "$work/$name.server.out" "bound exit" "exit.reason=signal" \
            "exit.requests=0" 2>&1); then
            fail "$name" "$why"
        else
            pass "$name"
        fi
    else
        fail "$name" "no bound event"
    fi
done

# ---- issue 9, item 25: one silent client holds the sequential server for --timeout at
# most; it is then dropped with a message, and the next client is served. ------------
cat >"$work/silent_client.py" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
print("connected", flush=True)
s.settimeout(float(sys.argv[2]))
t = time.monotonic()
try:
    print("closed" if s.recv(100) == b"" else "data", round(time.monotonic() - t, 1), flush=True)
except socket.timeout:
    print("still open", flush=True)
PY
name=tcp_server_timeout_drops_a_silent_client_and_serves_the_next
if start_server $name "$sockit" tcp-server --port 0 --count 2 --timeout 0.5; then
    spawn 20 python3 -u "$work/silent_client.py" "$port" 10 </dev/null >"$work/$name.silent" 2>&1
    silent_pid=$spawn_pid
    wait_match "$work/$name.silent" '^connected$' 5
    out=$(timeout 10 "$sockit" tcp-client --port "$port" --timeout 5 2>"$work/$name.client.err")
    rc=$?
    wait_exit "$server_pid" 5
    server_rc=$exit_rc
    wait_exit "$silent_pid" 5
    if [ $rc -ne 0 ] || [ "$out" != "Hello from server!" ]; then
        fail $name "the second client: exit code $rc, [$out]; want the reply"
    elif [ "$server_rc" -ne 0 ]; then
        fail $name "server exit code $server_rc, want 0 after its 2 clients"
    elif ! grep -qE '^closed (0\.[4-9]|[1-3]\.[0-9])$' "$work/$name.silent"; then
        fail $name "the silent client was not closed after about 0.5 s: $(cat "$work/$name.silent")"
    elif ! grep -qE '^sockit: client 127\.0\.0\.1:[0-9]+: sent nothing within 0\.5 s \(--timeout\), closed$' \
        "$work/$name.server.err"; then
        fail $name "no 'sockit: client ...: sent nothing within 0.5 s (--timeout), closed' on stderr"
    else
        pass $name
    fi
else
    fail $name "no 'Listening on' line"
fi

name=tcp_server_timeout_0_is_no_limit
if start_server $name "$sockit" tcp-server --port 0 --timeout 0; then
    timeout 10 python3 -u "$work/silent_client.py" "$port" 1.5 >"$work/$name.silent" 2>&1
    if grep -qx 'still open' "$work/$name.silent"; then pass $name; else
        fail $name "a silent client was closed with --timeout 0: $(cat "$work/$name.silent")"
    fi
    kill_tree "$server_pid"
    wait "$server_pid" 2>/dev/null
else
    fail $name "no 'Listening on' line"
fi

name=tcp_server_help_documents_the_default_timeout
if timeout 10 "$sockit" tcp-server --help | grep -qE -- '--timeout SECS .*' &&
    timeout 10 "$sockit" tcp-server --help | grep -qE '\(default 5; 0: no limit\)'; then
    pass $name
else
    fail $name "tcp-server --help does not give --timeout's default (5) and what 0 means"
fi

finish
