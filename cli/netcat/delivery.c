/* The delivery check of a single connection. */
#include "delivery.h"

#include <sockit_tls.h>

#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

int delivery_unacknowledged(const sockit *s)
{
    /* For TCP, SIOCOUTQ is what was sent and not yet acknowledged; a Unix stream
     * socket answers with what its peer has not read. Where it cannot be asked,
     * what was written counts as delivered. */
    int queued = 0;
    if (ioctl(sockit_fileno(s), SIOCOUTQ, &queued) < 0 || queued < 0)
        queued = 0;
    return queued;
}

/* Bytes written to s that its peer never acknowledged. After a reset SIOCOUTQ says
 * 0 (the send queue is purged), so for TCP the count comes from what the peer's
 * TCP acknowledged (TCP_INFO), which a reset leaves.
 *
 * On a TLS socket bytes_out counts plaintext while TCP counts records (handshake,
 * headers, tags, close_notify), so the two cannot be subtracted: what TCP sent and
 * the peer did not acknowledge is the tail of the stream, and the plaintext in it
 * is at most that many bytes (at most bytes_out): an upper bound, 0 when the peer
 * acknowledged everything. */
static long long never_acknowledged(const sockit *s, long long bytes_out)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    bool info = getsockopt(sockit_fileno(s), IPPROTO_TCP, TCP_INFO, &ti, &len) == 0;
    if (sockit_is_tls(s)) {
        long long unacked = delivery_unacknowledged(s);
        if (info &&
            len >= offsetof(struct tcp_info, tcpi_bytes_retrans) + sizeof ti.tcpi_bytes_retrans) {
            long long sent = (long long)(ti.tcpi_bytes_sent - ti.tcpi_bytes_retrans);
            unacked = sent - (long long)ti.tcpi_bytes_acked;
        }
        if (unacked < 0)
            unacked = 0;
        return unacked < bytes_out ? unacked : bytes_out;
    }
    if (info && len >= offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti.tcpi_bytes_acked)
        return bytes_out - (long long)ti.tcpi_bytes_acked;
    return delivery_unacknowledged(s);
}

long long delivery_check(const sockit *s, const char *name, const char *reason, const delivery *d)
{
    long long lost = d->stdin_read - (d->bytes_out - never_acknowledged(s, d->bytes_out));
    bool unread = !d->stdin_eof && !d->stdin_tty;
    /* What a file still holds is input that was not delivered too; a pipe's rest
     * cannot be counted. */
    struct stat st;
    off_t at;
    if (unread && fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
        (at = lseek(STDIN_FILENO, 0, SEEK_CUR)) >= 0 && st.st_size > at)
        lost += (long long)(st.st_size - at);
    if (lost <= 0 && !unread)
        return 0;
    if (lost < 0)
        lost = 0;
    const char *how = strcmp(reason, "peer") == 0    ? "the peer closed the connection"
                      : strcmp(reason, "reset") == 0 ? "the peer reset the connection"
                                                     : "the connection failed";
    cli_fail("%lld bytes of input not delivered to %s: %s first%s", lost, name, how,
             unread ? " (and stdin was not read to its end)" : "");
    return lost;
}
