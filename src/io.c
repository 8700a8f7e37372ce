/* Moving bytes: send, recv and their all/exact/datagram/file variants. Each call
 * computes one deadline at entry and waits against it after every would-block, so
 * neither EINTR nor partial progress restarts the clock. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

static ssize_t plain_send(sockit *s, const void *buf, size_t len, int flags, short *want)
{
    (void)want;
    for (;;) {
        /* A datagram goes through the datagram wrapper, which is never shortened. */
        ssize_t n = s->type == SOCK_STREAM
                        ? sockit__sys_send(s->fd, buf, len, flags | MSG_NOSIGNAL)
                        : sockit__sys_sendto(s->fd, buf, len, flags | MSG_NOSIGNAL, NULL, 0);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static ssize_t plain_recv(sockit *s, void *buf, size_t len, int flags, short *want)
{
    (void)want;
    for (;;) {
        ssize_t n = s->type == SOCK_STREAM
                        ? sockit__sys_recv(s->fd, buf, len, flags)
                        : sockit__sys_recvfrom(s->fd, buf, len, flags, NULL, NULL);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

const sockit__transport sockit__plain_transport = {.send = plain_send, .recv = plain_recv};

void sockit__transport_release(sockit *s, bool notify)
{
    if (s->transport->release != NULL)
        s->transport->release(s, notify);
    s->transport = &sockit__plain_transport;
    s->tstate = NULL;
}

/* "op (peer A)" or "op (peer A): the transport's reason" for a message. */
static int fail_named(const sockit *s, int code, const char *op, const char *where)
{
    const char *detail = s->transport->detail != NULL ? s->transport->detail(s) : NULL;
    if (detail != NULL && detail[0] != '\0')
        return sockit__failf(code, "%s%s: %s", op, where, detail);
    return sockit__failf(code, "%s%s", op, where);
}

int sockit__io_fail(const sockit *s, int code, const char *op)
{
    if (code == SOCKIT_EWOULDBLOCK)
        return sockit__fail(code, op);
    /* The peer names a connection; a listener or an unconnected datagram socket is
     * named by its own address. */
    sockit_addr a;
    socklen_t len = sizeof a.u;
    char text[SOCKIT_ADDRSTRLEN];
    if (getpeername(s->fd, &a.u.sa, &len) == 0) {
        a.len = len;
        if (sockit_addr_format(&a, text, sizeof text) > 0) {
            char where[SOCKIT_ADDRSTRLEN + 16];
            snprintf(where, sizeof where, " (peer %s)", text);
            return fail_named(s, code, op, where);
        }
    }
    len = sizeof a.u;
    if (getsockname(s->fd, &a.u.sa, &len) == 0) {
        a.len = len;
        if (sockit_addr_format(&a, text, sizeof text) > 0) {
            char where[SOCKIT_ADDRSTRLEN + 16];
            snprintf(where, sizeof where, " (on %s)", text);
            return fail_named(s, code, op, where);
        }
    }
    return fail_named(s, code, op, "");
}

/* After an attempt returned -EAGAIN: MSG_DONTWAIT asks for this one call not to
 * wait, whatever the socket's mode, as in Python (BlockingIOError at once). */
static int await_unless_dontwait(sockit *s, int flags, short events, int64_t deadline)
{
    if (flags & MSG_DONTWAIT)
        return SOCKIT_EWOULDBLOCK;
    return sockit__await(s, events, deadline);
}

/* Datagram sockets ask the kernel for the real length (MSG_TRUNC) so a datagram
 * larger than the buffer is reported rather than silently cut. */
static int trunc_flag(const sockit *s) { return s->type != SOCK_STREAM ? MSG_TRUNC : 0; }

ssize_t sockit_send(sockit *s, const void *buf, size_t len, int flags)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "send");
    int64_t deadline = sockit__call_deadline(s);
    for (;;) {
        short want = POLLOUT;
        ssize_t n = s->transport->send(s, buf, len, flags, &want);
        if (n >= 0)
            return n;
        if (n != -EAGAIN)
            return sockit__io_fail(s, (int)n, "send");
        int rc = await_unless_dontwait(s, flags, want, deadline);
        if (rc < 0)
            return sockit__io_fail(s, rc, "send");
    }
}

