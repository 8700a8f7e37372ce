/* sockit bench: what both transports share: the payload pattern, the clock, the
 * -n budget, error counting and the warm-up switch. */
#include "bench.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const bench_error_names[BENCH_ERR_KINDS] = {
    [BENCH_ERR_CONNECT] = "connect",         [BENCH_ERR_RESET] = "reset",
    [BENCH_ERR_CLOSED] = "closed",           [BENCH_ERR_CORRUPT] = "corrupt",
    [BENCH_ERR_TIMEOUT] = "timeout",         [BENCH_ERR_UNANSWERED] = "unanswered",
    [BENCH_ERR_UNCONNECTED] = "unconnected", [BENCH_ERR_OTHER] = "other",
};

/* Printable bytes that upper-casing leaves alone, so a server that echoes lines in
 * upper case (forking_line_server) still echoes them exactly. */
static const char line_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&()*+,-./:;<=>?@[]^_{}~";

int bench_pattern_init(bench_pattern *p, size_t window, size_t line)
{
    p->window = window;
    p->line = line > 0 ? line : 1;
    p->period = BENCH_PATTERN_PERIOD;
    if (line > 0) {
        /* At least two different lines, so a line dropped whole is noticed too. */
        size_t lines = BENCH_PATTERN_PERIOD / line;
        p->period = line * (lines < 2 ? 2 : lines);
    }
    p->bytes = malloc(p->period + window);
    if (p->bytes == NULL)
        return -1;
    /* xorshift: cheap, and no short period that a shifted stream could match. */
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < p->period; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p->bytes[i] = (unsigned char)(x >> 24);
        if (line > 0)
            p->bytes[i] =
                i % line == line - 1
                    ? '\n'
                    : (unsigned char)line_alphabet[(x >> 24) % (sizeof line_alphabet - 1)];
    }
    for (size_t i = 0; i < window; i++)
        p->bytes[p->period + i] = p->bytes[i % p->period];
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

void bench_give_up_if_unreached(bench_worker *w, int err)
{
    bench_shared *sh = w->shared;
    if (atomic_load_explicit(&sh->ever_connected, memory_order_relaxed))
        return;
    int none = 0;
    atomic_compare_exchange_strong(&sh->fatal_errno, &none, err);
    /* This worker stops at once; the supervisor stops the others. */
    if (!atomic_exchange(&sh->stop, true))
        sockit_loop_post(sh->supervisor, bench_stop_everyone, sh);
    sockit_loop_stop(w->loop);
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

bench_error bench_error_of(int err)
{
    switch (err) {
    case ECONNRESET:
    case EPIPE:
        return BENCH_ERR_RESET;
    case ETIMEDOUT:
        return BENCH_ERR_TIMEOUT;
    default:
        return BENCH_ERR_OTHER;
    }
}

void bench_bind_source(const bench_config *cfg, int fd, long global_index)
{
    if (cfg->sources <= 1 || cfg->target.ss_family != AF_INET)
        return;
    /* The port is picked at connect time against the full 4-tuple, so each source
     * address brings its own range of ephemeral ports. */
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(global_index % cfg->sources));
    bind(fd, (struct sockaddr *)&src, sizeof src);
}

void bench_count_error(bench_worker *w, bench_error kind, int err)
{
    bench_stats *s = &w->stats;
    double secs = w->shared->cfg->timeout;
    /* Past -d, what fails is what the run ended on: counted as such. */
    if (w->draining && kind == BENCH_ERR_TIMEOUT)
        kind = BENCH_ERR_UNANSWERED;
    if (w->draining && kind == BENCH_ERR_CONNECT)
        kind = BENCH_ERR_UNCONNECTED;
    char *why = s->first_reason[kind];
    size_t size = sizeof s->first_reason[kind];
    if (s->errors[kind] == 0 && why[0] == '\0') {
        if (kind == BENCH_ERR_UNANSWERED)
            snprintf(why, size, "outstanding when the run ended, no reply within --timeout %g s",
                     secs);
        else if (kind == BENCH_ERR_UNCONNECTED)
            snprintf(why, size, "connecting when the run ended, not connected within %g s", secs);
        else if (kind == BENCH_ERR_TIMEOUT && err == ETIMEDOUT)
            snprintf(why, size, "no reply within --timeout %g s", secs);
        else if (kind == BENCH_ERR_CONNECT && err == ETIMEDOUT)
            snprintf(why, size, "not connected within --timeout %g s", secs);
    }
    s->errors[kind]++;
    if (s->first_errno[kind] == 0)
        s->first_errno[kind] = err;
}

void bench_count_error_why(bench_worker *w, bench_error kind, const char *fmt, ...)
{
    bench_stats *s = &w->stats;
    if (s->errors[kind] == 0 && s->first_reason[kind][0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->first_reason[kind], sizeof s->first_reason[kind], fmt, ap);
        va_end(ap);
    }
    bench_count_error(w, kind, 0);
}

bool bench_drain(bench_worker *w, uint64_t now, uint64_t outstanding, long connecting)
{
    const bench_shared *sh = w->shared;
    if (now < sh->end_ns)
        return true;
    if (sh->cfg->mode == BENCH_STREAM) {
        /* No replies to wait for (its requests are writes), but a connection that
         * was never made is an error all the same. */
        if (!w->draining) {
            w->draining = true;
            for (long i = 0; i < connecting; i++)
                bench_count_error_why(w, BENCH_ERR_UNCONNECTED,
                                      "still connecting when the run ended (stream mode)");
        }
        return false;
    }
    if (!w->draining) {
        if (outstanding == 0 && connecting == 0)
            return false;
        w->draining = true;
        w->stop_ns = now + (uint64_t)(sh->cfg->timeout * 1e9);
    }
    if (outstanding == 0 && connecting == 0)
        return false;
    if (now < w->stop_ns)
        return true;
    /* Each is older than --timeout by now: what the sweeps have not counted yet. */
    if (outstanding > 0)
        bench_count_error(w, BENCH_ERR_TIMEOUT, ETIMEDOUT);
    if (connecting > 0)
        bench_count_error(w, BENCH_ERR_CONNECT, ETIMEDOUT);
    return false;
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
