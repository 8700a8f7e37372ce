/* Passing descriptors over Unix sockets (SCM_RIGHTS). The receiving side owns every
 * descriptor the kernel installs, so each failure path closes them all. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* Control space for SOCKIT_MAX_FDS descriptors, aligned as a cmsghdr must be. */
typedef union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int) * SOCKIT_MAX_FDS)];
} fds_control;

/* The kernel may install a few more than asked for when CMSG_SPACE rounds up, so the
 * collection array is sized by the control space, not by SOCKIT_MAX_FDS. */
#define FDS_COLLECT_MAX (sizeof(fds_control) / sizeof(int))

/* SCM_RIGHTS is meaningful only on Unix sockets; TCP silently drops it, which would
 * leave the receiver waiting for descriptors that never come. */
static int require_unix(const sockit *s, const char *op)
{
    if (s->family != AF_UNIX)
        return sockit__failf(-EOPNOTSUPP, "%s: descriptors pass only over AF_UNIX sockets", op);
    /* Descriptors ride beside the bytes, which TLS encrypts into records of its own:
     * there is no place for them in a TLS stream. */
    if (s->transport != &sockit__plain_transport)
        return sockit__failf(-EOPNOTSUPP, "%s: descriptors cannot pass through TLS", op);
    return 0;
}

ssize_t sockit_send_fds(sockit *s, const void *buf, size_t len, const int *fds, size_t nfds)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "send_fds");
    if (buf == NULL || len == 0)
        return sockit__failf(-EINVAL, "send_fds: at least 1 byte of data must carry the fds");
    if (fds == NULL && nfds > 0)
        return sockit__failf(-EINVAL, "send_fds: %zu descriptors but no array", nfds);
    if (nfds > SOCKIT_MAX_FDS)
        return sockit__failf(-EINVAL, "send_fds: %zu descriptors (at most %d)", nfds,
                             SOCKIT_MAX_FDS);
    int rc = require_unix(s, "send_fds");
    if (rc < 0)
        return rc;

    fds_control ctl;
    memset(&ctl, 0, sizeof ctl);
    /* struct iovec has no const variant; sendmsg only reads through iov_base. */
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        msg.msg_control = ctl.bytes;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }

    int64_t deadline = sockit__call_deadline(s);
    for (;;) {
        ssize_t n = sockit__sys_sendmsg(s->fd, &msg, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        int err = errno;
        if (err == EINTR)
            continue;
        rc = -err;
        if (err == EAGAIN)
            rc = sockit__await(s, POLLOUT, deadline);
        if (rc == SOCKIT_EWOULDBLOCK || rc == SOCKIT_ETIMEOUT)
            return sockit__fail(rc, "send_fds");
        if (rc < 0)
            return sockit__failf(rc, "send_fds (%zu bytes, %zu descriptors)", len, nfds);
    }
}

static void close_all(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

/* Copies every SCM_RIGHTS descriptor of msg into got[FDS_COLLECT_MAX]. Returns the
 * count. */
static size_t collect_fds(struct msghdr *msg, int *got)
{
    size_t n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        if (count > FDS_COLLECT_MAX - n)
            count = FDS_COLLECT_MAX - n;
        memcpy(got + n, CMSG_DATA(c), count * sizeof(int));
        n += count;
    }
    return n;
}

ssize_t sockit_recv_fds(sockit *s, void *buf, size_t len, int *fds, size_t maxfds, size_t *nfds)
{
    if (nfds != NULL)
        *nfds = 0;
    if (s == NULL)
        return sockit__fail(-EBADF, "recv_fds");
    if (buf == NULL || len == 0 || nfds == NULL || (fds == NULL && maxfds > 0))
        return sockit__failf(-EINVAL, "recv_fds: needs a buffer of at least 1 byte and nfds");
    int rc = require_unix(s, "recv_fds");
    if (rc < 0)
        return rc;
    /* Bytes sockit_readline read ahead come first, as in sockit_recv; they carried no
     * descriptors (a plain read discards any), so none are reported with them. */
    size_t buffered = sockit__rbuf_take(s, buf, len);
    if (buffered > 0)
        return (ssize_t)buffered;

    /* Room for exactly the caller's array: more arrivals show up as MSG_CTRUNC. */
    size_t room = maxfds < SOCKIT_MAX_FDS ? maxfds : SOCKIT_MAX_FDS;
    int64_t deadline = sockit__call_deadline(s);
    for (;;) {
        fds_control ctl;
        struct iovec iov = {.iov_base = buf, .iov_len = len};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = ctl.bytes,
                             .msg_controllen = CMSG_SPACE(sizeof(int) * room)};
        ssize_t n = sockit__sys_recvmsg(s->fd, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            rc = -err;
            if (err == EAGAIN)
                rc = sockit__await(s, POLLIN, deadline);
            if (rc < 0)
                return sockit__io_fail(s, rc, "recv_fds");
            continue;
        }
        int got[FDS_COLLECT_MAX];
        size_t count = collect_fds(&msg, got);
        if ((msg.msg_flags & MSG_CTRUNC) || count > maxfds) {
            close_all(got, count);
            return sockit__failf(
                -EMSGSIZE, "recv_fds: more than %zu descriptors arrived (all closed)", maxfds);
        }
        if ((msg.msg_flags & MSG_TRUNC) && s->type != SOCK_STREAM) {
            close_all(got, count);
            return sockit__failf(SOCKIT_ETRUNCATED,
                                 "recv_fds: datagram larger than %zu bytes (%zu descriptors "
                                 "closed)",
                                 len, count);
        }
        if (count > 0)
            memcpy(fds, got, count * sizeof(int));
        *nfds = count;
        return n;
    }
}
