/* sendmsg and recvmsg: scatter-gather data with ancillary data. The rules are
 * recvfrom's (one deadline, MSG_DONTWAIT never waits, a datagram that did not fit is
 * reported), extended to the control bytes: control data that did not fit is
 * reported too, and descriptors that arrived with a failure are closed, so no
 * failure leaves the caller owning fds it was never told about. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* Bytes in m's buffers, or -EINVAL when the array is missing or too long. */
static ssize_t total_len(const sockit_msg *m, const char *op)
{
    if (m->iovcnt > SOCKIT_IOV_MAX)
        return sockit__failf(-EINVAL, "%s: %zu buffers (at most %d)", op, m->iovcnt,
                             SOCKIT_IOV_MAX);
    if (m->iov == NULL && m->iovcnt > 0)
        return sockit__failf(-EINVAL, "%s: %zu buffers but no array", op, m->iovcnt);
    if (m->control == NULL && m->controllen > 0)
        return sockit__failf(-EINVAL, "%s: %zu control bytes but no control buffer", op,
                             m->controllen);
    size_t total = 0;
    for (size_t i = 0; i < m->iovcnt; i++) {
        if (m->iov[i].iov_base == NULL && m->iov[i].iov_len > 0)
            return sockit__failf(-EINVAL, "%s: buffer %zu has a length but no memory", op, i);
        if (m->iov[i].iov_len > (size_t)SSIZE_MAX - total)
            return sockit__failf(-EINVAL, "%s: the buffers add up to more than SSIZE_MAX", op);
        total += m->iov[i].iov_len;
    }
    return (ssize_t)total;
}

/* The records TLS makes have no room for control data, and bytes sent beside them
 * would corrupt the stream. */
static int refuse_tls(const sockit *s, const char *op)
{
    if (s->transport != &sockit__plain_transport)
        return sockit__failf(-EOPNOTSUPP, "%s on a TLS socket (use send and recv)", op);
    return 0;
}

ssize_t sockit_sendmsg(sockit *s, const sockit_msg *m, int flags)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "sendmsg");
    if (m == NULL)
        return sockit__failf(-EINVAL, "sendmsg: no message");
    ssize_t total = total_len(m, "sendmsg");
    if (total < 0)
        return total;
    int rc = refuse_tls(s, "sendmsg");
    if (rc < 0)
        return rc;
    struct msghdr msg = {
        .msg_iov = m->iov,
        .msg_iovlen = m->iovcnt,
        .msg_control = m->controllen > 0 ? m->control : NULL,
        .msg_controllen = m->controllen,
    };
    /* msghdr names the address through a non-const pointer; sendmsg only reads it. */
    sockit_addr to = m->addr;
    if (to.len > 0) {
        msg.msg_name = &to.u;
        msg.msg_namelen = to.len;
    }
    int64_t deadline = sockit__call_deadline(s);
    for (;;) {
        ssize_t n = sockit__sys_sendmsg(s->fd, &msg, flags | MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        int err = errno;
        if (err == EINTR)
            continue;
        rc = -err;
        if (err == EAGAIN)
            rc = (flags & MSG_DONTWAIT) ? SOCKIT_EWOULDBLOCK : sockit__await(s, POLLOUT, deadline);
        if (rc == SOCKIT_EWOULDBLOCK || rc == SOCKIT_ETIMEOUT)
            return sockit__fail(rc, "sendmsg");
        if (rc < 0) {
            if (m->addr.len == 0)
                return sockit__io_fail(s, rc, "sendmsg");
            char text[SOCKIT_ADDRSTRLEN];
            sockit__addr_text(&m->addr, text, sizeof text);
            return sockit__failf(rc, "sendmsg to %s (%zd bytes, %zu control bytes)", text, total,
                                 m->controllen);
        }
    }
}

/* Descriptors in a message the caller will be told failed: closed, slots -1. */
static void close_passed_fds(sockit_msg *m)
{
    size_t cursor = 0;
    sockit_cmsg c;
    while (sockit_cmsg_next(m, &cursor, &c)) {
        if (c.level != SOL_SOCKET || c.type != SCM_RIGHTS)
            continue;
        /* c.data points into the caller's own control buffer, which is writable. */
        char *p = (char *)m->control + ((const char *)c.data - (const char *)m->control);
        for (size_t off = 0; off + sizeof(int) <= c.len; off += sizeof(int)) {
            int fd;
            memcpy(&fd, p + off, sizeof fd);
            if (fd >= 0)
                close(fd);
            fd = -1;
            memcpy(p + off, &fd, sizeof fd);
        }
    }
}

