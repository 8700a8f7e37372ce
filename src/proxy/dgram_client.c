/* One client of a datagram proxy: the upstream resolved for it, a socket of its
 * own connected there (the upstream's replies come back on it, and so to this
 * client), a chain of toxics each way, and the idle timer that ends it. */
#include "proxy_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void up_datagram(sockit_datagram *dg, const char *data, size_t len, const sockit_addr *from,
                        bool truncated, void *user);
static void up_error(sockit_datagram *dg, int code, void *user);
static void up_close(sockit_datagram *dg, void *user);
static const sockit_datagram_callbacks up_callbacks = {
    .on_datagram = up_datagram, .on_error = up_error, .on_close = up_close};

static double now_of(const px_client *c) { return sockit_loop_now(c->proxy->loop); }

void sockit__client_toxics(const px_client *c, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < c->dir[d].n; i++)
            if (c->dir[d].stages[i]->active)
                sockit__proxy_list_add(buf, size, c->dir[d].stages[i]->toxic->name);
}

static void tell(px_client *c, sockit_proxy_event_type type)
{
    char names[SOCKIT_PROXY_TOXICS_MAX * 8];
    sockit__client_toxics(c, names, sizeof names);
    sockit_proxy_event ev = {
        .type = type,
        .id = c->id,
        .client = &c->addr,
        .bytes_up = c->dir[SOCKIT_UPSTREAM].bytes,
        .bytes_down = c->dir[SOCKIT_DOWNSTREAM].bytes,
        .reason = c->reason != NULL ? c->reason : "",
        .toxics = names,
    };
    sockit__proxy_tell(c->proxy, &ev);
}

/* Takes a kept datagram off the proxy's bound. */
static void unpend(px_client *c, const px_dgram *g) { c->proxy->held -= PX_DGRAM_COST(g->len); }

static void drop_pending(px_client *c)
{
    c->proxy->stats.dropped += c->npend;
    for (px_dgram *g = c->pend_head, *next; g != NULL; g = next) {
        next = g->next;
        unpend(c, g);
        free(g);
    }
    c->pend_head = c->pend_tail = NULL;
    c->npend = 0;
    c->pend_bytes = 0;
}

static void gone(px_client *c)
{
    sockit_proxy *p = c->proxy;
    if (c->opened)
        tell(c, SOCKIT_PROXY_CLOSE);
    sockit__dchain_free(&c->dir[0]);
    sockit__dchain_free(&c->dir[1]);
    drop_pending(c);
    sockit_timer_close(c->idle);
    sockit__dgram_gone(p, c);
}

static void gone_later(sockit_loop *loop, void *arg)
{
    (void)loop;
    gone(arg);
}

/* Frees c once neither its lookup nor its socket will call back, from the loop;
 * never while client_end is still using it (busy). */
static void maybe_gone(px_client *c)
{
    if (!c->ending || c->busy || c->resolving != NULL || c->up != NULL || c->gone_soon)
        return;
    c->gone_soon = true;
    if (sockit_loop_call_soon(c->proxy->loop, gone_later, c) < 0)
        gone(c); /* out of memory: the callers that end entries read nothing of c after */
}

void sockit__client_end(px_client *c, const char *reason)
{
    if (c->ending)
        return;
    c->ending = true;
    c->busy = true;
    if (c->reason == NULL)
        c->reason = reason;
    sockit__dgram_unlist(c->proxy, c);
    sockit_timer_stop(c->idle);
    drop_pending(c);
    /* the stages stay until c goes, so its close event can name its toxics */
    sockit__dchain_clear(&c->dir[0]);
    sockit__dchain_clear(&c->dir[1]);
    if (c->resolving != NULL)
        sockit_resolve_cancel(c->resolving); /* done comes with -ECANCELED */
    if (c->up != NULL)
        sockit_datagram_close(c->up); /* on_close comes from the loop */
    c->busy = false;
    maybe_gone(c);
}

