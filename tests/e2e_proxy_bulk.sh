#!/usr/bin/env bash
# 1 GB through sockit proxy into a sink, with no toxic and again with slicer
# (average 1,500 B, variation 500, no delay) + latency 1 ms: the sink's sha256
# equals the source's, and the proxy's memory stays bounded (its peak RSS, read
# from /proc, under 64 MiB, also with a slow sink), on the default backend
# (io_uring where it runs) and on epoll. Under a sanitizer (SOCKIT_SANITIZED=1,
# set by CTest) the peak is mostly shadow memory and quarantine, so it is
# reported, not bounded. SOCKIT_PROXY_BULK_BYTES changes the size.
source "$(dirname "$0")/e2e_cli_common.bash"

bytes=${SOCKIT_PROXY_BULK_BYTES:-1000000000}
bounded=yes
[ "${SOCKIT_SANITIZED:-0}" = 1 ] && bounded=no

cat >"$work/peers.py" <<'PY'
import hashlib, socket, sys, time
def sink(slow):
    # Accepts one connection, hashes everything until EOF, prints the hash.
    ls = socket.create_server(("127.0.0.1", 0))
    print("port", ls.getsockname()[1], flush=True)
    c, _ = ls.accept()
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
        if slow and n < 32 << 20:
            time.sleep(0.002)
    print("sink", n, h.hexdigest(), flush=True)
def source(port, total):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    block = bytes((i * 7 + 3) % 251 for i in range(1 << 20))
    h, sent = hashlib.sha256(), 0
    while sent < total:
        b = block[: min(len(block), total - sent)]
        s.sendall(b)
        h.update(b)
        sent += len(b)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(120)
    s.recv(1)
    print("source", sent, h.hexdigest(), flush=True)
if sys.argv[1] == "sink":
    sink(sys.argv[2] == "slow")
else:
    source(int(sys.argv[2]), int(sys.argv[3]))
PY

# through NAME SINK_MODE BOUND PROXY_OPTIONS...: 1 GB through a proxy; passes when
# the hashes agree and, with BOUND yes, the proxy's peak RSS stayed under 64 MiB.
through() {
    local name=$1 mode=$2 bound=$3
    shift 3
    spawn 300 python3 -u "$work/peers.py" sink "$mode" >"$work/$name.sink" 2>&1
    local sink_pid=$spawn_pid
    wait_match "$work/$name.sink" '^port [0-9]+$' 10 || { fail "$name" "no sink"; return; }
    local sink_port=${matched#port }
    spawn 300 "$sockit" proxy "$@" 127.0.0.1:0 "127.0.0.1:$sink_port" >"$work/$name.proxy" 2>&1
    local proxy_pid=$spawn_pid
    wait_match "$work/$name.proxy" 'listening on' 10 || { fail "$name" "no proxy"; return; }
    local port
    port=$(port_of "$(sed -n 's/.*listening on \([^,]*\),.*/\1/p' "$work/$name.proxy")")
    timeout 280 python3 -u "$work/peers.py" source "$port" "$bytes" >"$work/$name.source" 2>&1
    wait_exit "$sink_pid" 60
    local pid
    pid=$(pgrep -P "$proxy_pid" sockit || echo "$proxy_pid")
    local peak
    peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    kill -TERM "$pid" 2>/dev/null
    wait_exit "$proxy_pid" 5
    local src snk
    src=$(sed -n 's/^source //p' "$work/$name.source")
    snk=$(sed -n 's/^sink //p' "$work/$name.sink")
    if [ -z "$src" ] || [ "$src" != "$snk" ]; then
        fail "$name" "source [$src] sink [$snk]"
    elif [ "$bound" = yes ] && { [ -z "$peak" ] || [ "$peak" -gt 65536 ]; }; then
        fail "$name" "proxy peak RSS ${peak} KiB, over 64 MiB"
    else
        pass "$name ($bytes bytes, sha256 equal, proxy peak RSS ${peak:-?} KiB)"
    fi
}

through bulk_plain fast $bounded
through bulk_slicer_latency fast $bounded --slicer 1500/500 --latency 1ms --direction both
through bulk_slow_sink_bounded slow $bounded --latency 1ms
export SOCKIT_LOOP_BACKEND=epoll
through bulk_epoll_bounded fast $bounded
through bulk_epoll_slow_sink_bounded slow $bounded --latency 1ms
finish
