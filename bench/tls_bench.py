#!/usr/bin/env python3
"""TLS servers side by side: sockit's event server and blocking server beside the
peers a user would pick (socat and ncat with their TLS options, Python's asyncio with
ssl), each with its plaintext twin, on one self-signed ECDSA P-256 certificate.

Workloads (`sockit bench`, pinned to core 1; every server, and everything it forks,
on core 0):
  - echo 64 B over 100 connections and 16 KiB over 10, TLS and plaintext;
  - full handshakes/s: `--mode connect --no-resume` over 50 clients (connect, TLS
    handshake, send, read until the server closes), against a one-shot server;
  - resumed handshakes/s: `--mode connect` with resumption on;
  - the plaintext connect rate, the twin both handshake rows are divided by.
For each repeat, for each workload, for each server (interleaved), one generator run;
the table gives the medians over the repeats: req/s, server CPU µs per request (the
server's processes and all their descendants, live and reaped, from /proc over the
measured window) and TLS req/s over plaintext req/s, then how the goals of the TLS
work stand (full handshakes and 64 B echo >= 1.5x asyncio+ssl, 16 KiB echo >= 1.0x
ncat and socat). The kernel's TLS offload (kTLS) is one row
saying whether this kernel has the `tls` upper-layer protocol at all.

Servers:
  - sockit events (epoll) and (uring): `sockit echo [--tls]` for the echo workloads
    and bench/sockit_server --server events --mode oneshot for the connect ones
    (sockit echo never closes a connection), SOCKIT_LOOP_BACKEND set in the server's
    environment;
  - sockit blocking (threads): bench/sockit_server --server threads [--cert --key],
    a thread per connection, blocking handler code (echo, or oneshot);
  - sockit tcp-server (sequential): the CLI's reference server
    (`sockit tcp-server --tls`), one client at a time; connect workloads only;
  - socat: `-b65536 OPENSSL-LISTEN:PORT,fork,reuseaddr,backlog=4096,cert,key,verify=0`
    (plaintext: `TCP-LISTEN`) relaying to the raw epoll peer (bench/epoll_server,
    echo or oneshot), a forked socat per connection (`EXEC:cat` would add a cat per
    connection); its CPU counts socat's process tree and the epoll peer. -b65536
    because the default 8 KiB transfer makes every 16 KiB reply wait for the client's
    delayed ACK (about 200 req/s); backlog=4096 as every bench peer has (socat's 5
    drops connects at 100 at once);
  - ncat: `ncat --ssl --ssl-cert --ssl-key -l -k -m 1000 --exec /bin/cat` (one-shot:
    `--exec '/usr/bin/head -c 13'`, which sends the 13-byte request back and exits,
    so ncat closes). ncat has no echo or relay of its own: a child per connection is
    the cheapest it gets (relaying to the epoll peer through `--exec 'ncat HOST
    PORT'` costs an ncat start per connection and measured far slower). Its listen
    backlog is 10, with no option to raise it, and it relays 8 KiB at a time without
    TCP_NODELAY: what a user of ncat gets;
  - asyncio+ssl: bench/peers/python_asyncio_server.py --cert --key
    (asyncio.start_server(ssl=SSLContext(PROTOCOL_TLS_SERVER))) on /usr/bin/python3.

Every run is bounded (TLS_BENCH_DURATION seconds measured, default 3, after
TLS_BENCH_WARMUP, default 0.5; a timeout on every child); every server is checked to
accept (a TLS handshake for TLS servers) before the generator starts, and killed with
its process group after the run, also on Ctrl-C.

    python3 bench/tls_bench.py BUILD_DIR [REPEATS]
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build/plain"
REPEATS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
DURATION = float(os.environ.get("TLS_BENCH_DURATION", "3"))
WARMUP = float(os.environ.get("TLS_BENCH_WARMUP", "0.5"))
GEN_TIMEOUT = 5  # sockit bench --timeout: a forking server's slow accept is no error
HERE = os.path.dirname(os.path.abspath(__file__))
SOCKIT = os.path.join(BUILD, "sockit")
PEER = os.path.join(BUILD, "bench")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
HS_CLIENTS = "50"

# (key, TLS?, server kind, generator arguments), in the order they run.
LOADS = [
    ("e64", True, "echo", ["-c", "100", "-m", "64"]),
    ("e64 plain", False, "echo", ["-c", "100", "-m", "64"]),
    ("e16k", True, "echo", ["-c", "10", "-m", "16384"]),
    ("e16k plain", False, "echo", ["-c", "10", "-m", "16384"]),
    ("full", True, "oneshot", ["--mode", "connect", "--no-resume", "-c", HS_CLIENTS]),
    ("resumed", True, "oneshot", ["--mode", "connect", "-c", HS_CLIENTS]),
    ("connect plain", False, "oneshot", ["--mode", "connect", "-c", HS_CLIENTS]),
]
# Rows of the table: the TLS key, its label and the key of its plaintext twin.
ROWS = [("e64", "echo 64 B, 100 connections", "e64 plain"),
        ("e16k", "echo 16 KiB, 10 connections", "e16k plain"),
        ("full", "full handshakes/s, %s clients" % HS_CLIENTS, "connect plain"),
        ("resumed", "resumed handshakes/s, %s clients" % HS_CLIENTS, "connect plain")]
SERVERS = ["sockit events (epoll)", "sockit events (uring)", "sockit blocking (threads)",
           "sockit tcp-server (sequential)", "socat", "ncat", "asyncio+ssl"]
ONESHOT_ONLY = {"sockit tcp-server (sequential)"}

CERT = KEY = None
LOGDIR = None
negotiated = {}  # server -> "TLSv1.3 TLS_AES_256_GCM_SHA384"
resumes = {}  # server -> True/False: did a second connection resume the session


def ticks_of_tree(pids):
    """CPU of the processes pids and of all their descendants, in clock ticks: for each
    live one utime + stime (all its threads) + cutime + cstime (the children it has
    reaped), so each tick is counted once, in the one live process that holds it.
    ncat's grandchildren (ncat -> a forked ncat per connection -> cat) included."""
    total, todo, seen = 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, IndexError, ValueError):
            pass  # it ended meanwhile: its ticks are in its parent's cutime now
    return total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_context():
    return ssl.create_default_context(cafile=CERT)


