#!/usr/bin/env python3
"""Several loops on this machine: SOCKIT_EVENTS with config.loops = 2 (one
SO_REUSEPORT socket per loop, the library's way) against one acceptor handing
connections out to 2 loops (bench/peers/handoff.c), beside 1 loop and raw epoll.
Every sockit row runs on each loop backend ($SOCKIT_LOOP_BACKEND, set for the server
only); a server that cannot start (say, a library built without io_uring) is a
"failed" row.

For each repeat, for each server (interleaved), the same generator run: 64-byte
echo over 100 connections, and one-shot connects from 50 clients. With only 2
cores, a 2-loop server cannot have cores of its own: here the servers and the
generator all run unpinned over both cores, so what the table shows is the cost of
each way of spreading work (server CPU per request), not the speed-up more cores
would give. Prints a markdown table of medians.

    python3 bench/loops_bench.py BUILD_DIR [REPEATS]
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build/plain"
REPEATS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
DURATION, WARMUP = 3, 0.5

BACKENDS = ("epoll", "uring")
EVENTS = [
    ("1 loop", "bench/sockit_server --server events"),
    ("2 loops (SO_REUSEPORT)", "bench/sockit_server --server events --loops 2"),
    ("2 loops (one acceptor hands out)",
     "bench/sockit_server --server events --loops 2 --accept handoff"),
]
# (label, command, environment added for the server); the first is the baseline.
SERVERS = [("raw epoll, 1 thread", "bench/epoll_server", {})] + [
    ("sockit events (%s), %s" % (b, what), cmd, {"SOCKIT_LOOP_BACKEND": b})
    for what, cmd in EVENTS for b in BACKENDS]
LOADS = [
    ("echo 64 B, 100 connections", "echo", ["-c", "100", "-m", "64"]),
    ("one-shot connect, 50 clients", "oneshot",
     ["--mode", "connect", "-c", "50", "--expect", "Hello from server!"]),
]


def cpu_ticks(pid):
    """utime + stime of every thread of pid, in clock ticks."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def one(server, env, mode, args):
    """(req/s, server CPU µs/req, errors), or None if the server did not start."""
    cmd = [os.path.join(BUILD, server.split()[0])] + server.split()[1:] + ["--mode", mode,
                                                                             "--port", "0"]
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           env=dict(os.environ, **env))
    try:
        line = srv.stdout.readline()
        m = re.search(r":(\d+)$", line.strip())
        if m is None:
            return None
        port = int(m.group(1))
        gen = [os.path.join(BUILD, "sockit"), "bench", "-d", str(DURATION), "--warmup",
               str(WARMUP), "--json"] + args + ["127.0.0.1", str(port)]
        # CPU over the measured part only: the warm-up is waited out first.
        p = subprocess.Popen(gen, stdout=subprocess.PIPE, text=True)
        time.sleep(WARMUP)
        t0 = cpu_ticks(srv.pid)
        out, _ = p.communicate(timeout=DURATION + 30)
        t1 = cpu_ticks(srv.pid)
        res = json.loads(out)
        reqs = res["requests_per_s"] * DURATION
        errors = sum(res.get("errors", {}).values()) if isinstance(res.get("errors"), dict) \
            else res.get("errors", 0)
        us = (t1 - t0) / os.sysconf("SC_CLK_TCK") * 1e6 / reqs if reqs else float("nan")
        return res["requests_per_s"], us, errors
    finally:
        srv.terminate()
        srv.wait(timeout=10)


def main():
    results = {}
    for r in range(REPEATS):
        for load in LOADS:
            for s in SERVERS:
                v = one(s[1], s[2], load[1], load[2])
                if v is None:
                    print("rep %d %s / %s: the server did not start" % (r + 1, load[0], s[0]),
                          file=sys.stderr)
                    continue
                results.setdefault((load[0], s[0]), []).append(v)
                print("rep %d %s / %s: %.0f req/s, %.2f us/req, %s errors"
                      % (r + 1, load[0], s[0], v[0], v[1], v[2]), file=sys.stderr)
    print("Several loops, median of %d interleaved runs of %d s (`python3 bench/loops_bench.py "
          "BUILD %d`); servers and generator unpinned on this 2-core machine.\n"
          % (REPEATS, DURATION, REPEATS))
    for load in LOADS:
        base_runs = results.get((load[0], SERVERS[0][0]), [])
        base = statistics.median(v[0] for v in base_runs) if base_runs else None
        base_cpu = statistics.median(v[1] for v in base_runs) if base_runs else None
        print("**%s**\n" % load[0])
        print("| server | req/s median (min–max) | vs raw epoll | server CPU µs/req | vs raw "
              "epoll | errors |")
        print("|---|---:|---:|---:|---:|---:|")
        for s in SERVERS:
            vs = results.get((load[0], s[0]))
            if not vs:
                print("| %s | failed: the server did not start | — | — | — | — |" % s[0])
                continue
            rps = statistics.median(v[0] for v in vs)
            cpu = statistics.median(v[1] for v in vs)
            print("| %s | %s (%s–%s) | %s | %.2f | %s | %d |"
                  % (s[0], format(round(rps), ","), format(round(min(v[0] for v in vs)), ","),
                     format(round(max(v[0] for v in vs)), ","),
                     "%.2f×" % (rps / base) if base else "—", cpu,
                     "%.2f×" % (cpu / base_cpu) if base_cpu else "—", sum(v[2] for v in vs)))
        print()


main()
