#!/usr/bin/env python3
"""Interleaved comparison of a few echo servers' requests/s and server CPU per request,
for a question make bench does not ask (two builds of sockit, one flag against
another). For each connection count and repeat, each server in turn: started pinned to
core 0, loaded by `sockit bench --server-pid` pinned to core 1, stopped. Prints the
median of each and every repeat, so a reader sees the spread.

  python3 bench/compare_servers.py --build build/plain --conns 100,1000 --repeats 9 \\
      coop=/tmp/old/build/bench/sockit_server,--server,events \\
      defer=build/plain/bench/sockit_server,--server,events \\
      raw=build/plain/bench/uring_server

A server is NAME=ARG,ARG,...; each is given --port PORT. ENV=VALUE pairs after a
server's arguments, separated by '+' (NAME=cmd,args+SOCKIT_LOOP_BACKEND=epoll), go to
its environment. Ports from 21000 up (below the ephemeral range, which 10,000 client
connections would otherwise collide with)."""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time


def parse_server(spec):
    name, _, rest = spec.partition("=")
    cmd, *envs = rest.split("+")
    env = dict(e.split("=", 1) for e in envs)
    return name, cmd.split(","), env


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build/plain")
    ap.add_argument("--conns", default="100")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("servers", nargs="+")
    args = ap.parse_args()
    servers = [parse_server(s) for s in args.servers]
    sockit = os.path.join(args.build, "sockit")
    results = {}
    port = 21000
    for conns in [int(c) for c in args.conns.split(",")]:
        for _ in range(args.repeats):
            for name, cmd, env in servers:
                port += 1
                srv = subprocess.Popen(["taskset", "-c", "0"] + cmd + ["--port", str(port)],
                                       env=dict(os.environ, **env), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
                time.sleep(0.4)
                gen = subprocess.run(["taskset", "-c", "1", sockit, "bench", "--json",
                                      "--server-pid", str(srv.pid), "-d", str(args.duration),
                                      "--warmup", "0.5", "-c", str(conns), "127.0.0.1",
                                      str(port)], capture_output=True, text=True,
                                     timeout=args.duration + 60)
                srv.send_signal(signal.SIGTERM)
                srv.wait(timeout=10)
                try:
                    r = json.loads(gen.stdout.strip().splitlines()[-1])
                    results.setdefault((conns, name), []).append(
                        (r["requests_per_s"], r["server_cpu_us_per_request"]))
                except (ValueError, IndexError, KeyError):
                    print("%s at c%d: no result: %s" % (name, conns, gen.stderr.strip()[-200:]),
                          file=sys.stderr)
    print("| connections | server | req/s (median) | CPU µs/req (median) | CPU µs/req, each repeat |")
    print("|---|---|---|---|---|")
    for (conns, name), runs in results.items():
        print("| %d | %s | %.0f | %.2f | %s |" % (
            conns, name, statistics.median(r[0] for r in runs),
            statistics.median(r[1] for r in runs), ", ".join("%.2f" % r[1] for r in runs)))


if __name__ == "__main__":
    main()
