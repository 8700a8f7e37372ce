/* sockit bench: the load generator's run: the worker threads, the warm-up mark,
 * the progress line, and the summary. Options are read by bench_args.c. */
#include "bench.h"
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void sleep_until(uint64_t when_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(when_ns / 1000000000u),
                          .tv_nsec = (long)(when_ns % 1000000000u)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL); /* a signal ends it early */
}

static double tv_seconds(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

typedef struct cpu_mark {
    double user, sys, server;
} cpu_mark;

static cpu_mark cpu_now(int server_pid)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (cpu_mark){tv_seconds(ru.ru_utime), tv_seconds(ru.ru_stime),
                      server_pid > 0 ? bench_process_cpu(server_pid) : -1};
}

static bool all_done(bench_worker *w, int n)
{
    for (int i = 0; i < n; i++)
        if (!atomic_load(&w[i].done))
            return false;
    return true;
}

/* Supervises the running workers: the warm-up mark, the progress line once a
 * second on a terminal, signals. Returns the CPU mark at the start of the window. */
static cpu_mark supervise(bench_shared *sh, bench_worker *w, int n, int server_pid, bool progress)
{
    cpu_mark start = {0, 0, -1};
    bool marked = false;
    if (sh->measure_ns <= bench_now_ns()) {
        start = cpu_now(server_pid);
        marked = true;
    }
    uint64_t last_requests = 0, last_bytes = 0;
    uint64_t next_tick = sh->start_ns + 1000000000u;
    for (;;) {
        uint64_t now = bench_now_ns();
        if (!marked && now >= sh->measure_ns) {
            start = cpu_now(server_pid);
            marked = true;
        }
        if (interrupted)
            atomic_store(&sh->stop, true);
        if (all_done(w, n))
            break;
        if (progress && now >= next_tick) {
            uint64_t req = 0, bytes = 0, errors = 0;
            for (int i = 0; i < n; i++) {
                req += atomic_load_explicit(&w[i].live.requests, memory_order_relaxed);
                bytes += atomic_load_explicit(&w[i].live.bytes_out, memory_order_relaxed);
                bytes += atomic_load_explicit(&w[i].live.bytes_in, memory_order_relaxed);
                errors += atomic_load_explicit(&w[i].live.errors, memory_order_relaxed);
            }
            /* The counters restart when the warm-up ends. */
            if (req < last_requests || bytes < last_bytes)
                last_requests = last_bytes = 0;
            bench_report_progress((double)(now - sh->start_ns) / 1e9,
                                  (double)(sh->end_ns - sh->start_ns) / 1e9, req - last_requests,
                                  bytes - last_bytes, errors);
            last_requests = req;
            last_bytes = bytes;
            next_tick += 1000000000u;
        }
        uint64_t wake = now + 50000000u; /* notice finished workers and signals soon */
        if (!marked && sh->measure_ns < wake)
            wake = sh->measure_ns;
        sleep_until(wake);
    }
    if (!marked)
        start = cpu_now(server_pid);
    if (progress)
        bench_report_progress_clear();
    return start;
}

static void merge(bench_stats *into, const bench_stats *from)
{
    into->requests += from->requests;
    into->bytes_out += from->bytes_out;
    into->bytes_in += from->bytes_in;
    for (int k = 0; k < BENCH_ERR_KINDS; k++) {
        into->errors[k] += from->errors[k];
        if (into->first_errno[k] == 0)
            into->first_errno[k] = from->first_errno[k];
        if (into->first_reason[k][0] == '\0')
            memcpy(into->first_reason[k], from->first_reason[k], sizeof into->first_reason[k]);
    }
    if (from->last_done_ns > into->last_done_ns)
        into->last_done_ns = from->last_done_ns;
    histogram_merge(&into->latency, &from->latency);
}

