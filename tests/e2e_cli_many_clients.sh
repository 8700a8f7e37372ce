#!/usr/bin/env bash
# Issue 10, item 6: `sockit listen -k` with its default options serves a new client
# within 1 s while 500 others hold their connections open and drip one byte every
# 2 s (the old default of 64 clients left the new one waiting in the backlog
# forever). Served means both ways: its bytes reach listen's stdout, and a line
# written to listen's stdin reaches it. One python3 process drives all 501 sockets,
# non-blocking, and stops by itself; 1 s is far above what the loop needs (a few
# milliseconds), so the bound is about being served at all, not speed. And when
# descriptors run out, the clients that cannot be served are closed at once,
# without spinning.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

cat >"$work/drip.py" <<'PY'
import os, selectors, socket, sys, time
port, out_path, fifo_path, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
end = time.monotonic() + 25
drippers = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(False)
    drippers.append(s)
print("connected", n, flush=True)
# Each dripper sends one byte every 2 s, spread evenly over the 2 s.
start = time.monotonic()
due = [start + 2.0 * i / n for i in range(n)]
def drip(now):
    for i, s in enumerate(drippers):
        if due[i] <= now:
            try:
                s.send(b".")
            except BlockingIOError:
                pass
            due[i] += 2.0
def wait_for(cond, limit):
    """Drips while waiting; returns the seconds cond took, or None past limit."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit and time.monotonic() < end:
        drip(time.monotonic())
        if cond():
            return time.monotonic() - t0
        time.sleep(0.002)
    return None
# One round of drips first, so every dripper has been heard from.
wait_for(lambda: time.monotonic() - start > 2.5, 3)
def served():
    with open(out_path, "rb") as f:
        return f.read().count(b".") >= n
print("drips", "all seen" if wait_for(served, 5) is not None else "not all seen", flush=True)
new = socket.create_connection(("127.0.0.1", port), timeout=5)
new.setblocking(False)
new.sendall(b"hello from the new client\n")
def relayed():
    with open(out_path, "rb") as f:
        return b"hello from the new client\n" in f.read()
took_in = wait_for(relayed, 5)
with open(fifo_path, "wb", buffering=0) as fifo:
    fifo.write(b"hello to everyone\n")
got = b""
def received():
    global got
    try:
        got += new.recv(4096)
    except BlockingIOError:
        pass
    return b"hello to everyone\n" in got
took_out = wait_for(received, 5)
for name, took in (("relayed", took_in), ("broadcast", took_out)):
    print(name, "never" if took is None else f"{took:.3f}", flush=True)
PY

name=listen_k_defaults_serve_a_new_client_among_500_dripping_ones
mkfifo "$work/$name.fifo"
exec 3<>"$work/$name.fifo"
spawn 60 "$sockit" listen -k --json 127.0.0.1 0 <"$work/$name.fifo" >"$work/$name.out" \
    2>"$work/$name.err"
listen_pid=$spawn_pid
if wait_match "$work/$name.err" '"event":"bound"' && [[ $matched =~ \"port\":([0-9]+) ]]; then
    timeout 40 python3 "$work/drip.py" "${BASH_REMATCH[1]}" "$work/$name.out" "$work/$name.fifo" 500 \
        >"$work/$name.client" 2>&1
    relayed=$(sed -n 's/^relayed //p' "$work/$name.client")
    broadcast=$(sed -n 's/^broadcast //p' "$work/$name.client")
    if ! grep -qx 'drips all seen' "$work/$name.client"; then
        fail $name "listen did not relay a byte from each of the 500 drippers"
    elif ! [[ $relayed =~ ^0\.[0-9]+$ ]]; then
        fail $name "the new client's line reached stdout after [$relayed] s, want under 1"
    elif ! [[ $broadcast =~ ^0\.[0-9]+$ ]]; then
        fail $name "stdin reached the new client after [$broadcast] s, want under 1"
    elif [ "$(grep -c '"event":"connected"' "$work/$name.err")" -ne 501 ]; then
        fail $name "want 501 connected events"
    else
        pass $name
        echo "    (relayed in $relayed s, broadcast in $broadcast s)"
    fi
else
    fail $name "no bound event"
fi
exec 3>&-
kill_tree "$listen_pid"

# Out of descriptors (a hard limit of 32, -m above it): the clients that cannot be
# served are closed at once (told, not left in the backlog), said once, without
# spinning; the others are served.
cat >"$work/emfile.py" <<'PY'
import socket, sys, time
port, pid, out_path, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / 100  # utime + stime, in clock ticks of 1/100 s
clients = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"client %d\n" % i)
    except ConnectionError:
        pass  # closed already: told
    clients.append(s)
time.sleep(0.5)
c0, t0 = cpu(), time.monotonic()
time.sleep(1.5)
print("cpu %.2f" % ((cpu() - c0) / (time.monotonic() - t0)), flush=True)
# Every client is told: its line reached stdout (served), or it reads the end of
# the stream (closed, since no descriptor was left for it), none left waiting.
out = open(out_path, "rb").read()
served = closed = 0
for i, s in enumerate(clients):
    if b"client %d\n" % i in out:
        served += 1
        continue
    s.settimeout(1.0)
    try:
        if s.recv(64) == b"":
            closed += 1
    except ConnectionError:
        closed += 1  # closed over its unread line: a reset
    except socket.timeout:
        pass
print("served %d closed %d" % (served, closed), flush=True)
PY
name=listen_k_out_of_descriptors_closes_the_clients_it_cannot_serve
mkfifo "$work/$name.fifo"
exec 3<>"$work/$name.fifo"
(
    ulimit -n 32
    exec timeout 30 "$sockit" listen -k -m 100 -v 127.0.0.1 0 <"$work/$name.fifo" \
        >"$work/$name.out" 2>"$work/$name.err" 3>&-
) &
emfile_pid=$!
pids+=("$emfile_pid")
if wait_match "$work/$name.err" '^listening on ' && listen_port=$(port_of "$matched"); then
    child=$(pgrep -P "$emfile_pid" | head -n 1)
    timeout 20 python3 "$work/emfile.py" "$listen_port" "$child" "$work/$name.out" 40 \
        >"$work/$name.client" 2>&1
    cpu=$(sed -n 's/^cpu //p' "$work/$name.client")
    if [ "$(grep -c 'Too many open files' "$work/$name.err")" -ne 1 ]; then
        fail $name "want the shortage said once on stderr"
    elif ! [[ $cpu =~ ^0\.[0-1][0-9]$ ]]; then
        fail $name "listen used [$cpu] of a CPU while short of descriptors, want under 0.2"
    elif ! [[ $(cat "$work/$name.client") =~ served\ ([0-9]+)\ closed\ ([0-9]+) ]] ||
        [ $((BASH_REMATCH[1] + BASH_REMATCH[2])) -ne 40 ] || [ "${BASH_REMATCH[2]}" -eq 0 ]; then
        fail $name "want every one of 40 clients served or closed, some closed"
    else
        pass $name
        echo "    (CPU $cpu while short of descriptors)"
    fi
else
    fail $name "listen did not say 'listening on'"
fi
kill_tree "$emfile_pid"
exec 3>&-

finish
