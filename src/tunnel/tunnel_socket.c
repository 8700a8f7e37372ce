/* sockit_create_connection_via: a connection to the proxy (Happy Eyeballs and all),
 * then the tunnel's handshake, all within the one deadline. */
#include "../resolve_deadline.h"
#include "tunnel.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

static int send_out(sockit *s, sockit__tunnel *t, int64_t deadline)
{
    while (t->out_off < t->out_len) {
        short want = POLLOUT;
        ssize_t n = s->transport->send(s, t->out + t->out_off, t->out_len - t->out_off, 0, &want);
        if (n >= 0) {
            t->out_off += (size_t)n;
            continue;
        }
        int rc = n == -EAGAIN ? sockit__await(s, want, deadline) : (int)n;
        if (rc < 0)
            return rc;
    }
    t->out_len = t->out_off = 0;
    return 0;
}

static int failed(const sockit__tunnel *t, int rc)
{
    char where[600];
    sockit__tunnel_where(t, where, sizeof where);
    if (rc == SOCKIT_EWOULDBLOCK)
        return rc; /* not a failure: the caller comes back (no message, as recv's) */
    if (rc == SOCKIT_ETIMEOUT)
        return sockit__failf(rc, "connect to %s: the proxy's handshake did not finish in time",
                             where);
    return sockit__failf(rc, "connect to %s: during the proxy's handshake", where);
}

int sockit__tunnel_run(sockit *s, sockit__tunnel *t, int64_t deadline)
{
    int rc = send_out(s, t, deadline);
    while (rc == 0) {
        /* SOCKS5's replies are read to their exact length, so only HTTP's header can
         * bring target bytes along, and those are kept. */
        char buf[1024];
        size_t ask = sizeof buf;
        if (t->url.kind != SOCKIT__TUNNEL_HTTP && t->need > t->in_len)
            ask = t->need - t->in_len;
        short want = POLLIN;
        ssize_t n = s->transport->recv(s, buf, ask, 0, &want);
        if (n == -EAGAIN) {
            rc = sockit__await(s, want, deadline);
            continue;
        }
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n == 0) {
            char where[600];
            sockit__tunnel_where(t, where, sizeof where);
            return sockit__failf(SOCKIT_EPROXY,
                                 "connect to %s: the proxy closed the connection during the "
                                 "handshake",
                                 where);
        }
        size_t off = 0;
        while (off < (size_t)n) {
            size_t used = 0;
            int step = sockit__tunnel_feed(t, buf + off, (size_t)n - off, &used);
            off += used;
            if (step < 0)
                return step;
            if (step == SOCKIT__TUNNEL_OPEN) {
                rc = sockit__rbuf_keep(s, buf + off, (size_t)n - off);
                if (rc < 0)
                    return failed(t, rc);
                return 0;
            }
            /* What arrived is all eaten before anything is sent (a proxy speaks only
             * after we do), so a send that must wait loses nothing. */
            if (off == (size_t)n)
                rc = send_out(s, t, deadline);
        }
    }
    return failed(t, rc);
}

/* The target's address for a SOCKS5 proxy that is given addresses, not names. */
static int resolve_target(const char *host, int port, int64_t deadline, sockit_addr *out)
{
    sockit_addrinfo ai;
    ssize_t n = sockit__resolve_deadline(host, port, AF_UNSPEC, SOCK_STREAM, 0, deadline, &ai, 1);
    if (n < 0) {
        char where[300];
        sockit__hostport(where, sizeof where, host, port);
        return sockit__failf((int)n,
                             "connect to %s (resolved here for a socks5:// proxy; "
                             "socks5h:// lets the proxy resolve it)",
                             where);
    }
    *out = ai.addr;
    return 0;
}

