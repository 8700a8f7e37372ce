#!/usr/bin/python3
"""Python's UDP echo loop as a bench peer: recvfrom, sendto the same bytes back, on
Python's socket module alone, as the guide's UDP server is written.

Usage: python_udp_server.py [--mode echo] [--port PORT]
Follows the peer convention of bench/README.md: binds 127.0.0.1:PORT (0: any free
port), prints "Listening on 127.0.0.1:PORT", echoes every datagram until SIGTERM or
SIGINT, exits 0.
"""
import argparse
import resource
import signal
import socket
import sys

NAME = "python_udp_server"


class Parser(argparse.ArgumentParser):
    # The peer convention wants one line for a usage error, not argparse's two.
    def error(self, message):
        print(f"{NAME}: {message}", file=sys.stderr)
        sys.exit(2)


def parse_args():
    parser = Parser(prog=NAME)
    parser.add_argument("--port", default="0")
    # Taken for the driver's convenience; a UDP peer only echoes.
    parser.add_argument("--mode", default="echo")
    args = parser.parse_args()
    if args.mode != "echo":
        parser.error(f"--mode '{args.mode}': not supported: a UDP peer only echoes")
    if not (args.port.isascii() and args.port.isdigit() and int(args.port) <= 65535):
        parser.error(f"--port '{args.port}': not a number in 0-65535")
    return int(args.port)


def raise_fd_limit():
    # The peer convention asks every peer for it, though one socket is all this one needs.
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

server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("127.0.0.1", port))
host, port = server.getsockname()
print(f"Listening on {host}:{port}", flush=True)

while True:
    data, addr = server.recvfrom(65536)
    try:
        server.sendto(data, addr)
    except OSError:
        pass  # e.g. a full send buffer (ENOBUFS): the datagram is lost, as UDP allows
