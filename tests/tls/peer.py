#!/usr/bin/env python3
"""A TLS peer for test_tls, made with python3's ssl module: the other side that
is not sockit.

  peer.py server --cert F --key F [options]   serves on 127.0.0.1, port 0
  peer.py client --port P --send TEXT [options]
                               sends TEXT, prints what comes back until EOF;
                               exit 3 on an ssl error, 4 on another socket error

The server prints its port as the first line of stdout (or writes it to
--port-file, atomically), then serves connections one after another until it is
killed or --count connections are done. Per connection it logs one line to
stderr: the negotiated version, ALPN and client certificate subject, or the
handshake error (which never stops the server). Modes:

  echo             echoes until the client's close_notify, then unwrap()s
                   (sends close_notify) and closes
  sink             reads until the client's close_notify, replies
                   "<bytes> <fnv1a-64 hex>\\n", then unwrap()s and closes
  hold             does the handshake, then reads nothing for 30 s
  say-then-ragged  sends "hello\\n", then closes TCP without close_notify

--greet TEXT (after --greet-delay seconds) is sent in one write, so one TLS
record, right after the handshake, before the mode runs. --ragged ends echo and
sink without close_notify.
"""
import argparse
import os
import socket
import ssl
import sys
import time

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def log(*args):
    # One write per line, so a peer killed mid-log leaves no half line.
    sys.stderr.write(" ".join(["peer.py:", *map(str, args)]) + "\n")
    sys.stderr.flush()


def fnv1a(data, h=14695981039346656037):
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def subject(cert):
    if not cert:
        return None
    return ",".join(f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn)


def ragged_close(conn):
    # SSLSocket.shutdown drops the TLS object and shuts the TCP socket: a FIN
    # without close_notify. Draining what the client still sends before close()
    # keeps the kernel from answering it with a RST.
    conn.shutdown(socket.SHUT_WR)
    conn.settimeout(5)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass
    conn.close()


def clean_close(conn):
    try:
        raw = conn.unwrap()  # close_notify; the client's came first
        raw.shutdown(socket.SHUT_WR)
        raw.close()
    except (OSError, ValueError) as e:
        log("unwrap:", e)
        conn.close()


def serve_one(ctx, conn, args):
    conn.settimeout(10)
    tls = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except (ssl.SSLError, OSError) as e:
        log("handshake failed:", e)
        tls.close()
        return
    log(f"version={tls.version()} alpn={tls.selected_alpn_protocol()} "
        f"client={subject(tls.getpeercert())} cipher={tls.cipher()[0]}")
    tls.settimeout(60)
    if args.greet is not None:
        time.sleep(args.greet_delay)
        tls.sendall(args.greet.encode())
    if args.mode == "say-then-ragged":
        tls.sendall(b"hello\n")
        ragged_close(tls)
        return
    if args.mode == "hold":
        time.sleep(30)
        tls.close()
        return
    total, h = 0, 14695981039346656037
    while True:
        data = tls.recv(65536)
        if not data:
            break
        if args.mode == "echo":
            tls.sendall(data)
        else:
            total += len(data)
            h = fnv1a(data, h)
    if args.mode == "sink":
        tls.sendall(f"{total} {h:016x}\n".encode())
    if args.ragged:
        ragged_close(tls)
    else:
        clean_close(tls)


def server(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.ca:
        ctx.load_verify_locations(args.ca)
    if args.require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif args.optional_client_cert:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn.split(","))
    if args.max_version:
        ctx.maximum_version = VERSIONS[args.max_version]
    if args.min_version:
        ctx.minimum_version = VERSIONS[args.min_version]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, args.port_file)
    else:
        print(port, flush=True)
    done = 0
    while args.count is None or done < args.count:
        conn, _ = listener.accept()
        try:
            serve_one(ctx, conn, args)
        except (ssl.SSLError, OSError) as e:
            log("connection failed:", e)
            conn.close()
        done += 1
    listener.close()


def client(args):
    ctx = ssl.create_default_context(cafile=args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn.split(","))
    try:
        with socket.create_connection((args.host, args.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=args.server_name) as tls:
                tls.sendall(args.send.encode())
                got = b""
                while True:
                    data = tls.recv(65536)
                    if not data:
                        break
                    got += data
    except ssl.SSLError as e:
        print(f"ssl error: {e}", flush=True)
        return 3
    except OSError as e:  # a reset or refusal: not TLS's doing
        print(f"error: {e}", flush=True)
        return 4
    sys.stdout.write(got.decode(errors="replace"))
    sys.stdout.flush()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--ca")
    who = s.add_mutually_exclusive_group()
    who.add_argument("--require-client-cert", action="store_true")
    who.add_argument("--optional-client-cert", action="store_true")
    s.add_argument("--alpn")
    s.add_argument("--max-version", choices=VERSIONS)
    s.add_argument("--min-version", choices=VERSIONS)
    s.add_argument("--ragged", action="store_true")
    s.add_argument("--mode", default="echo", choices=["echo", "sink", "hold", "say-then-ragged"])
    s.add_argument("--greet")
    s.add_argument("--greet-delay", type=float, default=0.0)
    s.add_argument("--count", type=int)
    s.add_argument("--port-file")
    c = sub.add_parser("client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--server-name", default="localhost")
    c.add_argument("--ca")
    c.add_argument("--cert")
    c.add_argument("--key")
    c.add_argument("--alpn")
    c.add_argument("--send", required=True)
    args = p.parse_args()
    if args.role == "server":
        try:
            server(args)
        except KeyboardInterrupt:
            pass
        return 0
    return client(args)


if __name__ == "__main__":
    sys.exit(main())
