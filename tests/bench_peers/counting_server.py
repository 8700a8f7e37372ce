"""A test peer for tests/e2e_bench.sh that counts what it saw: a TCP echo or one-shot
server, or (-u) a UDP echo server. When stopped (SIGTERM/SIGINT) it prints one line
"connections=N bytes=N datagrams=N" and exits 0, so the test can compare those counts
with what `sockit bench` says it did.

Usage: counting_server.py [--mode echo|oneshot] [-u] [--lifetime SECS]
"""
import argparse

import peerlib

parser = argparse.ArgumentParser()
parser.add_argument("--mode", choices=("echo", "oneshot", "sink"), default="echo")
parser.add_argument("-u", action="store_true", help="UDP echo")
parser.add_argument("--lifetime", type=float, default=60)
args = parser.parse_args()

counts = {"connections": 0, "bytes": 0, "datagrams": 0}


def on_accept(conn):
    counts["connections"] += 1


def on_data(conn, data):
    counts["bytes"] += len(data)
    if args.mode == "echo":
        return data
    if args.mode == "sink":
        return b""
    # The reference flow: one recv, the reply, close (so a second read is never made).
    conn.out += b"Hello from server!"
    return None


def on_datagram(data):
    counts["datagrams"] += 1
    counts["bytes"] += len(data)
    return data


if args.u:
    peerlib.serve_udp(args.lifetime, on_datagram)
else:
    peerlib.serve_tcp(args.lifetime, on_accept, on_data)
peerlib.report(**counts)
