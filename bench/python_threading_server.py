"""The reference TCP server's one-shot flow on Python's socketserver, the baseline for
bench/server_modes.sh: receive once (up to 1024 bytes), reply "Hello from server!",
close, a thread per connection (ThreadingTCPServer).

Usage: python_threading_server.py [PORT]   PORT defaults to 0 (a free one). Prints
"Listening on 127.0.0.1:PORT", like bench/sockit_oneshot_server. SIGTERM ends it.
"""
import socket
import socketserver
import sys


class OneShot(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.recv(1024)
        self.request.sendall(b"Hello from server!")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    # Python's default listen backlog is 5; sockit_server's is SOMAXCONN. The same
    # backlog for both, so that the comparison is of the servers, not of dropped SYNs.
    request_queue_size = socket.SOMAXCONN
    # Otherwise every handler thread is tracked, to be joined by server_close.
    daemon_threads = True


port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
with Server(("127.0.0.1", port), OneShot) as server:
    host, port = server.server_address[:2]
    print(f"Listening on {host}:{port}", flush=True)
    server.serve_forever()
