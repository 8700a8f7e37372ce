/* Name resolution: sockit_getaddrinfo into the caller's array, the per-socket
 * resolution behind bind/connect/sendto, and the host:port text of messages. */
#include "internal.h"
#include "resolve_deadline.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* A scripted or misbehaving resolver could hand back a cyclic list; nobody has this
 * many addresses for one name. */
#define RESOLVE_MAX_ENTRIES 1024

/* Atomic because a resolution may run in a helper thread while a test swaps hooks
 * between cases; swapping during a resolution is still the caller's mistake. */
static _Atomic(sockit__getaddrinfo_fn) gai_hook;
static _Atomic(sockit__freeaddrinfo_fn) free_hook;

void sockit__set_getaddrinfo_pair(sockit__getaddrinfo_fn fn, sockit__freeaddrinfo_fn free_fn)
{
    /* The free goes in first so a resolution that sees the new getaddrinfo also
     * sees the matching free. */
    atomic_store(&free_hook, fn != NULL ? free_fn : NULL);
    atomic_store(&gai_hook, fn);
}

void sockit__set_getaddrinfo(sockit__getaddrinfo_fn fn) { sockit__set_getaddrinfo_pair(fn, NULL); }

int sockit__call_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints,
                             struct addrinfo **res)
{
    sockit__getaddrinfo_fn fn = atomic_load(&gai_hook);
    return fn != NULL ? fn(host, port, hints, res) : getaddrinfo(host, port, hints, res);
}

void sockit__call_freeaddrinfo(struct addrinfo *res)
{
    if (res == NULL)
        return;
    sockit__freeaddrinfo_fn fn = atomic_load(&free_hook);
    if (fn != NULL)
        fn(res);
    else
        freeaddrinfo(res);
}

static bool usable(const struct addrinfo *ai)
{
    if (ai->ai_addr == NULL || ai->ai_addrlen > sizeof(struct sockaddr_storage))
        return false;
    if (ai->ai_socktype != SOCK_STREAM && ai->ai_socktype != SOCK_DGRAM)
        return false; /* SOCK_RAW duplicates that type 0 asks for */
    if (ai->ai_family == AF_INET)
        return ai->ai_addrlen >= sizeof(struct sockaddr_in);
    if (ai->ai_family == AF_INET6)
        return ai->ai_addrlen >= sizeof(struct sockaddr_in6);
    return false;
}

ssize_t sockit__copy_addrinfo(const struct addrinfo *res, sockit_addrinfo *out, size_t max)
{
    size_t n = 0;
    const struct addrinfo *ai = res;
    for (int seen = 0; ai != NULL && n < max && seen < RESOLVE_MAX_ENTRIES; seen++) {
        if (usable(ai)) {
            memset(&out[n], 0, sizeof out[n]);
            out[n].family = ai->ai_family;
            out[n].type = ai->ai_socktype;
            out[n].protocol = ai->ai_protocol;
            memcpy(&out[n].addr.u, ai->ai_addr, ai->ai_addrlen);
            out[n].addr.len = ai->ai_addrlen;
            n++;
        }
        ai = ai->ai_next;
    }
    return n == 0 ? SOCKIT_ENOADDR : (ssize_t)n;
}

ssize_t sockit__resolve_now(const char *host, const char *service, const struct addrinfo *hints,
                            sockit_addrinfo *out, size_t max)
{
    struct addrinfo *res = NULL;
    int rc = sockit__call_getaddrinfo(host, service, hints, &res);
    int err = errno;
    if (rc != 0)
        return sockit__from_eai(rc, err);
    ssize_t n = sockit__copy_addrinfo(res, out, max);
    sockit__call_freeaddrinfo(res);
    return n;
}

ssize_t sockit__resolve_all(const char *host, const char *service, const struct addrinfo *hints,
                            sockit_addrinfo **out)
{
    *out = NULL;
    struct addrinfo *res = NULL;
    int rc = sockit__call_getaddrinfo(host, service, hints, &res);
    int err = errno;
    if (rc != 0)
        return sockit__from_eai(rc, err);
    size_t count = 0;
    const struct addrinfo *ai = res;
    for (int seen = 0; ai != NULL && seen < RESOLVE_MAX_ENTRIES; seen++, ai = ai->ai_next)
        count += usable(ai);
    ssize_t n = SOCKIT_ENOADDR;
    if (count > 0) {
        *out = sockit__calloc(count, sizeof **out);
        n = *out != NULL ? sockit__copy_addrinfo(res, *out, count) : -ENOMEM;
    }
    sockit__call_freeaddrinfo(res);
    return n;
}

void sockit__join_hostport(char *buf, size_t size, const char *host, const char *port)
{
    if (size == 0)
        return;
    if (host == NULL)
        host = "";
    if (strncmp(host, "unix:", 5) == 0)
        snprintf(buf, size, "%s", host);
    else if (host[0] == '/' || host[0] == '@')
        snprintf(buf, size, "unix:%s", host); /* no host name starts so: a Unix path */
    else if (strchr(host, ':') != NULL && host[0] != '[')
        snprintf(buf, size, "[%s]:%s", host, port);
    else
        snprintf(buf, size, "%s:%s", host, port);
}