static void count(px_cdir *d, size_t len)
{
    sockit_proxy_stats *s = &d->client->proxy->stats;
    d->bytes += len;
    if (d->which == SOCKIT_UPSTREAM) {
        s->bytes_up += len;
        s->datagrams_up++;
    } else {
        s->bytes_down += len;
        s->datagrams_down++;
    }
}

/* Keeps a datagram for the upstream until its address is known. */
static void pend(px_client *c, const char *data, size_t len)
{
    sockit_proxy *p = c->proxy;
    bool room = c->npend < PX_PENDING_MAX && c->pend_bytes + len <= SOCKIT_PROXY_HELD_MAX &&
                p->held + PX_DGRAM_COST(len) <= PX_DGRAM_HELD_ALL;
    px_dgram *g = room ? malloc(sizeof *g + len) : NULL;
    if (g == NULL) {
        c->proxy->stats.dropped++;
        return;
    }
    g->next = NULL;
    g->len = len;
    if (len > 0)
        memcpy(g->data, data, len);
    if (c->pend_tail != NULL)
        c->pend_tail->next = g;
    else
        c->pend_head = g;
    c->pend_tail = g;
    c->npend++;
    c->pend_bytes += len;
    p->held += PX_DGRAM_COST(len);
}

void sockit__client_deliver(px_cdir *d, const char *data, size_t len)
{
    px_client *c = d->client;
    sockit_proxy *p = c->proxy;
    if (c->ending) {
        p->stats.dropped++;
        return;
    }
    int rc;
    if (d->which == SOCKIT_UPSTREAM) {
        if (c->up == NULL) {
            pend(c, data, len);
            return;
        }
        rc = sockit_datagram_send(c->up, data, len, NULL);
    } else {
        rc = p->endpoint != NULL ? sockit_datagram_send(p->endpoint, data, len, &c->addr) : -EPIPE;
    }
    if (rc < 0) { /* a full queue, or a refusal the kernel gave at once: lost, as UDP loses */
        p->stats.dropped++;
        return;
    }
    count(d, len);
}

void sockit__client_take(px_client *c, const char *data, size_t len)
{
    if (c->ending)
        return;
    c->last = now_of(c);
    sockit__dchain_run(&c->dir[SOCKIT_UPSTREAM], 0, data, len, NULL);
}

static void up_datagram(sockit_datagram *dg, const char *data, size_t len, const sockit_addr *from,
                        bool truncated, void *user)
{
    (void)dg;
    (void)from; /* connected: only the upstream's datagrams reach this socket */
    (void)truncated;
    px_client *c = user;
    if (c->ending)
        return;
    c->last = now_of(c);
    sockit__dchain_run(&c->dir[SOCKIT_DOWNSTREAM], 0, data, len, NULL);
}

static void up_error(sockit_datagram *dg, int code, void *user)
{
    /* An ICMP error (nothing listens upstream): the datagram is lost, as it would
     * be without the proxy; the client's entry stays for when the upstream is back. */
    (void)dg;
    (void)code;
    (void)user;
}

static void up_close(sockit_datagram *dg, void *user)
{
    (void)dg;
    px_client *c = user;
    c->up = NULL;
    maybe_gone(c);
}

static void idle_fired(sockit_timer *t, void *arg)
{
    px_client *c = arg;
    double idle = c->refused ? PX_REFUSED_HOLD : c->proxy->idle_timeout;
    double left = c->last + idle - now_of(c);
    /* a toxic still holding datagrams (a latency longer than the idle timeout) is
     * use: they are let go before the entry */
    bool holding = c->dir[0].held > 0 || c->dir[1].held > 0;
    if (!c->refused && (left > 0.001 || holding)) {
        sockit_timer_start(t, left > 0.001 ? left : idle, 0);
        return;
    }
    sockit__client_end(c, c->refused ? "upstream unreachable" : "idle");
}

