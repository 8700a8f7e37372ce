/* A proxy's handshake on a connected stream (sockit_stream_connect_via): the stream
 * is borrowed with callbacks of its own until the tunnel is open. Its framing modes
 * do the reading: SOCKS5 replies come as exact lengths and HTTP's header as lines,
 * so the handshake never takes a byte of the target's, and what the proxy sent past
 * the header stays in the stream for the caller's first on_data. */
#include "../tunnel/tunnel.h"
#include "stream_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct tunnel_run {
    sockit_stream *st;
    sockit__tunnel t;
    sockit_timer *timer;
    sockit_resolve *resolve;
    sockit__tunnel_fn fn;
    void *arg;
    char host[256];
    int port;
    sockit__proxy_url url;
} tunnel_run;

static void end(tunnel_run *r, int status)
{
    sockit_stream *st = r->st;
    sockit_timer_close(r->timer);
    sockit__resolve_discard(r->resolve);
    sockit_stream_set_callbacks(st, NULL);
    sockit_stream_set_user(st, NULL);
    sockit__tunnel_fn fn = r->fn;
    void *arg = r->arg;
    sockit__free(r);
    fn(st, status, arg);
}

void sockit__stream_tunnel_abort(sockit_stream *st)
{
    /* The run goes now, without fn: its owner may be gone before the stream's
     * deferred on_close (or the run's timer) would have reported back to it. */
    tunnel_run *r = sockit_stream_user(st);
    if (r != NULL && r->st == st) {
        sockit_timer_close(r->timer);
        sockit__resolve_discard(r->resolve);
        sockit_stream_set_callbacks(st, NULL);
        sockit_stream_set_user(st, NULL);
        sockit__free(r);
    }
    sockit_stream_abort(st);
}

/* Asks the stream for what the protocol needs next. */
static int read_next(tunnel_run *r)
{
    if (r->t.url.kind == SOCKIT__TUNNEL_HTTP)
        return sockit_stream_read_lines(r->st, SOCKIT__TUNNEL_IN_MAX);
    return sockit_stream_read_exact(r->st, r->t.need - r->t.in_len);
}

static int send_out(tunnel_run *r)
{
    if (r->t.out_len == 0)
        return 0;
    int rc = sockit_stream_write(r->st, r->t.out, r->t.out_len);
    r->t.out_len = 0;
    return rc;
}

static void on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)st;
    tunnel_run *r = user;
    size_t used = 0;
    int rc = sockit__tunnel_feed(&r->t, data, len, &used);
    if (rc == SOCKIT__TUNNEL_OPEN) {
        rc = sockit_stream_read_raw(r->st);
        end(r, rc < 0 ? rc : 0);
        return;
    }
    if (rc == SOCKIT__TUNNEL_MORE)
        rc = send_out(r);
    if (rc == 0)
        rc = read_next(r);
    if (rc < 0)
        end(r, rc);
}

static void on_eof(sockit_stream *st, void *user)
{
    (void)st;
    tunnel_run *r = user;
    char where[600];
    sockit__tunnel_where(&r->t, where, sizeof where);
    end(r, sockit__failf(SOCKIT_EPROXY,
                         "connect to %s: the proxy closed the connection during the handshake",
                         where));
}

static void on_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    tunnel_run *r = user;
    char where[600];
    sockit__tunnel_where(&r->t, where, sizeof where);
    /* A header line over the framing's limit is a header over the limit, as the
     * blocking driver reports it. */
    if (code == SOCKIT_ELINELEN) {
        end(r, sockit__failf(SOCKIT_EPROXY,
                             "connect to %s: the proxy's response header is over %zu bytes", where,
                             (size_t)SOCKIT__TUNNEL_IN_MAX));
        return;
    }
    end(r, sockit__failf(code, "connect to %s: during the proxy's handshake", where));
}

static void on_close(sockit_stream *st, void *user)
{
    if (user != NULL)
        on_error(st, -ECONNRESET, user);
}

