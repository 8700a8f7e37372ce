#!/usr/bin/python3
"""The guide's TCP server (examples/python/tcp_server.py, the reference table's one-shot
flow) as a bench peer: accept, recv(1024), send "Hello from server!", close, one
connection at a time, on Python's socket module alone.

Usage: python_reference_server.py [--mode oneshot] [--port PORT]
Follows the peer convention of bench/README.md: listens on 127.0.0.1:PORT (0: any free
port), prints "Listening on 127.0.0.1:PORT", serves until SIGTERM or SIGINT, exits 0.
It only does oneshot; any other --mode exits 2.
"""
import argparse
import resource
import signal
import socket
import sys

NAME = "python_reference_server"


class Parser(argparse.ArgumentParser):
    # The peer convention wants one line for a usage error, not argparse's two.
    def error(self, message):
        print(f"{NAME}: {message}", file=sys.stderr)
        sys.exit(2)


def parse_args():
    parser = Parser(prog=NAME, add_help=True)
    parser.add_argument("--mode", default="oneshot")
    parser.add_argument("--port", default="0")
    args = parser.parse_args()
    if args.mode != "oneshot":
        parser.error(f"--mode '{args.mode}': not supported: the reference server is one-shot only")
    if not (args.port.isascii() and args.port.isdigit() and int(args.port) <= 65535):
        parser.error(f"--port '{args.port}': not a number in 0-65535")
    return int(args.port)


def raise_fd_limit():
    # The peer convention: room for as many connections as the hard limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass  # an unlimited hard limit cannot be the soft one; keep what we have


def stop(signum, frame):
    # Ignore a second signal (a process group's Ctrl-C, or timeout(1), which signals the
    # child and then its group): arriving while Python shuts down, after its handlers
    # are gone, it would kill the process with the default action instead of exit 0.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(0)


port = parse_args()
raise_fd_limit()
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)

# From here on the guide's code, with three changes for measuring it: 127.0.0.1 and the
# port from --port; a backlog of 4096 instead of 5, so that the comparison is of the
# servers and not of SYNs dropped from a full queue; and no "Connected to" line per
# connection, since stdout is the driver's pipe (a line per connection would measure
# pipe writes, and block the server once nobody reads the pipe).
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('127.0.0.1', port))
server.listen(4096)
host, port = server.getsockname()
print(f"Listening on {host}:{port}", flush=True)

while True:
    client, addr = server.accept()
    try:
        data = client.recv(1024)
        client.send(b"Hello from server!")
    except OSError:
        pass  # a client that resets must not end the server (the guide's would crash)
    client.close()
