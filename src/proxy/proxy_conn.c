/* One proxied connection: the client's stream, the upstream's, and a chain of
 * toxics for each direction. The client is not read until the upstream has
 * connected, so nothing is taken from it that could not be passed on. */
#include "proxy_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void on_data(sockit_stream *st, const char *data, size_t len, void *user);
static void on_eof(sockit_stream *st, void *user);
static void on_drain(sockit_stream *st, void *user);
static void on_error(sockit_stream *st, int code, void *user);
static void on_close(sockit_stream *st, void *user);

static const sockit_stream_callbacks conn_callbacks = {.on_data = on_data,
                                                       .on_eof = on_eof,
                                                       .on_drain = on_drain,
                                                       .on_error = on_error,
                                                       .on_close = on_close};
/* For a client the proxy could not take on: nothing to tell anyone. */
static const sockit_stream_callbacks no_callbacks = {0};

const sockit_listener_config sockit__proxy_listener_template = {
    .on_accept = sockit__proxy_accept,
    .callbacks = &conn_callbacks,
    .idle_timeout = -1, /* a proxy keeps what its peers keep */
};

sockit_stream *sockit__proxy_sender(const px_dir *d)
{
    return d->which == SOCKIT_UPSTREAM ? d->conn->client : d->conn->upstream;
}

sockit_stream *sockit__proxy_receiver(const px_dir *d)
{
    return d->which == SOCKIT_UPSTREAM ? d->conn->upstream : d->conn->client;
}

/* The direction st sends. */
static px_dir *sent_by(px_conn *c, const sockit_stream *st)
{
    return &c->dir[st == c->client ? SOCKIT_UPSTREAM : SOCKIT_DOWNSTREAM];
}

void sockit__proxy_pressure(px_dir *d)
{
    sockit_stream *in = sockit__proxy_sender(d), *out = sockit__proxy_receiver(d);
    if (d->conn->ending || in == NULL || out == NULL)
        return;
    size_t held = d->held + sockit_stream_queued(out);
    bool blocked = sockit_stream_write_blocked(out);
    if (!d->paused && (blocked || held > SOCKIT_PROXY_HELD_MAX)) {
        d->paused = true;
        sockit_stream_pause(in);
    } else if (d->paused && !blocked && held <= PX_HELD_LOW) {
        d->paused = false;
        sockit_stream_resume(in);
    }
}

static void count(px_dir *d, size_t len)
{
    sockit_proxy_stats *s = &d->conn->proxy->stats;
    d->bytes += len;
    if (d->which == SOCKIT_UPSTREAM)
        s->bytes_up += len;
    else
        s->bytes_down += len;
}

static void write_out(px_dir *d, const char *data, size_t len)
{
    px_conn *c = d->conn;
    int rc = sockit_stream_write(sockit__proxy_receiver(d), data, len);
    if (rc < 0) {
        snprintf(c->reason_buf, sizeof c->reason_buf, "write to %s: %s",
                 d->which == SOCKIT_UPSTREAM ? "upstream" : "client", sockit_strerror(rc));
        sockit__proxy_conn_end(c, c->reason_buf, PX_ABORT);
        return;
    }
    count(d, len);
}

/* d's end of stream reached its receiver: pass the half-close on; once both
 * directions have ended the connection is done. */
static void ended(px_dir *d)
{
    px_conn *c = d->conn;
    d->ended = true;
    sockit_stream_shutdown(sockit__proxy_receiver(d));
    if (c->reason == NULL)
        c->reason = d->which == SOCKIT_UPSTREAM ? "client closed" : "upstream closed";
    if (c->dir[0].ended && c->dir[1].ended)
        sockit__proxy_conn_end(c, c->reason, PX_LINGER);
}

void sockit__proxy_deliver(px_dir *d, px_chunk *ch)
{
    px_conn *c = d->conn;
    int what = ch->what;
    const char *reason = ch->reason;
    if (!c->ending && what == PX_DATA)
        write_out(d, ch->data + ch->off, ch->len - ch->off);
    free(ch);
    if (c->ending)
        return;
    if (what == PX_EOF)
        ended(d);
    else if (what == PX_CLOSE)
        sockit__proxy_conn_end(c, reason, PX_LINGER);
}

static void maybe_free(px_conn *c)
{
    if (c->client != NULL || c->upstream != NULL || c->connecting != NULL)
        return;
    sockit_proxy *p = c->proxy;
    if (c->linked)
        sockit__proxy_event(p, SOCKIT_PROXY_CLOSE, c);
    sockit__chain_free(&c->dir[0]);
    sockit__chain_free(&c->dir[1]);
    sockit__proxy_conn_gone(p, c);
}

void sockit__proxy_conn_end(px_conn *c, const char *reason, double linger)
{
    if (c->ending)
        return;
    c->ending = true;
    if (reason != NULL)
        c->reason = reason;
    sockit__chain_clear(&c->dir[0]);
    sockit__chain_clear(&c->dir[1]);
    if (c->connecting != NULL)
        sockit_connector_cancel(c->connecting); /* done comes with -ECANCELED */
    sockit_stream *ends[2] = {c->client, c->upstream};
    for (int i = 0; i < 2; i++) {
        if (ends[i] == NULL)
            continue;
        if (linger < 0)
            sockit_stream_abort(ends[i]);
        else
            sockit_stream_close(ends[i], linger);
    }
}