/* Read-ahead bytes of a stream socket, copied across m's buffers. */
static size_t take_read_ahead(sockit *s, sockit_msg *m, int flags)
{
    size_t done = 0;
    for (size_t i = 0; i < m->iovcnt; i++) {
        if (flags & MSG_PEEK) {
            size_t have = s->rbuf.end - s->rbuf.start - done;
            size_t n = m->iov[i].iov_len < have ? m->iov[i].iov_len : have;
            if (n > 0)
                memcpy(m->iov[i].iov_base, s->rbuf.data + s->rbuf.start + done, n);
            done += n;
        } else {
            done += sockit__rbuf_take(s, m->iov[i].iov_base, m->iov[i].iov_len);
        }
    }
    return done;
}

static void set_peer(const sockit *s, sockit_msg *m)
{
    socklen_t alen = sizeof m->addr.u;
    if (getpeername(s->fd, &m->addr.u.sa, &alen) == 0)
        m->addr.len = alen;
    else
        memset(&m->addr, 0, sizeof m->addr);
}

ssize_t sockit_recvmsg(sockit *s, sockit_msg *m, int flags)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "recvmsg");
    if (m == NULL)
        return sockit__failf(-EINVAL, "recvmsg: no message");
    ssize_t total = total_len(m, "recvmsg");
    if (total < 0)
        return total;
    int rc = refuse_tls(s, "recvmsg");
    if (rc < 0)
        return rc;
    size_t room = m->controllen;
    m->flags = 0;
    if (s->type == SOCK_STREAM && s->rbuf.end > s->rbuf.start && total > 0) {
        m->controllen = 0;
        set_peer(s, m);
        return (ssize_t)take_read_ahead(s, m, flags);
    }
    int64_t deadline = sockit__call_deadline(s);
    for (;;) {
        sockit_addr sender;
        memset(&sender, 0, sizeof sender);
        struct msghdr msg = {
            .msg_name = &sender.u,
            .msg_namelen = sizeof sender.u,
            .msg_iov = m->iov,
            .msg_iovlen = m->iovcnt,
            .msg_control = room > 0 ? m->control : NULL,
            .msg_controllen = room,
        };
        int kflags = flags | MSG_CMSG_CLOEXEC | (s->type != SOCK_STREAM ? MSG_TRUNC : 0);
        ssize_t n = sockit__sys_recvmsg(s->fd, &msg, kflags);
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            rc = -err;
            if (err == EAGAIN)
                rc = (flags & MSG_DONTWAIT) ? SOCKIT_EWOULDBLOCK
                                            : sockit__await(s, POLLIN, deadline);
            if (rc < 0)
                return sockit__io_fail(s, rc, "recvmsg");
            continue;
        }
        m->controllen = msg.msg_controllen;
        m->flags = msg.msg_flags;
        if (s->type == SOCK_STREAM) {
            set_peer(s, m);
        } else {
            sender.len = msg.msg_namelen;
            /* An unbound Unix sender has no name; it is still a Unix peer (as recvfrom). */
            if (s->family == AF_UNIX && sender.len < offsetof(struct sockaddr_un, sun_path)) {
                sender.u.un.sun_family = AF_UNIX;
                sender.len = offsetof(struct sockaddr_un, sun_path);
            }
            m->addr = sender;
        }
        bool data_cut = s->type != SOCK_STREAM && n > total;
        bool control_cut = (msg.msg_flags & MSG_CTRUNC) != 0;
        if (!data_cut && !control_cut)
            return n;
        close_passed_fds(m);
        /* A stream's bytes are taken from it either way: they are returned, and
         * MSG_CTRUNC in m->flags says the control data was cut (as Python does). */
        if (s->type == SOCK_STREAM)
            return n;
        char text[SOCKIT_ADDRSTRLEN] = "";
        if (m->addr.len > 0)
            sockit__addr_text(&m->addr, text, sizeof text);
        if (data_cut)
            return sockit__failf(SOCKIT_ETRUNCATED,
                                 "recvmsg %s: datagram of %zd bytes, buffers of %zd%s", text, n,
                                 total, control_cut ? " (control data cut too)" : "");
        return sockit__failf(SOCKIT_ECTRUNCATED,
                             "recvmsg %s: control data larger than the %zu bytes of room", text,
                             room);
    }
}
