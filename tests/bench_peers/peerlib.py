"""What the test peers of tests/e2e_bench.sh share: a listening socket on 127.0.0.1 and
a free port announced as "Listening on 127.0.0.1:PORT" (the bench peer convention), a
single-threaded selectors loop with a write buffer per connection, and a stop on
SIGTERM/SIGINT or after a lifetime cap, so that no peer outlives its test.

A module, not a peer: the peers in this directory import it (Python puts a script's own
directory first on sys.path).
"""
import selectors
import signal
import socket
import sys
import time

stopping = False


def _stop(signum, frame):
    global stopping
    stopping = True


def setup(lifetime):
    """Installs the stop handlers and returns the monotonic deadline of the peer."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return time.monotonic() + lifetime


def announce(sock):
    host, port = sock.getsockname()[:2]
    print(f"Listening on {host}:{port}", flush=True)


def tcp_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(4096)
    s.setblocking(False)
    announce(s)
    return s


def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    announce(s)
    return s


class Conn:
    """One accepted connection. `offset` counts the bytes received so far, `state` is
    for the handler's own use."""

    def __init__(self, sock):
        self.sock = sock
        self.offset = 0
        self.out = bytearray()
        self.close_when_flushed = False
        self.state = None


def serve_tcp(lifetime, on_accept, on_data):
    """Accepts and serves connections until stopped. on_accept(conn) is called for each
    new connection; on_data(conn, data) returns the bytes to send back (b"" for none)
    or None to close once those sent are flushed; conn.offset is the offset of data in
    the connection's stream. After a stop, what is already queued (connections in the
    backlog, bytes in receive buffers) is still taken, so a final count is complete."""
    deadline = setup(lifetime)
    listener = tcp_listener()
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    drain_until = None
    while True:
        now = time.monotonic()
        if stopping and drain_until is None:
            drain_until = now + 0.2
        if now >= deadline or (drain_until is not None and now >= drain_until):
            break
        try:
            ready = sel.select(0.05)
        except InterruptedError:
            continue
        for key, events in ready:
            if key.data is None:
                _accept(sel, listener, on_accept)
                continue
            conn = key.data
            if events & selectors.EVENT_READ and not _read(sel, conn, on_data):
                continue
            if events & selectors.EVENT_WRITE:
                _flush(sel, conn)
    sel.close()


def _accept(sel, listener, on_accept):
    while True:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # e.g. EMFILE; the next round tries again
        sock.setblocking(False)
        conn = Conn(sock)
        on_accept(conn)
        sel.register(sock, selectors.EVENT_READ, conn)


def _close(sel, conn):
    sel.unregister(conn.sock)
    conn.sock.close()


def _read(sel, conn, on_data):
    """Returns False if the connection is gone."""
    try:
        data = conn.sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        _close(sel, conn)
        return False
    if not data:
        _close(sel, conn)
        return False
    reply = on_data(conn, data)
    conn.offset += len(data)
    if reply is None:
        conn.close_when_flushed = True
    else:
        conn.out += reply
    return _flush(sel, conn)


def _flush(sel, conn):
    """Sends what it can of conn.out; returns False if the connection is gone."""
    try:
        while conn.out:
            n = conn.sock.send(conn.out)
            del conn.out[:n]
    except (BlockingIOError, InterruptedError):
        pass
    except OSError:
        _close(sel, conn)
        return False
    if not conn.out and conn.close_when_flushed:
        _close(sel, conn)
        return False
    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
    sel.modify(conn.sock, events, conn)
    return True


def serve_udp(lifetime, on_datagram):
    """Answers datagrams until stopped: on_datagram(data) returns the reply or None for
    none. Like serve_tcp, it takes what is queued before it stops."""
    deadline = setup(lifetime)
    sock = udp_socket()
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    drain_until = None
    while True:
        now = time.monotonic()
        if stopping and drain_until is None:
            drain_until = now + 0.2
        if now >= deadline or (drain_until is not None and now >= drain_until):
            break
        try:
            if not sel.select(0.05):
                continue
        except InterruptedError:
            continue
        while True:
            try:
                data, peer = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # an ICMP error from an earlier reply; nothing to count
            reply = on_datagram(data)
            if reply is not None:
                try:
                    sock.sendto(reply, peer)
                except OSError:
                    pass
    sel.close()


def positive(text):
    """argparse type: a whole number > 0."""
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def report(**counts):
    """The final line of a counting peer: NAME=VALUE pairs, in the order given."""
    print(" ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
    sys.exit(0)
