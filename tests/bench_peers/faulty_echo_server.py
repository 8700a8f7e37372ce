"""A deliberately faulty TCP echo server for tests/e2e_bench.sh: it echoes every byte,
except that at stream offset AT of each connection it alters the byte (--fault alter),
leaves it out (drop) or sends an extra byte before it (add). `sockit bench` must report
that as corrupt, whatever the fault.

Usage: faulty_echo_server.py --fault alter|drop|add [--at OFFSET] [--lifetime SECS]
"""
import argparse

import peerlib

parser = argparse.ArgumentParser()
parser.add_argument("--fault", choices=("alter", "drop", "add"), required=True)
parser.add_argument("--at", type=int, default=1000)
parser.add_argument("--lifetime", type=float, default=60)
args = parser.parse_args()


def on_data(conn, data):
    i = args.at - conn.offset  # where the fault falls in this chunk
    if not 0 <= i < len(data):
        return data
    if args.fault == "alter":
        return data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]
    if args.fault == "drop":
        return data[:i] + data[i + 1:]
    return data[:i] + bytes([(data[i] + 1) & 0xFF]) + data[i:]


peerlib.serve_tcp(args.lifetime, lambda conn: None, on_data)