/* sendall within a deadline the caller computed (sendfile's fallback spans many). */
static ssize_t sendall_until(sockit *s, const void *buf, size_t len, int flags, size_t *sent,
                             int64_t deadline, const char *op)
{
    size_t done = 0;
    if (sent != NULL)
        *sent = 0;
    const char *p = buf;
    while (done < len) {
        short want = POLLOUT;
        ssize_t n = s->transport->send(s, p + done, len - done, flags, &want);
        if (n >= 0) {
            done += (size_t)n;
            if (sent != NULL)
                *sent = done;
            continue;
        }
        int rc = (int)n;
        if (n == -EAGAIN)
            rc = await_unless_dontwait(s, flags, want, deadline);
        if (rc < 0) {
            if (rc == SOCKIT_EWOULDBLOCK)
                return sockit__fail(rc, op);
            char what[96];
            snprintf(what, sizeof what, "%s: %zu of %zu bytes sent", op, done, len);
            return sockit__io_fail(s, rc, what);
        }
    }
    return (ssize_t)len;
}

ssize_t sockit_sendall(sockit *s, const void *buf, size_t len, int flags, size_t *sent)
{
    if (sent != NULL)
        *sent = 0;
    if (s == NULL)
        return sockit__fail(-EBADF, "sendall");
    return sendall_until(s, buf, len, flags, sent, sockit__call_deadline(s), "sendall");
}

static ssize_t take_buffered(sockit *s, void *buf, size_t len, int flags)
{
    size_t have = s->rbuf.end - s->rbuf.start;
    if (have == 0)
        return 0;
    if (flags & MSG_PEEK) {
        size_t n = have < len ? have : len;
        memcpy(buf, s->rbuf.data + s->rbuf.start, n);
        return (ssize_t)n;
    }
    return (ssize_t)sockit__rbuf_take(s, buf, len);
}

/* recv and, on a stream socket, recvfrom: read-ahead bytes first, then one read
 * through the socket's transport (so a TLS socket decrypts here too). */
static ssize_t recv_through_transport(sockit *s, void *buf, size_t len, int flags, const char *op)
{
    /* As Python's recv(0): nothing asked, nothing waited for. */
    if (len == 0)
        return 0;
    ssize_t buffered = take_buffered(s, buf, len, flags);
    if (buffered > 0)
        return buffered;
    int64_t deadline = sockit__call_deadline(s);
    for (;;) {
        short want = POLLIN;
        ssize_t n = s->transport->recv(s, buf, len, flags | trunc_flag(s), &want);
        if (n >= 0) {
            if ((size_t)n > len)
                return sockit__failf(SOCKIT_ETRUNCATED, "%s: datagram of %zd bytes, buffer of %zu",
                                     op, n, len);
            return n;
        }
        if (n != -EAGAIN)
            return sockit__io_fail(s, (int)n, op);
        int rc = await_unless_dontwait(s, flags, want, deadline);
        if (rc < 0)
            return sockit__io_fail(s, rc, op);
    }
}

ssize_t sockit_recv(sockit *s, void *buf, size_t len, int flags)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "recv");
    return recv_through_transport(s, buf, len, flags, "recv");
}

ssize_t sockit_recv_exact(sockit *s, void *buf, size_t len, size_t *got)
{
    if (got != NULL)
        *got = 0;
    if (s == NULL)
        return sockit__fail(-EBADF, "recv_exact");
    /* A datagram is one message: reading "exactly n" across datagrams would cut each
     * one silently, so datagram sockets are refused. */
    if (s->type != SOCK_STREAM)
        return sockit__failf(-EOPNOTSUPP, "recv_exact on a datagram socket (use recv)");
    char *p = buf;
    size_t done = sockit__rbuf_take(s, p, len);
    int64_t deadline = sockit__call_deadline(s);
    while (done < len) {
        if (got != NULL)
            *got = done;
        short want = POLLIN;
        ssize_t n = s->transport->recv(s, p + done, len - done, 0, &want);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n == 0)
            return sockit__failf(SOCKIT_EEOF, "recv_exact: peer closed after %zu of %zu bytes",
                                 done, len);
        int rc = (int)n;
        if (n == -EAGAIN)
            rc = sockit__await(s, want, deadline);
        if (rc < 0) {
            if (rc == SOCKIT_EWOULDBLOCK)
                return sockit__fail(rc, "recv_exact");
            char op[96];
            snprintf(op, sizeof op, "recv_exact: %zu of %zu bytes received", done, len);
            return sockit__io_fail(s, rc, op);
        }
    }
    if (got != NULL)
        *got = done;
    return (ssize_t)len;
}