def ready(port, tls, server, secs=5):
    """Waits until 127.0.0.1:port accepts (and, for TLS, completes a verified
    handshake); records what was negotiated. True when it did within secs."""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            time.sleep(0.02)
            continue
        try:
            if tls:
                with client_context().wrap_socket(s, server_hostname="127.0.0.1") as t:
                    negotiated[server] = "%s %s" % (t.version(), t.cipher()[0])
            return True
        except (OSError, ssl.SSLError):
            time.sleep(0.05)
        finally:
            s.close()
    return False


def probe_resumption(port):
    """One-shot exchange, then a second connection offering the session: whether the
    server resumed it (TLS 1.3 tickets come after the handshake: read to the end)."""
    ctx = client_context()
    session = None
    for attempt in range(2):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                with ctx.wrap_socket(s, server_hostname="127.0.0.1", session=session) as t:
                    t.sendall(b"Hello server!")
                    while True:
                        try:
                            if not t.recv(4096):
                                break
                        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                            break
                    if attempt == 1:
                        return t.session_reused
                    session = t.session
        except (OSError, ssl.SSLError):
            return None
    return None


def start(cmd, name, env=None):
    """Starts cmd on core 0 in a process group of its own, stderr to a log file. A
    thread reads its stdout to the end (tcp-server prints a line per client: a full
    pipe would stall it) and keeps the first line, the peer convention's
    "Listening on HOST:PORT"."""
    log = open(os.path.join(LOGDIR, re.sub(r"\W+", "_", name) + ".err"), "ab")
    try:
        proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.PIPE,
                                stderr=log, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    finally:
        log.close()
    proc.first_line, proc.announced = b"", threading.Event()

    def drain():
        with proc.stdout:
            for line in proc.stdout:
                if not proc.announced.is_set():
                    proc.first_line = line
                    proc.announced.set()
        proc.announced.set()

    proc.drainer = threading.Thread(target=drain, daemon=True)
    proc.drainer.start()
    return proc


