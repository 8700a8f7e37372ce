#!/usr/bin/env python3
"""The `make bench` driver: runs every (server, workload) pair described in
bench/README.md, pinned and interleaved, and writes REPORT.md, results.json and gnuplot
charts. Standard library only; it runs on any python3, but starts the Python peers with
Debian's /usr/bin/python3 (the interpreter uvloop is packaged for).

Usage: bench/run_bench.py --build BUILD_DIR [--quick] [--repeats N] [--duration S]
                          [--out DIR] [--only SUBSTRING[,SUBSTRING...]]

BUILD_DIR holds the sockit CLI (BUILD_DIR/sockit) and the C peers (BUILD_DIR/bench/NAME);
the Python peers are bench/peers/*.py. A peer that is not there becomes a "not built" row.
Every child has a timeout: a hung or failing run is recorded, with its stderr tail, as
failed, and the driver goes on.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
HOST = "127.0.0.1"
LISTEN_RE = re.compile(rb"Listening on 127\.0\.0\.1:(\d+)")
IPERF_READY_RE = re.compile(rb"Server listening on")
START_TIMEOUT = 10.0
STOP_GRACE = 3.0
STDERR_TAIL = 600
SERVER_CORE = "0"
GENERATOR_CORE = "1"
# A run whose generator uses this much of its core while the server has room is
# reported as measuring the generator, not the server.
GEN_BOUND_GEN_PERCENT = 90.0
GEN_BOUND_SERVER_PERCENT = 90.0


# ---------------------------------------------------------------------------------------
# Servers. A server is a peer program plus its fixed arguments; the workload adds the
# mode (echo, oneshot, sink). "c" peers live in BUILD/bench, "py" peers in bench/peers.
# "env", where a peer has it, is added to the environment of the server process only
# (never the generator's).


def c_peer(sid, label, binary, *extra, env=None):
    peer = {"id": sid, "label": label, "kind": "c", "file": binary, "extra": list(extra)}
    if env:
        peer["env"] = dict(env)
    return peer


def py_peer(sid, label, script, *extra):
    return {"id": sid, "label": label, "kind": "py", "file": script, "extra": list(extra)}


EPOLL = c_peer("epoll", "epoll (raw)", "epoll_server")
URING = c_peer("uring", "io_uring (raw)", "uring_server")
BLOCKING = c_peer("blocking", "blocking accept loop (raw)", "blocking_server")
LIBUV = c_peer("libuv", "libuv", "libuv_server")
LIBEVENT = c_peer("libevent", "libevent", "libevent_server")
PY_REFERENCE = py_peer("py-reference", "python reference", "python_reference_server.py")
PY_THREADING = py_peer("py-threading", "python threading", "python_threading_server.py")
PY_ASYNCIO = py_peer("py-asyncio", "python asyncio", "python_asyncio_server.py")
PY_UVLOOP = py_peer("py-uvloop", "python uvloop", "python_asyncio_server.py", "--uvloop")
PY_UDP = py_peer("py-udp", "python udp", "python_udp_server.py")
UDP_RECVFROM = c_peer("udp-recvfrom", "recvfrom/sendto (raw)", "udp_recvfrom_server")
UDP_MMSG = c_peer("udp-mmsg", "recvmmsg/sendmmsg (raw)", "udp_mmsg_server")
IPERF3 = {"id": "iperf3", "label": "iperf3", "kind": "iperf3", "file": "iperf3", "extra": []}


# The loop backends the event server runs on, each a row of its own: the library picks
# one from $SOCKIT_LOOP_BACKEND (issue 12).
EVENT_BACKENDS = ("epoll", "uring")


def events_id(backend, udp=False):
    return "sockit-events-%s%s" % (backend, "-u" if udp else "")


def sockit(mode, workers=None, udp=False):
    """The peers of one sockit_server mode: a list of one, or for events one per loop
    backend ("sockit events (epoll)", id sockit-events-epoll; -u after for UDP)."""
    extra = ["--server", mode]
    label = "sockit " + mode
    if workers is not None:
        extra += ["--workers", str(workers)]
        label += " (%d worker%s)" % (workers, "" if workers == 1 else "s")
    if udp:
        extra = ["-u"] + extra
        label += " -u"
    if mode == "events":
        return [c_peer(events_id(b, udp), "%s (%s)" % (label, b), "sockit_server", *extra,
                       env={"SOCKIT_LOOP_BACKEND": b})
                for b in EVENT_BACKENDS]
    sid = "sockit-" + mode + ("-u" if udp else "") + ("-w%d" % workers if workers else "")
    return [c_peer(sid, label, "sockit_server", *extra)]


# A pool worker serves one connection at a time, so it needs as many workers as there
# are connections; past this many threads that stops being a sane configuration.
POOL_MAX_WORKERS = 1000


def echo_servers(conns):
    servers = [EPOLL, URING, LIBUV, LIBEVENT, PY_THREADING, PY_ASYNCIO, PY_UVLOOP,
               *sockit("events"), *sockit("threads")]
    if conns <= POOL_MAX_WORKERS:
        servers += sockit("pool", workers=conns)
    if conns == 1:
        # The sequential server serves one connection at a time: only meaningful here.
        servers += sockit("sequential")
    return servers


CONNECT_SERVERS = [
    EPOLL, URING, BLOCKING, LIBUV, LIBEVENT, PY_REFERENCE, PY_THREADING, PY_ASYNCIO, PY_UVLOOP,
    *sockit("events"), *sockit("sequential"), *sockit("threads"), *sockit("processes"),
    *sockit("pool", workers=50),
]
UDP_SERVERS = [UDP_RECVFROM, UDP_MMSG, PY_UDP, *sockit("events", udp=True),
               *sockit("sequential", udp=True),
               *sockit("threads", udp=True)]
STREAM_SERVERS = [EPOLL, URING, LIBUV, LIBEVENT, *sockit("events"), *sockit("threads"), IPERF3]


# ---------------------------------------------------------------------------------------
# Workloads. "args" go to `sockit bench` (or simple_load); "server_mode" to the peer.


def echo_workload(conns, msg, quick=False):
    size = "16 KiB" if msg == 16384 else "%d B" % msg
    return {
        "id": "echo%d-c%d" % (msg, conns),
        "title": "Echo %s, %s connection%s, closed loop" % (size, f"{conns:,}", "" if conns == 1 else "s"),
        "what": "each connection sends %s and waits for it to come back, again and again; "
                "one request = one message echoed whole." % size,
        "tool": "sockit", "server_mode": "echo", "conns": conns, "msg": msg,
        "args": ["--mode", "echo", "-c", str(conns), "-m", str(msg)],
        "servers": echo_servers(conns), "baseline": "epoll", "quick": quick,
        "chart": "throughput" if msg == 64 else None,
        # 10,000 connections take a while to open; keep that out of the window.
        "warmup_extra": 1.0 if conns >= 1000 else 0.0,
    }


FIXED_RATE = 20000
FIXED_RATE_CONNS = 100
UDP_CONNS = 100
CONNECT_CONNS = 50
STREAM_MSG = 65536


def workloads():
    return [
        echo_workload(1, 64),
        echo_workload(100, 64, quick=True),
        echo_workload(1000, 64),
        echo_workload(10000, 64),
        echo_workload(10, 16384),
        {
            "id": "rate%d-c%d" % (FIXED_RATE, FIXED_RATE_CONNS),
            "title": "Echo 64 B at a fixed %s msg/s over %d connections (open loop)"
                     % (f"{FIXED_RATE:,}", FIXED_RATE_CONNS),
            "what": "the generator offers the same load to every server, so server CPU per "
                    "message and the latency percentiles compare servers at equal work; "
                    "latency counts from each message's scheduled send time.",
            "tool": "sockit", "server_mode": "echo", "conns": FIXED_RATE_CONNS, "msg": 64,
            "rate": FIXED_RATE,
            "args": ["--mode", "echo", "-c", str(FIXED_RATE_CONNS), "-m", "64",
                     "--rate", str(FIXED_RATE)],
            "servers": echo_servers(FIXED_RATE_CONNS), "baseline": "epoll", "quick": True,
            "chart": "latency", "warmup_extra": 0.0,
        },
        {
            "id": "connect-c%d" % CONNECT_CONNS,
            "title": "One-shot connect rate, %d concurrent clients" % CONNECT_CONNS,
            "what": "each client connects, sends \"Hello server!\", reads \"Hello from server!\" "
                    "until the server closes, closes; one request = one such connection.",
            "tool": "sockit", "server_mode": "oneshot", "conns": CONNECT_CONNS, "msg": 13,
            "args": ["--mode", "connect", "-c", str(CONNECT_CONNS),
                     "--expect", "Hello from server!"],
            "servers": CONNECT_SERVERS, "baseline": "epoll", "quick": True,
            "chart": "connect", "warmup_extra": 0.0,
        },
        {
            "id": "udp64-c%d" % UDP_CONNS,
            "title": "UDP echo 64 B, %d connected sockets, closed loop" % UDP_CONNS,
            "what": "each of %d connected UDP sockets keeps one 64-byte datagram in flight. "
                    "A UDP server has one socket whatever the client count, so the count only "
                    "sets how many datagrams wait in its queue: %d keeps it never empty (so "
                    "recvmmsg can batch) yet far below what the default receive buffer holds, "
                    "so a lost datagram is the server's doing, not a full buffer's. A datagram "
                    "unanswered within 1 s counts as a timeout." % (UDP_CONNS, UDP_CONNS),
            "tool": "sockit", "server_mode": None, "conns": UDP_CONNS, "msg": 64,
            "args": ["-u", "-c", str(UDP_CONNS), "-m", "64", "--timeout", "1"],
            "servers": UDP_SERVERS, "baseline": "udp-recvfrom", "quick": True,
            "chart": None, "warmup_extra": 0.0,
        },
        {
            "id": "stream-c1",
            "title": "Bulk stream, 1 connection, 64 KiB writes",
            "what": "one connection writes 64 KiB at a time as fast as it can into a server "
                    "that reads and discards it; one request = one 64 KiB write. iperf3 "
                    "(its own client and server, same pinning, same write size) is the "
                    "comparison row.",
            "tool": "sockit", "server_mode": "sink", "conns": 1, "msg": STREAM_MSG,
            "args": ["--mode", "stream", "-c", "1", "-m", str(STREAM_MSG)],
            "servers": STREAM_SERVERS, "baseline": "epoll", "quick": True,
            "chart": None, "warmup_extra": 0.0,
        },
        {
            "id": "gencheck",
            "title": "Generator check: epoll echo 64 B, 100 connections, two generators",
            "what": "the same server and load measured with `sockit bench` and with "
                    "simple_load, a plain blocking thread-per-connection client.",
            "tool": "sockit", "server_mode": "echo", "conns": 100, "msg": 64,
            "args": ["--mode", "echo", "-c", "100", "-m", "64"],
            "servers": [dict(EPOLL, id="epoll", label="epoll, sockit bench"),
                        dict(EPOLL, id="epoll-simple_load", label="epoll, simple_load",
                             generator="simple_load")],
            "baseline": "epoll", "quick": True, "chart": None, "warmup_extra": 0.0,
        },
    ]


# ---------------------------------------------------------------------------------------
# Small helpers.


def tail(path_or_bytes, limit=STDERR_TAIL):
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
    else:
        try:
            with open(path_or_bytes, "rb") as f:
                data = f.read()
        except OSError:
            return ""
    text = data.decode("utf-8", "replace").strip()
    return text[-limit:]


def capture(cmd, timeout=10):
    """First line of a command's output, or "" if it is missing or fails."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    if p.returncode != 0:
        return ""
    lines = p.stdout.decode("utf-8", "replace").strip().splitlines()
    return lines[0].strip() if lines else ""


