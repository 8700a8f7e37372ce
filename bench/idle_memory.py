#!/usr/bin/env python3
"""RSS per idle connection, for every echo peer: start the server, open N TCP
connections that never send, and divide the growth of the server's resident memory
(VmRSS) by N. Servers are measured interleaved (for each repeat: for each server),
and the table gives the median over the repeats.

    bench/idle_memory.py --build build/plain [--conns 10000] [--repeats 3] [--out FILE]

Memory is the server's own, user space: the kernel's socket buffers are not in
VmRSS. Before measuring, one connection makes a round trip, so what a server makes
on first use (its read buffer, its loop) is in the baseline, not in the figure.
Connections stay idle: the server's idle timeout (sockit's 300 s default) is far
away. Traffic goes to 127.0.0.1 only and every step is bounded in time."""
import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LISTEN_RE = re.compile(rb"Listening on [^\s]*:(\d+)")
PYTHON = "/usr/bin/python3"

# id, label, kind ("c": build/bench binary, "py": bench/peers script), file, extra args,
# environment for the server. The event server runs once per loop backend.
SERVERS = [
    ("epoll", "epoll (raw)", "c", "epoll_server", [], {}),
    ("uring", "io_uring (raw)", "c", "uring_server", [], {}),
    ("libuv", "libuv", "c", "libuv_server", [], {}),
    ("libevent", "libevent", "c", "libevent_server", [], {}),
    ("sockit-events-epoll", "sockit events (epoll)", "c", "sockit_server", ["--server", "events"],
     {"SOCKIT_LOOP_BACKEND": "epoll"}),
    ("sockit-events-uring", "sockit events (uring)", "c", "sockit_server", ["--server", "events"],
     {"SOCKIT_LOOP_BACKEND": "uring"}),
    ("sockit-threads", "sockit threads", "c", "sockit_server", ["--server", "threads"], {}),
    ("py-asyncio", "python asyncio", "py", "python_asyncio_server.py", [], {}),
]


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for pid %d" % pid)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def server_cmd(args, kind, file, extra):
    if kind == "c":
        exe = os.path.join(args.build, "bench", file)
        return ([exe] if os.access(exe, os.X_OK) else None), exe
    script = os.path.join(HERE, "peers", file)
    if not os.path.isfile(script) or not os.access(PYTHON, os.X_OK):
        return None, script
    return [PYTHON, script], script


def measure(cmd, conns, env, timeout=60.0):
    """Returns bytes of RSS per idle connection, or raises RuntimeError."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        cmd = ["taskset", "-c", "0"] + cmd
    proc = subprocess.Popen(cmd + ["--mode", "echo", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, **env))
    socks = []
    try:
        deadline = time.monotonic() + 10
        out = b""
        while True:
            line = proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError("server did not say it was listening")
            out += line
            m = LISTEN_RE.search(out)
            if m:
                port = int(m.group(1))
                break
        pid = proc.pid
        # taskset execs the server in place, so the pid is the server's.
        warm = socket.create_connection(("127.0.0.1", port), timeout=5)
        warm.sendall(b"x" * 64)
        got = b""
        while len(got) < 64:
            chunk = warm.recv(64 - len(got))
            if not chunk:
                raise RuntimeError("warm-up connection closed")
            got += chunk
        warm.close()
        time.sleep(0.3)
        base_fds = open_fds(pid)
        before = rss_bytes(pid)
        end = time.monotonic() + timeout
        for _ in range(conns):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(("127.0.0.1", port))
            socks.append(s)
            if time.monotonic() > end:
                raise RuntimeError("connecting took longer than %g s" % timeout)
        # Accepted by the server: its descriptors, not only the kernel's backlog.
        while open_fds(pid) < base_fds + conns * 0.99:
            if time.monotonic() > end:
                raise RuntimeError("server accepted %d of %d" % (open_fds(pid) - base_fds, conns))
            time.sleep(0.05)
        time.sleep(1.0)
        after = rss_bytes(pid)
        return (after - before) / conns
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated server ids")
    ap.add_argument("--out", help="write the markdown table here too")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.conns + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    servers = [s for s in SERVERS if not args.only or s[0] in args.only.split(",")]
    results = {s[0]: [] for s in servers}
    notes = {}
    for rep in range(args.repeats):
        for sid, label, kind, file, extra, env in servers:
            cmd, what = server_cmd(args, kind, file, extra)
            if cmd is None:
                notes[sid] = "not built (%s)" % os.path.basename(what)
                continue
            try:
                per = measure(cmd + extra, args.conns, env)
                results[sid].append(per)
                print("rep %d %-16s %8.0f B per idle connection" % (rep + 1, label, per),
                      file=sys.stderr)
            except (RuntimeError, OSError) as e:
                notes[sid] = str(e)
                print("rep %d %-16s failed: %s" % (rep + 1, label, e), file=sys.stderr)
    base = statistics.median(results["epoll"]) if results.get("epoll") else None
    lines = [
        "RSS per idle connection: %s TCP connections open to the echo server, never sending; "
        "growth of the server's VmRSS divided by the count, median of %d interleaved runs "
        "(`bench/idle_memory.py --conns %d --repeats %d`). User-space memory only: socket "
        "buffers are the kernel's." % (f"{args.conns:,}", args.repeats, args.conns,
                                        args.repeats),
        "",
        "| server | B per idle connection, median (min–max) | vs epoll | note |",
        "|---|---|---|---|",
    ]
    for sid, label, *_ in servers:
        r = results[sid]
        if not r:
            lines.append("| %s | — | — | %s |" % (label, notes.get(sid, "no result")))
            continue
        med = statistics.median(r)
        ratio = "%.1f×" % (med / base) if base and base > 0 else "—"
        lines.append("| %s | %s (%s–%s) | %s | %s |" % (
            label, f"{med:,.0f}", f"{min(r):,.0f}", f"{max(r):,.0f}", ratio, notes.get(sid, "")))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
