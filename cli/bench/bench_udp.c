/* sockit bench -u: one worker's UDP echo loop. Each "connection" is a connected UDP
 * socket (so the kernel filters strangers and reports ICMP port-unreachable as
 * ECONNREFUSED). A datagram is an 8-byte sequence number and then payload drawn
 * from the pattern at a place that depends on it, so a reply is checked whole: its
 * length, that its number is one in flight, and every payload byte. Datagrams can
 * be lost: one not answered within --timeout counts as a timeout and frees its
 * place. Requests are numbered per socket (the sequence number), which the open
 * loop uses to compute when each was due. */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

/* The open loop has no pipeline limit: this many requests of one socket may be in
 * flight before the oldest is declared lost to make room. */
#define OPEN_LOOP_WINDOW 1024u

typedef struct inflight {
    uint64_t seq;
    uint64_t origin_ns;
    bool live;
} inflight;

typedef struct uconn {
    int fd;
    bool want_out;
    uint32_t index;
    uint64_t seed;
    uint64_t issued;          /* sequence numbers given out */
    uint64_t sent;            /* of those, sent (EAGAIN can hold some back) */
    uint64_t oldest;          /* no live request has a smaller number */
    unsigned live;            /* requests in flight */
    uint64_t paused_until_ns; /* refused: no new requests before then */
    uint32_t backoff_ms;
    inflight *ring;
} uconn;

typedef struct udp_loop {
    int ep;
    uconn *conns;
    long n;
    inflight *rings;
    unsigned depth;
    unsigned char *datagram; /* what is sent */
    unsigned char *scratch;  /* what comes back */
    uint64_t outstanding;
    bool budget_spent;
    double interval_ns;
    uint64_t next_g;
} udp_loop;

static const bench_config *cfg_of(bench_worker *w) { return w->shared->cfg; }

static const unsigned char *payload_of(bench_worker *w, const uconn *c, uint64_t seq)
{
    return bench_pattern_at(w->shared->pattern, c->seed, seq * 8191u);
}

static void set_out(udp_loop *L, uconn *c, bool want_out)
{
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(L->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want_out;
}

static void fatal_if_nobody(bench_worker *w, int err)
{
    if (err == ECONNREFUSED)
        bench_give_up_if_unreached(w->shared, err);
}

static bool still_live(const udp_loop *L, const uconn *c, uint64_t seq)
{
    const inflight *slot = &c->ring[seq % L->depth];
    return slot->live && slot->seq == seq;
}

static void retire(udp_loop *L, uconn *c, inflight *slot)
{
    slot->live = false;
    L->outstanding--;
    c->live--;
    while (c->oldest < c->issued && !still_live(L, c, c->oldest))
        c->oldest++;
}

/* Gives the socket its next request, due (open loop) or sent (closed loop) at
 * origin. The ring is twice the pipeline (closed loop), so a place still taken
 * belongs to a request that 2*DEPTH-1 younger ones have overtaken: it is lost. */
static void issue(bench_worker *w, udp_loop *L, uconn *c, uint64_t origin)
{
    inflight *slot = &c->ring[c->issued % L->depth];
    if (slot->live) {
        bench_count_error(w, BENCH_ERR_TIMEOUT, ETIMEDOUT);
        retire(L, c, slot);
    }
    *slot = (inflight){.seq = c->issued, .origin_ns = origin, .live = true};
    c->issued++;
    c->live++;
    L->outstanding++;
}

static void flush(bench_worker *w, udp_loop *L, uconn *c)
{
    const bench_config *cfg = cfg_of(w);
    size_t body = cfg->msg_bytes - 8;
    while (c->sent < c->issued) {
        uint64_t seq = c->sent;
        if (!still_live(L, c, seq)) {
            c->sent++; /* lost before it could even be sent */
            continue;
        }
        memcpy(L->datagram, &seq, 8);
        memcpy(L->datagram + 8, payload_of(w, c, seq), body);
        ssize_t n = send(c->fd, L->datagram, cfg->msg_bytes, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                set_out(L, c, true);
                return;
            }
            int err = errno;
            fatal_if_nobody(w, err);
            if (err == ECONNREFUSED) {
                /* The refusal is an earlier datagram's, reported now and consumed:
                 * retire the oldest in flight for it and send this one again. */
                bench_count_error(w, BENCH_ERR_CONNECT, err);
                retire(L, c, &c->ring[c->oldest % L->depth]);
                continue;
            }
            bench_count_error(w, BENCH_ERR_OTHER, err);
            retire(L, c, &c->ring[seq % L->depth]);
            c->sent++;
            continue;
        }
        w->stats.bytes_out += (uint64_t)n;
        c->sent++;
    }
    set_out(L, c, false);
}

