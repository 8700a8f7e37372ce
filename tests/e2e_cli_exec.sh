#!/usr/bin/env bash
# Issue 15, item 8: `listen`/`connect` --exec CMD and --sh-exec CMD (ncat -e, -c).
# The connection is the command's stdin and stdout: cat echoes, a pipeline works,
# connect talks both ways with a python server, a half-closed client still gets the
# command's whole answer (wc -c), the status is the command's (exit 3, a signal),
# -k gives each of 3 concurrent clients its own command (distinct pids), -m holds
# the next client until a slot is free, children are reaped (no <defunct>), the
# command sees no descriptor of sockit's (ls /proc/self/fd), SIGTERM stops
# listen -k -e within 1 s with every command's process group gone, TLS works on
# both sides (one client, -k, 300 kB through wc -c), --deny keeps a command from
# starting, --json tells exec and exec_exit. A program that cannot run is one line
# and exit 1 (before anything connects, or from the parent when exec itself
# fails); options that do not go with -e are usage errors. Loopback only.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

# client.py PORT MODE ...: a python client of 127.0.0.1:PORT.
#   send TEXT     sends TEXT (backslash escapes), shuts down its write side, prints
#                 everything that comes back until the end of stream (or a reset)
#   bytes N       the same with N bytes of 'x'
#   lines N       opens N connections at once, prints the first line each gets,
#                 then closes them all
#   fds N         N connections, one after the other, all held open: for each,
#                 the lines before "end", space-separated
#   hold N        N connections; prints the first line of each, then waits for the
#                 end of each (up to 20 s) and prints "eof N" when all ended
#   slot          -m 1: A connects and gets its line; B connects and gets nothing
#                 within 1 s ("waited"); A closes; B gets its line
cat >"$work/client.py" <<'PY'
import socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=20)
def until_eof(s):
    # A reset (a peer that closed with our bytes unread) ends it as well.
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return data
        data += chunk
