"""The TCP server of the reference flow, with only Python's socket module.

Twin of examples/tcp_server.c: same arguments, same output lines.
Usage: tcp_server.py [PORT [N]]  PORT defaults to 12345 (0 picks a free one);
N > 0 serves N connections then exits.
"""
import socket
import sys


def bad_usage(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def parse_port(name, text):
    # Like sockit_parse_port: decimal 0-65535 or a service name from /etc/services.
    try:
        port = int(text) if text.isascii() and text.isdigit() else socket.getservbyname(text)
    except OSError:
        port = -1
    if port < 0:
        bad_usage(f"{name}: port '{text}': not a number or a known service: Bad port")
    if port > 65535:
        bad_usage(f"{name}: port '{text}': out of range 0-65535: Bad port")
    return port


def parse_args(name):
    if len(sys.argv) > 3:
        bad_usage(f"usage: {name} [PORT [N]]")
    port = parse_port(name, sys.argv[1]) if len(sys.argv) > 1 else 12345
    count = -1  # forever
    if len(sys.argv) > 2:
        text = sys.argv[2]
        if not (text.isascii() and text.isdigit() and int(text) > 0):
            bad_usage(f"{name}: count '{text}': not a positive number")
        count = int(text)
    return port, count


port, count = parse_args("tcp_server")
try:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(('localhost', port))
    server.listen(5)
    host, port = server.getsockname()
    print(f"Listening on {host}:{port}", flush=True)

    served = 0
    while count < 0 or served < count:
        client, addr = server.accept()
        print(f"Connected to {addr[0]}:{addr[1]}", flush=True)
        try:
            data = client.recv(1024)
            print(f"Received: {data.decode()}", flush=True)
            client.send(b"Hello from server!")
        except OSError as e:
            print(f"tcp_server: {e}", file=sys.stderr)
        client.close()
        served += 1
    server.close()
except OSError as e:
    print(f"tcp_server: {e}", file=sys.stderr)
    sys.exit(1)