def free_port():
    # For iperf3, which cannot report a port it picked itself; the port is closed again
    # before iperf3 binds it, a race nothing else on loopback is running here to lose.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def proc_cpu_s(pid):
    """CPU seconds of a process: all its threads, plus its reaped children."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def fmt_num(x, digits=0):
    if x is None:
        return "—"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def fmt_sig(x):
    """A measurement with about three significant digits."""
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_duration(seconds):
    seconds = int(round(seconds))
    return "%dm%02ds" % (seconds // 60, seconds % 60) if seconds >= 60 else "%ds" % seconds


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------------------
# Running one pair.


class Driver:
    def __init__(self, args):
        self.build = os.path.abspath(args.build)
        self.peers = os.path.abspath(args.peers)
        self.duration = args.duration
        self.warmup = args.warmup
        self.sockit = os.path.join(self.build, "sockit")
        self.simple_load = os.path.join(self.build, "bench", "simple_load")
        self.pin = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
        self.tmp = tempfile.mkdtemp(prefix="sockit-bench-")

    def pinned(self, core, cmd):
        return (["taskset", "-c", core] + cmd) if self.pin else cmd

    def server_command(self, srv, mode):
        if srv["kind"] == "c":
            exe = os.path.join(self.build, "bench", srv["file"])
            if not os.access(exe, os.X_OK):
                return None, exe
            cmd = [exe]
        elif srv["kind"] == "py":
            script = os.path.join(self.peers, srv["file"])
            if not os.path.isfile(script):
                return None, script
            if not os.access(PYTHON, os.X_OK):
                return None, PYTHON
            cmd = [PYTHON, script]
        else:
            exe = shutil.which("iperf3")
            if exe is None:
                return None, "iperf3"
            return [exe], exe
        cmd += srv["extra"]
        if mode is not None:
            cmd += ["--mode", mode]
        return cmd, cmd[0]

    def start_server(self, cmd, ready_re, tag, env=None):
        """Starts a pinned server in its own process group, with env added to the
        driver's environment; returns (proc, port, files) or raises RuntimeError with
        the reason."""
        out = os.path.join(self.tmp, tag + ".out")
        err = os.path.join(self.tmp, tag + ".err")
        full_env = dict(os.environ, **env) if env else None
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(self.pinned(SERVER_CORE, cmd), stdin=subprocess.DEVNULL,
                                    stdout=fo, stderr=fe, start_new_session=True,
                                    env=full_env)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                with open(out, "rb") as f:
                    m = ready_re.search(f.read())
                if m:
                    port = int(m.group(1)) if m.groups() else None
                    return proc, port, (out, err)
                if proc.poll() is not None:
                    reason = "server exited with status %d before listening" % proc.returncode
                    break
                if time.monotonic() > deadline:
                    reason = "server did not say it was listening within %g s" % START_TIMEOUT
                    break
                time.sleep(0.01)
        except BaseException:
            # Its own session does not get the terminal's ^C: stop it here.
            self.stop_server(proc)
            raise
        self.stop_server(proc)
        raise RuntimeError(reason + (": " + tail(err) if tail(err) else ""))

    def stop_server(self, proc):
        """SIGTERM, SIGKILL after STOP_GRACE; returns the exit status it had (None if it
        had to be killed). Its process group is killed either way, so no forked child
        outlives it."""
        status = proc.poll()
        if status is None:
            try:
                proc.send_signal(signal.SIGTERM)
                status = proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                status = None
        kill_group(proc)
        proc.wait()
        return status

    def run_generator(self, cmd, timeout):
        """Runs the pinned generator; returns (returncode or None on timeout, stdout,
        stderr, cpu seconds it used)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(self.pinned(GENERATOR_CORE, cmd), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            # SIGINT first: sockit bench then still prints what it measured.
            try:
                os.killpg(proc.pid, signal.SIGINT)
                out, err = proc.communicate(timeout=3)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                out, err = proc.communicate()
            code = None
        except BaseException:
            # ^C reaches the driver only (the child has its own session).
            kill_group(proc)
            proc.wait()
            raise
        # Only this child was reaped in between (the server is still running), so the
        # difference is its CPU time.
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return code, out, err, cpu

    def generator_command(self, wl, srv, pid, port, warmup):
        gen = srv.get("generator", "iperf3" if srv["kind"] == "iperf3" else "sockit")
        d = "%g" % self.duration
        if gen == "iperf3":
            # iperf3 takes whole seconds for -t (and 0 would mean "forever").
            secs = str(max(1, int(math.ceil(self.duration))))
            return gen, ["iperf3", "-c", HOST, "-p", str(port), "-t", secs, "-O", "%g" % warmup,
                         "-l", str(STREAM_MSG), "-J"]
        if gen == "simple_load":
            return gen, [self.simple_load, "--mode", "echo", "-c", str(wl["conns"]), "-d", d,
                         "-m", str(wl["msg"]), HOST, str(port)]
        return gen, ([self.sockit, "bench", "--json", "--server-pid", str(pid), "-d", d,
                      "--warmup", "%g" % warmup] + wl["args"] + [HOST, str(port)])

    def run_pair(self, wl, srv, rep):
        rec = {"workload": wl["id"], "server": srv["id"], "label": srv["label"], "rep": rep,
               "status": "failed", "result": None}
        mode = wl["server_mode"]
        cmd, missing = self.server_command(srv, mode)
        gen = srv.get("generator", "iperf3" if srv["kind"] == "iperf3" else "sockit")
        gen_exe = {"sockit": self.sockit, "simple_load": self.simple_load}.get(gen)
        if cmd is None or (gen_exe and not os.access(gen_exe, os.X_OK)):
            rec["status"] = "not built"
            rec["reason"] = "%s not found" % (missing if cmd is None else gen_exe)
            return rec
        warmup = self.warmup + (wl["warmup_extra"] if self.warmup > 0 else 0.0)
        if srv["kind"] == "iperf3":
            port = free_port()
            cmd = cmd + ["-s", "--forceflush", "-p", str(port)]
            ready = IPERF_READY_RE
        else:
            ready = LISTEN_RE
        rec["server_cmd"] = self.pinned(SERVER_CORE, cmd)
        if srv.get("env"):
            rec["server_env"] = srv["env"]
        tag = "%s.%s.%d" % (wl["id"], srv["id"], rep)
        t0 = time.monotonic()
        try:
            proc, listened, files = self.start_server(cmd, ready, tag, srv.get("env"))
        except (RuntimeError, OSError) as e:
            rec["reason"] = str(e)
            rec["wall_s"] = time.monotonic() - t0
            return rec
        if listened is not None:
            port = listened
        try:
            gen, gcmd = self.generator_command(wl, srv, proc.pid, port, warmup)
            rec["generator"] = gen
            rec["generator_cmd"] = self.pinned(GENERATOR_CORE, gcmd)
            timeout = warmup + self.duration + 15 + wl["conns"] / 500
            cpu0 = proc_cpu_s(proc.pid)
            try:
                code, out, err, gen_cpu = self.run_generator(gcmd, timeout)
            except OSError as e:
                code, out, err, gen_cpu = -1, b"", str(e).encode(), 0.0
            cpu1 = proc_cpu_s(proc.pid)
            rec["exit"] = code
            rec["stderr_tail"] = tail(err)
            server_alive = proc.poll() is None
        finally:
            status = self.stop_server(proc)
        rec["wall_s"] = time.monotonic() - t0
        rec["server_exit"] = status
        if not server_alive:
            rec["server_stderr_tail"] = tail(files[1])
        parse = {"sockit": parse_sockit, "simple_load": parse_simple_load,
                 "iperf3": parse_iperf3}[gen]
        try:
            result = parse(out, gen_cpu, cpu0, cpu1)
        except (ValueError, KeyError, TypeError) as e:
            result = None
            rec["reason"] = "no result from %s (%s)" % (gen, e)
            if err.strip():
                rec["reason"] += ": " + tail(err, 300)
        if code is None:
            rec["reason"] = "generator did not finish within %g s" % timeout
            result = None
        if result is not None and gen == "sockit" and code not in (0, 1):
            rec["raw"] = result.pop("raw")
            rec["reason"] = "sockit bench exited with status %s: %s" % (code, tail(err, 300))
        elif result is not None:
            rec["result"] = result
            rec["raw"] = result.pop("raw")
            rec["status"] = "ok" if code == 0 else "errors"
        elif "reason" not in rec:
            rec["reason"] = "generator exited with status %s" % code
        if code is None and err.strip():
            rec["reason"] += ": " + tail(err, 300)
        if not server_alive:
            rec["server_died"] = True
        return rec

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def last_json_line(out):
    for line in reversed(out.decode("utf-8", "replace").strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line on stdout")


def parse_sockit(out, gen_cpu, cpu0, cpu1):
    j = last_json_line(out)
    dur = j["duration_s"]
    server_cpu_s = j.get("server_cpu_s")
    stream = j.get("mode") == "stream"
    mb = j["mb_per_s_out"] if stream else j["mb_per_s_in"]
    # Stream mode has no request/reply, so no latency, whatever the fields hold.
    lat = (lambda key: None) if stream else j.get
    return {
        "requests": j["requests"], "requests_per_s": j["requests_per_s"], "mb_per_s": mb,
        "duration_s": dur, "p50_us": lat("latency_us_p50"), "p99_us": lat("latency_us_p99"),
        "p999_us": lat("latency_us_p999"),
        "server_cpu_us_per_request": j.get("server_cpu_us_per_request"),
        "server_cpu_percent": (100.0 * server_cpu_s / dur) if server_cpu_s is not None and dur else None,
        "generator_cpu_percent": j.get("cpu_percent"),
        "errors": j.get("errors", 0),
        "errors_by_kind": {k[len("errors_"):]: v for k, v in j.items()
                           if k.startswith("errors_") and v},
        "interrupted": j.get("interrupted", False),
        "raw": j,
    }


def parse_simple_load(out, gen_cpu, cpu0, cpu1):
    j = last_json_line(out)
    dur = j["duration_s"]
    server_cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
    reqs = j["requests"]
    return {
        "requests": reqs, "requests_per_s": j["requests_per_s"],
        "mb_per_s": j["requests_per_s"] * 64 / 1e6, "duration_s": dur,
        "p50_us": None, "p99_us": None, "p999_us": None,
        # simple_load has no warmup and is not given the server's pid: the driver reads
        # the server's CPU around the whole generator process, connection setup included.
        "server_cpu_us_per_request": (1e6 * server_cpu / reqs) if server_cpu is not None and reqs else None,
        "server_cpu_percent": (100.0 * server_cpu / dur) if server_cpu is not None and dur else None,
        "generator_cpu_percent": 100.0 * gen_cpu / dur if dur else None,
        "errors": j.get("errors", 0), "errors_by_kind": {}, "interrupted": False, "raw": j,
    }


def parse_iperf3(out, gen_cpu, cpu0, cpu1):
    j = json.loads(out.decode("utf-8", "replace"))
    if j.get("error"):
        raise ValueError(j["error"])
    end = j["end"]
    recv = end["sum_received"]
    dur = recv["seconds"]
    reqs = recv["bytes"] / STREAM_MSG
    cpu = end.get("cpu_utilization_percent", {})
    server_pct = cpu.get("remote_total")
    return {
        "requests": reqs, "requests_per_s": reqs / dur if dur else 0.0,
        "mb_per_s": recv["bits_per_second"] / 8e6, "duration_s": dur,
        "p50_us": None, "p99_us": None, "p999_us": None,
        "server_cpu_us_per_request": (server_pct / 100.0 * dur * 1e6 / reqs) if server_pct is not None and reqs else None,
        "server_cpu_percent": server_pct,
        "generator_cpu_percent": cpu.get("host_total"),
        "errors": 0, "errors_by_kind": {}, "interrupted": False, "raw": j["end"],
    }


# ---------------------------------------------------------------------------------------
# Machine and versions.


def machine_info():
    info = {"cpu_model": "", "cores": os.cpu_count(), "kernel": platform.release(),
            "memory": "", "hostname": platform.node()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory"] = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
                    break
    except OSError:
        pass
    return info


def versions(driver):
    pyver = capture([PYTHON, "--version"])
    return {
        "gcc": capture(["gcc", "--version"]),
        "clang": capture(["clang", "--version"]),
        "sockit": capture([driver.sockit, "--version"]),
        "libuv": capture(["pkg-config", "--modversion", "libuv"]),
        "libevent": capture(["pkg-config", "--modversion", "libevent"]),
        "liburing": capture(["pkg-config", "--modversion", "liburing"]),
        "python": ("%s (%s)" % (pyver, PYTHON)) if pyver else "",
        "uvloop": capture([PYTHON, "-c", "import uvloop; print(uvloop.__version__)"]),
        "iperf3": capture(["iperf3", "--version"]),
        "gnuplot": capture(["gnuplot", "--version"]),
    }


# ---------------------------------------------------------------------------------------
# Summaries, report, charts.


def summarize(wl, runs):
    """One row per server of a workload: medians over its successful runs."""
    rows = []
    for srv in wl["servers"]:
        mine = [r for r in runs if r["workload"] == wl["id"] and r["server"] == srv["id"]]
        good = [r["result"] for r in mine if r["result"] is not None]
        row = {"server": srv["id"], "label": srv["label"], "runs": len(mine), "good": len(good),
               "statuses": [r["status"] for r in mine]}
        for key in ("requests_per_s", "mb_per_s", "p50_us", "p99_us", "p999_us",
                    "server_cpu_us_per_request", "server_cpu_percent", "generator_cpu_percent"):
            row[key] = median([g[key] for g in good])
        rps = [g["requests_per_s"] for g in good]
        row["rps_min"] = min(rps) if rps else None
        row["rps_max"] = max(rps) if rps else None
        row["errors"] = sum(g["errors"] for g in good)
        kinds = {}
        for g in good:
            for k, v in g["errors_by_kind"].items():
                kinds[k] = kinds.get(k, 0) + v
        row["errors_by_kind"] = kinds
        row["reasons"] = [r.get("reason") for r in mine if r.get("reason")]
        row["server_died"] = sum(1 for r in mine if r.get("server_died"))
        rows.append(row)
    base = next((r for r in rows if r["server"] == wl["baseline"]), None)
    base_rps = base["requests_per_s"] if base else None
    for row in rows:
        row["vs_baseline"] = (row["requests_per_s"] / base_rps
                              if base_rps and row["requests_per_s"] is not None else None)
    return rows


def backend_ratios(wl, rows):
    """sockit events on io_uring against the rows that say how good it is: the raw
    io_uring peer (the ceiling for that backend) and the same server on epoll. One entry
    per reference row present in this workload, with the ratio of the medians of req/s
    and of server CPU µs/req (None where either side has no figure)."""
    by_id = {r["server"]: r for r in rows}
    udp = events_id("uring", udp=True) in by_id
    mine = by_id.get(events_id("uring", udp))
    if mine is None:
        return []
    out = []
    for ref_id in (URING["id"], events_id("epoll", udp)):
        ref = by_id.get(ref_id)
        if ref is None:
            continue

        def ratio(key):
            a, b = mine[key], ref[key]
            return a / b if a is not None and b else None
        out.append({"server": mine["server"], "label": mine["label"], "reference": ref_id,
                    "reference_label": ref["label"], "rps_ratio": ratio("requests_per_s"),
                    "cpu_ratio": ratio("server_cpu_us_per_request")})
    return out


def backend_table(ratios):
    lines = ["| %s against | req/s ratio | server CPU µs/req ratio |" % ratios[0]["label"],
             "|---|---:|---:|"]
    for r in ratios:
        lines.append("| %s | %s | %s |" % (
            r["reference_label"],
            "%.2f×" % r["rps_ratio"] if r["rps_ratio"] is not None else "—",
            "%.2f×" % r["cpu_ratio"] if r["cpu_ratio"] is not None else "—"))
    return "\n".join(lines)


def notes(wl, row):
    out = []
    if not row["runs"]:
        return "not run (interrupted)"
    if all(s == "not built" for s in row["statuses"]):
        return "not built"
    failed = row["runs"] - row["good"]
    if failed:
        out.append("failed %d/%d" % (failed, row["runs"]))
    if row["server_died"]:
        out.append("server exited during %d run%s" % (row["server_died"], "" if row["server_died"] == 1 else "s"))
    gen, srv = row["generator_cpu_percent"], row["server_cpu_percent"]
    missed = (wl.get("rate") and row["requests_per_s"] is not None
              and row["requests_per_s"] < 0.95 * wl["rate"])
    # In open loop the generator keeps time closely whatever the load, so its CPU alone
    # says little: there it only limits the run if the offered rate was missed too.
    if (gen is not None and gen >= GEN_BOUND_GEN_PERCENT
            and (srv is None or srv < GEN_BOUND_SERVER_PERCENT)
            and (missed or not wl.get("rate"))):
        out.append("generator-bound")
    if missed:
        out.append("rate not reached")
    return ", ".join(out)


def errors_cell(row):
    if not row["good"]:
        return "—"
    if not row["errors"]:
        return "0"
    kinds = ", ".join("%s %s" % (k, f"{v:,}") for k, v in sorted(row["errors_by_kind"].items()))
    return f"{row['errors']:,}" + (" (%s)" % kinds if kinds else "")


def rps_cell(row, runs):
    if row["requests_per_s"] is None:
        return "—"
    cell = fmt_num(row["requests_per_s"])
    if runs > 1:
        cell += " (%s–%s)" % (fmt_num(row["rps_min"]), fmt_num(row["rps_max"]))
    return cell


def latency_cell(row):
    if row["p50_us"] is None:
        return "—"
    return "%s / %s / %s" % (fmt_sig(row["p50_us"]), fmt_sig(row["p99_us"]), fmt_sig(row["p999_us"]))


def table(wl, rows, repeats):
    base_label = next((s["label"] for s in wl["servers"] if s["id"] == wl["baseline"]), "epoll")
    vs = "vs epoll" if wl["baseline"] == "epoll" else "vs " + base_label
    lines = ["| server | req/s median (min–max) | %s | MB/s | p50 / p99 / p99.9 µs | "
             "server CPU µs/req | generator CPU %% | errors | note |" % vs,
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        ratio = "%.2f×" % row["vs_baseline"] if row["vs_baseline"] is not None else "—"
        mb = fmt_sig(row["mb_per_s"]) if row["mb_per_s"] is not None else "—"
        gen = fmt_num(row["generator_cpu_percent"]) if row["generator_cpu_percent"] is not None else "—"
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            row["label"], rps_cell(row, repeats), ratio, mb, latency_cell(row),
            fmt_sig(row["server_cpu_us_per_request"]), gen, errors_cell(row), notes(wl, row)))
    return "\n".join(lines)


def gnuplot_terminal():
    if shutil.which("gnuplot") is None:
        return None
    for term in ("pngcairo", "png"):
        try:
            p = subprocess.run(["gnuplot", "-e", "set terminal %s" % term],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.SubprocessError):
            continue
        if p.returncode == 0:
            return term
    return None


def gp_quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_gnuplot(script, workdir):
    path = os.path.join(workdir, "chart.gp")
    with open(path, "w") as f:
        f.write(script)
    try:
        p = subprocess.run(["gnuplot", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30, cwd=workdir)
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    return None if p.returncode == 0 else tail(p.stderr, 300)


def charts(out_dir, term, summaries, wls, workdir):
    """Writes the PNG charts; returns [(file, caption)] and a list of problems."""
    made, problems = [], []
    header = ("set terminal %s size 1000,600 font ',11'\nset grid\nset key outside right top\n"
              % term)

    # Throughput vs connections: one line per server over the echo 64 B workloads.
    tp = [w for w in wls if w["chart"] == "throughput"]
    series = {}
    for w in sorted(tp, key=lambda w: w["conns"]):
        for row in summaries[w["id"]]:
            if row["requests_per_s"] is not None:
                series.setdefault(row["label"], []).append((w["conns"], row["requests_per_s"]))
    if series:
        dat = os.path.join(workdir, "throughput.dat")
        with open(dat, "w") as f:
            for points in series.values():
                for c, v in points:
                    f.write("%d %g\n" % (c, v))
                f.write("\n\n")
        plots = ["'%s' index %d using 1:2 with linespoints lw 2 title %s" % (dat, i, gp_quote(label))
                 for i, label in enumerate(series)]
        png = os.path.join(out_dir, "throughput_vs_connections.png")
        err = run_gnuplot(header + "set output %s\nset logscale x\nset xrange [0.7:15000]\n"
                          "set xlabel 'connections'\nset ylabel 'messages/s'\nset yrange [0:*]\n"
                          "set title 'Echo 64 B, closed loop: messages/s vs connections'\n"
                          "plot %s\n" % (gp_quote(png), ", ".join(plots)), workdir)
        if err:
            problems.append("throughput_vs_connections.png: " + err)
        else:
            made.append(("throughput_vs_connections.png", "Echo 64 B msgs/s vs connections"))

    # Latency percentiles at the fixed rate, and connect rate: bar charts.
    for kind, name, title, cols in (
            ("latency", "latency_fixed_rate.png",
             "Echo 64 B at %s msg/s: latency percentiles (µs, log scale)" % f"{FIXED_RATE:,}",
             ("p50_us", "p99_us", "p999_us")),
            ("connect", "connect_rate.png", "One-shot connections per second",
             ("requests_per_s",))):
        wl = next((w for w in wls if w["chart"] == kind), None)
        if wl is None:
            continue
        rows = [r for r in summaries[wl["id"]] if all(r[c] is not None for c in cols)]
        if not rows:
            continue
        dat = os.path.join(workdir, kind + ".dat")
        with open(dat, "w") as f:
            for r in rows:
                f.write("%s %s\n" % (gp_quote(r["label"]), " ".join("%g" % r[c] for c in cols)))
        png = os.path.join(out_dir, name)
        if kind == "latency":
            body = ("set logscale y\nset ylabel 'µs'\nset yrange [1:*]\n"
                    "plot '%s' using 2:xtic(1) title 'p50', '' using 3 title 'p99', "
                    "'' using 4 title 'p99.9'\n" % dat)
        else:
            body = ("set ylabel 'connections/s'\nset yrange [0:*]\nset key off\n"
                    "plot '%s' using 2:xtic(1) title 'connections/s'\n" % dat)
        err = run_gnuplot(header + "set output %s\nset title %s\nset style data histograms\n"
                          "set style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
                          "set boxwidth 0.9\nset xtics rotate by -30\nset bmargin 7\n%s"
                          % (gp_quote(png), gp_quote(title), body), workdir)
        if err:
            problems.append(name + ": " + err)
        else:
            made.append((name, title))
    return made, problems


def write_report(path, meta, cfg, wls, summaries, runs, chart_files, chart_note):
    L = []
    L.append("# sockit benchmark report")
    L.append("")
    L.append("Generated %s by `bench/run_bench.py`%s. Raw runs: [results.json](results.json)."
             % (meta["date"], " (quick variant)" if cfg["quick"] else ""))
    L.append("")
    m = meta["machine"]
    L.append("## Machine")
    L.append("")
    L.append("- CPU: %s, %s cores" % (m["cpu_model"] or "unknown", m["cores"]))
    L.append("- kernel: Linux %s" % m["kernel"])
    L.append("- memory: %s" % (m["memory"] or "unknown"))
    L.append("")
    L.append("## Versions")
    L.append("")
    for k, v in meta["versions"].items():
        L.append("- %s: %s" % (k, v or "not found"))
    L.append("")
    L.append("## Method")
    L.append("")
    if cfg["pinned"]:
        L.append("- Server pinned to core %s, load generator to core %s (`taskset -c`)."
                 % (SERVER_CORE, GENERATOR_CORE))
    else:
        L.append("- **Not pinned**: this machine has %s core(s) (or no taskset), so server and "
                 "generator share the CPU; absolute figures are low and noisy." % m["cores"])
    L.append("- Each pair ran %d time%s, interleaved (for each repeat: for each workload: "
             "for each server), so drift spreads over all servers alike." %
             (cfg["repeats"], "" if cfg["repeats"] == 1 else "s"))
    L.append("- Each run: %g s measured after a %g s warmup (%g s more at ≥1,000 connections, "
             "to keep connection setup out of the window); the medians, min and max are over "
             "the repeats." % (cfg["duration"], cfg["warmup"], 1.0))
    L.append("- Generator: `sockit bench --json --server-pid PID`, which reads the server's CPU "
             "time (all threads and children) from /proc over exactly the measured window.")
    L.append("- Python peers run on %s. The whole run took %s." % (PYTHON, fmt_duration(meta["wall_s"])))
    L.append("- Reproduce: `make %s`." % ("bench-quick" if cfg["quick"] else "bench"))
    if cfg["interrupted"]:
        L.append("- **Interrupted** after %d of %d runs: rows marked *not run* have no data."
                 % (len(runs), cfg["planned_runs"]))
    if cfg["only"]:
        L.append("- Only pairs matching `%s` were run." % cfg["only"])
    L.append("")

    failures = {}
    for wl in wls:
        if wl["id"] == "gencheck":
            continue
        rows = summaries[wl["id"]]
        L.append("## %s" % wl["title"])
        L.append("")
        L.append(wl["what"][0].upper() + wl["what"][1:])
        L.append("Generator arguments: `%s`." % " ".join(shell_word(a) for a in wl["args"]))
        L.append("")
        L.append(table(wl, rows, cfg["repeats"]))
        L.append("")
        ratios = backend_ratios(wl, rows)
        if ratios:
            L.append(backend_table(ratios))
            L.append("")
        for row in rows:
            for reason in sorted(set(row["reasons"])):
                if row["statuses"] and not all(s == "not built" for s in row["statuses"]):
                    failures.setdefault((row["label"], reason), []).append(wl["id"])

    gc = next((w for w in wls if w["id"] == "gencheck"), None)
    if gc is not None:
        L.append("## Generator check")
        L.append("")
        L.append("The fastest peer (raw epoll, echo 64 B, 100 connections) measured with "
                 "`sockit bench` and with simple_load, a deliberately plain blocking "
                 "thread-per-connection C client. If `sockit bench` were the bottleneck, the "
                 "plain client would get more out of the same server.")
        L.append("")
        L.append("| generator | req/s median (min–max) | generator CPU % | server CPU % | errors |")
        L.append("|---|---:|---:|---:|---:|")
        rows = summaries[gc["id"]]
        for row in rows:
            L.append("| %s | %s | %s | %s | %s |" % (
                row["label"], rps_cell(row, cfg["repeats"]),
                fmt_num(row["generator_cpu_percent"]), fmt_num(row["server_cpu_percent"]),
                errors_cell(row) if row["good"] else (notes(gc, row) or "—")))
        L.append("")
        by_id = {r["server"]: r for r in rows}
        a = by_id.get("epoll", {}).get("requests_per_s")
        b = by_id.get("epoll-simple_load", {}).get("requests_per_s")
        if a and b:
            verdict = ("`sockit bench` drove the server at %.2f× simple_load's rate" % (a / b))
            if a >= b:
                verdict += ", so it is not what limits the figures above"
            else:
                verdict += ": here the plain client got more, so treat `sockit bench`'s " \
                           "figures for the fastest servers as a lower bound"
            srv = by_id["epoll"]["server_cpu_percent"]
            if srv is not None:
                verdict += "; the server used %s%% of its core meanwhile" % fmt_num(srv)
            L.append(verdict + ". simple_load has no warmup and its server CPU is read "
                     "around its whole run, connection setup included.")
        else:
            L.append("One of the two generators produced no result (see failures below).")
        L.append("")

    L.append("## Charts")
    L.append("")
    if chart_files:
        for name, caption in chart_files:
            L.append("![%s](%s)" % (caption, name))
            L.append("")
    if chart_note:
        L.append(chart_note)
        L.append("")

    L.append("## How to read this")
    L.append("")
    L.append("- **req/s** is the median over the repeats, with the slowest and fastest repeat "
             "in brackets; a wide bracket means a noisy machine, not a slow server. **vs epoll** "
             "divides by the raw epoll server's median in the same workload of the same run "
             "(for UDP, the raw recvfrom/sendto loop): the syscall floor a library cannot beat "
             "by much.")
    L.append("- **sockit events** runs twice, once per loop backend (`SOCKIT_LOOP_BACKEND=epoll` "
             "and `=uring`, set for the server process only). Under a workload's table, the "
             "io_uring row's medians are divided by those of the raw io_uring peer (the ceiling "
             "for that backend) and of the same server on epoll: above 1× is more req/s, or "
             "more server CPU per request.")
    L.append("- In closed loop, every good server sits near the floor, because a 64-byte "
             "loopback round trip is mostly kernel time. The fixed-rate table separates them "
             "better: at equal offered load, **server CPU µs/req** is what each message costs "
             "the server (kernel time included), and p99/p99.9 show how it copes with bursts.")
    L.append("- **generator CPU %%** is `sockit bench`'s own CPU over the window (100 = one "
             "core). *generator-bound* marks a run where the generator used ≥%d%% of its core "
             "while the server used <%d%% of its own: that row measures the generator, not the "
             "server. At a fixed rate the generator's CPU stays high whatever the server does "
             "(it keeps time closely), so there the flag also needs the rate to be missed." %
             (GEN_BOUND_GEN_PERCENT, GEN_BOUND_SERVER_PERCENT))
    L.append("- **errors** add up over all repeats, by kind (connect, reset, closed, corrupt, "
             "timeout, other). A server that cannot keep up (Python threads at 10,000 "
             "connections) shows timeouts and connect errors: that is a result, not a driver "
             "failure. *failed* runs produced no result at all; their reasons are below.")
    L.append("- MB/s is what came back (echo, UDP, connect) or what was written (stream); "
             "MB = 10⁶ bytes.")
    L.append("")
    if failures:
        L.append("## Failed runs")
        L.append("")
        for (label, reason), where in failures.items():
            L.append("- %s (%s): %s" % (label, ", ".join(where), reason.replace("\n", " ⏎ ")))
        L.append("")
    not_built = sorted({r["label"] + " (" + r.get("reason", "") + ")"
                        for r in runs if r["status"] == "not built"})
    if not_built:
        L.append("Not built, so not measured: " + "; ".join(not_built) + ".")
        L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def shell_word(word):
    return word if re.fullmatch(r"[\w@%+=:,./-]+", word) else "'" + word.replace("'", "'\\''") + "'"


# ---------------------------------------------------------------------------------------


def progress_line(rec):
    r = rec["result"]
    if rec["status"] == "not built":
        return "not built (%s)" % rec.get("reason", "")
    if r is None:
        return "FAILED: %s" % (rec.get("reason") or "")[:200].replace("\n", " ")
    parts = ["%s req/s" % fmt_num(r["requests_per_s"])]
    if r["p99_us"] is not None:
        parts.append("p99 %s µs" % fmt_sig(r["p99_us"]))
    if r["server_cpu_percent"] is not None:
        parts.append("server %s%% CPU" % fmt_num(r["server_cpu_percent"]))
    if r["generator_cpu_percent"] is not None:
        parts.append("generator %s%%" % fmt_num(r["generator_cpu_percent"]))
    parts.append("errors %s" % f"{r['errors']:,}")
    return ", ".join(parts)


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Run sockit's benchmarks and write the report.")
    ap.add_argument("--build", required=True, help="build directory (holds sockit and bench/)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer workloads, 1 repeat, 1 s runs (under 2 minutes)")
    ap.add_argument("--repeats", type=int, help="runs of each pair (default 3; quick 1)")
    ap.add_argument("--duration", type=float, help="measured seconds per run (default 3; quick 1)")
    ap.add_argument("--warmup", type=float, help="warmup seconds per run (default 0.5; quick 0.3)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"),
                    help="output directory (default bench/results)")
    ap.add_argument("--only", default="",
                    help="run only pairs whose 'workload/server' id contains this "
                         "(or any of several, separated by commas)")
    ap.add_argument("--peers", default=os.path.join(HERE, "peers"),
                    help="directory of the Python peers (default bench/peers)")
    args = ap.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.duration is None:
        args.duration = 1.0 if args.quick else 3.0
    if args.warmup is None:
        args.warmup = 0.3 if args.quick else 0.5
    if args.repeats < 1 or args.duration <= 0 or args.warmup < 0:
        ap.error("--repeats must be >= 1, --duration > 0, --warmup >= 0")
    if not os.path.isdir(args.build):
        ap.error("--build %s: not a directory" % args.build)
    return args


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv):
    args = parse_args(argv)
    # SIGTERM, and SIGINT even when started in the background with it ignored, end the
    # runs early: the children are stopped and the report covers what ran.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    nofile = raise_nofile()
    wls = [w for w in workloads() if w["quick"] or not args.quick]
    plan = []
    for rep in range(1, args.repeats + 1):
        for wl in wls:
            for srv in wl["servers"]:
                pair = "%s/%s" % (wl["id"], srv["id"])
                if any(o in pair for o in args.only.split(",")):
                    plan.append((wl, srv, rep))
    if not plan:
        print("run_bench: no pair matches --only %r" % args.only, file=sys.stderr)
        return 2
    wls = [w for w in wls if any(p[0] is w for p in plan)]
    for wl in wls:
        wl["servers"] = [s for s in wl["servers"] if any(p[0] is wl and p[1] is s for p in plan)]

    driver = Driver(args)
    os.makedirs(args.out, exist_ok=True)
    started = time.monotonic()
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    print("run_bench: %d runs (%d repeat%s, %g s each + %g s warmup), %s; fd limit %s; output in %s"
          % (len(plan), args.repeats, "" if args.repeats == 1 else "s", args.duration,
             args.warmup, "server on core 0, generator on core 1" if driver.pin
             else "not pinned (fewer than 2 cores or no taskset)", nofile[0], args.out), flush=True)
    runs = []
    interrupted = False
    try:
        for i, (wl, srv, rep) in enumerate(plan, 1):
            rec = driver.run_pair(wl, srv, rep)
            runs.append(rec)
            elapsed = time.monotonic() - started
            timed = [r["wall_s"] for r in runs if "wall_s" in r]
            per_run = (sum(timed) / len(timed)) if timed else (args.duration + args.warmup + 0.5)
            eta = per_run * (len(plan) - i)
            print("[%*d/%d %s, ETA %s] %s · %s · rep %d: %s" % (
                len(str(len(plan))), i, len(plan), fmt_duration(elapsed), fmt_duration(eta),
                wl["id"], srv["label"], rep, progress_line(rec)), flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("run_bench: interrupted; writing the report of what ran", file=sys.stderr)
    wall = time.monotonic() - started

    meta = {"date": date, "wall_s": wall, "machine": machine_info(), "versions": versions(driver),
            "nofile_limit": nofile[0]}
    cfg = {"quick": args.quick, "repeats": args.repeats, "duration": args.duration,
           "warmup": args.warmup, "pinned": driver.pin, "only": args.only,
           "build": driver.build, "argv": sys.argv, "planned_runs": len(plan),
           "interrupted": interrupted}
    summaries = {wl["id"]: summarize(wl, runs) for wl in wls}

    chart_files, chart_note = [], ""
    term = gnuplot_terminal()
    if term is None:
        chart_note = "gnuplot (with a png or pngcairo terminal) was not found: no charts."
    else:
        chart_files, problems = charts(args.out, term, summaries, wls, driver.tmp)
        if problems:
            chart_note = "Chart problems: " + "; ".join(problems)
    write_report(os.path.join(args.out, "REPORT.md"), meta, cfg, wls, summaries, runs,
                 chart_files, chart_note)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "config": cfg,
                   "workloads": [dict(w, servers=[s["id"] for s in w["servers"]]) for w in wls],
                   "summary": summaries,
                   "backend_ratios": {wl["id"]: backend_ratios(wl, summaries[wl["id"]])
                                      for wl in wls},
                   "runs": runs}, f, indent=1)
    driver.cleanup()
    print("run_bench: wrote %s (and results.json, %d chart%s) in %s" % (
        os.path.join(args.out, "REPORT.md"), len(chart_files), "" if len(chart_files) == 1 else "s",
        fmt_duration(wall)), flush=True)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
