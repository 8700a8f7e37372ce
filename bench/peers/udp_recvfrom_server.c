/* The plain UDP echo bench peer: one blocking recvfrom, one sendto back to the
 * sender, per datagram. What a C programmer writes first, and the per-datagram
 * cost the batched udp_mmsg_server is compared with.
 *
 * Usage: udp_recvfrom_server [--port PORT]
 * The peer convention of bench/README.md (UDP peers always echo). A datagram the
 * kernel cannot send back (full buffer) is lost, as UDP allows; the client counts
 * it. SIGTERM and SIGINT interrupt the blocking call and the program exits 0. */
#include "peer_common.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#define USAGE "usage: udp_recvfrom_server [--port PORT]"

int main(int argc, char **argv)
{
    struct peer_args args;
    peer_parse(argc, argv, "udp_recvfrom_server", PEER_ECHO, USAGE, &args);
    peer_prepare();
    int fd = peer_socket(SOCK_DGRAM, false, args.port);
    peer_stop_socket_on_signals(fd);
    peer_announce(peer_bound_port(fd));

    /* Any UDP datagram fits whole. */
    static char buf[65536];
    while (!peer_stopping) {
        struct sockaddr_in from;
        socklen_t from_len = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len);
        if (peer_stopping)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            peer_fail("recvfrom");
        }
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, from_len);
    }
    close(fd);
    return 0;
}
