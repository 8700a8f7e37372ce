/* sockit_create_server: a bound, listening socket in one call, and the dual-stack
 * probe it relies on. */
#include "abi.h"
#include "internal.h"
#include "resolve_deadline.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

/* Resolved addresses beyond this many are not tried. */
#define SERVER_MAX_ADDRS 16
/* Room for the "tried ..." list in the error message. */
#define SERVER_TRIED_LEN 900

bool sockit_has_dualstack_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int off = 0;
    bool ok = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0;
    close(fd);
    return ok;
}

/* Creates one socket of opts on addr. Returns it, or NULL with *code set; sets no
 * message (the caller names the address). */
static sockit *serve_on(const sockit_addr *addr, const sockit_server_options *o, int *code)
{
    int family = sockit_addr_family(addr);
    sockit *s = sockit_socket(family, o->type);
    if (s == NULL) {
        *code = sockit_errcode();
        return NULL;
    }
    int rc = 0;
    /* SO_REUSEADDR lets a restarted server bind while old connections sit in
     * TIME_WAIT. It is not set on datagram sockets: there Linux lets a second socket
     * share the port and silently take part of the traffic. */
    if (family != AF_UNIX && o->type == SOCK_STREAM)
        rc = sockit_set_reuseaddr(s, true);
    if (rc == 0 && family != AF_UNIX && o->reuse_port)
        rc = sockit_set_reuseport(s, true);
    /* An explicit IPv6 server without dualstack is IPv6 only, whatever the system
     * default (net.ipv6.bindv6only) is, so that the same program behaves alike on
     * every machine. */
    if (rc == 0 && family == AF_INET6)
        rc = sockit_set_v6only(s, !o->dualstack);
    if (rc == 0)
        rc = sockit_bind_addr(s, addr);
    if (rc == 0 && o->type == SOCK_STREAM)
        rc = sockit_listen(s, o->backlog > 0 ? o->backlog : SOMAXCONN);
    if (rc == 0)
        return s;
    *code = rc;
    sockit_close(s);
    return NULL;
}

static void wildcard(sockit_addrinfo *ai, int family, int port)
{
    memset(ai, 0, sizeof *ai);
    ai->family = family;
    if (family == AF_INET6) {
        ai->addr.u.in6.sin6_family = AF_INET6;
        ai->addr.u.in6.sin6_addr = in6addr_any;
        ai->addr.u.in6.sin6_port = htons((uint16_t)port);
        ai->addr.len = sizeof ai->addr.u.in6;
    } else {
        ai->addr.u.in4.sin_family = AF_INET;
        ai->addr.u.in4.sin_addr.s_addr = htonl(INADDR_ANY);
        ai->addr.u.in4.sin_port = htons((uint16_t)port);
        ai->addr.len = sizeof ai->addr.u.in4;
    }
}

static sockit *serve_unix(const char *host, int port, const sockit_server_options *o)
{
    if (port != 0) {
        sockit__failf(SOCKIT_EBADPORT, "create_server %s: port %d given for a Unix socket (use 0)",
                      host, port);
        return NULL;
    }
    if (o->family != AF_UNSPEC && o->family != AF_UNIX) {
        sockit__failf(-EAFNOSUPPORT, "create_server %s: family %d asked for a Unix address", host,
                      o->family);
        return NULL;
    }
    sockit_addr addr;
    int rc = sockit_addr_parse(&addr, host);
    if (rc < 0 || sockit_addr_family(&addr) != AF_UNIX) {
        sockit__failf(rc < 0 ? rc : SOCKIT_EBADADDR, "create_server %s", host);
        return NULL;
    }
    int code = 0;
    sockit *s = serve_on(&addr, o, &code);
    if (s == NULL)
        sockit__failf(code, "create_server %s", host);
    return s;
}

/* Fills ai with the addresses to try. Returns the count or a code with a message. */
static ssize_t server_addresses(const char *host, int port, const sockit_server_options *o,
                                const char *where, sockit_addrinfo *ai)
{
    if (host == NULL || host[0] == '\0') {
        bool v6 = o->family == AF_INET6 ||
                  (o->family == AF_UNSPEC && o->dualstack && sockit_has_dualstack_ipv6());
        wildcard(&ai[0], v6 ? AF_INET6 : AF_INET, port);
        return 1;
    }
    ssize_t n = sockit__resolve_deadline(host, port, o->family, o->type, AI_PASSIVE, SOCKIT__NEVER,
                                         ai, SERVER_MAX_ADDRS);
    if (n < 0)
        sockit__failf((int)n, "create_server %s", where);
    return n;
}

sockit *sockit_create_server(const char *host, int port, const sockit_server_options *opts)
{
    sockit_server_options o = {.family = AF_UNSPEC, .type = SOCK_STREAM};
    if (opts != NULL && sockit__struct_copy(&o, sizeof o, opts, SOCKIT__BASE_SERVER_OPTIONS,
                                            "create_server: options") < 0)
        return NULL;
    if (o.type == 0)
        o.type = SOCK_STREAM;
    if (o.type != SOCK_STREAM && o.type != SOCK_DGRAM) {
        sockit__failf(-ESOCKTNOSUPPORT, "create_server: socket type %d", o.type);
        return NULL;
    }
    if (host != NULL && strncmp(host, "unix:", 5) == 0)
        return serve_unix(host, port, &o);
    if (o.family != AF_UNSPEC && o.family != AF_INET && o.family != AF_INET6) {
        sockit__failf(-EAFNOSUPPORT, "create_server: family %d", o.family);
        return NULL;
    }
    if (sockit__check_port("create_server", port, true) < 0)
        return NULL;

    char where[SOCKIT_ADDRSTRLEN + 64];
    sockit__hostport(where, sizeof where, host, port);
    sockit_addrinfo ai[SERVER_MAX_ADDRS];
    ssize_t n = server_addresses(host, port, &o, where, ai);
    if (n < 0)
        return NULL;

    char tried[SERVER_TRIED_LEN] = "";
    size_t used = 0;
    int first = 0;
    for (ssize_t i = 0; i < n; i++) {
        int code = 0;
        sockit *s = serve_on(&ai[i].addr, &o, &code);
        if (s != NULL)
            return s;
        if (first == 0)
            first = code;
        if (n == 1) {
            char text[SOCKIT_ADDRSTRLEN];
            sockit__addr_text(&ai[i].addr, text, sizeof text);
            sockit__failf(code, "create_server %s", text);
            return NULL;
        }
        sockit__tried_append(tried, sizeof tried, &used, &ai[i].addr, code);
    }
    sockit__failf(first, "create_server %s (tried %s)", where, tried);
    return NULL;
}
