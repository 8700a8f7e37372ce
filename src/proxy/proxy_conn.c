/* One proxied connection: the client's stream, the upstream's, and a chain of
 * toxics for each direction. The client is not read until the upstream has
 * connected, so nothing is taken from it that could not be passed on; then a
 * sockit_relay joins the two, its hooks running each direction's bytes through
 * the chain (the relay does the backpressure, the half-close and the resets). */
#include "proxy_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void on_error(sockit_stream *st, int code, void *user);
static void on_close(sockit_stream *st, void *user);

/* Until the upstream has connected the client is paused and only its end is
 * watched; then the relay takes both streams. */
static const sockit_stream_callbacks conn_callbacks = {.on_error = on_error, .on_close = on_close};
/* For a client the proxy could not take on: nothing to tell anyone. */
static const sockit_stream_callbacks no_callbacks = {0};

const sockit_listener_config sockit__proxy_listener_template = {
    .on_accept = sockit__proxy_accept,
    .callbacks = &conn_callbacks,
    .idle_timeout = -1, /* a proxy keeps what its peers keep */
};

void sockit__proxy_pressure(px_dir *d)
{
    if (!d->conn->ending && d->conn->relay != NULL)
        sockit__relay_pressure(d->conn->relay, (int)d->which);
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

/* A failed write ends the relay (both sides reset); its ending hook says why. */
static void write_out(px_dir *d, const char *data, size_t len)
{
    if (sockit__relay_pass(d->conn->relay, (int)d->which, data, len) == 0)
        count(d, len);
}

/* d's end of stream reached its receiver: pass the half-close on; once both
 * directions have ended the relay closes the connection. */
static void ended(px_dir *d)
{
    px_conn *c = d->conn;
    d->ended = true;
    if (c->reason == NULL)
        c->reason = d->which == SOCKIT_UPSTREAM ? "client closed" : "upstream closed";
    sockit__relay_pass_eof(c->relay, (int)d->which);
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
    if (c->client != NULL || c->upstream != NULL || c->connecting != NULL || c->relay != NULL)
        return;
    sockit_proxy *p = c->proxy;
    if (c->linked)
        sockit__proxy_event(p, SOCKIT_PROXY_CLOSE, c);
    sockit__chain_free(&c->dir[0]);
    sockit__chain_free(&c->dir[1]);
    sockit__proxy_conn_gone(p, c);
}

/* Nothing more is relayed: the chains let go of what they hold. */
static void stop(px_conn *c, const char *reason)
{
    c->ending = true;
    if (reason != NULL)
        c->reason = reason;
    sockit__chain_clear(&c->dir[0]);
    sockit__chain_clear(&c->dir[1]);
}

void sockit__proxy_conn_end(px_conn *c, const char *reason, double linger)
{
    if (c->ending)
        return;
    stop(c, reason);
    if (c->connecting != NULL)
        sockit_connector_cancel(c->connecting); /* done comes with -ECANCELED */
    if (c->relay != NULL) {
        sockit__relay_end(c->relay, 0, c->reason, linger);
        return;
    }
    /* Before the relay: the client, and an upstream the relay could not take. */
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

/* ---- the relay's hooks: each direction's bytes go through its chain ---- */

static bool take(sockit_relay *r, int dir, const char *data, size_t len, bool eof, void *user)
{
    px_conn *c = user;
    if (c->ending)
        return true;
    px_dir *d = &c->dir[dir];
    if (!sockit__chain_idle(d)) { /* running the chain weighs the pressure itself */
        if (sockit__chain_push(d, data, len, eof ? PX_EOF : PX_DATA) < 0)
            sockit__proxy_conn_end(c, "out of memory", PX_ABORT);
        return true;
    }
    if (eof) {
        ended(d);
        return true;
    }
    write_out(d, data, len);
    if (!c->ending)
        sockit__relay_pressure(r, dir);
    return true;
}

static size_t held(const sockit_relay *r, int dir, void *user)
{
    (void)r;
    const px_conn *c = user;
    return c->dir[dir].held;
}

/* The relay ends by itself (both directions done, an error, a failed write): the
 * connection's reason is the first one given. */
static void relay_ending(sockit_relay *r, int code, const char *reason, void *user)
{
    (void)r;
    px_conn *c = user;
    if (c->ending)
        return;
    /* An error after one side's clean end is what ended the connection. */
    if (c->reason == NULL || code != 0) {
        snprintf(c->reason_buf, sizeof c->reason_buf, "%s", reason);
        c->reason = c->reason_buf;
    }
    stop(c, NULL);
}

static const sockit__relay_hooks px_hooks = {.take = take, .held = held, .ending = relay_ending};

static void relay_done(sockit_relay *r, int code, const char *reason, void *user)
{
    (void)r;
    (void)code;
    (void)reason;
    px_conn *c = user;
    c->relay = NULL;
    c->client = c->upstream = NULL;
    maybe_free(c);
}

/* ---- before the upstream has connected ---- */

static void on_error(sockit_stream *st, int code, void *user)
{
    px_conn *c = user;
    if (c->ending)
        return;
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
    sockit_relay_config rc = {.held_max = SOCKIT_PROXY_HELD_MAX,
                              .linger = PX_LINGER,
                              .name_a = "client",
                              .name_b = "upstream",
                              .on_end = relay_done,
                              .user = c};
    sockit_relay_side client = {.in = c->client}, upstream = {.in = st};
    c->relay = sockit__relay_new_hooked(&client, &upstream, &rc, &px_hooks, c);
    if (c->relay == NULL) {
        sockit__proxy_conn_end(c, "out of memory", PX_ABORT);
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
