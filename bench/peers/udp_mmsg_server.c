/* The batched UDP echo bench peer: recvmmsg takes up to BATCH datagrams in one call
 * (waiting only for the first), sendmmsg sends them all back in one more. The floor
 * for UDP echo on one thread.
 *
 * Usage: udp_mmsg_server [--port PORT]
 * The peer convention of bench/README.md (UDP peers always echo). A datagram the
 * kernel cannot send back (full buffer) is lost, as UDP allows; the client counts
 * it. SIGTERM and SIGINT interrupt the blocking call and the program exits 0. */
#include "peer_common.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define USAGE "usage: udp_mmsg_server [--port PORT]"
#define BATCH 64
/* Any UDP datagram fits whole. */
#define DGRAM_MAX 65536

static char bufs[BATCH][DGRAM_MAX];
static struct iovec iovs[BATCH];
static struct sockaddr_in senders[BATCH];
static struct mmsghdr msgs[BATCH];

/* recvmmsg and the echo change a slot's lengths: this makes it whole again. */
static void reset_slot(int i)
{
    iovs[i] = (struct iovec){.iov_base = bufs[i], .iov_len = DGRAM_MAX};
    msgs[i].msg_hdr.msg_namelen = sizeof senders[i];
}

/* Sends msgs[0..n) back. sendmmsg stops at the first datagram that fails; that one
 * is dropped and the rest still go. */
static void send_back(int fd, unsigned int n)
{
    unsigned int done = 0;
    while (done < n && !peer_stopping) {
        int sent = sendmmsg(fd, msgs + done, n - done, 0);
        if (sent > 0)
            done += (unsigned int)sent;
        else if (sent == 0 || errno != EINTR)
            done++;
    }
}

int main(int argc, char **argv)
{
    struct peer_args args;
    peer_parse(argc, argv, "udp_mmsg_server", PEER_ECHO, USAGE, &args);
    peer_prepare();
    int fd = peer_socket(SOCK_DGRAM, false, args.port);
    peer_stop_socket_on_signals(fd);
    peer_announce(peer_bound_port(fd));

    for (int i = 0; i < BATCH; i++) {
        msgs[i].msg_hdr.msg_name = &senders[i];
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        reset_slot(i);
    }
    while (!peer_stopping) {
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (peer_stopping)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            peer_fail("recvmmsg");
        }
        /* Each reply is exactly the datagram that came in, to its sender. */
        for (int i = 0; i < n; i++)
            iovs[i].iov_len = msgs[i].msg_len;
        send_back(fd, (unsigned int)n);
        for (int i = 0; i < n; i++)
            reset_slot(i);
    }
    close(fd);
    return 0;
}