static ssize_t sendto_until(sockit *s, const void *buf, size_t len, int flags,
                            const sockit_addr *to, int64_t deadline)
{
    for (;;) {
        ssize_t n = sockit__sys_sendto(s->fd, buf, len, flags | MSG_NOSIGNAL, &to->u.sa, to->len);
        if (n >= 0)
            return n;
        int err = errno;
        if (err == EINTR)
            continue;
        int rc = -err;
        if (err == EAGAIN)
            rc = await_unless_dontwait(s, flags, POLLOUT, deadline);
        if (rc < 0) {
            if (rc == SOCKIT_EWOULDBLOCK || rc == SOCKIT_ETIMEOUT)
                return sockit__fail(rc, "sendto");
            char text[SOCKIT_ADDRSTRLEN];
            sockit__addr_text(to, text, sizeof text);
            return sockit__failf(rc, "sendto %s (%zu bytes)", text, len);
        }
    }
}

/* On a TLS socket the bytes would go out raw, between TLS records (Python refuses
 * it too). */
static int refuse_sendto(void)
{
    return sockit__failf(-EOPNOTSUPP, "sendto on a TLS socket (its peer is fixed: use send)");
}

ssize_t sockit_sendto_addr(sockit *s, const void *buf, size_t len, int flags, const sockit_addr *to)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "sendto");
    /* The same code as connect_addr and bind_addr give an empty address. */
    if (to == NULL || to->len == 0)
        return sockit__failf(SOCKIT_EBADADDR, "sendto: no address (empty sockit_addr)");
    if (s->transport != &sockit__plain_transport)
        return refuse_sendto();
    return sendto_until(s, buf, len, flags, to, sockit__call_deadline(s));
}

ssize_t sockit_sendto(sockit *s, const void *buf, size_t len, int flags, const char *host, int port)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "sendto");
    if (s->transport != &sockit__plain_transport)
        return refuse_sendto();
    /* One deadline covers the name and the send; as in sockit_connect, a
     * non-blocking socket resolves unbounded. */
    int64_t deadline = sockit__call_deadline(s);
    sockit_addrinfo ai;
    ssize_t n = sockit__resolve_for(s, "sendto", host, port, false,
                                    s->timeout == 0.0 ? SOCKIT__NEVER : deadline, &ai, 1);
    if (n < 0)
        return n;
    return sendto_until(s, buf, len, flags, &ai.addr, deadline);
}

ssize_t sockit_recvfrom(sockit *s, void *buf, size_t len, int flags, sockit_addr *from)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "recvfrom");
    /* A stream socket's sender is its peer, and its bytes come through the transport
     * (read-ahead first), exactly as sockit_recv's. */
    if (s->type == SOCK_STREAM) {
        ssize_t n = recv_through_transport(s, buf, len, flags, "recvfrom");
        if (n >= 0 && from != NULL) {
            socklen_t alen = sizeof from->u;
            if (getpeername(s->fd, &from->u.sa, &alen) == 0)
                from->len = alen;
            else
                memset(from, 0, sizeof *from);
        }
        return n;
    }
    sockit_addr sender;
    int64_t deadline = sockit__call_deadline(s);
    for (;;) {
        socklen_t alen = sizeof sender.u;
        ssize_t n =
            sockit__sys_recvfrom(s->fd, buf, len, flags | trunc_flag(s), &sender.u.sa, &alen);
        if (n >= 0) {
            sender.len = alen;
            /* An unbound Unix sender comes back with no address at all; it is still a
             * Unix peer, only unnamed (and one that cannot be answered). */
            if (s->family == AF_UNIX && alen < offsetof(struct sockaddr_un, sun_path)) {
                sender.u.un.sun_family = AF_UNIX;
                sender.len = offsetof(struct sockaddr_un, sun_path);
            }
            if (from != NULL)
                *from = sender;
            if ((size_t)n <= len)
                return n;
            char text[SOCKIT_ADDRSTRLEN];
            sockit__addr_text(&sender, text, sizeof text);
            return sockit__failf(SOCKIT_ETRUNCATED,
                                 "recvfrom %s: datagram of %zd bytes, buffer of %zu", text, n, len);
        }
        int err = errno;
        if (err == EINTR)
            continue;
        int rc = -err;
        if (err == EAGAIN)
            rc = await_unless_dontwait(s, flags, POLLIN, deadline);
        if (rc < 0)
            return sockit__io_fail(s, rc, "recvfrom");
    }
}

