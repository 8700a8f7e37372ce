/* The socket object: creation, ownership, and Python's three timeout modes. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#define SOCKIT__TYPE_MASK (~(SOCK_NONBLOCK | SOCK_CLOEXEC))

int sockit__set_nonblock(int fd, bool on)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -errno;
    int want = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (want != flags && fcntl(fd, F_SETFL, want) < 0)
        return -errno;
    return 0;
}

sockit *sockit__wrap(int fd, int family, int type, double timeout)
{
    sockit *s = sockit__calloc(1, sizeof *s);
    if (s == NULL) {
        sockit__fail(-ENOMEM, "socket");
        return NULL;
    }
    s->fd = fd;
    s->family = family;
    s->type = type & SOCKIT__TYPE_MASK;
    s->timeout = timeout;
    s->transport = &sockit__plain_transport;
    return s;
}

void sockit__rewrap(sockit *s, int fd, int family, int type)
{
    sockit__rbuf keep = s->rbuf;
    *s = (sockit){.fd = fd,
                  .family = family,
                  .type = type & SOCKIT__TYPE_MASK,
                  .timeout = SOCKIT_BLOCKING,
                  .transport = &sockit__plain_transport,
                  .rbuf = {.data = keep.data, .cap = keep.cap}};
}

int sockit__unwrap(sockit *s)
{
    sockit__transport_release(s, true);
    int fd = s->fd;
    s->fd = -1;
    s->rbuf.start = s->rbuf.end = 0;
    if (close(fd) < 0 && errno != EINTR)
        return sockit__fail(-errno, "close");
    return 0;
}

static const char *family_name(int family)
{
    switch (family) {
    case AF_INET:
        return "AF_INET";
    case AF_INET6:
        return "AF_INET6";
    case AF_UNIX:
        return "AF_UNIX";
    default:
        return "unknown family";
    }
}

sockit *sockit_socket(int family, int type)
{
    int base = type & SOCKIT__TYPE_MASK;
    if (base != SOCK_STREAM && base != SOCK_DGRAM) {
        sockit__failf(-ESOCKTNOSUPPORT, "socket(%s, type %d)", family_name(family), type);
        return NULL;
    }
    bool nonblocking = (type & SOCK_NONBLOCK) != 0;
    int fd = socket(family, base | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) {
        int err = errno;
        sockit__failf(-err, "socket(%s, %s)", family_name(family),
                      base == SOCK_STREAM ? "SOCK_STREAM" : "SOCK_DGRAM");
        return NULL;
    }
    sockit *s = sockit__wrap(fd, family, base, nonblocking ? 0.0 : SOCKIT_BLOCKING);
    if (s == NULL)
        close(fd);
    return s;
}

int sockit_close(sockit *s)
{
    if (s == NULL)
        return 0;
    sockit__transport_release(s, true);
    int fd = s->fd;
    sockit__free_parts(s);
    sockit__free(s);
    /* Never retry close on EINTR: on Linux the descriptor is gone either way, and a
     * retry could close a descriptor another thread just opened. */
    if (close(fd) < 0 && errno != EINTR)
        return sockit__fail(-errno, "close");
    return 0;
}

int sockit_detach(sockit *s)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "detach");
    size_t pending = sockit_pending(s);
    if (pending > 0)
        return sockit__failf(-EBUSY,
                             "detach: %zu bytes read ahead by readline would be lost (recv them "
                             "first)",
                             pending);
    /* A TLS session cannot go on in other hands: it ends here, without close_notify,
     * as Python's SSLSocket.detach. */
    sockit__transport_release(s, false);
    int fd = s->fd;
    sockit__free_parts(s);
    sockit__free(s);
    return fd;
}