sockit *sockit_create_connection_via(const char *proxy, const char *host, int port, double timeout,
                                     const sockit_addr *source)
{
    if (proxy == NULL || proxy[0] == '\0')
        return sockit_create_connection(host, port, timeout, source);
    sockit__proxy_url url;
    if (sockit__proxy_url_parse(proxy, &url) < 0)
        return NULL;
    if (host == NULL || host[0] == '\0' || strncmp(host, "unix:", 5) == 0) {
        sockit__failf(-EINVAL, "connect through a proxy: %s",
                      host == NULL || host[0] == '\0' ? "no target host"
                                                      : "a Unix socket cannot be reached that way");
        return NULL;
    }
    if (port < 1 || port > 65535) {
        sockit__failf(SOCKIT_EBADPORT, "connect to %s through a proxy: port %d not in 1-65535",
                      host, port);
        return NULL;
    }
    int64_t deadline = sockit__deadline(timeout);
    sockit_addr target_addr = {0};
    if (url.kind == SOCKIT__TUNNEL_SOCKS5 && resolve_target(host, port, deadline, &target_addr) < 0)
        return NULL;
    double left = timeout;
    if (deadline != SOCKIT__NEVER) {
        int64_t ns = deadline - sockit__now_ns();
        left = ns > 0 ? (double)ns / 1e9 : 0;
    }
    sockit *s = sockit_create_connection(url.host, url.port, left, source);
    if (s == NULL)
        return NULL;
    sockit__tunnel t;
    int rc = sockit__tunnel_start(&t, &url, host, port, &target_addr);
    if (rc == 0)
        rc = sockit__tunnel_run(s, &t, deadline);
    if (rc == SOCKIT_EWOULDBLOCK) { /* timeout 0: the proxy had no time to answer */
        char where[600];
        sockit__tunnel_where(&t, where, sizeof where);
        rc = sockit__failf(SOCKIT_ETIMEOUT, "connect to %s: no time left for the proxy's handshake",
                           where);
    }
    if (rc < 0) {
        /* The handshake's message is the one to keep, whatever closing says. */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sockit_errmsg());
        /* Without its reason, which sockit__failf appends again. */
        const char *reason = sockit_strerror(rc);
        size_t n = strlen(msg), r = strlen(reason);
        if (n >= r + 2 && memcmp(msg + n - r - 2, ": ", 2) == 0 && strcmp(msg + n - r, reason) == 0)
            msg[n - r - 2] = '\0';
        sockit_close(s);
        sockit__failf(rc, "%s", msg);
        return NULL;
    }
    /* The socket keeps the timeout asked for, not what was left of it after the
     * proxy's handshake (as sockit_create_connection's does). */
    if (timeout >= 0)
        sockit_settimeout(s, timeout);
    return s;
}

int sockit_tunnel(sockit *s, const char *proxy, const char *host, int port)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "tunnel");
    sockit__tunnel *t = s->tunnel;
    if (t == NULL) {
        if (s->type != SOCK_STREAM || s->family == AF_UNIX)
            return sockit__failf(-EOPNOTSUPP, "tunnel: only a TCP socket reaches a proxy");
        if (s->transport != &sockit__plain_transport)
            return sockit__failf(-EINVAL, "tunnel: on a TLS socket (open the tunnel first, "
                                          "then sockit_tls_wrap)");
        sockit__proxy_url url;
        int rc = sockit__proxy_url_parse(proxy, &url);
        if (rc < 0)
            return rc;
        if (host == NULL || host[0] == '\0')
            return sockit__failf(-EINVAL, "tunnel: no target host");
        if (port < 1 || port > 65535)
            return sockit__failf(SOCKIT_EBADPORT, "tunnel to %s: port %d not in 1-65535", host,
                                 port);
        sockit_addr target_addr = {0};
        if (url.kind == SOCKIT__TUNNEL_SOCKS5 &&
            resolve_target(host, port, SOCKIT__NEVER, &target_addr) < 0)
            return sockit_errcode();
        t = sockit__malloc(sizeof *t);
        if (t == NULL)
            return sockit__fail(-ENOMEM, "tunnel");
        rc = sockit__tunnel_start(t, &url, host, port, &target_addr);
        if (rc < 0) {
            sockit__free(t);
            return rc;
        }
        s->tunnel = t;
    }
    int rc = sockit__tunnel_run(s, t, sockit__call_deadline(s));
    if (rc == SOCKIT_EWOULDBLOCK)
        return sockit__fail(rc, "tunnel");
    sockit__free(t);
    s->tunnel = NULL;
    return rc;
}

int sockit_tunnel_wants(const sockit *s)
{
    if (s == NULL || s->tunnel == NULL)
        return 0;
    return sockit__tunnel_wants(s->tunnel);
}
