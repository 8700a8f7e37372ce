#!/usr/bin/env python3
"""How `sockit listen -k` holds up with many idle peers (issue 10, item 6).

Run by `make bench` (figures in bench/results/netcat.txt and netcat.json), or by hand:

    python3 bench/netcat_bench.py [--build build/plain] [--repeat 3] [--idle 18000]
                                  [--burst 19000] [--json FILE]

Three measurements, each repeated (interleaved) and reported as the median:

  accept   connections per second `listen -k` serves (a client connects, sends a
           byte, shuts its side; it is done when the server closes), 64 at a time,
           with 0 and with IDLE idle peers connected. Goal: >= 50% kept.
  busy     one peer's throughput into `listen -k` (stdout /dev/null) with 0 and
           with IDLE idle peers. Goal: >= 50% kept.
  burst    BURST connections opened at once by two client processes, until the
           server holds them all (its descriptor count), `listen -k` against the raw
           epoll peer (bench/peers/epoll_server.c). Goal: <= 1.5x its time.

Loopback only. Every connection comes from its own 127.0.x.y source address pool,
so no run waits for TIME_WAIT ports of an earlier one. Each step is bounded in
time and count; every process started is killed at the end. RLIMIT_NOFILE's soft
limit is raised to the hard one in this process and in each helper (the servers
inherit it). The listen backlog here is capped at 4096 (somaxconn).
"""
import argparse
import json
import os
import random
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)
_source = [random.randrange(0, 50000)]  # another run within 60 s gets other ports


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def next_source():
    """A fresh 127.0.x.y source address: its own 28k ephemeral ports."""
    _source[0] += 1
    n = _source[0]
    return "127.0.%d.%d" % (1 + n // 250 % 250, 1 + n % 250)


def nb_connect(port, source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((source, 0))
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    return s


# ---- helpers, run as child processes ------------------------------------------------
def helper_idle(port, n, source, inflight=1000):
    """Opens n connections (at most inflight connecting at once), says "ready",
    then holds them until killed."""
    raise_nofile()
    sel = selectors.DefaultSelector()
    held, pending, started = [], 0, 0
    deadline = time.monotonic() + 120
    while len(held) < n and time.monotonic() < deadline:
        while pending < inflight and started < n:
            s = nb_connect(port, source)
            sel.register(s, selectors.EVENT_WRITE)
            pending += 1
            started += 1
        for key, _ in sel.select(1):
            s = key.fileobj
            sel.unregister(s)
            pending -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                held.append(s)
            else:
                s.close()
                started -= 1
    print("ready", len(held), flush=True)
    signal.pause()


def helper_burst(port, n, source, go_file):
    """Waits for go_file, then opens n connections at once and holds them."""
    raise_nofile()
    print("waiting", flush=True)
    while not os.path.exists(go_file):
        time.sleep(0.001)
    socks = [nb_connect(port, source) for _ in range(n)]
    print("sent", len(socks), flush=True)
    signal.pause()


def spawn_helper(*args):
    return subprocess.Popen([sys.executable, HERE, "--helper"] + [str(a) for a in args],
                            stdout=subprocess.PIPE, text=True)


# ---- the measurements --------------------------------------------------------------
def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def wait_fds(pid, want, limit):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if fd_count(pid) >= want:
            return True
        time.sleep(0.02)
    return False


def accept_rate(port, count=4000, inflight=64, limit=20):
    """Connections a second: connect, send a byte, shut down, wait for the close."""
    sel = selectors.DefaultSelector()
    source = next_source()
    done = started = 0
    t0 = time.monotonic()
    while done < count and time.monotonic() - t0 < limit:
        while started - done < inflight and started < count:
            s = nb_connect(port, source)
            sel.register(s, selectors.EVENT_WRITE, "connecting")
            started += 1
        for key, _ in sel.select(1):
            s = key.fileobj
            if key.data == "connecting":
                try:
                    s.send(b"x")
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                sel.modify(s, selectors.EVENT_READ, "waiting")
                continue
            try:
                if s.recv(4096):
                    continue
            except OSError:
                pass
            sel.unregister(s)
            s.close()
            done += 1
    return done / (time.monotonic() - t0)


def busy_throughput(port, seconds=2.0):
    """MB/s one peer pushes through the server, counted to the server's close."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30,
                                 source_address=(next_source(), 0))
    chunk = b"\0" * (1 << 20)
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        s.sendall(chunk)
        sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # end of stream: the server read all and closed
    took = time.monotonic() - t0
    s.close()
    return sent / took / 1e6


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_listen(sockit):
    """`sockit listen -k`, stdin a pipe that stays open and silent, stdout /dev/null,
    no -v (stderr is a file nobody reads during the run: a pipe would fill up)."""
    port = free_port()
    p = subprocess.Popen([sockit, "listen", "-k", "127.0.0.1", str(port)],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=open("/tmp/netcat_bench.%d.err" % os.getpid(), "w"))
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, port
        except OSError:
            time.sleep(0.01)
    raise SystemExit("sockit listen did not start on port %d" % port)


def start_epoll(epoll):
    p = subprocess.Popen([epoll, "--mode", "echo", "--port", "0"], stdout=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline()
    return p, int(line.rsplit(":", 1)[1])


def stop(*procs):
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
        if p is not None:
            p.wait()


def with_idle(sockit, idle):
    """One round of accept and busy, without then with idle peers."""
    server, port = start_listen(sockit)
    helper = None
    try:
        base = fd_count(server.pid)
        r = {"accept_0": accept_rate(port), "busy_0": busy_throughput(port)}
        helper = spawn_helper("idle", port, idle, next_source())
        got = int(helper.stdout.readline().split()[1])
        if got < idle or not wait_fds(server.pid, base + idle, 60):
            raise SystemExit("only %d of %d idle peers connected" % (got, idle))
        r["accept_idle"] = accept_rate(port)
        r["busy_idle"] = busy_throughput(port)
        return r
    finally:
        stop(helper, server)


def burst(start, binary, n, tag):
    server, port = start(binary)
    go = "/tmp/netcat_bench_go.%d.%s" % (os.getpid(), tag)
    helpers = []
    try:
        base = fd_count(server.pid)
        half = n // 2
        helpers = [spawn_helper("burst", port, k, next_source(), go) for k in (half, n - half)]
        for h in helpers:
            h.stdout.readline()  # "waiting": started, sockets not yet opened
        t0 = time.monotonic()
        open(go, "w").close()
        ok = wait_fds(server.pid, base + n, 60)
        took = time.monotonic() - t0
        if not ok:
            raise SystemExit("%s: the server never held all %d connections" % (tag, n))
        return took
    finally:
        stop(*helpers, server)
        if os.path.exists(go):
            os.unlink(go)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build/plain")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--idle", type=int, default=18000)
    ap.add_argument("--burst", type=int, default=19000)
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    raise_nofile()
    sockit = os.path.join(a.build, "sockit")
    epoll = os.path.join(a.build, "bench", "epoll_server")
    runs = []
    for i in range(a.repeat):
        r = with_idle(sockit, a.idle)
        r["burst_sockit"] = burst(start_listen, sockit, a.burst, "sockit")
        r["burst_epoll"] = burst(start_epoll, epoll, a.burst, "epoll")
        runs.append(r)
        print("run %d: %s" % (i + 1, ", ".join("%s %.1f" % kv for kv in r.items())),
              file=sys.stderr, flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print("sockit listen -k, median of %d (loopback, %d idle peers, burst of %d)"
          % (a.repeat, a.idle, a.burst))
    print("  accept rate   %8.0f/s alone  %8.0f/s with idle peers  kept %3.0f%%  (goal >= 50%%)"
          % (med["accept_0"], med["accept_idle"], 100 * med["accept_idle"] / med["accept_0"]))
    print("  busy peer     %8.0f MB/s     %8.0f MB/s with idle peers kept %3.0f%%  (goal >= 50%%)"
          % (med["busy_0"], med["busy_idle"], 100 * med["busy_idle"] / med["busy_0"]))
    print("  burst         %8.2f s sockit %8.2f s epoll_server     ratio %.2fx (goal <= 1.5x)"
          % (med["burst_sockit"], med["burst_epoll"], med["burst_sockit"] / med["burst_epoll"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": runs, "median": med}, f, indent=2)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--helper":
        kind, args = sys.argv[2], sys.argv[3:]
        if kind == "idle":
            helper_idle(int(args[0]), int(args[1]), args[2])
        else:
            helper_burst(int(args[0]), int(args[1]), args[2], args[3])
    else:
        main()
