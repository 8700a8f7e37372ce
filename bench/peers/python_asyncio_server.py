#!/usr/bin/python3
"""asyncio streams as a bench peer (asyncio.start_server, a coroutine per connection),
and with --uvloop the same code on uvloop's event loop (Debian's python3-uvloop).

Usage: python_asyncio_server.py [--mode echo|oneshot|sink] [--port PORT] [--uvloop]
                                [--cert FILE [--key FILE]]
Follows the peer convention of bench/README.md: listens on 127.0.0.1:PORT (0: any free
port), prints "Listening on 127.0.0.1:PORT", serves until SIGTERM or SIGINT, exits 0.
echo writes back every byte until the client closes; oneshot is the reference flow
(read up to 1024 bytes, reply "Hello from server!", close); sink reads and discards.
--cert (and --key; default: the key is in the cert file) serves TLS: an
ssl.SSLContext(PROTOCOL_TLS_SERVER) with that pair, passed to start_server(ssl=...),
as asyncio's documentation shows (bench/tls_bench.py).
"""
import argparse
import asyncio
import resource
import signal
import ssl
import sys

NAME = "python_asyncio_server"


class Parser(argparse.ArgumentParser):
    # The peer convention wants one line for a usage error, not argparse's two.
    def error(self, message):
        print(f"{NAME}: {message}", file=sys.stderr)
        sys.exit(2)


def parse_args():
    parser = Parser(prog=NAME)
    parser.add_argument("--mode", default="echo")
    parser.add_argument("--port", default="0")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    if args.key and not args.cert:
        parser.error("--key: needs --cert")
    if args.mode not in ("echo", "oneshot", "sink"):
        parser.error(f"--mode '{args.mode}': not supported: only echo, oneshot and sink")
    if not (args.port.isascii() and args.port.isdigit() and int(args.port) <= 65535):
        parser.error(f"--port '{args.port}': not a number in 0-65535")
    return args


def raise_fd_limit():
    # The peer convention: room for as many connections as the hard limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass  # an unlimited hard limit cannot be the soft one; keep what we have


async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def oneshot(reader, writer):
    await reader.read(1024)
    writer.write(b"Hello from server!")
    await writer.drain()


async def sink(reader, writer):
    while await reader.read(65536):
        pass


def handler(serve):
    async def handle(reader, writer):
        try:
            await serve(reader, writer)
        except OSError:
            pass  # a client's reset ends its connection, not with a traceback
        finally:
            writer.close()

    return handle


def tls_context(cert, key):
    if not cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        print(f"{NAME}: --cert {cert}: {e}", file=sys.stderr)
        sys.exit(1)
    return ctx


async def main(mode, port, tls):
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    serve = {"echo": echo, "oneshot": oneshot, "sink": sink}[mode]
    server = await asyncio.start_server(handler(serve), "127.0.0.1", port, backlog=4096,
                                        ssl=tls)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"Listening on {host}:{port}", flush=True)
    await stopped.wait()
    # A second signal (a process group's Ctrl-C, or timeout(1), which signals the child
    # and then its group) is ignored: the loop would otherwise restore the default
    # action when it closes, and a late signal would kill the process instead of exit 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
        signal.signal(signum, signal.SIG_IGN)
    # Not wait_closed(): from Python 3.12 on it waits for every connection to end.
    server.close()


args = parse_args()
raise_fd_limit()
tls = tls_context(args.cert, args.key)
if args.uvloop:
    try:
        import uvloop
    except ImportError:
        print(f"{NAME}: --uvloop: the uvloop module is missing for {sys.executable}"
              " (Debian: apt install python3-uvloop, and run /usr/bin/python3)", file=sys.stderr)
        sys.exit(1)
    if hasattr(uvloop, "run"):  # uvloop 0.18 and later; install() is deprecated there
        uvloop.run(main(args.mode, int(args.port), tls))
        sys.exit(0)
    uvloop.install()
asyncio.run(main(args.mode, int(args.port), tls))