static void top_up(bench_worker *w, udp_loop *L, uconn *c, uint64_t now)
{
    if (w->rate > 0 || L->budget_spent || now < c->paused_until_ns)
        return;
    while (c->live < cfg_of(w)->pipeline) {
        if (!bench_claim(w->shared)) {
            L->budget_spent = true;
            return;
        }
        issue(w, L, c, now);
    }
}

static void received(bench_worker *w, udp_loop *L, uconn *c, size_t len, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    uint64_t seq = 0;
    if (len >= 8)
        memcpy(&seq, L->scratch, 8);
    bool known = len >= 8 && seq < c->issued && still_live(L, c, seq);
    inflight *slot = &c->ring[seq % L->depth];
    /* The length first: a server that answers with its own text (udp-server) is told
     * so, rather than by the number its first bytes happen to make. */
    if (len != cfg->msg_bytes) {
        bench_count_error_why(w, BENCH_ERR_CORRUPT,
                              "a reply of %zu bytes to %zu-byte requests: not an echo", len,
                              cfg->msg_bytes);
        if (known)
            retire(L, c, slot);
        return;
    }
    if (seq >= c->issued) {
        bench_count_error_why(w, BENCH_ERR_CORRUPT, "a reply numbered %llu, never sent",
                              (unsigned long long)seq);
        return;
    }
    if (!known)
        return; /* a late reply to a request already counted lost */
    if (memcmp(L->scratch + 8, payload_of(w, c, seq), cfg->msg_bytes - 8) != 0) {
        bench_count_error_why(w, BENCH_ERR_CORRUPT,
                              "a reply whose payload differs from request %llu",
                              (unsigned long long)seq);
        retire(L, c, slot);
        return;
    }
    atomic_store_explicit(&w->shared->ever_connected, true, memory_order_relaxed);
    c->backoff_ms = 0;
    histogram_record(&w->stats.latency, now > slot->origin_ns ? now - slot->origin_ns : 0);
    w->stats.requests++;
    w->stats.last_done_ns = now;
    retire(L, c, slot);
}

static void on_readable(bench_worker *w, udp_loop *L, uconn *c, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    for (int budget = 64; budget > 0; budget--) {
        /* MSG_TRUNC: the real length, so an over-long reply is caught, not cut. */
        ssize_t n = recv(c->fd, L->scratch, cfg->msg_bytes + 1, MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            int err = errno;
            fatal_if_nobody(w, err);
            bench_count_error(w, err == ECONNREFUSED ? BENCH_ERR_CONNECT : BENCH_ERR_OTHER, err);
            /* The error stands for a datagram that will get no answer: the oldest
             * in flight, as good a guess as any; it is not counted again as lost. */
            if (c->oldest < c->issued && still_live(L, c, c->oldest))
                retire(L, c, &c->ring[c->oldest % L->depth]);
            if (err == ECONNREFUSED) {
                /* Nobody listens now: back off (10 ms doubling to 1 s) rather than
                 * count refusals as fast as the loop turns. */
                c->backoff_ms = bench_backoff_ms(c->backoff_ms);
                c->paused_until_ns = now + (uint64_t)c->backoff_ms * 1000000u;
            }
            break;
        }
        w->stats.bytes_in += (uint64_t)n;
        received(w, L, c, (size_t)n, now);
        if (c->oldest == c->issued)
            break; /* nothing more is expected: spare the recv that says EAGAIN */
    }
    top_up(w, L, c, now);
    flush(w, L, c);
}

static void schedule(bench_worker *w, udp_loop *L, uint64_t now)
{
    while (!L->budget_spent) {
        uint64_t due = bench_due_ns(w->shared, L->next_g, L->interval_ns);
        if (due > now)
            return;
        if (!bench_claim(w->shared)) {
            L->budget_spent = true;
            return;
        }
        uconn *c = &L->conns[L->next_g % (uint64_t)L->n];
        L->next_g++;
        issue(w, L, c, due);
        flush(w, L, c);
    }
}

static void sweep(bench_worker *w, udp_loop *L, uint64_t now)
{
    uint64_t timeout_ns = (uint64_t)(cfg_of(w)->timeout * 1e9);
    for (long i = 0; i < L->n; i++) {
        uconn *c = &L->conns[i];
        bool freed = false;
        while (c->oldest < c->issued && still_live(L, c, c->oldest)) {
            inflight *slot = &c->ring[c->oldest % L->depth];
            if (now < slot->origin_ns || now - slot->origin_ns <= timeout_ns)
                break;
            bench_count_error(w, BENCH_ERR_TIMEOUT, ETIMEDOUT);
            freed = true;
            retire(L, c, slot);
        }
        if (freed || (c->paused_until_ns != 0 && c->paused_until_ns <= now)) {
            c->paused_until_ns = 0;
            top_up(w, L, c, now);
            flush(w, L, c);
        }
    }
}

