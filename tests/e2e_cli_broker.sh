#!/usr/bin/env bash
# Issue 10, item 7: `sockit listen --broker` passes each client's bytes to every
# other client, none lost and none interleaved mid-chunk, while a client that never
# reads is disconnected once its bounded output queue fills, with a message on
# stderr (or a --json closed event, reason queue_full), and the others lose nothing.
# `--chat` prefixes each line with its sender and holds a partial line until its
# end. One python3 process drives every client and stops by itself.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

# start_hub NAME ARGS...: listen ARGS on 127.0.0.1, port 0; sets hub_pid, hub_port.
start_hub() {
    local name=$1
    shift
    spawn 60 "$sockit" listen "$@" 127.0.0.1 0 </dev/null >"$work/$name.out" 2>"$work/$name.err"
    hub_pid=$spawn_pid
    hub_port=""
    if wait_match "$work/$name.err" '^listening on |"event":"bound"' &&
        [[ $matched =~ (:|\"port\":)([0-9]+)($|,) ]]; then
        hub_port=${BASH_REMATCH[2]}
    fi
    [ -n "$hub_port" ]
}

# Three live clients take turns sending 32 KiB chunks (each waits until the other
# two have it all: a reader that keeps up) until a fourth, with a tiny receive
# buffer, that never reads, has been dropped (at most 400 rounds, 12.5 MiB), and 8
# rounds more. Prints "slow PORT" and, per live client, "ok" or what differs.
cat >"$work/broker.py" <<'PY'
import os, selectors, socket, sys, time
port, err_path, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
end = time.monotonic() + 30
slow = socket.socket()
slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
slow.connect(("127.0.0.1", port))
print("slow", slow.getsockname()[1], flush=True)
live = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
def accepted():
    with open(err_path) as f:
        text = f.read()
    return text.count("connection from") + text.count('"event":"connected"') >= 4
while not accepted() and time.monotonic() < end:
    time.sleep(0.01)
sel = selectors.DefaultSelector()
got = [bytearray() for _ in live]
want = [bytearray() for _ in live]
for i, s in enumerate(live):
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, i)
def pump(done):
    while not done() and time.monotonic() < end:
        for key, _ in sel.select(0.1):
            try:
                data = key.fileobj.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fileobj)
                continue
            got[key.data] += data
def dropped():
    with open(err_path) as f:
        text = f.read()
    return "queue is full" in text or "queue_full" in text
after = 0
for r in range(rounds):
    # Until the slow one is dropped (how much the kernel buffers for it varies),
    # then 8 rounds more: the others must not notice.
    if dropped():
        after += 1
        if after > 8:
            break
    sender = r % 3
    chunk = (b"%d:%05d:" % (sender, r)).ljust(32768, b"abcdefghijklmnopqrstuvwxyz"[r % 26:r % 26 + 1])
    live[sender].setblocking(True)
    live[sender].sendall(chunk)
    live[sender].setblocking(False)
    for i in range(3):
        if i != sender:
            want[i] += chunk
    pump(lambda: all(len(got[i]) >= len(want[i]) for i in range(3)))
for i in range(3):
    print(f"client {i}", "ok" if got[i] == want[i] else f"got {len(got[i])} bytes, want {len(want[i])}", flush=True)
PY

# hub_slow NAME MODE: MODE -v checks the stderr line, --json the closed event.
hub_slow() {
    local name=$1 mode=$2 slow_port
    if ! start_hub "$name" --broker "$mode"; then
        fail "$name" "listen --broker did not say where it listens"
        return
    fi
    timeout 40 python3 "$work/broker.py" "$hub_port" "$work/$name.err" 400 >"$work/$name.client" 2>&1
    slow_port=$(sed -n 's/^slow //p' "$work/$name.client")
    if [ "$(grep -c '^client [0-9] ok$' "$work/$name.client")" -ne 3 ]; then
        fail "$name" "the live clients did not get every other client's bytes, in order"
    elif [ "$mode" = -v ] && ! wait_match "$work/$name.err" \
        "^sockit: disconnected 127\\.0\\.0\\.1:$slow_port: its output queue is full" 5; then
        fail "$name" "no 'sockit: disconnected 127.0.0.1:$slow_port: its output queue is full' line"
    elif [ "$mode" = --json ] && ! wait_match "$work/$name.err" \
        "\"event\":\"closed\",\"peer\":\"127\\.0\\.0\\.1:$slow_port\",\"reason\":\"queue_full\"" 5; then
        fail "$name" "no closed event with reason queue_full for the slow client"
    elif ! kill -0 "$hub_pid" 2>/dev/null; then
        fail "$name" "the broker stopped"
    else
        pass "$name"
    fi
    kill -TERM "$(pgrep -P "$hub_pid" | head -n 1)" 2>/dev/null
    wait_exit "$hub_pid" 5
    if [ "$exit_rc" -ne 0 ]; then fail "${name}_exits_0_on_sigterm" "exit code $exit_rc"; fi
}
hub_slow broker_relays_everything_and_drops_a_client_that_does_not_read -v
hub_slow broker_json_reports_the_dropped_client --json

# ---- --chat ------------------------------------------------------------------------
cat >"$work/chat.py" <<'PY'
import socket, sys, time
port, err_path = int(sys.argv[1]), sys.argv[2]
end = time.monotonic() + 20
a, b, c = (socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3))
while open(err_path).read().count("connection from") < 3 and time.monotonic() < end:
    time.sleep(0.01)