static sockit *wrap_dup(int fd, const char *op)
{
    int family, type;
    socklen_t len = sizeof family;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0) {
        int err = errno;
        sockit__failf(err == ENOTSOCK ? -ENOTSOCK : -err, "%s(fd %d)", op, fd);
        return NULL;
    }
    len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
        sockit__failf(-errno, "%s(fd %d)", op, fd);
        return NULL;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) {
        sockit__failf(-errno, "%s(fd %d)", op, fd);
        return NULL;
    }
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
        sockit__failf(-errno, "%s(fd %d)", op, fd);
        return NULL;
    }
    sockit *s = sockit__wrap(copy, family, type, (flags & O_NONBLOCK) ? 0.0 : SOCKIT_BLOCKING);
    if (s == NULL)
        close(copy);
    return s;
}

sockit *sockit_fromfd(int fd) { return wrap_dup(fd, "fromfd"); }

sockit *sockit_dup(const sockit *s)
{
    if (s == NULL) {
        sockit__fail(-EBADF, "dup");
        return NULL;
    }
    /* Two objects cannot share one TLS session (Python's SSLSocket.dup refuses too). */
    if (s->transport != &sockit__plain_transport) {
        sockit__failf(-EOPNOTSUPP, "dup of a TLS socket (a TLS session has one owner)");
        return NULL;
    }
    sockit *copy = wrap_dup(s->fd, "dup");
    if (copy != NULL)
        copy->timeout = s->timeout;
    return copy;
}

int sockit_socketpair(int family, int type, sockit *pair[2])
{
    int base = type & SOCKIT__TYPE_MASK;
    bool nonblocking = (type & SOCK_NONBLOCK) != 0;
    int fds[2];
    if (socketpair(family, base | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0, fds) < 0)
        return sockit__failf(-errno, "socketpair(%s)", family_name(family));
    double timeout = nonblocking ? 0.0 : SOCKIT_BLOCKING;
    sockit *a = sockit__wrap(fds[0], family, base, timeout);
    sockit *b = a ? sockit__wrap(fds[1], family, base, timeout) : NULL;
    if (b == NULL) {
        sockit__free(a);
        close(fds[0]);
        close(fds[1]);
        return sockit__fail(-ENOMEM, "socketpair");
    }
    pair[0] = a;
    pair[1] = b;
    return 0;
}

int sockit_fileno(const sockit *s) { return s ? s->fd : sockit__fail(-EBADF, "fileno"); }
int sockit_family(const sockit *s) { return s ? s->family : sockit__fail(-EBADF, "family"); }
int sockit_type(const sockit *s) { return s ? s->type : sockit__fail(-EBADF, "type"); }

int sockit_settimeout(sockit *s, double seconds)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "settimeout");
    if (isnan(seconds))
        return sockit__failf(-EINVAL, "settimeout(NaN)");
    double timeout = seconds < 0 ? SOCKIT_BLOCKING : seconds;
    /* Timeout mode waits with poll() on a non-blocking descriptor, as Python does;
     * only blocking mode leaves the descriptor blocking. */
    int rc = sockit__set_nonblock(s->fd, timeout >= 0);
    if (rc < 0)
        return sockit__fail(rc, "settimeout");
    s->timeout = timeout;
    return 0;
}

double sockit_gettimeout(const sockit *s) { return s ? s->timeout : SOCKIT_BLOCKING; }

int sockit_setblocking(sockit *s, bool blocking)
{
    return sockit_settimeout(s, blocking ? SOCKIT_BLOCKING : 0.0);
}

bool sockit_getblocking(const sockit *s) { return s != NULL && s->timeout != 0.0; }

int64_t sockit__call_deadline(const sockit *s)
{
    if (s->timeout < 0)
        return SOCKIT__NEVER;
    if (s->timeout == 0.0)
        return 0;
    return sockit__deadline(s->timeout);
}

int sockit__await(sockit *s, short events, int64_t deadline)
{
    if (s->timeout == 0.0)
        return SOCKIT_EWOULDBLOCK;
    return sockit__wait(s->fd, events, deadline);
}
