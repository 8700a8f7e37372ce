/* connect's local end (source.h). */
#include "source.h"

#include <string.h>
#include <time.h>

int source_parse(const char *text, sockit_addr *out)
{
    char host[SOCKIT_ADDRSTRLEN];
    size_t len = strlen(text);
    if (len >= sizeof host)
        return -1;
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        memcpy(host, text + 1, len - 2);
        host[len - 2] = '\0';
    } else {
        memcpy(host, text, len + 1);
    }
    sockit_addr a;
    if (sockit_addr_ip(&a, host, 0) < 0)
        return -1;
    *out = a;
    return 0;
}

int source_family(const netopts *o)
{
    if (o->source_text != NULL)
        return sockit_addr_family(&o->source);
    if (o->family != AF_UNSPEC)
        return o->family;
    sockit_addr numeric;
    if (o->host != NULL && source_parse(o->host, &numeric) == 0)
        return sockit_addr_family(&numeric);
    return AF_UNSPEC;
}

/* The address to bind for family: -s, or the wildcard, with -p's port. */
static void local_addr(const netopts *o, int family, sockit_addr *out)
{
    if (o->source_text != NULL)
        *out = o->source;
    else
        sockit_addr_ip(out, family == AF_INET ? "0.0.0.0" : "::", 0);
    sockit_addr_set_port(out, o->source_port);
}

int source_check(const netopts *o)
{
    if (o->source_text == NULL)
        return 0;
    int family = sockit_addr_family(&o->source);
    sockit *probe = sockit_socket(family, o->udp ? SOCK_DGRAM : SOCK_STREAM);
    int rc = probe != NULL ? sockit_bind_addr(probe, &o->source) : -1;
    int status = rc < 0 ? cli_fail("-s %s: %s", o->source_text, sockit_errmsg()) : 0;
    sockit_close(probe);
    return status;
}

static bool resolver_code(int code) { return strncmp(sockit_errname(code), "EAI_", 4) == 0; }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What is left of timeout (< 0: none) since start; never quite 0, which would mean
 * non-blocking. */
static double left(double timeout, double start)
{
    if (timeout < 0)
        return SOCKIT_BLOCKING;
    double l = timeout - (now() - start);
    return l > 0.001 ? l : 0.001;
}

/* One socket of family bound to the local end, connected within what is left.
 * *local: the failure was not the connect's. */
static sockit *attempt(const netopts *o, int family, int port, double timeout, double start,
                       bool *local)
{
    sockit_addr at;
    local_addr(o, family, &at);
    *local = true;
    sockit *s = sockit_socket(family, SOCK_STREAM);
    if (s == NULL)
        return NULL;
    if (sockit_set_reuseaddr(s, true) < 0 || sockit_bind_addr(s, &at) < 0) {
        sockit_close(s); /* a close that succeeds keeps the bind's message */
        return NULL;
    }
    if (sockit_settimeout(s, left(timeout, start)) < 0 || sockit_connect(s, o->host, port) < 0) {
        *local = resolver_code(sockit_errcode());
        sockit_close(s);
        return NULL;
    }
    return s;
}

/* The families to try with -p, in the resolver's order when the options leave it
 * open. Returns how many (0: the lookup failed, with its error). */
static int families(const netopts *o, int out[2])
{
    int family = source_family(o);
    if (family != AF_UNSPEC) {
        out[0] = family;
        return 1;
    }
    sockit_addrinfo ai[16];
    ssize_t n = sockit_getaddrinfo(o->host, NULL, AF_UNSPEC, SOCK_STREAM, 0, ai, 16);
    int count = 0;
    for (ssize_t i = 0; i < n && count < 2; i++)
        if (count == 0 || ai[i].family != out[0])
            out[count++] = ai[i].family;
    return count;
}

/* -p: each family in turn, each one a socket trying its addresses one at a time. */
static sockit *connect_fixed_port(const netopts *o, int port, double timeout, bool *local)
{
    double start = now();
    int fam[2];
    int n = families(o, fam);
    *local = true;
    sockit *s = NULL;
    for (int i = 0; i < n && s == NULL; i++) {
        s = attempt(o, fam[i], port, timeout, start, local);
        if (s == NULL && sockit_errcode() == SOCKIT_ETIMEOUT)
            break;
    }
    return s;
}

/* The handshake of a connection made with -p, within what is left of timeout. */
static int handshake(const netopts *o, sockit *s, sockit_tls_ctx *tls, double timeout, double start)
{
    int rc = sockit_settimeout(s, left(timeout, start));
    if (rc == 0)
        rc = sockit_tls_wrap(s, tls, tls_opts_server_name(&o->tls, o->host));
    return rc;
}

sockit *source_connect(const netopts *o, sockit_tls_ctx *tls, int port, double timeout, bool *local)
{
    bool local_failure = false;
    sockit *s;
    if (o->source_port != 0) {
        double start = now();
        s = connect_fixed_port(o, port, timeout, &local_failure);
        if (s != NULL && tls != NULL && handshake(o, s, tls, timeout, start) < 0) {
            sockit_close(s);
            s = NULL;
        }
        if (s != NULL)
            sockit_settimeout(s, timeout < 0 ? SOCKIT_BLOCKING : timeout);
    } else {
        /* sockit_create_connection has no family parameter; a wildcard source
         * address of the family restricts the attempts to it. */
        sockit_addr any;
        const sockit_addr *from = NULL;
        if (o->source_text != NULL) {
            from = &o->source;
        } else if (o->family != AF_UNSPEC) {
            sockit_addr_ip(&any, o->family == AF_INET ? "0.0.0.0" : "::", 0);
            from = &any;
        }
        /* With TLS, -w is one deadline for the connect and the handshake. */
        s = tls_opts_connect_via(&o->tls, tls, o->proxy, o->host, o->is_unix ? 0 : port, timeout,
                                 from);
        local_failure = s == NULL && resolver_code(sockit_errcode());
    }
    if (local != NULL)
        *local = local_failure;
    return s;
}

int source_fail(const netopts *o)
{
    int family = o->source_text != NULL ? sockit_addr_family(&o->source) : o->family;
    if (family == AF_UNSPEC || !resolver_code(sockit_errcode()))
        return cli_fail_lib();
    const char *name = family == AF_INET ? "IPv4" : "IPv6";
    if (o->source_text != NULL)
        return cli_fail("%s (only %s addresses were looked up: -s %s is %s)", sockit_errmsg(), name,
                        o->source_text, name);
    return cli_fail("%s (only %s addresses were looked up: %s)", sockit_errmsg(), name,
                    family == AF_INET ? "-4" : "-6");
}

int source_bind_dgram(const netopts *o, sockit *s, int family)
{
    if (o->source_text == NULL && o->source_port == 0)
        return 0;
    sockit_addr at;
    local_addr(o, family, &at);
    return sockit_bind_addr(s, &at);
}
