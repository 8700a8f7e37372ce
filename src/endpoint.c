/* Where a socket is: bind, listen, accept, connect, shutdown, and its two names. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Up to this many resolved addresses are tried by bind and connect. */
#define ENDPOINT_MAX_ADDRS 16

static bool is_unix_path(const sockit_addr *a)
{
    return a->u.sa.sa_family == AF_UNIX && a->len > offsetof(struct sockaddr_un, sun_path) &&
           a->u.un.sun_path[0] != '\0';
}

/* A Unix socket file is stale when a connect probe to it is refused: no socket is
 * bound to it any more (its server died without unlinking). The probe is a datagram
 * socket whatever the type being bound, because it can tell without side effects:
 * a live stream socket answers EPROTOTYPE without queueing a connection the server
 * would have to accept, and a live datagram socket merely accepts the association.
 * Anything but ECONNREFUSED means the path is owned and must not be hijacked. */
static bool unix_path_is_stale(const sockit_addr *a)
{
    struct stat st;
    if (lstat(a->u.un.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return false;
    int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0)
        return false;
    int rc = sockit__sys_connect(probe, &a->u.sa, a->len);
    int err = rc < 0 ? errno : 0;
    close(probe);
    return rc < 0 && err == ECONNREFUSED;
}

int sockit_bind_addr(sockit *s, const sockit_addr *addr)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "bind");
    if (addr == NULL || addr->len == 0)
        return sockit__failf(SOCKIT_EBADADDR, "bind: no address");
    char text[SOCKIT_ADDRSTRLEN];
    if (bind(s->fd, &addr->u.sa, addr->len) == 0)
        return 0;
    int err = errno;
    sockit__addr_text(addr, text, sizeof text);
    if (err == EADDRINUSE && is_unix_path(addr) && unix_path_is_stale(addr)) {
        if (unlink(addr->u.un.sun_path) < 0 && errno != ENOENT)
            return sockit__failf(-errno, "bind to %s: removing the stale socket file", text);
        if (bind(s->fd, &addr->u.sa, addr->len) == 0)
            return 0;
        err = errno;
    }
    if (err == EADDRINUSE && is_unix_path(addr))
        return sockit__failf(-err, "bind to %s (a live server owns it, or it is not a socket)",
                             text);
    return sockit__failf(-err, "bind to %s", text);
}

int sockit_bind(sockit *s, const char *host, int port)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "bind");
    sockit_addrinfo ai[ENDPOINT_MAX_ADDRS];
    /* bind never waits on the network, so only the resolver can take time; like
     * Python, it is not bounded by the socket's timeout. */
    ssize_t n =
        sockit__resolve_for(s, "bind", host, port, true, SOCKIT__NEVER, ai, ENDPOINT_MAX_ADDRS);
    if (n < 0)
        return (int)n;
    /* Like Python, bind uses the first address; a name that resolves to several is
     * ambiguous for a server, and create_server is the call that tries them all. */
    return sockit_bind_addr(s, &ai[0].addr);
}

int sockit_listen(sockit *s, int backlog)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "listen");
    if (listen(s->fd, backlog < 0 ? SOMAXCONN : backlog) < 0)
        return sockit__failf(-errno, "listen(backlog %d)", backlog);
    return 0;
}

int sockit__accept_fd(sockit *s, sockit_addr *peer)
{
    int64_t deadline = sockit__call_deadline(s);
    for (;;) {
        sockit_addr from;
        socklen_t len = sizeof from.u;
        int fd = sockit__sys_accept4(s->fd, &from.u.sa, &len, SOCK_CLOEXEC);
        if (fd >= 0) {
            from.len = len;
            if (peer != NULL)
                *peer = from;
            return fd;
        }
        int err = errno;
        if (err == EINTR || err == ECONNABORTED)
            continue;
        int rc = -err;
        if (err == EAGAIN)
            rc = sockit__await(s, POLLIN, deadline);
        if (rc < 0)
            return sockit__io_fail(s, rc, "accept");
    }
}

sockit *sockit_accept(sockit *s, sockit_addr *peer)
{
    if (s == NULL) {
        sockit__fail(-EBADF, "accept");
        return NULL;
    }
    int fd = sockit__accept_fd(s, peer);
    if (fd < 0)
        return NULL;
    sockit *c = sockit__wrap(fd, s->family, s->type, SOCKIT_BLOCKING);
    if (c == NULL)
        close(fd);
    return c;
}

