#!/usr/bin/env python3
"""make soak: mixed load for SOAK_SECONDS (600 by default) on loopback, sampling each
server's memory, descriptors and threads every second, then saying whether any grew.

Servers: `sockit echo` (TCP, the event-driven server), `sockit echo -u` (UDP),
`sockit tcp-server` (one-shot: a reply per connection, then close) and a
`sockit proxy` API server with one proxy in front of the TCP echo server, whose
toxics are changed at random every few seconds through its HTTP API. Load: rounds
of `sockit bench` against each, a few seconds at a time, bounded in time and count.
Growth is judged on quiet samples, taken a second after each round (the round's
connections closed): the last minute's median against the first minute's after a
warm-up; memory may rise by 2 MiB or 10%, descriptors and threads not at all. The
table also gives the peaks under load.
Writes the report to BUILD/soak.md and exits 1 if anything grew or a server died."""
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build/plain"
SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
SOCKIT = os.path.join(BUILD, "sockit")
WARMUP = min(30, SECONDS // 10)
WINDOW = min(60, max(5, SECONDS // 5))


def start(args):
    p = subprocess.Popen([SOCKIT] + args + ["--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    first = json.loads(p.stdout.readline())
    threading.Thread(target=p.stdout.read, daemon=True).start()  # drain the events
    return p, first["port"]


def sample(pid):
    with open("/proc/%d/status" % pid) as f:
        fields = dict(line.split(":", 1) for line in f)
    rss_kib = int(fields["VmRSS"].split()[0])
    threads = int(fields["Threads"])
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return rss_kib, fds, threads


def api(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


TOXICS = [
    {"type": "latency", "attributes": {"latency": 5, "jitter": 2}},
    {"type": "bandwidth", "attributes": {"rate": 5000}},
    {"type": "slicer", "attributes": {"average_size": 16, "size_variation": 8, "delay": 10}},
    {"type": "reset_peer", "attributes": {"timeout": 200}},
    {"type": "limit_data", "attributes": {"bytes": 4096}},
    {"type": "slow_close", "attributes": {"delay": 100}},
]


def toxic_churn(api_port, stop):
    rng = random.Random(1)
    present = None
    while not stop.wait(rng.uniform(2, 5)):
        try:
            if present is not None:
                api(api_port, "DELETE", "/proxies/soak/toxics/" + present)
                present = None
            if rng.random() < 0.7:
                t = dict(rng.choice(TOXICS))
                t["name"] = "t"
                t["stream"] = rng.choice(["upstream", "downstream"])
                t["toxicity"] = rng.choice([0.5, 1.0])
                api(api_port, "POST", "/proxies/soak/toxics", t)
                present = "t"
        except OSError:
            pass


def bench(args, port, secs):
    cmd = [SOCKIT, "bench", "-d", str(secs), "--timeout", "1", "--json"] + args + [
        "127.0.0.1", str(port)]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=secs + 30)


def main():
    servers = {}
    procs = []
    echo, echo_port = start(["echo", "127.0.0.1", "0"])
    udp, udp_port = start(["echo", "-u", "127.0.0.1", "0"])
    oneshot, oneshot_port = start(["tcp-server", "--host", "127.0.0.1", "--port", "0",
                                   "--timeout", "2"])
    proxy, api_port = start(["proxy", "--api", "127.0.0.1:0"])
    procs = [echo, udp, oneshot, proxy]
    servers = {"echo (TCP)": echo, "echo -u (UDP)": udp, "tcp-server (one-shot)": oneshot,
               "proxy (toxics)": proxy}
    api(api_port, "POST", "/proxies", {"name": "soak", "listen": "127.0.0.1:0",
                                       "upstream": "127.0.0.1:%d" % echo_port})
    with urllib.request.urlopen("http://127.0.0.1:%d/proxies/soak" % api_port, timeout=5) as r:
        proxy_port = int(json.load(r)["listen"].rsplit(":", 1)[1])

    samples = {name: [] for name in servers}
    stop = threading.Event()
    died = []

    def sampler():
        while not stop.wait(1.0):
            for name, p in servers.items():
                if p.poll() is not None:
                    if name not in died:
                        died.append(name)
                    continue
                try:
                    samples[name].append((time.monotonic(),) + sample(p.pid))
                except OSError:
                    pass

    threading.Thread(target=sampler, daemon=True).start()
    threading.Thread(target=toxic_churn, args=(api_port, stop), daemon=True).start()
    loads = [(["-c", "50", "--pipeline", "4"], echo_port),
             (["-u", "-c", "20"], udp_port),
             (["--mode", "connect", "-c", "10", "--expect", "Hello from server!"], oneshot_port),
             (["-c", "20", "-m", "512"], proxy_port)]
    began = time.monotonic()
    rounds = 0
    quiet = {name: [] for name in servers}
    while time.monotonic() - began < SECONDS and not died:
        args, port = loads[rounds % len(loads)]
        left = SECONDS - (time.monotonic() - began)
        bench(args, port, max(1, min(5, int(left) - 1)))
        rounds += 1
        time.sleep(1.0)
        for name, p in servers.items():
            try:
                quiet[name].append((time.monotonic() - began,) + sample(p.pid))
            except OSError:
                pass
    stop.set()
    time.sleep(1.2)
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()

    lines = ["# Soak: %d s of mixed load, %d bench rounds" % (SECONDS, rounds), "",
             "Quiet samples (a second after each round), median of the first %d s after %d s "
             "of warm-up against the last %d s; memory may rise by 2 MiB or 10%%, descriptors "
             "and threads not at all. Peaks are under load." % (WINDOW, WARMUP, WINDOW), "",
             "| server | RSS KiB first | last | peak | fds first | last | peak | threads first "
             "| last | grew |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    grew_any = bool(died)
    for name, rows in quiet.items():
        first = [r for r in rows if WARMUP <= r[0] < WARMUP + WINDOW]
        last = [r for r in rows if r[0] >= SECONDS - WINDOW]
        if not first or not last:
            lines.append("| %s | - | - | - | - | - | - | - | - | too few samples |" % name)
            grew_any = True
            continue
        med = [(statistics.median(r[i] for r in first), statistics.median(r[i] for r in last))
               for i in (1, 2, 3)]
        (r0, r1), (f0, f1), (h0, h1) = med
        peak_rss = max((r[1] for r in samples[name]), default=0)
        peak_fds = max((r[2] for r in samples[name]), default=0)
        grew = []
        if r1 > max(r0 * 1.10, r0 + 2048):
            grew.append("memory")
        if f1 > f0:
            grew.append("fds")
        if h1 > h0:
            grew.append("threads")
        grew_any = grew_any or bool(grew)
        lines.append("| %s | %d | %d | %d | %d | %d | %d | %d | %d | %s |" % (
            name, r0, r1, peak_rss, f0, f1, peak_fds, h0, h1, ", ".join(grew) or "no"))
    if died:
        lines.append("")
        lines.append("Died during the soak: " + ", ".join(died))
    report = "\n".join(lines) + "\n"
    with open(os.path.join(BUILD, "soak.md"), "w") as f:
        f.write(report)
    print(report)
    return 1 if grew_any else 0


if __name__ == "__main__":
    sys.exit(main())