static void on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    px_conn *c = user;
    if (c->ending)
        return;
    px_dir *d = sent_by(c, st);
    if (!sockit__chain_idle(d)) { /* running the chain weighs the pressure itself */
        if (sockit__chain_push(d, data, len, PX_DATA) < 0)
            sockit__proxy_conn_end(c, "out of memory", PX_ABORT);
        return;
    }
    write_out(d, data, len);
    if (!c->ending)
        sockit__proxy_pressure(d);
}

static void on_eof(sockit_stream *st, void *user)
{
    px_conn *c = user;
    if (c->ending)
        return;
    px_dir *d = sent_by(c, st);
    if (sockit__chain_idle(d))
        ended(d);
    else if (sockit__chain_push(d, NULL, 0, PX_EOF) < 0)
        sockit__proxy_conn_end(c, "out of memory", PX_ABORT);
}

static void on_drain(sockit_stream *st, void *user)
{
    px_conn *c = user;
    /* st receives the direction the other stream sends */
    sockit__proxy_pressure(&c->dir[st == c->client ? SOCKIT_DOWNSTREAM : SOCKIT_UPSTREAM]);
}

static void on_error(sockit_stream *st, int code, void *user)
{
    px_conn *c = user;
    if (c->ending)
        return;
    /* A reset or a failure on one side resets the other: it cannot be told more
     * gently that its bytes will not arrive. */
    snprintf(c->reason_buf, sizeof c->reason_buf, "%s: %s", st == c->client ? "client" : "upstream",
             sockit_strerror(code));
    sockit__proxy_conn_end(c, c->reason_buf, PX_ABORT);
}

static void on_close(sockit_stream *st, void *user)
{
    px_conn *c = user;
    if (st == c->client)
        c->client = NULL;
    else
        c->upstream = NULL;
    if (!c->ending)
        sockit__proxy_conn_end(c, "closed", PX_ABORT);
    maybe_free(c);
}

static void connected(sockit_connector *cn, sockit_stream *st, int code, void *user)
{
    (void)cn;
    px_conn *c = user;
    sockit_proxy *p = c->proxy;
    c->connecting = NULL;
    if (code != 0) {
        if (!c->ending) {
            snprintf(c->reason_buf, sizeof c->reason_buf, "upstream: %s", sockit_errmsg());
            c->reason = c->reason_buf;
            p->stats.refused++;
            sockit__proxy_event(p, SOCKIT_PROXY_REFUSED, c);
            sockit__proxy_conn_end(c, c->reason_buf, PX_LINGER_UP);
        }
        maybe_free(c);
        return;
    }
    c->upstream = st;
    if (c->ending) { /* the proxy went down while connecting */
        sockit_stream_abort(st);
        return;
    }
    c->linked = true;
    if (sockit__chain_build(&c->dir[0]) < 0 || sockit__chain_build(&c->dir[1]) < 0) {
        sockit__proxy_conn_end(c, "out of memory", PX_ABORT);
        return;
    }
    if (c->ending) /* a toxic acted at once (reset_peer, timeout 0 ms) */
        return;
    sockit__proxy_event(p, SOCKIT_PROXY_OPEN, c);
    sockit_stream_resume(c->client);
}

void sockit__proxy_accept(sockit_listener *l, sockit_stream *st, const sockit_addr *peer,
                          void *user)
{
    (void)l;
    sockit_proxy *p = user;
    px_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        sockit_stream_set_callbacks(st, &no_callbacks);
        sockit_stream_abort(st);
        return;
    }
    c->proxy = p;
    c->id = ++p->next_id;
    if (peer != NULL)
        c->client_addr = *peer;
    c->client = st;
    for (int i = 0; i < 2; i++) {
        c->dir[i].conn = c;
        c->dir[i].which = (sockit_proxy_direction)i;
    }
    c->next = p->conns;
    if (p->conns != NULL)
        p->conns->prev = c;
    p->conns = c;
    p->stats.connections++;
    p->stats.open++;
    sockit_stream_set_user(st, c);
    sockit_stream_pause(st);
    if (p->upstream_tls != NULL)
        c->connecting = sockit__stream_connect_tls_named(
            p->loop, p->upstream_host, p->upstream_port, p->connect_timeout, NULL, p->upstream_tls,
            p->upstream_tls_name, &conn_callbacks, connected, c);
    else
        c->connecting =
            sockit_stream_connect(p->loop, p->upstream_host, p->upstream_port, p->connect_timeout,
                                  NULL, &conn_callbacks, connected, c);
    if (c->connecting == NULL) {
        snprintf(c->reason_buf, sizeof c->reason_buf, "upstream: %s", sockit_errmsg());
        c->reason = c->reason_buf;
        p->stats.refused++;
        sockit__proxy_event(p, SOCKIT_PROXY_REFUSED, c);
        sockit__proxy_conn_end(c, c->reason_buf, PX_LINGER_UP);
    }
}