def announced_port(proc, secs=5):
    """The port of the first line, "Listening on HOST:PORT" (None: none in secs)."""
    proc.announced.wait(secs)
    m = re.search(rb"Listening on \S+:(\d+)", proc.first_line)
    return int(m.group(1)) if m else None


def stop(proc):
    """SIGTERM to the process group, SIGKILL after 5 s; then SIGKILL to whatever is
    left in the group (socat's and ncat's children)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()
    proc.drainer.join(timeout=5)


def launch(server, kind, tls, procs):
    """Starts server's processes (into procs, the one the generator talks to first).
    Returns the port to connect to (None: no "Listening on" line)."""
    cert = ["--cert", CERT, "--key", KEY] if tls else []
    if server.startswith("sockit events"):
        env = dict(os.environ, SOCKIT_LOOP_BACKEND=re.search(r"\((\w+)\)", server).group(1))
        if kind == "echo":
            cmd = [SOCKIT, "echo"] + (["--tls"] + cert if tls else []) + ["127.0.0.1", "0"]
        else:
            cmd = [os.path.join(PEER, "sockit_server"), "--server", "events", "--mode",
                   "oneshot", "--port", "0"] + cert
        procs.append(start(cmd, server, env))
        return announced_port(procs[-1])
    if server.startswith("sockit blocking"):
        procs.append(start([os.path.join(PEER, "sockit_server"), "--server", "threads",
                            "--mode", kind, "--port", "0"] + cert, server))
        return announced_port(procs[-1])
    if server.startswith("sockit tcp-server"):
        procs.append(start([SOCKIT, "tcp-server", "--host", "127.0.0.1", "--port", "0"]
                           + (["--tls"] + cert if tls else []), server))
        return announced_port(procs[-1])
    if server == "asyncio+ssl":
        procs.append(start([PYTHON, os.path.join(HERE, "peers", "python_asyncio_server.py"),
                            "--mode", kind, "--port", "0"] + cert, server))
        return announced_port(procs[-1])
    port = free_port()
    if server == "socat":
        echo = start([os.path.join(PEER, "epoll_server"), "--mode", kind, "--port", "0"],
                     "epoll_server")
        procs.append(echo)
        echo_port = announced_port(echo)
        if echo_port is None:
            return None
        # -b65536: socat's default 8 KiB transfer sends a 16 KiB reply as two writes,
        # and Nagle holds the second until the client's delayed ACK (~200 req/s).
        # backlog=4096: as every bench peer (socat's default, 5, drops connects).
        listen = "%s:%d,fork,reuseaddr,backlog=4096,bind=127.0.0.1" % (
            "OPENSSL-LISTEN" if tls else "TCP-LISTEN", port)
        if tls:
            listen += ",cert=%s,key=%s,verify=0" % (CERT, KEY)
        procs.insert(0, start(["socat", "-b65536", listen, "TCP:127.0.0.1:%d" % echo_port],
                              server))
        return port
    if server == "ncat":
        ssl_opts = ["--ssl", "--ssl-cert", CERT, "--ssl-key", KEY] if tls else []
        child = "/bin/cat" if kind == "echo" else "/usr/bin/head -c 13"
        procs.append(start(["ncat"] + ssl_opts + ["-l", "-k", "-m", "1000", "127.0.0.1",
                                                  str(port), "--exec", child], server))
        return port
    raise ValueError(server)


def last_line(server):
    try:
        with open(os.path.join(LOGDIR, re.sub(r"\W+", "_", server) + ".err"), "rb") as f:
            lines = f.read().decode(errors="replace").strip().splitlines()
        return lines[-1][:120] if lines else ""
    except OSError:
        return ""


def one(server, kind, tls, args, key):
    """One generator run: a dict of req/s, cpu (server µs/req), gen (generator CPU %),
    srv (server CPU %), errors (by kind), or {"failed": why}."""
    procs, gen = [], None
    try:
        port = launch(server, kind, tls, procs)
        if port is None or not ready(port, tls, server):
            return {"failed": "not listening: %s" % (last_line(server) or "no output")}
        if key == "resumed":
            resumes[server] = probe_resumption(port)
        cmd = ["taskset", "-c", "1", SOCKIT, "bench", "--json", "-d", "%g" % DURATION,
               "--warmup", "%g" % WARMUP, "--timeout", str(GEN_TIMEOUT), "--server-pid",
               str(procs[0].pid)] + (["--tls", "--ca", CERT] if tls else []) + args + [
                   "127.0.0.1", str(port)]
        # The server side's CPU over the measured window, read here rather than by the
        # generator's --server-pid (which misses live grandchildren and other
        # processes): from the end of the warmup to the end of the duration.
        pids = [p.pid for p in procs]
        begun = time.monotonic()
        gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True)
        time.sleep(max(0.0, begun + WARMUP - time.monotonic()))
        t0 = ticks_of_tree(pids)
        time.sleep(max(0.0, begun + WARMUP + DURATION - time.monotonic()))
        t1 = ticks_of_tree(pids)
        try:
            out, err = gen.communicate(timeout=2 * GEN_TIMEOUT + 30)
        except subprocess.TimeoutExpired:
            return {"failed": "generator timed out"}
        try:
            res = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            why = (err.strip().splitlines() or ["exit %d" % gen.returncode])[-1]
            return {"failed": "generator: %s" % why[:120]}
        rps = res["requests_per_s"]
        if not rps:
            return {"failed": "no request answered (%d errors; server: %s)" % (
                res.get("errors", 0), last_line(server) or "nothing on stderr")}
        cpu_s = (t1 - t0) / os.sysconf("SC_CLK_TCK")
        errors = {k[len("errors_"):]: v for k, v in res.items()
                  if k.startswith("errors_") and v}
        return {"rps": rps, "cpu": cpu_s * 1e6 / (rps * DURATION),
                "gen": res.get("cpu_percent"), "srv": cpu_s / DURATION * 100,
                "errors": errors, "p50": res.get("latency_us_p50"),
                "gen_server_cpu_s": res.get("server_cpu_s")}
    finally:
        if gen is not None and gen.poll() is None:
            gen.kill()
            gen.wait()
        for proc in procs:
            stop(proc)


def make_cert(tmp):
    """A self-signed ECDSA P-256 pair: `sockit tls-cert`, or the openssl CLI."""
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    try:
        r = subprocess.run([SOCKIT, "tls-cert", "--out", tmp], capture_output=True, timeout=30)
        if r.returncode == 0 and os.path.exists(cert) and os.path.exists(key):
            return cert, key, "`sockit tls-cert`"
    except (OSError, subprocess.TimeoutExpired):
        pass
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key, "the openssl CLI (`sockit tls-cert` failed)"


def ktls():
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            ulps = f.read().strip()
    except OSError as e:
        return "unavailable: cannot read tcp_available_ulp (%s)" % e.strerror
    if "tls" in ulps.split():
        return ("not measured: the kernel offers the tls ULP (tcp_available_ulp: %s), but "
                "sockit keeps TLS records in user space" % ulps)
    return "unavailable: this kernel has no tls ULP (tcp_available_ulp: %s)" % (
        ulps or "empty")


def unavailable(server, kind):
    """Why server cannot run kind here (a program not installed or not built), or None."""
    need = {"socat": ["socat", os.path.join(PEER, "epoll_server")], "ncat": ["ncat"],
            "asyncio+ssl": [PYTHON]}.get(server, [SOCKIT])
    if server.startswith("sockit") and not (kind == "echo" and "events" in server) and (
            "tcp-server" not in server):
        need = [os.path.join(PEER, "sockit_server")]
    absent = [n for n in need if not shutil.which(n)]
    return "not installed or not built: %s" % ", ".join(absent) if absent else None


def main():
    global CERT, KEY, LOGDIR
    # SIGTERM (timeout(1), make's own end) unwinds like Ctrl-C: every finally runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="tls_bench.")
    LOGDIR = tmp
    runs = {}
    try:
        CERT, KEY, made_by = make_cert(tmp)
        for r in range(REPEATS):
            for key, tls, kind, args in LOADS:
                for server in SERVERS:
                    if kind == "echo" and server in ONESHOT_ONLY:
                        continue
                    why = unavailable(server, kind)
                    got = {"failed": why} if why else one(server, kind, tls, args, key)
                    runs.setdefault((key, server), []).append(got)
                    print("rep %d %s / %s: %s" % (r + 1, key, server, got), file=sys.stderr)
        report(runs, made_by)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def med(runs, key, server, field):
    vals = [g[field] for g in runs.get((key, server), []) if field in g and g[field] is not None]
    return statistics.median(vals) if vals else None


def python_version():
    try:
        r = subprocess.run([PYTHON, "--version"], capture_output=True, text=True, timeout=10)
        return "%s, %s" % (PYTHON, r.stdout.strip() or r.stderr.strip())
    except (OSError, subprocess.TimeoutExpired):
        return PYTHON


def errors_text(runs):
    total = {}
    for g in runs:
        for kind, n in g.get("errors", {}).items():
            total[kind] = total.get(kind, 0) + n
    return ", ".join("%d %s" % (n, k) for k, n in sorted(total.items())) or "0"


def cpu_text(cpu, rps):
    """µs per request; no tick in the window is "< one tick's worth", not 0."""
    if cpu is None:
        return "—"
    if cpu == 0 and rps:
        return "< %.0f" % (1e6 / os.sysconf("SC_CLK_TCK") / (rps * DURATION))
    return "%.1f" % cpu


def report(runs, made_by):
    print("TLS servers beside their plaintext twins, on one self-signed ECDSA P-256 "
          "certificate made by %s, which the generator verifies (`--ca`). Servers: "
          "sockit's event server (`sockit echo --tls`; for the connect workloads "
          "`bench/sockit_server --server events --mode oneshot`, as `sockit echo` never "
          "closes), on the epoll and on the uring backend; sockit's blocking server "
          "(`bench/sockit_server --server threads`, a thread per connection); the CLI's "
          "sequential `sockit tcp-server --tls` (connect workloads only); socat "
          "(`-b65536 OPENSSL-LISTEN:PORT,fork,reuseaddr,backlog=4096,cert,key,verify=0` "
          "relaying to the raw epoll echo or oneshot peer, a forked socat per connection; "
          "the epoll peer's CPU is counted in; with socat's default 8 KiB buffer a 16 KiB "
          "reply waits for the client's delayed ACK, about 200 req/s); ncat (`--ssl -l -k "
          "-m 1000 --exec /bin/cat`, one-shot `--exec 'head -c 13'`, which sends the "
          "request back and exits: ncat has no echo or relay of its own, so a forked ncat "
          "and a child program per connection is its cheapest; it listens with a backlog "
          "of 10 and has no option to change it, and writes 8 KiB at a time without "
          "TCP_NODELAY); Python asyncio streams with ssl (%s). Servers and everything "
          "they fork on core 0, `sockit bench` on core 1; medians of %d interleaved runs "
          "of %g s after %g s of warmup (`bench/tls_bench.py BUILD %d`). Full "
          "handshakes: `--mode connect --no-resume` (the client keeps no session); "
          "resumed: `--mode connect` (the note says whether a probe's second connection "
          "resumed); both are divided by the same server's plaintext connect rate. "
          "Server CPU: the server's processes and all their descendants, live and "
          "reaped, over the measured window (/proc). Errors: summed over the TLS runs / "
          "the plaintext twin's runs, by kind. *generator-bound*: the generator used "
          ">= 90%% of its core while the server used < 85%% of its own; the req/s is then "
          "the generator's ceiling, and server CPU per request is the figure to "
          "compare.\n" % (made_by, python_version(), REPEATS, DURATION, WARMUP, REPEATS))
    print("| workload | server | TLS req/s | plain req/s | TLS/plain | TLS CPU µs/req | "
          "plain CPU µs/req | generator CPU | errors | note |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for key, label, twin in ROWS:
        for server in SERVERS:
            tls_runs = runs.get((key, server))
            if tls_runs is None:
                continue
            plain_runs = runs.get((twin, server), [])
            rps, prps = med(runs, key, server, "rps"), med(runs, twin, server, "rps")
            cpu, pcpu = med(runs, key, server, "cpu"), med(runs, twin, server, "cpu")
            gen, srv = med(runs, key, server, "gen"), med(runs, key, server, "srv")
            notes = []
            fails = [g["failed"] for g in tls_runs if "failed" in g]
            if fails:
                notes.append("TLS failed %d/%d: %s" % (len(fails), len(tls_runs), fails[-1]))
            pfails = [g["failed"] for g in plain_runs if "failed" in g]
            if pfails and key in ("e64", "e16k", "full"):
                notes.append("plaintext failed %d/%d: %s" % (len(pfails), len(plain_runs),
                                                             pfails[-1]))
            if gen is not None and gen >= 90 and srv is not None and srv < 85:
                notes.append("*generator-bound*")
            p50 = med(runs, key, server, "p50")
            if key in ("e64", "e16k") and p50 and p50 >= 20000:
                notes.append("TLS p50 latency %.0f ms" % (p50 / 1000))
            if key == "resumed" and server in resumes:
                notes.append({True: "resumed", False: "did NOT resume: full handshakes",
                              None: "resumption probe failed"}[resumes[server]])
            if key == "full" and server in negotiated:
                notes.append(negotiated[server])
            num = lambda v, f="%.0f": f % v if v is not None else "—"
            print("| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |" % (
                label, server, num(rps) if rps else "failed", num(prps),
                "%.2f×" % (rps / prps) if rps and prps else "—", cpu_text(cpu, rps),
                cpu_text(pcpu, prps), num(gen, "%.0f%%"), errors_text(tls_runs),
                errors_text(plain_runs), "; ".join(notes)))
    print("| all | kTLS | %s | | | | | | | |" % ktls())

    def ratio(key, server, base, field):
        a, b = med(runs, key, server, field), med(runs, key, base, field)
        if not a or not b:
            return None
        return a / b if field == "rps" else b / a  # CPU: the peer's over sockit's

    goals = [("full", "full handshakes/s", "asyncio+ssl", 1.5),
             ("e64", "echo 64 B", "asyncio+ssl", 1.5),
             ("e16k", "echo 16 KiB", "ncat", 1.0), ("e16k", "echo 16 KiB", "socat", 1.0)]
    print("\nGoals: each sockit row's TLS req/s over the peer's, and in brackets the "
          "peer's server CPU per request over sockit's (what a generator-bound row "
          "compares):\n")
    for key, label, base, want in goals:
        parts = []
        for server in SERVERS:
            if not server.startswith("sockit") or (key, server) not in runs:
                continue
            r, c = ratio(key, server, base, "rps"), ratio(key, server, base, "cpu")
            parts.append("%s %s (CPU %s)" % (
                server, "%.2f× %s" % (r, "met" if r >= want else "NOT met") if r else "—",
                "%.2f×" % c if c else "—"))
        print("- %s >= %.1f× %s: %s" % (label, want, base, "; ".join(parts)))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # every server is already stopped (finally)
        sys.exit(130)
