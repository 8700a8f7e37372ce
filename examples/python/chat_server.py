"""A chat server with asyncio's transports and protocols, only the standard library.

Twin of examples/chat_server.c: every line a client sends goes to every other client,
prefixed with the sender's address; joins and leaves are announced; a line over 1024
bytes or a client whose unsent messages pass 16 MiB is dropped. Same arguments, same
lines to clients and on stdout.
Usage: chat_server.py [PORT]  PORT defaults to 12345 (0 picks a free one).
SIGINT and SIGTERM stop it: exit 0.
"""
import asyncio
import signal
import socket
import sys

LINE_MAX = 1024
QUEUE_LIMIT = 16 * 1024 * 1024
clients = []


def name_of(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def broadcast(text, except_=None):
    for c in list(clients):
        if c is except_ or c.transport.is_closing():
            continue
        if c.transport.get_write_buffer_size() + len(text) > QUEUE_LIMIT:
            print(f"chat_server: {c.name}: too slow, dropped", file=sys.stderr)
            c.transport.abort()
            continue
        c.transport.write(text)


class Chat(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.name = name_of(transport.get_extra_info("peername"))
        self.buf = b""
        broadcast(f"* {self.name} joined\n".encode())
        transport.write(f"welcome, you are {self.name}\n".encode())
        clients.append(self)
        print(f"joined {self.name}", flush=True)

    def data_received(self, data):
        self.buf += data
        while True:
            nl = self.buf.find(b"\n", 0, LINE_MAX)
            if nl < 0:
                if len(self.buf) >= LINE_MAX:
                    print(f"chat_server: {self.name}: line over {LINE_MAX} bytes, dropped",
                          file=sys.stderr)
                    self.transport.abort()
                return
            line, self.buf = self.buf[:nl], self.buf[nl + 1:]
            broadcast(self.name.encode() + b": " + line + b"\n", except_=self)

    def eof_received(self):
        if self.buf:  # a last line without its newline is a line
            broadcast(self.name.encode() + b": " + self.buf + b"\n", except_=self)
            self.buf = b""
        return False  # close

    def connection_lost(self, exc):
        clients.remove(self)
        print(f"left {self.name}", flush=True)
        broadcast(f"* {self.name} left\n".encode())


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Chat, "127.0.0.1", port)
    host, real_port = server.sockets[0].getsockname()[:2]
    print(f"Listening on {host}:{real_port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    for c in list(clients):
        c.transport.close()
    await asyncio.sleep(0)  # let connection_lost run
    await asyncio.sleep(0)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        print("usage: chat_server.py [PORT]", file=sys.stderr)
        sys.exit(2)
    try:
        port = int(sys.argv[1]) if len(sys.argv) == 2 else 12345
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        try:
            port = socket.getservbyname(sys.argv[1])
        except OSError:
            print(f"chat_server: port '{sys.argv[1]}': not a number or a known service: "
                  "Bad port", file=sys.stderr)
            sys.exit(2)
    asyncio.run(main(port))
