"""The echo server of Python's selectors documentation, with only the standard library.

Twin of examples/selector_echo_server.c: same arguments, same output lines. Where the
documentation hopes send won't block, this keeps what the kernel did not take and
waits for EVENT_WRITE. SIGINT and SIGTERM reach the loop through signal.set_wakeup_fd,
a socket registered like any other, so the server stops cleanly and exits 0.
Usage: selector_echo_server.py [PORT [N]]  PORT defaults to 12345 (0 picks a free
one); N > 0 accepts N connections, then exits once they have closed.
"""
import selectors
import signal
import socket
import sys

NAME = "selector_echo_server"


def bad_usage(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def parse_port(text):
    # Like sockit_parse_port: decimal 0-65535 or a service name from /etc/services.
    try:
        port = int(text) if text.isascii() and text.isdigit() else socket.getservbyname(text)
    except OSError:
        port = -1
    if port < 0:
        bad_usage(f"{NAME}: port '{text}': not a number or a known service: Bad port")
    if port > 65535:
        bad_usage(f"{NAME}: port '{text}': out of range 0-65535: Bad port")
    return port


if len(sys.argv) > 3:
    bad_usage(f"usage: {NAME} [PORT [N]]")
port = parse_port(sys.argv[1]) if len(sys.argv) > 1 else 12345
accepts_left = -1  # forever
if len(sys.argv) > 2:
    text = sys.argv[2]
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        bad_usage(f"{NAME}: count '{text}': not a positive number")
    accepts_left = int(text)

sel = selectors.DefaultSelector()
running = True
connections = {}  # socket -> [peer, bytes still to send]
listener = None


def peer_of(addr):
    return f"{addr[0]}:{addr[1]}"


def close_connection(conn):
    sel.unregister(conn)
    conn.close()
    del connections[conn]


def flush(conn):
    state = connections[conn]
    while state[1]:
        try:
            n = conn.send(state[1])
        except BlockingIOError:
            return True
        except OSError as e:
            print(f"{NAME}: {state[0]}: {e}", file=sys.stderr)
            return False
        state[1] = state[1][n:]
    return True


def serve(conn, mask):
    state = connections[conn]
    if state[1]:  # waiting to write
        if not flush(conn):
            close_connection(conn)
        elif not state[1]:
            sel.modify(conn, selectors.EVENT_READ, serve)
        return
    try:
        data = conn.recv(1000)  # Should be ready
    except BlockingIOError:
        return
    except OSError as e:
        print(f"{NAME}: {state[0]}: {e}", file=sys.stderr)
        data = b""
    if data:
        print(f"Echoing {len(data)} bytes to {state[0]}")
        state[1] = data
        if not flush(conn):
            close_connection(conn)
        elif state[1]:
            # The kernel did not take it all: wait until it can, reading nothing more.
            sel.modify(conn, selectors.EVENT_WRITE, serve)
        return
    print(f"Closing {state[0]}")
    close_connection(conn)


def accept(sock, mask):
    global accepts_left, listener
    try:
        conn, addr = sock.accept()  # Should be ready
    except BlockingIOError:
        return
    except OSError as e:
        print(f"{NAME}: accept: {e}", file=sys.stderr)
        return
    print(f"Accepted {peer_of(addr)}")
    conn.setblocking(False)
    connections[conn] = [peer_of(addr), b""]
    sel.register(conn, selectors.EVENT_READ, serve)
    if accepts_left > 0:
        accepts_left -= 1
        if accepts_left == 0:
            sel.unregister(sock)
            sock.close()
            listener = None


def stop(sock, mask):
    global running
    data = sock.recv(1)
    if data:
        print("Stopping on " + ("SIGINT" if data[0] == signal.SIGINT else "SIGTERM"))
    running = False


# Output goes through a pipe to tests and scripts: one line at a time.
sys.stdout.reconfigure(line_buffering=True)
try:
    listener = socket.create_server(("localhost", port), backlog=100)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, accept)
    host, port = listener.getsockname()
except OSError as e:
    print(f"{NAME}: {e}", file=sys.stderr)
    sys.exit(1)
wake_r, wake_w = socket.socketpair()
wake_r.setblocking(False)
wake_w.setblocking(False)
sel.register(wake_r, selectors.EVENT_READ, stop)
signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda signum, frame: None)  # the wakeup byte does the work
print(f"Listening on {host}:{port}")

while running and (listener is not None or connections):
    events = sel.select()
    for key, mask in events:
        callback = key.data
        callback(key.fileobj, mask)
        if not running:
            break

for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, signal.SIG_DFL)
signal.set_wakeup_fd(-1)
for conn in list(connections):
    close_connection(conn)
if listener is not None:
    listener.close()
wake_r.close()
wake_w.close()
sel.close()