static int run(bench_options *o)
{
    bench_config *cfg = &o->cfg;
    size_t window = 65536;
    if (cfg->mode == BENCH_ECHO && cfg->msg_bytes * cfg->pipeline > window)
        window = cfg->msg_bytes * cfg->pipeline > (4u << 20) ? (4u << 20)
                                                             : cfg->msg_bytes * cfg->pipeline;
    if (cfg->mode == BENCH_STREAM && cfg->msg_bytes > window)
        window = cfg->msg_bytes > (4u << 20) ? (4u << 20) : cfg->msg_bytes;
    bench_pattern pattern;
    bench_shared *sh = calloc(1, sizeof *sh);
    bench_worker *workers = calloc((size_t)cfg->threads, sizeof *workers);
    bench_result *result = calloc(1, sizeof *result);
    pthread_t *tids = calloc((size_t)cfg->threads, sizeof *tids);
    if (sh == NULL || workers == NULL || result == NULL || tids == NULL ||
        bench_pattern_init(&pattern, window, cfg->payload == BENCH_LINES ? cfg->msg_bytes : 0) <
            0) {
        free(sh);
        free(workers);
        free(result);
        free(tids);
        return cli_fail("out of memory");
    }
    if (cfg->mode == BENCH_CONNECT && o->msg_given) {
        cfg->message = pattern.bytes;
        cfg->message_len = cfg->msg_bytes;
    }
    sh->cfg = cfg;
    sh->pattern = &pattern;
    atomic_init(&sh->budget, cfg->max_requests);
    sh->start_ns = bench_now_ns();
    sh->measure_ns = sh->start_ns + (uint64_t)(cfg->warmup * 1e9);
    sh->end_ns = sh->measure_ns + (uint64_t)(cfg->duration * 1e9);

    /* Workers leave signals to the supervisor, whose sleep they interrupt. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    long first = 0;
    int started = 0;
    for (int i = 0; i < cfg->threads; i++) {
        bench_worker *w = &workers[i];
        w->shared = sh;
        w->index = i;
        w->first_conn = first;
        w->conns = cfg->conns / cfg->threads + (i < cfg->conns % cfg->threads ? 1 : 0);
        w->rate = cfg->rate * (double)w->conns / (double)cfg->conns;
        first += w->conns;
        histogram_init(&w->stats.latency);
        if (pthread_create(&tids[i], NULL, bench_worker_run, w) != 0) {
            atomic_store(&sh->stop, true);
            break;
        }
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    bool progress = !o->json && isatty(STDERR_FILENO) && started == cfg->threads;
    cpu_mark start = supervise(sh, workers, started, o->server_pid, progress);
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    cpu_mark end = cpu_now(o->server_pid);

    uint64_t finished = 0;
    histogram_init(&result->total.latency);
    for (int i = 0; i < started; i++) {
        merge(&result->total, &workers[i].stats);
        if (workers[i].finished_ns > finished)
            finished = workers[i].finished_ns;
    }
    uint64_t window_end = finished < sh->end_ns ? finished : sh->end_ns;
    result->seconds =
        window_end > sh->measure_ns ? (double)(window_end - sh->measure_ns) / 1e9 : 0.0;
    result->cpu_user_s = end.user - start.user;
    result->cpu_sys_s = end.sys - start.sys;
    result->server_cpu_s = start.server >= 0 && end.server >= 0 ? end.server - start.server : -1;
    result->interrupted = interrupted != 0;
    for (int i = 0; i < started; i++)
        bench_worker_cleanup(&workers[i]);

    int status;
    int fatal = atomic_load(&sh->fatal_errno);
    if (started < cfg->threads) {
        status = cli_fail("cannot start %d worker threads", cfg->threads);
    } else if (fatal != 0) {
        status = cli_fail("%s to %s: %s", cfg->udp ? "send" : "connect", cfg->target_text,
                          strerror(fatal));
    } else {
        if (o->json)
            bench_report_json(cfg, result);
        else
            bench_report_text(cfg, result);
        uint64_t errors = 0;
        for (int k = 0; k < BENCH_ERR_KINDS; k++)
            errors += result->total.errors[k];
        status = errors > 0 ? CLI_FAIL : CLI_OK;
    }
    bench_pattern_free(&pattern);
    free(sh);
    free(workers);
    free(result);
    free(tids);
    return status;
}

int cmd_bench(int argc, char **argv)
{
    bench_options *o = calloc(1, sizeof *o);
    if (o == NULL)
        return cli_fail("out of memory");
    int status = bench_setup(argc, argv, o);
    if (status < 0)
        status = run(o);
    free(o);
    return status;
}