static int open_socket(bench_worker *w, udp_loop *L, uconn *c)
{
    const bench_config *cfg = cfg_of(w);
    c->fd = socket(cfg->target.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (connect(c->fd, (const struct sockaddr *)&cfg->target, cfg->target_len) < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    return epoll_ctl(L->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

void *bench_udp_run(bench_worker *w)
{
    const bench_config *cfg = cfg_of(w);
    bench_shared *sh = w->shared;
    udp_loop *L = calloc(1, sizeof *L);
    w->state = L;
    if (L == NULL)
        goto out;
    L->n = w->conns;
    L->depth = w->rate > 0 ? (cfg->pipeline > OPEN_LOOP_WINDOW ? cfg->pipeline : OPEN_LOOP_WINDOW)
                           : 2 * cfg->pipeline;
    L->ep = epoll_create1(EPOLL_CLOEXEC);
    L->conns = calloc((size_t)L->n, sizeof *L->conns);
    L->rings = calloc((size_t)L->n * L->depth, sizeof *L->rings);
    L->datagram = malloc(cfg->msg_bytes);
    L->scratch = malloc(cfg->msg_bytes + 1);
    if (L->ep < 0 || L->conns == NULL || L->rings == NULL || L->datagram == NULL ||
        L->scratch == NULL) {
        bench_count_error(w, BENCH_ERR_OTHER, errno != 0 ? errno : ENOMEM);
        goto out;
    }
    for (long i = 0; i < L->n; i++)
        L->conns[i].fd = -1;
    if (w->rate > 0)
        L->interval_ns = 1e9 / w->rate;
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);

    uint64_t now = bench_now_ns();
    for (long i = 0; i < L->n; i++) {
        uconn *c = &L->conns[i];
        c->index = (uint32_t)i;
        c->ring = L->rings + (size_t)i * L->depth;
        c->seed = bench_seed(sh->pattern, (uint64_t)(w->first_conn + i) * 40503u);
        if (open_socket(w, L, c) < 0) {
            int err = errno;
            fatal_if_nobody(w, err);
            bench_count_error(w, BENCH_ERR_OTHER, err);
            goto out;
        }
        top_up(w, L, c, now);
        flush(w, L, c);
    }

    uint64_t sweep_every = (uint64_t)(cfg->timeout * 1e9 / 4);
    if (sweep_every > 10000000u)
        sweep_every = 10000000u;
    uint64_t next_sweep = now + sweep_every;
    struct epoll_event events[256];
    for (;;) {
        now = bench_now_ns();
        bench_measuring(w, now);
        if (!bench_drain(w, now, L->outstanding, 0) ||
            atomic_load_explicit(&sh->stop, memory_order_relaxed))
            break;
        if (w->draining)
            L->budget_spent = true; /* past -d: no new requests */
        else if (L->budget_spent && L->outstanding == 0)
            break;
        if (w->rate > 0)
            schedule(w, L, now);
        if (now >= next_sweep) {
            sweep(w, L, now);
            next_sweep = now + sweep_every;
        }
        bench_publish(w);

        uint64_t due = w->rate > 0 && !L->budget_spent ? bench_due_ns(sh, L->next_g, L->interval_ns)
                                                       : UINT64_MAX;
        int n = bench_wait(w, L->ep, events, (int)(sizeof events / sizeof events[0]), now,
                           next_sweep, due);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            bench_count_error(w, BENCH_ERR_OTHER, errno);
            break;
        }
        now = bench_now_ns();
        for (int i = 0; i < n; i++) {
            uconn *c = events[i].data.ptr;
            if (events[i].events & (EPOLLIN | EPOLLERR))
                on_readable(w, L, c, now);
            if (events[i].events & EPOLLOUT)
                flush(w, L, c);
        }
    }
out:
    w->finished_ns = bench_now_ns();
    bench_publish(w);
    atomic_store(&w->done, true);
    return NULL;
}

void bench_udp_cleanup(bench_worker *w)
{
    udp_loop *L = w->state;
    if (L == NULL)
        return;
    for (long i = 0; L->conns != NULL && i < L->n; i++)
        if (L->conns[i].fd >= 0)
            close(L->conns[i].fd);
    if (L->ep >= 0)
        close(L->ep);
    free(L->conns);
    free(L->rings);
    free(L->datagram);
    free(L->scratch);
    free(L);
    w->state = NULL;
}
