#!/usr/bin/env python3
"""sockit proxy beside socat and beside no proxy at all, on one echo server.

The echo server is the raw epoll peer (bench/epoll_server). Three setups:
direct (the generator talks to the echo server), sockit proxy in front of it,
and socat TCP-LISTEN,fork,reuseaddr in front of it (socat forks a process per
connection). Three processes on two cores: the echo server and the proxy share
core 0, the generator has core 1; for socat every forked child inherits core 0.
The proxy's CPU is read from /proc over the measured window (socat's over its
whole process tree, the children it has reaped included), so "proxy CPU µs/req"
is the relay's own cost. Sharing core 0 with the echo server, a proxy can give at
most about half of what the echo server alone gives: "vs direct" says what the
relay costs on this machine, not what it would cost with a core of its own.

Workloads: 64-byte echo over 100 connections, 16 KiB echo over 10, and 64-byte
echo over 1 connection for the round-trip latency (p50); and UDP: 64-byte datagram
echo from 100 clients and from 1, through `sockit proxy --udp` and socat's
UDP4-LISTEN,fork (a child per client), to the batched UDP echo peer
(bench/udp_mmsg_server). For each repeat, for
each workload, for each setup (interleaved), one generator run; medians over the
repeats. Prints a markdown table.

    python3 bench/proxy_bench.py BUILD_DIR [REPEATS]
"""
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build/plain"
REPEATS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
DURATION, WARMUP = 3, 0.5
LOADS = [
    ("echo 64 B, 100 connections", ["-c", "100", "-m", "64"]),
    ("echo 16 KiB, 10 connections", ["-c", "10", "-m", "16384"]),
    ("echo 64 B, 1 connection", ["-c", "1", "-m", "64"]),
    ("UDP echo 64 B, 100 clients", ["-u", "-c", "100", "-m", "64"]),
    ("UDP echo 64 B, 1 client", ["-u", "-c", "1", "-m", "64"]),
]
SETUPS = ("direct", "sockit proxy", "socat")


def ticks_of_tree(pid):
    """CPU of pid's threads, of the children it has reaped (cutime, cstime: socat's
    children end with their connections) and of those still running, in ticks."""
    total, todo = 0, [pid]
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    total += int(fields[13]) + int(fields[14])
    while todo:
        p = todo.pop()
        try:
            for tid in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/stat" % (p, tid)) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
                with open("/proc/%d/task/%s/children" % (p, tid)) as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, secs=5):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def start(cmd):
    return subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)


def stop(proc):
    try:
        os.killpg(proc.pid, 15)
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def one(setup, args):
    """(req/s, proxy CPU µs/req or None, p50 µs, errors)."""
    udp = "-u" in args
    echo = start([os.path.join(BUILD, "bench/udp_mmsg_server" if udp else "bench/epoll_server")]
                 + ([] if udp else ["--mode", "echo"]) + ["--port", "0"])
    procs = [echo]
    try:
        m = re.search(r":(\d+)$", echo.stdout.readline().strip())
        echo_port = int(m.group(1))
        port, relay = echo_port, None
        if setup != "direct":
            port = free_port()
            if setup == "sockit proxy":
                cmd = [os.path.join(BUILD, "sockit"), "proxy"] + (["--udp"] if udp else []) + [
                    "127.0.0.1:%d" % port, "127.0.0.1:%d" % echo_port]
            elif udp:
                cmd = ["socat", "UDP4-LISTEN:%d,fork,reuseaddr,bind=127.0.0.1" % port,
                       "UDP4:127.0.0.1:%d" % echo_port]
            else:
                cmd = ["socat", "TCP-LISTEN:%d,fork,reuseaddr,bind=127.0.0.1" % port,
                       "TCP:127.0.0.1:%d" % echo_port]
            relay = start(cmd)
            procs.append(relay)
            if udp:
                time.sleep(0.3)  # nothing to connect to: give it the time to bind
            elif not wait_port(port):
                return None
        gen = ["taskset", "-c", "1", os.path.join(BUILD, "sockit"), "bench", "-d",
               str(DURATION), "--warmup", str(WARMUP), "--json"] + args + ["127.0.0.1",
                                                                         str(port)]
        p = subprocess.Popen(gen, stdout=subprocess.PIPE, text=True)
        time.sleep(WARMUP)
        t0 = ticks_of_tree(relay.pid) if relay else 0
        out, _ = p.communicate(timeout=DURATION + 60)
        t1 = ticks_of_tree(relay.pid) if relay else 0
        res = json.loads(out)
        reqs = res["requests_per_s"] * DURATION
        cpu = (t1 - t0) / os.sysconf("SC_CLK_TCK") * 1e6 / reqs if relay and reqs else None
        errors = res.get("errors", 0)
        if isinstance(errors, dict):
            errors = sum(errors.values())
        return res["requests_per_s"], cpu, res.get("latency_us_p50"), errors
    finally:
        for proc in reversed(procs):
            stop(proc)


def main():
    runs = {}
    for r in range(REPEATS):
        for load, args in LOADS:
            for setup in SETUPS:
                got = one(setup, args)
                runs.setdefault((load, setup), []).append(got)
                print("rep %d %s / %s: %s" % (r + 1, load, setup, got), file=sys.stderr)

    def med(load, setup, i):
        vals = [g[i] for g in runs[(load, setup)] if g is not None and g[i] is not None]
        return statistics.median(vals) if vals else None

    print("sockit proxy beside socat (`TCP-LISTEN,fork,reuseaddr`; for UDP "
          "`UDP4-LISTEN,fork,reuseaddr`) and beside no proxy, in front of the raw epoll echo "
          "server (UDP: the batched recvmmsg peer); echo server and proxy on core 0, generator "
          "on core 1; medians of %d interleaved runs of %d s (`bench/proxy_bench.py BUILD "
          "%d`).\n" % (REPEATS, DURATION, REPEATS))
    print("| workload | setup | req/s | vs direct | vs socat | proxy CPU µs/req | p50 µs | "
          "errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for load, _ in LOADS:
        direct = med(load, "direct", 0)
        socat = med(load, "socat", 0)
        for setup in SETUPS:
            rps, cpu, p50 = med(load, setup, 0), med(load, setup, 1), med(load, setup, 2)
            errs = sum(g[3] for g in runs[(load, setup)] if g is not None)
            ratio = lambda base: "%.2f×" % (rps / base) if rps and base else "—"
            print("| %s | %s | %s | %s | %s | %s | %s | %d |" % (
                load, setup, "%.0f" % rps if rps else "failed", ratio(direct), ratio(socat),
                "%.2f" % cpu if cpu and cpu > 0 else "—", "%.0f" % p50 if p50 else "—", errs))


if __name__ == "__main__":
    main()
