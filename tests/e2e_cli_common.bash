# Shared by the tests/e2e_cli_*.sh scripts (sourced, never run: its name does not
# match the e2e_*.sh glob that CTest registers). It finds the sockit binary, makes a
# scratch directory, and gives bounded background processes, bounded waits, python
# peers with odd behaviours and PASS/FAIL bookkeeping. Everything started through
# spawn dies with the script.
# The variables set here are read by the scripts that source this file.
# shellcheck shell=bash disable=SC2034
set -uo pipefail

build=${SOCKIT_BUILD_DIR:?SOCKIT_BUILD_DIR must name the build directory}
source_dir=${SOCKIT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
sockit=$build/sockit
python_examples=$source_dir/examples/python
suite=$(basename "$0" .sh)
if [ ! -x "$sockit" ]; then
    echo "$suite: $sockit is missing: build the project first" >&2
    exit 1
fi
work=$(mktemp -d)
pids=()
cleanup() {
    exec 2>/dev/null # bash's "Killed" job notices are not test output
    for pid in "${pids[@]}"; do kill_tree "$pid"; done
    wait
    rm -rf "$work"
}
# kill_tree PID: kills a command started by spawn, and what it runs. timeout makes
# itself a process group leader, so the group goes at once; a SIGKILL to timeout
# alone would leave its child running, since only the signals it catches are passed
# on. (Until timeout has made its group, PID alone is all there is.)
kill_tree() {
    kill -KILL -- "-$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null
}
trap cleanup EXIT

passed=0
failed=0
pass() {
    echo "PASS $1"
    passed=$((passed + 1))
}
# fail NAME WHY: prints WHY and every non-empty $work/NAME.* file, indented.
fail() {
    echo "FAIL $1: $2"
    local f
    for f in "$work/$1".*; do
        [ -f "$f" ] && [ -s "$f" ] && head -c 2000 "$f" | sed "s|^|    ${f##*/}: |"
    done
    failed=$((failed + 1))
}
finish() {
    echo "$suite: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

# spawn SECS CMD...: runs CMD in the background, killed after SECS at the latest; its
# stdin, stdout and stderr are whatever the caller redirects. Sets spawn_pid.
spawn() {
    local secs=$1
    shift
    # "<&0": without a redirection of its own, bash gives a background command
    # /dev/null as stdin, whatever the function call's redirection said. Fds 3 and 4
    # are the scripts' FIFO writers: a child holding one would never see EOF.
    timeout "$secs" "$@" <&0 3>&- 4>&- &
    spawn_pid=$!
    pids+=("$spawn_pid")
}

# wait_exit PID SECS: waits up to SECS for PID to exit and sets exit_rc to its exit
# status; a process still running then is killed and exit_rc is 124.
wait_exit() {
    local pid=$1 tenths=$(($2 * 10)) i
    for ((i = 0; i < tenths; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill_tree "$pid"
        wait "$pid" 2>/dev/null
        exit_rc=124
        return
    fi
    wait "$pid"
    exit_rc=$?
}

# wait_match FILE REGEX [SECS]: waits (default 10 s) until a line of FILE matches the
# extended regex REGEX; sets matched to that line. Returns 1 on timeout.
wait_match() {
    local file=$1 regex=$2 tenths=$((${3:-10} * 10)) i
    matched=""
    for ((i = 0; i < tenths; i++)); do
        if [ -f "$file" ] && matched=$(grep -E -m 1 -- "$regex" "$file"); then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# wait_size FILE BYTES [SECS]: waits until FILE holds at least BYTES bytes.
wait_size() {
    local file=$1 want=$2 tenths=$((${3:-10} * 10)) i
    for ((i = 0; i < tenths; i++)); do
        [ -f "$file" ] && [ "$(stat -c %s "$file")" -ge "$want" ] && return 0
        sleep 0.1
    done
    return 1
}

# port_of LINE: the port at the end of "...HOST:PORT" (HOST may be [v6]).
port_of() {
    [[ $1 =~ :([0-9]+)$ ]] && echo "${BASH_REMATCH[1]}"
}

# expect_error NAME WANT_RC PATTERN CMD...: CMD exits WANT_RC within 10 s, prints
# nothing on stdout, and its first stderr line matches the extended regex PATTERN.
expect_error() {
    local name=$1 want_rc=$2 pattern=$3
    shift 3
    timeout 10 "$@" </dev/null >"$work/$name.out" 2>"$work/$name.err"
    local rc=$? first
    first=$(head -n 1 "$work/$name.err")
    if [ "$rc" -ne "$want_rc" ]; then
        fail "$name" "exit code $rc, want $want_rc"
    elif [ -s "$work/$name.out" ]; then
        fail "$name" "want nothing on stdout"
    elif ! [[ $first =~ $pattern ]]; then
        fail "$name" "stderr [$first] does not match [$pattern]"
    else
        pass "$name"
    fi
}

# json_check FILE 'EVENT...' [EVENT.KEY=VALUE...]: every line of FILE is one JSON
# object, their "event" names are exactly EVENT... in order, and the first event of
# each named kind has KEY equal to VALUE (compared as text; VALUE '*' means present,
# '>0' a positive number). Prints what differs and returns 1.
json_check() {
    python3 - "$@" <<'EOF'
import json, sys
path, want, checks = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
events = []
for n, line in enumerate(open(path, encoding="utf-8"), 1):
    try:
        obj = json.loads(line)
    except ValueError as e:
        sys.exit(f"line {n} is not JSON ({e}): {line!r}")
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        sys.exit(f"line {n} has no \"event\" name: {line!r}")
    events.append(obj)
names = [e["event"] for e in events]
if names != want:
    sys.exit(f"events {names}, want {want}")
for check in checks:
    target, value = check.split("=", 1)
    name, key = target.split(".", 1)
    event = next(e for e in events if e["event"] == name)
    got = event.get(key)
    if value == "*":
        ok = key in event
    elif value == ">0":
        ok = isinstance(got, int) and not isinstance(got, bool) and got > 0
    else:
        ok = got is not None and str(got) == value
    if not ok:
        sys.exit(f"{name}.{key} is {got!r}, want {value!r}")
EOF
}

# Python peers with behaviours no real client or server has on purpose. Each prints
# "port N" (the port it got from bind to port 0) first, then what it saw, and gives
# up after its own deadline, so nothing outlives the test.
cat >"$work/peers.py" <<'PY'
import socket, sys, time

mode, family = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "4"
host, fam = ("::1", socket.AF_INET6) if family == "6" else ("127.0.0.1", socket.AF_INET)
deadline = time.monotonic() + 30

def say(*words):
    print(*words, flush=True)

def tcp_listener(backlog):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen(backlog)
    return s

if mode == "hold-tcp":
    # Listens and never accepts: connections complete in the backlog, then silence.
    s = tcp_listener(8)
    say("port", s.getsockname()[1])
    time.sleep(30)
elif mode == "hold-udp":
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host, 0))
    say("port", s.getsockname()[1])
    time.sleep(30)
elif mode == "blackhole":
    # listen(0) queues one connection; with that one taken, Linux drops further SYNs,
    # so a connect here neither succeeds nor fails until its own timeout.
    s = tcp_listener(0)
    filler = socket.create_connection((host, s.getsockname()[1]), timeout=5)
    say("port", s.getsockname()[1])
    time.sleep(30)
elif mode == "eof-answer":
    # Reads to EOF, then answers with what it got; says when EOF came.
    s = tcp_listener(8)
    say("port", s.getsockname()[1])
    s.settimeout(20)
    c, _ = s.accept()
    c.settimeout(float(sys.argv[3]) if len(sys.argv) > 3 else 10)
    start, data, eof = time.monotonic(), b"", False
    try:
        while True:
            chunk = c.recv(65536)
            if not chunk:
                eof = True
                break
            data += chunk
    except socket.timeout:
        pass
    took = time.monotonic() - start
    say("eof" if eof else "no-eof", f"{took:.2f}", len(data), data.decode(errors="replace"))
    try:
        c.sendall(b"got %d bytes: %s\n" % (len(data), data))
    except OSError as e:
        say("send failed:", e)
    c.close()
elif mode == "udp-record":
    # Prints each datagram as a Python bytes literal and answers "ack N".
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host, 0))
    say("port", s.getsockname()[1])
    s.settimeout(20)
    n = 0
    while True:
        try:
            data, peer = s.recvfrom(65536)
        except socket.timeout:
            break
        n += 1
        say("datagram", repr(data))
        s.sendto(b"ack %d\n" % n, peer)
else:
    sys.exit("unknown mode " + mode)
PY

# peer NAME MODE [ARGS]: starts a python peer (stdout in NAME.peer) and sets peer_pid
# and peer_port. Returns 1 if it does not print its port within 10 s.
peer() {
    local name=$1
    shift
    spawn 40 python3 -u "$work/peers.py" "$@" </dev/null >"$work/$name.peer" 2>&1
    peer_pid=$spawn_pid
    peer_port=""
    wait_match "$work/$name.peer" '^port [0-9]+$' || return 1
    peer_port=${matched#port }
}

# bound_port PID tcp|udp [SECS]: waits until PID or one of its children (spawn runs
# CMD under timeout) has a listening TCP or bound UDP socket, and sets found_port to
# its port. For programs that bind port 0 and do not say which port they got (ncat).
bound_port() {
    found_port=$(
        python3 - "$@" <<'PY'
import os, sys, time
pid, proto = sys.argv[1], sys.argv[2]
secs = float(sys.argv[3]) if len(sys.argv) > 3 else 10
state = "0A" if proto == "tcp" else "07"  # LISTEN, or CLOSE for unconnected UDP
def inodes():
    found, procs = set(), [pid]
    try:
        procs += open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        pass
    for p in procs:
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                link = os.readlink(f"/proc/{p}/fd/{fd}")
                if link.startswith("socket:["):
                    found.add(link[8:-1])
        except OSError:
            pass
    return found
end = time.monotonic() + secs
while time.monotonic() < end:
    mine = inodes()
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        for line in open(table).readlines()[1:]:
            f = line.split()
            if f[3] == state and f[9] in mine:
                print(int(f[1].rsplit(":", 1)[1], 16))
                sys.exit(0)
    time.sleep(0.1)
sys.exit(1)
PY
    )
}
