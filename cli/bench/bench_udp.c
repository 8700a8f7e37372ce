/* sockit bench -u: the UDP echo transport. Each "connection" is a connected UDP
 * socket with an I/O watcher on the worker's sockit_loop (so the kernel filters strangers and
 * reports ICMP port-unreachable as ECONNREFUSED). A datagram is an 8-byte sequence number and then
 * payload drawn from the pattern at a place that depends on it, so a reply is checked whole: its
 * length, that its number is one in flight, and every payload byte. Datagrams can
 * be lost: one not answered within --timeout counts as a timeout and frees its
 * place. Requests are numbered per socket (the sequence number), which the open
 * loop uses to compute when each was due. */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The open loop has no pipeline limit: this many requests of one socket may be in
 * flight before the oldest is declared lost to make room. */
#define OPEN_LOOP_WINDOW 1024u

typedef struct inflight {
    uint64_t seq;
    uint64_t origin_ns;
    bool live;
} inflight;

typedef struct udp_loop udp_loop;

typedef struct uconn {
    int fd;
    bool want_out; /* the watcher asks for WRITE */
    sockit_io *io;
    udp_loop *L;
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

struct udp_loop {
    bench_worker *w;
    uconn *conns;
    long n;
    inflight *rings;
    unsigned depth;
    unsigned char *datagram; /* what is sent */
    unsigned char *scratch;  /* what comes back */
    uint64_t sweep_every;    /* ns */
};

static const bench_config *cfg_of(bench_worker *w) { return w->shared->cfg; }

static const unsigned char *payload_of(bench_worker *w, const uconn *c, uint64_t seq)
{
    return bench_pattern_at(w->shared->pattern, c->seed, seq * 8191u);
}

static void set_out(uconn *c, bool want_out)
{
    if (c->want_out == want_out)
        return;
    sockit_io_start(c->io, SOCKIT_EVENT_READ | (want_out ? SOCKIT_EVENT_WRITE : 0));
    c->want_out = want_out;
}

static void fatal_if_nobody(bench_worker *w, int err)
{
    if (err == ECONNREFUSED)
        bench_give_up_if_unreached(w, err);
}

static bool still_live(const udp_loop *L, const uconn *c, uint64_t seq)
{
    const inflight *slot = &c->ring[seq % L->depth];
    return slot->live && slot->seq == seq;
}

static void retire(udp_loop *L, uconn *c, inflight *slot)
{
    slot->live = false;
    L->w->outstanding--;
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
    L->w->outstanding++;
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
                set_out(c, true);
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
    set_out(c, false);
}

static void top_up(bench_worker *w, udp_loop *L, uconn *c, uint64_t now)
{
    if (w->rate > 0 || w->budget_spent || now < c->paused_until_ns)
        return;
    while (c->live < cfg_of(w)->pipeline) {
        if (!bench_claim(w->shared)) {
            w->budget_spent = true;
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

static void on_io(sockit_io *io, int events, void *user)
{
    (void)io;
    uconn *c = user;
    bench_worker *w = c->L->w;
    /* An error is reported as both: the recv meets it. */
    if (events & SOCKIT_EVENT_READ)
        on_readable(w, c->L, c, bench_loop_now(w));
    if (events & SOCKIT_EVENT_WRITE)
        flush(w, c->L, c);
    bench_settle(w);
}

/* Open loop: request g of this worker, due at `due`, goes to socket g % n. */
static void udp_issue_due(bench_worker *w, uint64_t g, uint64_t due, uint64_t now)
{
    (void)now;
    udp_loop *L = w->state;
    uconn *c = &L->conns[g % (uint64_t)L->n];
    issue(w, L, c, due);
    flush(w, L, c);
}

static uint64_t udp_sweep(bench_worker *w, uint64_t now)
{
    udp_loop *L = w->state;
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
    return L->sweep_every;
}

/* Returns 0, or a negative errno. */
static int open_socket(bench_worker *w, uconn *c)
{
    const bench_config *cfg = cfg_of(w);
    c->fd = socket(cfg->target.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    if (connect(c->fd, (const struct sockaddr *)&cfg->target, cfg->target_len) < 0)
        return -errno;
    c->io = sockit_io_new(w->loop, c->fd, on_io, c);
    if (c->io == NULL || sockit_io_start(c->io, SOCKIT_EVENT_READ) < 0)
        return sockit_errcode();
    return 0;
}

static int udp_start(bench_worker *w, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    bench_shared *sh = w->shared;
    udp_loop *L = calloc(1, sizeof *L);
    w->state = L;
    if (L == NULL) {
        bench_count_error(w, BENCH_ERR_OTHER, ENOMEM);
        return -1;
    }
    L->w = w;
    L->n = w->conns;
    L->depth = w->rate > 0 ? (cfg->pipeline > OPEN_LOOP_WINDOW ? cfg->pipeline : OPEN_LOOP_WINDOW)
                           : 2 * cfg->pipeline;
    L->conns = calloc((size_t)L->n, sizeof *L->conns);
    L->rings = calloc((size_t)L->n * L->depth, sizeof *L->rings);
    L->datagram = malloc(cfg->msg_bytes);
    L->scratch = malloc(cfg->msg_bytes + 1);
    if (L->conns == NULL || L->rings == NULL || L->datagram == NULL || L->scratch == NULL) {
        bench_count_error(w, BENCH_ERR_OTHER, ENOMEM);
        return -1;
    }
    for (long i = 0; i < L->n; i++) {
        L->conns[i].fd = -1;
        L->conns[i].L = L;
    }
    L->sweep_every = (uint64_t)(cfg->timeout * 1e9 / 4);
    if (L->sweep_every > 10000000u)
        L->sweep_every = 10000000u;
    w->first_sweep_ns = L->sweep_every;
    for (long i = 0; i < L->n; i++) {
        uconn *c = &L->conns[i];
        c->index = (uint32_t)i;
        c->ring = L->rings + (size_t)i * L->depth;
        c->seed = bench_seed(sh->pattern, (uint64_t)(w->first_conn + i) * 40503u);
        int rc = open_socket(w, c);
        if (rc < 0) {
            fatal_if_nobody(w, -rc);
            bench_count_error(w, BENCH_ERR_OTHER, -rc);
            return -1;
        }
        top_up(w, L, c, now);
        flush(w, L, c);
    }
    return 0;
}

static void udp_cleanup(bench_worker *w)
{
    udp_loop *L = w->state;
    if (L == NULL)
        return;
    for (long i = 0; L->conns != NULL && i < L->n; i++) {
        sockit_io_close(L->conns[i].io);
        if (L->conns[i].fd >= 0)
            close(L->conns[i].fd);
    }
    free(L->conns);
    free(L->rings);
    free(L->datagram);
    free(L->scratch);
    free(L);
    w->state = NULL;
}

/* Nothing connects: a connected UDP socket is ready at once. */
static long udp_connecting(bench_worker *w)
{
    (void)w;
    return 0;
}

const bench_transport bench_udp_transport = {
    .start = udp_start,
    .issue_due = udp_issue_due,
    .sweep = udp_sweep,
    .connecting = udp_connecting,
    .cleanup = udp_cleanup,
};