def first_line(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()
out = sys.stdout
if mode in ("send", "bytes"):
    s = conn()
    payload = sys.argv[3].encode().decode("unicode_escape").encode() if mode == "send" \
        else b"x" * int(sys.argv[3])
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    out.buffer.write(until_eof(s))
elif mode == "lines":
    socks = [conn() for _ in range(int(sys.argv[3]))]
    for s in socks:
        print(first_line(s), flush=True)
    for s in socks:
        s.close()
elif mode == "fds":
    socks = []
    for _ in range(int(sys.argv[3])):
        s = conn()
        socks.append(s)
        lines = []
        while True:
            line = first_line(s)
            if line in ("end", ""):
                break
            lines.append(line)
        print(" ".join(lines), flush=True)
    for s in socks:
        s.close()
elif mode == "hold":
    socks = [conn() for _ in range(int(sys.argv[3]))]
    for s in socks:
        print(first_line(s), flush=True)
    for s in socks:
        until_eof(s)
    print("eof", len(socks), flush=True)
elif mode == "slot":
    a = conn()
    print("a", first_line(a), flush=True)
    b = conn()
    b.settimeout(1.0)
    try:
        got = b.recv(100)
        print("b-early", got, flush=True)
    except socket.timeout:
        print("waited", flush=True)
    a.close()
    b.settimeout(20)
    print("b", first_line(b), flush=True)
    b.close()
PY
client() { timeout 30 python3 "$work/client.py" "$@"; }

# server.py MODE ARG: listens on 127.0.0.1:0, prints "port N", serves one client:
#   ask TEXT      sends TEXT, then prints "got " and everything up to the end of stream
#   bytes N       sends N bytes of 'y', shuts down its write side, then as ask
#   none          prints "connection" if anyone connects within 3 s, else "none"
cat >"$work/server.py" <<'PY'
import socket, sys
mode, arg = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(4)
print("port", l.getsockname()[1], flush=True)
l.settimeout(3 if mode == "none" else 20)
try:
    c, _ = l.accept()
except socket.timeout:
    print("none", flush=True)
    sys.exit(0)
if mode == "none":
    print("connection", flush=True)
    sys.exit(0)
c.settimeout(20)
if mode == "ask":
    c.sendall(arg.encode().decode("unicode_escape").encode())
else:
    c.sendall(b"y" * int(arg))
    c.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = c.recv(65536)
    if not chunk:
        break
    data += chunk
print("got", repr(data.decode()), flush=True)
PY

# start_listen NAME ARGS...: `sockit listen -v ARGS... 127.0.0.1 0` (stdout NAME.out,
# stderr NAME.err, both emptied before it starts); sets listen_pid (timeout's),
# sockit_pid and listen_port once it listens.
start_listen() {
    local name=$1
    shift
    : >"$work/$name.out"
    : >"$work/$name.err"
    spawn 40 "$sockit" listen -v "$@" 127.0.0.1 0 </dev/null >"$work/$name.out" 2>"$work/$name.err"
    listen_pid=$spawn_pid
    listen_port=""
    sockit_pid=""
    wait_match "$work/$name.err" '^listening on ' || return 1
    listen_port=$(port_of "$matched")
    sockit_pid=$(pgrep -P "$listen_pid" | head -n 1)
}

# start_server NAME MODE ARG: the python server (stdout NAME.server); sets server_pid
# and server_port.
start_server() {
    local name=$1
    shift
    : >"$work/$name.server"
    spawn 40 python3 -u "$work/server.py" "$@" </dev/null >"$work/$name.server" 2>&1
    server_pid=$spawn_pid
    server_port=""
    wait_match "$work/$name.server" '^port [0-9]+$' || return 1
    server_port=${matched#port }
}

# children PID: the pids of PID's children, zombies included, space-separated.
children() { cat "/proc/$1/task/$1/children" 2>/dev/null; }

# live_in_group PGID: how many processes of group PGID are alive (zombies are not).
live_in_group() {
    python3 - "$1" <<'PY'
import os, sys
pgid, n = int(sys.argv[1]), 0
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        stat = open(f"/proc/{p}/stat").read()
    except OSError:
        continue
    fields = stat[stat.rindex(")") + 2:].split()
    if int(fields[2]) == pgid and fields[0] != "Z":
        n += 1
print(n)
PY
}

# ---- listen -e, -c: one client -----------------------------------------------------------
name=listen_exec_cat_echoes_the_client
if start_listen $name --exec cat; then
    got=$(client "$listen_port" send 'hello exec\n')
    wait_exit "$listen_pid" 10
    if [ "$got" != "hello exec" ]; then
        fail $name "the client got [$got], want [hello exec]"
    elif [ "$exit_rc" -ne 0 ]; then
        fail $name "listen exit code $exit_rc, want 0"
    elif ! grep -qE "^running 'cat' \(pid [0-9]+\) for 127\.0\.0\.1:[0-9]+$" "$work/$name.err" ||
        ! grep -qE '^pid [0-9]+ for 127\.0\.0\.1:[0-9]+ exited with status 0$' "$work/$name.err"; then
        fail $name "-v does not say the command's start and end"
    elif [ -s "$work/$name.out" ]; then
        fail $name "sockit wrote to its own stdout"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=sh_exec_runs_a_pipeline
if start_listen $name --sh-exec 'tr a-z A-Z | tr -d Q'; then
    got=$(client "$listen_port" send 'Hello world qq\n')
    wait_exit "$listen_pid" 10
    if [ "$got" != "HELLO WORLD " ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "the client got [$got] (exit $exit_rc), want [HELLO WORLD ] and 0"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=a_command_of_two_lines_is_logged_on_one
if start_listen $name --sh-exec $'tr a-z A-Z\n# a second line'; then
    got=$(client "$listen_port" send 'two lines\n')
    wait_exit "$listen_pid" 10
    if [ "$got" != "TWO LINES" ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "the client got [$got] (exit $exit_rc), want [TWO LINES] and 0"
    elif ! grep -qE "^running 'tr a-z A-Z\\\\n# a second line' \(pid [0-9]+\) for " "$work/$name.err"; then
        fail $name "-v did not log the command on one line, escaped: $(head -c 300 "$work/$name.err")"
    elif grep -q '^# a second line' "$work/$name.err"; then
        fail $name "the command's newline reached the log"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=half_closed_client_gets_the_whole_answer
if start_listen $name --sh-exec 'wc -c'; then
    got=$(client "$listen_port" bytes 100000)
    wait_exit "$listen_pid" 10
    if [ "$(echo "$got" | tr -d ' ')" != 100000 ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "wc -c answered [$got] (exit $exit_rc), want 100000 and 0"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=listen_exits_with_the_commands_status
if start_listen $name --sh-exec 'exit 3'; then
    client "$listen_port" send '' >/dev/null
    wait_exit "$listen_pid" 10
    if [ "$exit_rc" -ne 3 ]; then
        fail $name "exit code $exit_rc, want 3"
    elif ! grep -qE '^pid [0-9]+ for .* exited with status 3$' "$work/$name.err"; then
        fail $name "-v does not say status 3"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

# ---- connect -e, -c --------------------------------------------------------------------------
name=connect_exec_talks_both_ways
if start_server $name ask 'question\n'; then
    timeout 10 "$sockit" connect --sh-exec 'read q; echo "answer to $q"' 127.0.0.1 "$server_port" \
        </dev/null >"$work/$name.out" 2>"$work/$name.err"
    rc=$?
    wait_exit "$server_pid" 10
    if [ "$rc" -ne 0 ]; then
        fail $name "connect exit code $rc, want 0"
    elif ! grep -qxF "got 'answer to question\\n'" "$work/$name.server"; then
        fail $name "the server did not get the answer"
    elif [ -s "$work/$name.out" ]; then
        fail $name "sockit wrote to its own stdout"
    else
        pass $name
    fi
else
    fail $name "the python server did not start"
fi

name=connect_exec_half_close_both_ways
if start_server $name bytes 70000; then
    timeout 10 "$sockit" connect --exec 'wc -c' 127.0.0.1 "$server_port" </dev/null \
        >"$work/$name.out" 2>"$work/$name.err"
    rc=$?
    wait_exit "$server_pid" 10
    if [ "$rc" -ne 0 ] || ! grep -qE "^got '70000\\\\n'$" "$work/$name.server"; then
        fail $name "exit $rc; want 0 and the server to get '70000\\n'"
    else
        pass $name
    fi
else
    fail $name "the python server did not start"
fi

name=connect_exits_with_the_commands_status_and_signal
ok=1
for want in 3 143; do
    cmd='exit 3'
    [ "$want" = 143 ] && cmd='kill -TERM $$'
    if start_server "$name.$want" ask ''; then
        timeout 10 "$sockit" connect --sh-exec "$cmd" 127.0.0.1 "$server_port" </dev/null \
            >"$work/$name.out" 2>"$work/$name.err"
        rc=$?
        wait_exit "$server_pid" 10
        if [ "$rc" -ne "$want" ]; then
            fail $name "--sh-exec '$cmd': exit code $rc, want $want"
            ok=0
        fi
    else
        fail $name "the python server did not start"
        ok=0
    fi
done
[ $ok -eq 1 ] && pass $name

# ---- programs that cannot run ----------------------------------------------------------------------
name=nonexistent_program_is_one_line_before_connecting
if start_server $name none; then
    expect_error $name 1 "^sockit: --exec 'nosuchprog-sockit': No such file or directory\$" \
        "$sockit" connect --exec nosuchprog-sockit 127.0.0.1 "$server_port"
    wait_exit "$server_pid" 10
    if [ "$(wc -l <"$work/$name.err")" -ne 1 ]; then
        fail $name.one_line "stderr has $(wc -l <"$work/$name.err") lines, want 1"
    elif ! grep -qx none "$work/$name.server"; then
        fail $name.one_line "connect connected although the command cannot run"
    else
        pass $name.one_line
    fi
else
    fail $name "the python server did not start"
fi
expect_error listen_nonexistent_program_before_listening 1 \
    "^sockit: --exec 'nosuchprog-sockit -x': No such file or directory\$" \
    "$sockit" listen -v --exec 'nosuchprog-sockit -x' 127.0.0.1 0

# Found and executable, yet execve fails (its interpreter is missing): the parent
# says so, the client is closed, and listen exits 1.
printf '#!/nonexistent/interpreter\n' >"$work/badinterp"
chmod +x "$work/badinterp"
name=exec_failure_is_said_by_the_parent
if start_listen $name --exec "$work/badinterp"; then
    got=$(client "$listen_port" send 'x')
    wait_exit "$listen_pid" 10
    if [ "$exit_rc" -ne 1 ]; then
        fail $name "exit code $exit_rc, want 1"
    elif ! grep -qxF "sockit: --exec '$work/badinterp': No such file or directory" "$work/$name.err"; then
        fail $name "no one-line reason on stderr"
    elif [ -n "$got" ]; then
        fail $name "the client got [$got]"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

# ---- usage errors ------------------------------------------------------------------------------
expect_error empty_exec_is_a_usage_error 2 "^sockit connect: --exec '': no command to run\$" \
    "$sockit" connect --exec '' 127.0.0.1 1
expect_error blank_sh_exec_is_a_usage_error 2 "^sockit listen: --sh-exec '  ': no command to run\$" \
    "$sockit" listen -c '  ' 0
expect_error exec_and_sh_exec_exclude_each_other 2 \
    "^sockit connect: --exec and --sh-exec exclude each other\$" \
    "$sockit" connect -e cat -c cat 127.0.0.1 1
expect_error exec_given_twice 2 "^sockit listen: --exec given twice" \
    "$sockit" listen -e cat --exec cat 0
expect_error exec_and_broker 2 "^sockit listen: --exec and --broker exclude each other" \
    "$sockit" listen --broker -e cat 0
expect_error sh_exec_and_chat 2 "^sockit listen: --sh-exec and --chat exclude each other" \
    "$sockit" listen -c cat --chat 0
expect_error exec_and_udp 2 "^sockit connect: --exec: .*-u \\(datagrams\\) is not supported" \
    "$sockit" connect -u -e cat 127.0.0.1 1
expect_error exec_and_udp_listen 2 "^sockit listen: --sh-exec: .*-u \\(datagrams\\) is not supported" \
    "$sockit" listen -u -k -c cat 0
expect_error exec_and_hexdump 2 "^sockit listen: --exec: .*-x would see none" \
    "$sockit" listen -x -e cat 0
expect_error exec_and_scan 2 "^sockit connect: --exec: -z connects and closes at once" \
    "$sockit" connect -z -e cat 127.0.0.1 1
expect_error exec_and_quit_after 2 "^sockit connect: --exec: -i, -q and --no-shutdown" \
    "$sockit" connect -q 1 -e cat 127.0.0.1 1
expect_error exec_and_no_shutdown 2 "^sockit listen: --sh-exec: -i, -q and --no-shutdown" \
    "$sockit" listen --no-shutdown -c cat 0
expect_error exec_without_value 2 "^sockit connect: option '--exec' needs a value\$" \
    "$sockit" connect 127.0.0.1 1 --exec

# ---- -k: a command per client ------------------------------------------------------------------
name=k_gives_each_concurrent_client_its_own_command
if start_listen $name -k --sh-exec 'echo $$; cat'; then
    client "$listen_port" lines 3 >"$work/$name.pids"
    distinct=$(grep -cE '^[0-9]+$' "$work/$name.pids")
    unique=$(grep -E '^[0-9]+$' "$work/$name.pids" | sort -u | wc -l)
    running=$(grep -c "^running 'echo \$\$; cat' (pid " "$work/$name.err")
    # Every client closed: each cat, then each sh ends; the reaped leave no zombie.
    reaped=0
    for _ in $(seq 100); do
        [ "$(grep -c ' exited with status 0$' "$work/$name.err")" -eq 3 ] &&
            [ -z "$(children "$sockit_pid")" ] && reaped=1 && break
        sleep 0.1
    done
    left=$(children "$sockit_pid")
    kill -TERM "$sockit_pid" 2>/dev/null
    wait_exit "$listen_pid" 10
    if [ "$distinct" -ne 3 ] || [ "$unique" -ne 3 ]; then
        fail $name "want 3 distinct pids, got [$(tr '\n' ' ' <"$work/$name.pids")]"
    elif [ "$running" -ne 3 ]; then
        fail $name "-v said $running starts, want 3"
    elif [ "$reaped" -ne 1 ]; then
        fail $name "children left after every client ended (zombies?): [$left]"
    elif [ "$exit_rc" -ne 0 ]; then
        fail $name "exit code $exit_rc after SIGTERM, want 0"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=no_defunct_children_after_k_commands_end
if start_listen $name -k --sh-exec 'exit 5'; then
    for _ in 1 2 3 4; do client "$listen_port" send '' >/dev/null; done
    # The four have ended (each closed its client); give sockit time to reap.
    sleep 1
    zombies=0
    for c in $(children "$sockit_pid"); do
        [ "$(awk '{print $3}' "/proc/$c/stat" 2>/dev/null)" = Z ] && zombies=$((zombies + 1))
    done
    ended=$(grep -c ' exited with status 5$' "$work/$name.err")
    kill -TERM "$sockit_pid" 2>/dev/null
    wait_exit "$listen_pid" 10
    if [ "$zombies" -ne 0 ] || [ -n "$(children "$sockit_pid" 2>/dev/null)" ]; then
        fail $name "$zombies <defunct> children of sockit"
    elif [ "$ended" -ne 4 ]; then
        fail $name "-v said $ended ends with status 5, want 4"
    elif [ "$exit_rc" -ne 0 ]; then
        fail $name "exit code $exit_rc, want 0"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=commands_see_no_descriptor_of_sockit
if start_listen $name -k --sh-exec 'ls /proc/self/fd; echo end; cat'; then
    client "$listen_port" fds 2 >"$work/$name.listing"
    kill -TERM "$sockit_pid" 2>/dev/null
    wait_exit "$listen_pid" 10
    # ls's own directory is 3; the listener, the loop's descriptors and the first
    # client's socket must not be there.
    if [ "$(cat "$work/$name.listing")" != "0 1 2 3
0 1 2 3" ]; then
        fail $name "the commands saw [$(tr '\n' '|' <"$work/$name.listing")], want 0 1 2 3 twice"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=m_holds_the_next_client_until_a_command_ends
if start_listen $name -k -m 1 --sh-exec 'echo $$; cat'; then
    client "$listen_port" slot >"$work/$name.client"
    kill -TERM "$sockit_pid" 2>/dev/null
    wait_exit "$listen_pid" 10
    if ! grep -qx waited "$work/$name.client" || ! grep -qE '^b [0-9]+$' "$work/$name.client"; then
        fail $name "want B held while A runs, then served: [$(tr '\n' '|' <"$work/$name.client")]"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=deny_keeps_the_command_from_starting
if start_listen $name -k --deny 127.0.0.1 --exec cat; then
    got=$(client "$listen_port" send 'x' 2>&1)
    kill -TERM "$sockit_pid" 2>/dev/null
    wait_exit "$listen_pid" 10
    if grep -q '^running ' "$work/$name.err"; then
        fail $name "a command started for a denied client"
    elif ! grep -qE '^refused 127\.0\.0\.1:[0-9]+: matches --deny' "$work/$name.err"; then
        fail $name "no refused line (client said [$got])"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=k_w_without_a_client_exits_1
t0=$(date +%s)
if start_listen $name -k -w 1 --exec cat; then
    wait_exit "$listen_pid" 10
    if [ "$exit_rc" -ne 1 ] || ! grep -q 'no client within 1 s (-w)' "$work/$name.err"; then
        fail $name "exit code $exit_rc, want 1 and the -w message"
    elif [ $(($(date +%s) - t0)) -gt 8 ]; then
        fail $name "-w 1 took more than 8 s"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

# ---- stopping ----------------------------------------------------------------------------------
name=sigterm_stops_listen_k_exec_within_1s_and_its_commands_go
if start_listen $name -k --sh-exec 'echo $$; sleep 30 | sleep 30'; then
    : >"$work/$name.client"
    spawn 30 python3 -u "$work/client.py" "$listen_port" hold 2 </dev/null >"$work/$name.client" 2>&1
    client_pid=$spawn_pid
    for _ in $(seq 100); do
        [ "$(grep -cE '^[0-9]+$' "$work/$name.client")" -eq 2 ] && break
        sleep 0.1
    done
    groups=$(grep -E '^[0-9]+$' "$work/$name.client" | tr '\n' ' ')
    t0=$(date +%s%N)
    kill -TERM "$sockit_pid"
    wait_exit "$listen_pid" 5
    ms=$((($(date +%s%N) - t0) / 1000000))
    wait_exit "$client_pid" 10
    live=0
    for g in $groups; do live=$((live + $(live_in_group "$g"))); done
    if [ "$(wc -w <<<"$groups")" -ne 2 ]; then
        fail $name "the two commands did not start: [$groups]"
    elif [ "$exit_rc" -ne 0 ] || ! grep -qx 'eof 2' "$work/$name.client"; then
        fail $name "want both clients to see the end (client exit $exit_rc)"
    elif [ "$ms" -ge 1000 ]; then
        fail $name "sockit took $ms ms to stop, want under 1000"
    elif [ "$live" -ne 0 ]; then
        fail $name "$live processes of the commands' groups [$groups] are still alive"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=sigterm_ends_a_single_command_with_its_status
if start_listen $name --sh-exec 'echo $$; sleep 30'; then
    : >"$work/$name.client"
    spawn 30 python3 -u "$work/client.py" "$listen_port" hold 1 </dev/null >"$work/$name.client" 2>&1
    wait_match "$work/$name.client" '^[0-9]+$'
    kill -TERM "$sockit_pid"
    wait_exit "$listen_pid" 5
    if [ "$exit_rc" -ne 143 ]; then
        fail $name "exit code $exit_rc, want 143 (the command's SIGTERM)"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

# ---- --json -------------------------------------------------------------------------------------
name=json_tells_exec_and_exec_exit
: >"$work/$name.err"
spawn 20 "$sockit" listen --json --sh-exec 'cat; exit 4' 127.0.0.1 0 </dev/null \
    >"$work/$name.out" 2>"$work/$name.err"
json_pid=$spawn_pid
if wait_match "$work/$name.err" '"event":"bound"'; then
    jport=$(grep -oE '"port":[0-9]+' <<<"$matched" | grep -oE '[0-9]+')
    got=$(client "$jport" send 'json\n')
    wait_exit "$json_pid" 10
    if [ "$exit_rc" -ne 4 ] || [ "$got" != json ]; then
        fail $name "exit $exit_rc and [$got], want 4 and [json]"
    elif ! why=$(json_check "$work/$name.err" 'bound connected exec exec_exit exit' \
        'exec.command=cat; exit 4' 'exec.pid=>0' 'exec_exit.status=4' 'exit.reason=done'); then
        fail $name "$why"
    else
        pass $name
    fi
else
    fail $name "no bound event"
fi

# ---- TLS --------------------------------------------------------------------------------------
mkdir "$work/tls"
if "$sockit" tls-cert --out "$work/tls" 2>&1 | grep -q 'built without OpenSSL'; then
    echo "SKIP tls: this sockit was built without TLS (OpenSSL)"
    finish
    exit
fi
cert=$work/tls/cert.pem
serve_tls=(--tls --cert "$cert" --key "$work/tls/key.pem")

name=listen_tls_exec_relays_through_a_socketpair
if start_listen $name "${serve_tls[@]}" --sh-exec 'tr a-z A-Z'; then
    got=$(printf 'tls hello\n' | timeout 10 "$sockit" connect --ca "$cert" localhost "$listen_port" \
        2>"$work/$name.client.err")
    rc=$?
    wait_exit "$listen_pid" 10
    if [ "$got" != "TLS HELLO" ] || [ "$rc" -ne 0 ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "client got [$got] (exit $rc), listen exit $exit_rc; want [TLS HELLO], 0, 0"
    elif ! grep -q '^tls: TLSv1' "$work/$name.err"; then
        fail $name "-v did not say the handshake"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=listen_tls_exec_half_close_300kB
head -c 300000 /dev/zero >"$work/zeros"
if start_listen $name "${serve_tls[@]}" --sh-exec 'wc -c'; then
    got=$(timeout 20 "$sockit" connect --ca "$cert" localhost "$listen_port" <"$work/zeros" \
        2>"$work/$name.client.err")
    rc=$?
    wait_exit "$listen_pid" 10
    if [ "$(echo "$got" | tr -d ' ')" != 300000 ] || [ "$rc" -ne 0 ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "wc -c said [$got] (client exit $rc, listen exit $exit_rc), want 300000, 0, 0"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=listen_k_tls_exec_gives_each_client_its_own_command
if start_listen $name -k "${serve_tls[@]}" --sh-exec 'echo $$; cat'; then
    for i in 1 2 3; do
        (
            printf 'client %s\n' "$i"
            sleep 1
        ) | timeout 10 "$sockit" connect --ca "$cert" localhost "$listen_port" \
            >"$work/$name.client$i" 2>&1 &
    done
    wait_size "$work/$name.client3" 1 10
    for i in 1 2 3; do wait_match "$work/$name.client$i" "^client $i\$" 10; done
    sleep 1.5
    pids=$(for i in 1 2 3; do head -n 1 "$work/$name.client$i"; done | sort -u | grep -cE '^[0-9]+$')
    echoed=0
    for i in 1 2 3; do grep -qx "client $i" "$work/$name.client$i" && echoed=$((echoed + 1)); done
    kill -TERM "$sockit_pid" 2>/dev/null
    wait_exit "$listen_pid" 10
    if [ "$pids" -ne 3 ] || [ "$echoed" -ne 3 ]; then
        fail $name "want 3 distinct pids and 3 echoes, got $pids and $echoed"
    elif [ "$exit_rc" -ne 0 ]; then
        fail $name "listen exit code $exit_rc, want 0"
    else
        pass $name
    fi
else
    fail $name "listen did not start"
fi

name=connect_tls_exec_talks_both_ways
printf 'ping\n' >"$work/ping.txt"
: >"$work/$name.err"
spawn 30 "$sockit" listen -v "${serve_tls[@]}" 127.0.0.1 0 <"$work/ping.txt" >"$work/$name.out" \
    2>"$work/$name.err"
tls_listen=$spawn_pid
if wait_match "$work/$name.err" '^listening on '; then
    tport=$(port_of "$matched")
    timeout 10 "$sockit" connect --ca "$cert" --sh-exec 'read l; echo "got $l"; exit 6' localhost \
        "$tport" </dev/null >"$work/$name.client.out" 2>"$work/$name.client.err"
    rc=$?
    wait_exit "$tls_listen" 10
    if [ "$rc" -ne 6 ]; then
        fail $name "connect exit code $rc, want 6 (the command's)"
    elif [ "$(cat "$work/$name.out")" != "got ping" ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "listen printed [$(cat "$work/$name.out")] (exit $exit_rc), want [got ping] and 0"
    else
        pass $name
    fi
else
    fail $name "listen --tls did not start"
fi

finish
