"""A UDP echo server for tests/e2e_bench.sh that loses every K-th datagram it gets (no
reply), so `sockit bench -u` must count those requests as timeouts.

Usage: lossy_udp_server.py [--drop-every K] [--lifetime SECS]
"""
import argparse

import peerlib

parser = argparse.ArgumentParser()
parser.add_argument("--drop-every", type=peerlib.positive, default=5)
parser.add_argument("--lifetime", type=float, default=60)
args = parser.parse_args()
seen = 0


def on_datagram(data):
    global seen
    seen += 1
    return None if seen % args.drop_every == 0 else data


peerlib.serve_udp(args.lifetime, on_datagram)
