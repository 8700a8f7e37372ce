/* The plain blocking TCP bench peer: one thread, one connection at a time, blocking
 * accept, recv, send, close. What a C programmer writes first (and what Python's
 * reference server does): a one-shot connection costs four system calls, the floor
 * sockit's SOCKIT_SEQUENTIAL server is compared with.
 *
 * Usage: blocking_server [--mode echo|oneshot|sink] [--port PORT]
 * The peer convention of bench/README.md. A connection is served to its end before
 * the next is accepted, so echo and sink suit one client only. SIGTERM and SIGINT
 * shut the listener down, which ends the blocking accept, and the program exits 0. */
#include "peer_common.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#define USAGE "usage: blocking_server [--mode echo|oneshot|sink] [--port PORT]"

static char buf[65536];

static void serve(int c, enum peer_mode mode)
{
    if (mode == PEER_ONESHOT) {
        if (recv(c, buf, PEER_ONESHOT_READ, 0) >= 0)
            send(c, PEER_REPLY, sizeof PEER_REPLY - 1, MSG_NOSIGNAL);
        return;
    }
    if (mode == PEER_ECHO) {
        /* As the other echo peers: replies go out at once, not held back by Nagle. */
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    ssize_t n;
    while ((n = recv(c, buf, sizeof buf, 0)) > 0 && !peer_stopping) {
        if (mode == PEER_SINK)
            continue;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = send(c, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w < 0)
                return;
            off += w;
        }
    }
}

int main(int argc, char **argv)
{
    struct peer_args args = {.mode = PEER_ECHO};
    peer_parse(argc, argv, "blocking_server", PEER_ALL_MODES, USAGE, &args);
    peer_prepare();
    int fd = peer_socket(SOCK_STREAM, false, args.port);
    peer_stop_socket_on_signals(fd);
    peer_announce(peer_bound_port(fd));
    while (!peer_stopping) {
        int c = accept(fd, NULL, NULL);
        if (c < 0) {
            if (peer_stopping)
                break;
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            peer_fail("accept");
        }
        serve(c, args.mode);
        close(c);
    }
    close(fd);
    return 0;
}
