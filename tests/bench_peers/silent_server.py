"""A TCP server for tests/e2e_bench.sh that accepts every connection and reads what
comes, but never replies: each request stays outstanding, so only -d (or a signal) can
end a run against it.

Usage: silent_server.py [--lifetime SECS]
"""
import argparse

import peerlib

parser = argparse.ArgumentParser()
parser.add_argument("--lifetime", type=float, default=60)
args = parser.parse_args()
peerlib.serve_tcp(args.lifetime, lambda conn: None, lambda conn, data: b"")