static void refuse(px_client *c, const char *why)
{
    sockit_proxy *p = c->proxy;
    snprintf(c->reason_buf, sizeof c->reason_buf, "upstream: %s", why);
    c->reason = c->reason_buf;
    c->refused = true;
    drop_pending(c);
    p->stats.refused++;
    tell(c, SOCKIT_PROXY_REFUSED);
    /* its client's datagrams are dropped for a while, then the next one tries again */
    if (!c->ending)
        sockit_timer_start(c->idle, PX_REFUSED_HOLD, 0);
}

/* A socket connected to the first of the addresses that takes it. */
static sockit *connect_first(const sockit_addrinfo *ai, size_t n, char *why, size_t size)
{
    snprintf(why, size, "no address");
    for (size_t i = 0; i < n; i++) {
        sockit *s = sockit_socket(ai[i].family, SOCK_DGRAM);
        if (s != NULL && sockit_connect_addr(s, &ai[i].addr) == 0)
            return s;
        snprintf(why, size, "%s", sockit_errmsg());
        sockit_close(s);
    }
    return NULL;
}

static void resolved(sockit_resolve *r, int code, const sockit_addrinfo *ai, size_t n, void *user)
{
    (void)r;
    px_client *c = user;
    c->resolving = NULL;
    if (c->ending) {
        maybe_gone(c);
        return;
    }
    if (code != 0) {
        refuse(c, sockit_errmsg());
        return;
    }
    char why[200];
    sockit *s = connect_first(ai, n, why, sizeof why);
    if (s != NULL) {
        c->up = sockit_datagram_new(c->proxy->loop, s, &up_callbacks, c);
        if (c->up == NULL) {
            snprintf(why, sizeof why, "%s", sockit_errmsg());
            sockit_close(s);
        }
    }
    if (c->up == NULL) {
        refuse(c, why);
        return;
    }
    /* a small queue: what the kernel does not take soon is lost, as UDP loses */
    sockit_datagram_set_limit(c->up, PX_UP_QUEUE);
    c->opened = true;
    tell(c, SOCKIT_PROXY_OPEN);
    px_dgram *g = c->pend_head;
    c->pend_head = c->pend_tail = NULL;
    c->npend = 0;
    c->pend_bytes = 0;
    for (px_dgram *next; g != NULL; g = next) {
        next = g->next;
        unpend(c, g);
        sockit__client_deliver(&c->dir[SOCKIT_UPSTREAM], g->data, g->len);
        free(g);
    }
}

px_client *sockit__client_new(sockit_proxy *p, const sockit_addr *from)
{
    px_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->proxy = p;
    c->id = ++p->next_id;
    c->addr = *from;
    c->last = sockit_loop_now(p->loop);
    for (int i = 0; i < 2; i++) {
        c->dir[i].client = c;
        c->dir[i].which = (sockit_proxy_direction)i;
    }
    char port[8];
    snprintf(port, sizeof port, "%d", p->upstream_port);
    c->idle = sockit_timer_new(p->loop, idle_fired, c);
    if (c->idle == NULL || sockit__dchain_build(&c->dir[0]) < 0 ||
        sockit__dchain_build(&c->dir[1]) < 0)
        goto fail;
    sockit_timer_keepalive(c->idle, false);
    c->resolving = sockit_loop_getaddrinfo(p->loop, p->upstream_host, port, AF_UNSPEC, SOCK_DGRAM,
                                           0, p->connect_timeout, resolved, c);
    if (c->resolving == NULL)
        goto fail;
    sockit_timer_start(c->idle, p->idle_timeout, 0);
    c->next = p->clients;
    if (p->clients != NULL)
        p->clients->prev = c;
    p->clients = c;
    p->stats.connections++;
    p->stats.open++;
    return c;
fail:
    sockit__dchain_free(&c->dir[0]);
    sockit__dchain_free(&c->dir[1]);
    sockit_timer_close(c->idle);
    free(c);
    return NULL;
}