void sockit__hostport(char *buf, size_t size, const char *host, int port)
{
    char num[16];
    snprintf(num, sizeof num, "%d", port);
    sockit__join_hostport(buf, size, host, num);
}

int sockit__check_port(const char *op, int port, bool allow_zero)
{
    int low = allow_zero ? 0 : 1;
    if (port < low || port > 65535)
        return sockit__failf(SOCKIT_EBADPORT, "%s: port %d out of range %d-65535", op, port, low);
    return 0;
}

/* getaddrinfo itself would wrap 65536 to 0 and read "-1" and " 80" as numbers. */
int sockit__classify_port(const char *port, char *num, size_t size)
{
    size_t n = strlen(port);
    size_t digits = strspn(port, "0123456789");
    if (n > 0 && digits == n) {
        long v = 0;
        for (size_t i = 0; i < n && v <= 65535; i++)
            v = v * 10 + (port[i] - '0');
        if (v > 65535)
            return SOCKIT_EBADPORT;
        snprintf(num, size, "%ld", v);
        return 1;
    }
    if (n == 0)
        return SOCKIT_EBADPORT;
    char *end = NULL;
    (void)strtol(port, &end, 10);
    if (end != port && *end == '\0')
        return SOCKIT_EBADPORT; /* a sign or spaces around a number */
    return 0;
}

ssize_t sockit_getaddrinfo(const char *host, const char *port, int family, int type, int flags,
                           sockit_addrinfo *out, size_t max)
{
    const char *service = port != NULL ? port : "0";
    char where[SOCKIT_ADDRSTRLEN + 64];
    sockit__join_hostport(where, sizeof where, host, service);
    if (out == NULL || max == 0)
        return sockit__failf(-EINVAL, "getaddrinfo %s: no room for results", where);
    char num[24];
    int kind = sockit__classify_port(service, num, sizeof num);
    if (kind < 0)
        return sockit__failf(kind, "getaddrinfo %s: port '%s' is not a number 0-65535", where,
                             service);
    if (kind == 1) {
        service = num;
        flags |= AI_NUMERICSERV;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = type;
    hints.ai_flags = flags;
    ssize_t n = sockit__resolve_now(host, service, &hints, out, max);
    if (n < 0)
        return sockit__failf((int)n, "getaddrinfo %s", where);
    return n;
}

/* "bind to x", "connect to x", but "sendto x". */
static const char *joiner(const char *op)
{
    size_t n = strlen(op);
    return n >= 2 && strcmp(op + n - 2, "to") == 0 ? " " : " to ";
}

static ssize_t resolve_unix(const sockit *s, const char *op, const char *host, int port,
                            bool passive, sockit_addrinfo *out)
{
    const char *path = host != NULL ? host : "";
    if (strncmp(path, "unix:", 5) == 0)
        path += 5;
    const char *to = joiner(op);
    if (port != 0)
        return sockit__failf(SOCKIT_EBADPORT, "%s%sunix:%s: port %d given, a Unix socket takes 0",
                             op, to, path, port);
    if (host == NULL && passive) {
        /* Like the IP wildcard: Linux picks a free abstract name (autobind), which a
         * datagram client needs for the server to be able to answer. */
        memset(out, 0, sizeof *out);
        out->family = AF_UNIX;
        out->type = s->type;
        out->addr.u.un.sun_family = AF_UNIX;
        out->addr.len = sizeof(sa_family_t);
        return 1;
    }
    size_t n = strlen(path[0] == '@' ? path + 1 : path);
    if (n == 0)
        return sockit__failf(SOCKIT_EBADADDR, "%s%sunix:%s: empty Unix socket path", op, to, path);
    if (n > sizeof out->addr.u.un.sun_path - 1)
        return sockit__failf(SOCKIT_EPATHLEN, "%s%sunix:%s: path of %zu bytes, at most %zu", op, to,
                             path, n, sizeof out->addr.u.un.sun_path - 1);
    sockit_addr a;
    int rc = sockit_addr_unix(&a, path);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof *out);
    out->family = AF_UNIX;
    out->type = s->type;
    out->addr = a;
    return 1;
}

ssize_t sockit__resolve_for(const sockit *s, const char *op, const char *host, int port,
                            bool passive, int64_t deadline, sockit_addrinfo *out, size_t max)
{
    if (s == NULL)
        return sockit__fail(-EBADF, op);
    if (out == NULL || max == 0)
        return sockit__failf(-EINVAL, "%s: no room for addresses", op);
    if (s->family == AF_UNIX)
        return resolve_unix(s, op, host, port, passive, out);
    int rc = sockit__check_port(op, port, passive);
    if (rc < 0)
        return rc;
    /* NULL (and "") is the wildcard for a server and loopback for a client, which is
     * what getaddrinfo gives a NULL host with and without AI_PASSIVE. No
     * AI_ADDRCONFIG: a machine with only loopback must still resolve ::1. */
    const char *node = host != NULL && host[0] != '\0' ? host : NULL;
    ssize_t n = sockit__resolve_deadline(node, port, s->family, s->type, passive ? AI_PASSIVE : 0,
                                         deadline, out, max);
    if (n < 0) {
        char where[SOCKIT_ADDRSTRLEN + 64];
        sockit__hostport(where, sizeof where, host, port);
        return sockit__failf((int)n, "%s%s%s", op, joiner(op), where);
    }
    return n;
}
