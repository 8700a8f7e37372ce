#!/usr/bin/python3
"""socketserver.ThreadingTCPServer as a bench peer: a thread per connection, what the
standard library offers a Python user who wants more than one client at a time.

Usage: python_threading_server.py [--mode echo|oneshot] [--port PORT]
Follows the peer convention of bench/README.md: listens on 127.0.0.1:PORT (0: any free
port), prints "Listening on 127.0.0.1:PORT", serves until SIGTERM or SIGINT, exits 0.
echo writes back every byte until the client closes; oneshot is the reference flow
(recv up to 1024 bytes, reply "Hello from server!", close). There is no sink: exit 2.
"""
import argparse
import resource
import signal
import socketserver
import sys

NAME = "python_threading_server"


class Parser(argparse.ArgumentParser):
    # The peer convention wants one line for a usage error, not argparse's two.
    def error(self, message):
        print(f"{NAME}: {message}", file=sys.stderr)
        sys.exit(2)


def parse_args():
    parser = Parser(prog=NAME)
    parser.add_argument("--mode", default="echo")
    parser.add_argument("--port", default="0")
    args = parser.parse_args()
    if args.mode not in ("echo", "oneshot"):
        parser.error(f"--mode '{args.mode}': not supported: only echo and oneshot")
    if not (args.port.isascii() and args.port.isdigit() and int(args.port) <= 65535):
        parser.error(f"--port '{args.port}': not a number in 0-65535")
    return args.mode, int(args.port)


def raise_fd_limit():
    # The peer convention: room for as many connections as the hard limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass  # an unlimited hard limit cannot be the soft one; keep what we have


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            while True:
                data = self.request.recv(65536)
                if not data:
                    break
                self.request.sendall(data)
        except OSError:
            pass  # a client's reset ends its connection, not with a traceback


class OneShot(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            self.request.recv(1024)
            self.request.sendall(b"Hello from server!")
        except OSError:
            pass


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    # Python's default backlog is 5; the C peers use a large one. The same backlog for
    # all, so the comparison is of the servers and not of SYNs dropped from a full queue.
    request_queue_size = 4096
    # Otherwise every handler thread is kept, to be joined when the server closes.
    daemon_threads = True


def stop(signum, frame):
    # Ignore a second signal (a process group's Ctrl-C, or timeout(1), which signals the
    # child and then its group): arriving while Python shuts down, after its handlers
    # are gone, it would kill the process with the default action instead of exit 0.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(0)


mode, port = parse_args()
raise_fd_limit()
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
with Server(("127.0.0.1", port), Echo if mode == "echo" else OneShot) as server:
    host, port = server.server_address[:2]
    print(f"Listening on {host}:{port}", flush=True)
    server.serve_forever()