name = {s: "127.0.0.1:%d" % s.getsockname()[1] for s in (a, b, c)}
a.sendall(b"hel")
time.sleep(0.3)  # the partial line must wait for its end
a.sendall(b"lo\nsecond line\n")
time.sleep(0.1)
b.sendall(b"hi there\n")
time.sleep(0.1)
c.sendall(b"no newline")
c.shutdown(socket.SHUT_WR)
def read_until(s, want):
    data = b""
    s.settimeout(5)
    try:
        while len(data) < len(want):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data
wants = {
    a: b"<%s> hi there\n<%s> no newline\n" % (name[b].encode(), name[c].encode()),
    b: b"<%s> hello\n<%s> second line\n<%s> no newline\n" % (name[a].encode(), name[a].encode(), name[c].encode()),
    c: b"<%s> hello\n<%s> second line\n<%s> hi there\n" % (name[a].encode(), name[a].encode(), name[b].encode()),
}
for label, s in (("a", a), ("b", b), ("c", c)):
    got = read_until(s, wants[s])
    print(label, "ok" if got == wants[s] else f"got {got!r}, want {wants[s]!r}", flush=True)
PY
name=chat_prefixes_each_line_with_its_sender
if start_hub $name --chat -v; then
    timeout 30 python3 "$work/chat.py" "$hub_port" "$work/$name.err" >"$work/$name.client" 2>&1
    if [ "$(grep -c '^[abc] ok$' "$work/$name.client")" -ne 3 ]; then
        fail $name "not every client got the others' lines, prefixed and whole"
    else
        pass $name
    fi
    kill -TERM "$(pgrep -P "$hub_pid" | head -n 1)" 2>/dev/null
    wait_exit "$hub_pid" 5
else
    fail $name "listen --chat did not say where it listens"
fi

# ---- usage ------------------------------------------------------------------------
expect_error broker_with_u_is_bad_usage 2 '^sockit listen: --broker: a datagram listener' \
    "$sockit" listen --broker -u 127.0.0.1 0
expect_error chat_with_q_is_bad_usage 2 '^sockit listen: --chat: -q and --no-shutdown' \
    "$sockit" listen --chat -q 1 127.0.0.1 0
expect_error connect_broker_is_bad_usage 2 "^sockit connect: unknown option '--broker'" \
    "$sockit" connect --broker 127.0.0.1 9

finish