int sockit__connect_raw(sockit *s, const sockit_addr *addr, int64_t deadline)
{
    if (sockit__sys_connect(s->fd, &addr->u.sa, addr->len) == 0)
        return 0;
    int err = errno;
    /* A blocking connect interrupted by a signal goes on in the kernel; it cannot be
     * restarted, only waited for (POSIX connect(2)). Same for a connect in progress. */
    if (err != EINPROGRESS && err != EINTR && !(err == EAGAIN && s->family == AF_UNIX))
        return -err;
    if (s->timeout == 0.0)
        return err == EAGAIN ? SOCKIT_EWOULDBLOCK : -EINPROGRESS;
    if (err == EAGAIN) {
        /* A Unix listener's backlog is full: retry until it has room or time is up. */
        for (;;) {
            int rc = sockit__wait(s->fd, POLLOUT, deadline);
            if (rc < 0)
                return rc;
            if (sockit__sys_connect(s->fd, &addr->u.sa, addr->len) == 0)
                return 0;
            if (errno != EAGAIN && errno != EINTR)
                return -errno;
            if (deadline != SOCKIT__NEVER && sockit__now_ns() >= deadline)
                return SOCKIT_ETIMEOUT;
            poll(NULL, 0, 1);
        }
    }
    int rc = sockit__wait(s->fd, POLLOUT, deadline);
    if (rc < 0)
        return rc;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        return -errno;
    return -soerr;
}

int sockit_connect_addr(sockit *s, const sockit_addr *addr)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "connect");
    if (addr == NULL || addr->len == 0)
        return sockit__failf(SOCKIT_EBADADDR, "connect: no address");
    int rc = sockit__connect_raw(s, addr, sockit__call_deadline(s));
    if (rc == 0)
        return 0;
    if (rc == -EINPROGRESS || rc == SOCKIT_EWOULDBLOCK)
        return sockit__fail(rc, "connect");
    char text[SOCKIT_ADDRSTRLEN];
    sockit__addr_text(addr, text, sizeof text);
    return sockit__failf(rc, "connect to %s", text);
}

int sockit_connect(sockit *s, const char *host, int port)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "connect");
    /* One deadline covers resolving the name and every attempt. A non-blocking
     * socket cannot resolve a name without waiting, so it resolves unbounded (use
     * sockit_connect_addr from an event loop). */
    int64_t deadline = sockit__call_deadline(s);
    sockit_addrinfo ai[ENDPOINT_MAX_ADDRS];
    ssize_t n =
        sockit__resolve_for(s, "connect", host, port, false,
                            s->timeout == 0.0 ? SOCKIT__NEVER : deadline, ai, ENDPOINT_MAX_ADDRS);
    if (n < 0)
        return (int)n;
    /* Try each address in turn; on Linux a TCP socket whose connect was refused can
     * try again with another address. */
    char tried[768] = "";
    size_t used = 0;
    int first = 0;
    for (ssize_t i = 0; i < n; i++) {
        int rc = sockit__connect_raw(s, &ai[i].addr, deadline);
        if (rc == 0)
            return 0;
        if (rc == -EINPROGRESS || rc == SOCKIT_EWOULDBLOCK)
            return sockit__fail(rc, "connect");
        if (first == 0)
            first = rc;
        sockit__tried_append(tried, sizeof tried, &used, &ai[i].addr, rc);
        if (rc == SOCKIT_ETIMEOUT)
            break;
    }
    char where[SOCKIT_ADDRSTRLEN + 64];
    sockit__hostport(where, sizeof where, host, port);
    if (n == 1)
        return sockit__failf(first, "connect to %s", where);
    return sockit__failf(first, "connect to %s (tried %s)", where, tried);
}

int sockit_shutdown(sockit *s, int how)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "shutdown");
    if (s->transport->shutdown != NULL)
        return s->transport->shutdown(s, how, sockit__call_deadline(s));
    if (shutdown(s->fd, how) < 0)
        return sockit__failf(-errno, "shutdown(%s)",
                             how == SHUT_RD   ? "SHUT_RD"
                             : how == SHUT_WR ? "SHUT_WR"
                                              : "SHUT_RDWR");
    return 0;
}

static int name_of(const sockit *s, sockit_addr *out, bool peer)
{
    const char *op = peer ? "getpeername" : "getsockname";
    if (s == NULL || out == NULL)
        return sockit__fail(s == NULL ? -EBADF : -EINVAL, op);
    sockit_addr a;
    memset(&a, 0, sizeof a);
    socklen_t len = sizeof a.u;
    int rc = peer ? getpeername(s->fd, &a.u.sa, &len) : getsockname(s->fd, &a.u.sa, &len);
    if (rc < 0)
        return sockit__fail(-errno, op);
    a.len = len;
    *out = a;
    return 0;
}

int sockit_getsockname(const sockit *s, sockit_addr *out) { return name_of(s, out, false); }
int sockit_getpeername(const sockit *s, sockit_addr *out) { return name_of(s, out, true); }
