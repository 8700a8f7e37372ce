/* sockit bench: what both worker loops share: the payload pattern, the clock, the
 * -n budget, error counting and the warm-up switch. */
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const bench_error_names[BENCH_ERR_KINDS] = {
    [BENCH_ERR_CONNECT] = "connect", [BENCH_ERR_RESET] = "reset",     [BENCH_ERR_CLOSED] = "closed",
    [BENCH_ERR_CORRUPT] = "corrupt", [BENCH_ERR_TIMEOUT] = "timeout", [BENCH_ERR_OTHER] = "other",
};

int bench_pattern_init(bench_pattern *p, size_t window)
{
    p->window = window;
    p->bytes = malloc(BENCH_PATTERN_PERIOD + window);
    if (p->bytes == NULL)
        return -1;
    /* xorshift: cheap, and no short period that a shifted stream could match. */
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < BENCH_PATTERN_PERIOD; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p->bytes[i] = (unsigned char)(x >> 24);
    }
    for (size_t i = 0; i < window; i++)
        p->bytes[BENCH_PATTERN_PERIOD + i] = p->bytes[i % BENCH_PATTERN_PERIOD];
    return 0;
}

void bench_pattern_free(bench_pattern *p)
{
    free(p->bytes);
    p->bytes = NULL;
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_due_ns(const bench_shared *sh, uint64_t g, double interval_ns)
{
    return sh->start_ns + (uint64_t)((double)g * interval_ns);
}

uint32_t bench_backoff_ms(uint32_t previous)
{
    return previous == 0 ? 10 : previous >= 500 ? 1000 : previous * 2;
}

void bench_give_up_if_unreached(bench_shared *sh, int err)
{
    if (atomic_load_explicit(&sh->ever_connected, memory_order_relaxed))
        return;
    int none = 0;
    atomic_compare_exchange_strong(&sh->fatal_errno, &none, err);
    atomic_store(&sh->stop, true);
}

int bench_wait(bench_worker *w, int ep, struct epoll_event *events, int max, uint64_t now,
               uint64_t next_sweep_ns, uint64_t next_due_ns)
{
    const bench_shared *sh = w->shared;
    uint64_t wake = next_sweep_ns < sh->end_ns ? next_sweep_ns : sh->end_ns;
    if (!w->measuring && sh->measure_ns < wake)
        wake = sh->measure_ns;
    if (next_due_ns != UINT64_MAX) {
        uint64_t spin_from = next_due_ns > BENCH_SPIN_NS ? next_due_ns - BENCH_SPIN_NS : 0;
        if (spin_from < wake)
            wake = spin_from;
    }
    uint64_t d = wake > now ? wake - now : 0;
    struct timespec ts = {.tv_sec = (time_t)(d / 1000000000u), .tv_nsec = (long)(d % 1000000000u)};
    return epoll_pwait2(ep, events, max, &ts, NULL);
}

bool bench_claim(bench_shared *sh)
{
    if (sh->cfg->max_requests == 0)
        return true;
    uint_fast64_t left = atomic_load_explicit(&sh->budget, memory_order_relaxed);
    while (left > 0) {
        if (atomic_compare_exchange_weak_explicit(&sh->budget, &left, left - 1,
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    }
    return false;
}

void bench_count_error(bench_worker *w, bench_error kind, int err)
{
    w->stats.errors[kind]++;
    if (w->stats.first_errno[kind] == 0)
        w->stats.first_errno[kind] = err;
}

void bench_publish(bench_worker *w)
{
    const bench_stats *s = &w->stats;
    uint64_t errors = 0;
    for (int k = 0; k < BENCH_ERR_KINDS; k++)
        errors += s->errors[k];
    atomic_store_explicit(&w->live.requests, s->requests, memory_order_relaxed);
    atomic_store_explicit(&w->live.bytes_out, s->bytes_out, memory_order_relaxed);
    atomic_store_explicit(&w->live.bytes_in, s->bytes_in, memory_order_relaxed);
    atomic_store_explicit(&w->live.errors, errors, memory_order_relaxed);
}

bool bench_measuring(bench_worker *w, uint64_t now)
{
    if (!w->measuring && now >= w->shared->measure_ns) {
        memset(&w->stats, 0, offsetof(bench_stats, latency));
        histogram_init(&w->stats.latency);
        w->measuring = true;
    }
    return w->measuring;
}

void *bench_worker_run(void *worker)
{
    bench_worker *w = worker;
    return w->shared->cfg->udp ? bench_udp_run(w) : bench_tcp_run(w);
}

void bench_worker_cleanup(bench_worker *w)
{
    if (w->shared->cfg->udp)
        bench_udp_cleanup(w);
    else
        bench_tcp_cleanup(w);
}