/* sendfile(2) has no MSG_NOSIGNAL, so SIGPIPE is blocked in this thread around the
 * call, and a SIGPIPE it raised is consumed before the mask is restored (only if one
 * was not already pending, which belongs to someone else). */
static ssize_t sendfile_nosigpipe(int out_fd, int in_fd, off_t *pos, size_t count)
{
    sigset_t pipe_only, old, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    ssize_t n = sockit__sys_sendfile(out_fd, in_fd, pos, count);
    int err = errno;
    if (n < 0 && err == EPIPE && !was_pending) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return n;
}

/* A transport that is not plain (TLS) must see every byte, so the file is read and
 * sent through it: pread keeps the file offset untouched, as sendfile(2) does. */
static ssize_t sendfile_through_transport(sockit *s, int file_fd, off_t offset, size_t count,
                                          size_t *sent)
{
    enum { CHUNK = 16384 }; /* one TLS record */
    char buf[CHUNK];
    size_t done = 0;
    int64_t deadline = sockit__call_deadline(s); /* one for the whole file */
    while (count == 0 || done < count) {
        size_t want = count == 0 || count - done > CHUNK ? CHUNK : count - done;
        ssize_t got = pread(file_fd, buf, want, offset + (off_t)done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return sockit__failf(-errno, "sendfile (fd %d): reading the file after %zu bytes",
                                 file_fd, done);
        if (got == 0) {
            if (count == 0)
                break;
            return sockit__failf(SOCKIT_EEOF, "sendfile: file ended after %zu of %zu bytes", done,
                                 count);
        }
        size_t part = 0;
        ssize_t n = sendall_until(s, buf, (size_t)got, 0, &part, deadline, "sendfile");
        done += part;
        if (sent != NULL)
            *sent = done;
        if (n < 0)
            return n;
    }
    return (ssize_t)done;
}

ssize_t sockit_sendfile(sockit *s, int file_fd, off_t offset, size_t count, size_t *sent)
{
    size_t done = 0;
    if (sent != NULL)
        *sent = 0;
    if (s == NULL)
        return sockit__fail(-EBADF, "sendfile");
    if (offset < 0)
        return sockit__failf(-EINVAL, "sendfile: negative offset %lld", (long long)offset);
    if (s->transport != &sockit__plain_transport)
        return sendfile_through_transport(s, file_fd, offset, count, sent);
    int64_t deadline = sockit__call_deadline(s);
    off_t pos = offset;
    /* count 0 means "to the end of the file": sendfile returning 0 marks it. */
    const size_t chunk = (size_t)1 << 30;
    while (count == 0 || done < count) {
        size_t want = count == 0 ? chunk : count - done;
        if (want > chunk)
            want = chunk;
        ssize_t n = sendfile_nosigpipe(s->fd, file_fd, &pos, want);
        if (n > 0) {
            done += (size_t)n;
            if (sent != NULL)
                *sent = done;
            continue;
        }
        if (n == 0) {
            if (count == 0)
                break;
            return sockit__failf(SOCKIT_EEOF, "sendfile: file ended after %zu of %zu bytes", done,
                                 count);
        }
        int err = errno;
        if (err == EINTR)
            continue;
        int rc = -err;
        if (err == EAGAIN)
            rc = sockit__await(s, POLLOUT, deadline);
        if (rc < 0)
            return sockit__failf(rc, "sendfile (fd %d): %zu bytes sent", file_fd, done);
    }
    return (ssize_t)done;
}
