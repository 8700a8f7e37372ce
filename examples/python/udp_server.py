"""The UDP server of the reference flow, with only Python's socket module.

Twin of examples/udp_server.c: same arguments, same output lines.
Usage: udp_server.py [PORT [N]]  PORT defaults to 12345 (0 picks a free one);
N > 0 answers N datagrams then exits.
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


port, count = parse_args("udp_server")
try:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(('localhost', port))
    host, port = server.getsockname()
    print(f"Listening on {host}:{port}", flush=True)

    served = 0
    while count < 0 or served < count:
        data, addr = server.recvfrom(1024)
        print(f"Received from {addr[0]}:{addr[1]}: {data.decode()}", flush=True)
        server.sendto(b"Hello from UDP server!", addr)
        served += 1
    server.close()
except OSError as e:
    print(f"udp_server: {e}", file=sys.stderr)
    sys.exit(1)