static const sockit_stream_callbacks tunnel_callbacks = {
    .on_data = on_data,
    .on_eof = on_eof,
    .on_error = on_error,
    .on_close = on_close,
};

static void timed_out(sockit_timer *tm, void *arg)
{
    (void)tm;
    tunnel_run *r = arg;
    char where[600];
    sockit__tunnel_where(&r->t, where, sizeof where);
    end(r, sockit__failf(SOCKIT_ETIMEOUT,
                         "connect to %s: the proxy's handshake did not finish in time", where));
}

static void begin(tunnel_run *r, const sockit_addr *target)
{
    int rc = sockit__tunnel_start(&r->t, &r->url, r->host, r->port, target);
    if (rc == 0)
        rc = send_out(r);
    if (rc == 0)
        rc = read_next(r);
    if (rc < 0)
        end(r, rc);
}

static void resolved(sockit_resolve *rs, int code, const sockit_addrinfo *ai, size_t n, void *arg)
{
    (void)rs;
    (void)n;
    tunnel_run *r = arg;
    r->resolve = NULL;
    if (code < 0) {
        char where[300];
        sockit__hostport(where, sizeof where, r->host, r->port);
        end(r, sockit__failf(code,
                             "connect to %s (resolved here for a socks5:// proxy; socks5h:// "
                             "lets the proxy resolve it)",
                             where));
        return;
    }
    begin(r, &ai[0].addr);
}

int sockit__stream_tunnel(sockit_stream *st, const sockit__proxy_url *url, const char *host,
                          int port, int64_t deadline, sockit__tunnel_fn fn, void *arg)
{
    /* The name is copied into 256 bytes below: a longer one must fail here (as
     * sockit__tunnel_start fails it), not go out cut short. */
    if (strlen(host) > 255)
        return sockit__failf(-EINVAL, "connect through a proxy: target host over 255 bytes");
    tunnel_run *r = sockit__calloc(1, sizeof *r);
    if (r == NULL)
        return sockit__fail(-ENOMEM, "stream_connect_via");
    r->st = st;
    r->fn = fn;
    r->arg = arg;
    r->url = *url;
    r->port = port;
    snprintf(r->host, sizeof r->host, "%s", host);
    /* Messages before the handshake starts name the tunnel too. */
    r->t.url = *url;
    snprintf(r->t.target, sizeof r->t.target, "%s", host);
    r->t.target_port = port;
    r->timer = sockit_timer_new(st->loop, timed_out, r);
    int rc = r->timer != NULL ? 0 : sockit_errcode();
    if (rc == 0 && deadline != SOCKIT__NEVER) {
        int64_t ns = deadline - sockit__now_ns();
        rc = sockit_timer_start(r->timer, ns > 1000000 ? (double)ns / 1e9 : 0.001, 0);
    }
    if (rc < 0) {
        sockit_timer_close(r->timer);
        sockit__free(r);
        return rc;
    }
    sockit_stream_set_callbacks(st, &tunnel_callbacks);
    sockit_stream_set_user(st, r);
    sockit_addr numeric;
    if (url->kind == SOCKIT__TUNNEL_SOCKS5 && sockit_addr_ip(&numeric, host, port) != 0) {
        char service[8];
        snprintf(service, sizeof service, "%d", port);
        r->resolve = sockit__resolve_start(st->loop, host, service, AF_UNSPEC, SOCK_STREAM,
                                           AI_NUMERICSERV, deadline, resolved, r);
        if (r->resolve == NULL) {
            rc = sockit_errcode();
            sockit_stream_set_callbacks(st, NULL);
            sockit_stream_set_user(st, NULL);
            sockit_timer_close(r->timer);
            sockit__free(r);
            return rc;
        }
        return 0;
    }
    /* begin may end the run (and call fn) before this returns. */
    begin(r, url->kind == SOCKIT__TUNNEL_SOCKS5 ? &numeric : NULL);
    return 0;
}
