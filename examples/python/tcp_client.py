"""The TCP client of the reference flow, with only Python's socket module.

Twin of examples/tcp_client.c: same arguments, same output lines.
Usage: tcp_client.py [PORT]  PORT defaults to 12345.
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
    if len(sys.argv) > 2:
        bad_usage(f"usage: {name} [PORT]")
    return parse_port(name, sys.argv[1]) if len(sys.argv) > 1 else 12345


port = parse_args("tcp_client")
try:
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect(('localhost', port))
    client.send(b"Hello server!")
    response = client.recv(1024)
    print(response.decode())
    client.close()
except OSError as e:
    print(f"tcp_client: {e}", file=sys.stderr)
    sys.exit(1)
