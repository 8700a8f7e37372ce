/* sockit bench: the load generator's run: the worker threads and their loops, the
 * supervisor's loop (signals, the warm-up mark, the progress line), and the summary.
 * Options are read by bench_args.c. */
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

/* The main thread's part, on its own sockit_loop: SIGINT and SIGTERM stop every
 * worker's loop; a timer takes the CPU mark when the warm-up ends, another prints
 * the progress line once a second on a terminal; each worker posts when it is done
 * and the last one ends the loop. */
typedef struct supervisor {
    bench_shared *sh;
    int server_pid;
    bool marked, interrupted;
    cpu_mark start;
    uint64_t last_requests, last_bytes;
} supervisor;

static void on_signal(sockit_signal *sig, int signum, int count, void *user)
{
    (void)sig, (void)signum, (void)count;
    supervisor *sv = user;
    sv->interrupted = true;
    bench_stop_everyone(sv->sh->supervisor, sv->sh);
}

static void on_measure(sockit_timer *t, void *user)
{
    (void)t;
    supervisor *sv = user;
    sv->start = cpu_now(sv->server_pid);
    sv->marked = true;
}

static void on_progress(sockit_timer *t, void *user)
{
    (void)t;
    supervisor *sv = user;
    bench_shared *sh = sv->sh;
    uint64_t req = 0, bytes = 0, errors = 0;
    for (int i = 0; i < sh->nworkers; i++) {
        bench_live *l = &sh->workers[i].live;
        req += atomic_load_explicit(&l->requests, memory_order_relaxed);
        bytes += atomic_load_explicit(&l->bytes_out, memory_order_relaxed);
        bytes += atomic_load_explicit(&l->bytes_in, memory_order_relaxed);
        errors += atomic_load_explicit(&l->errors, memory_order_relaxed);
    }
    /* The counters restart when the warm-up ends. */
    if (req < sv->last_requests || bytes < sv->last_bytes)
        sv->last_requests = sv->last_bytes = 0;
    uint64_t now = bench_now_ns();
    bench_report_progress((double)(now - sh->start_ns) / 1e9,
                          (double)(sh->end_ns - sh->start_ns) / 1e9, req - sv->last_requests,
                          bytes - sv->last_bytes, errors);
    sv->last_requests = req;
    sv->last_bytes = bytes;
}

/* Runs the supervisor's loop until every started worker is done. Returns the CPU
 * mark at the start of the measured window. */
static cpu_mark supervise(supervisor *sv, bool progress)
{
    bench_shared *sh = sv->sh;
    sockit_loop *loop = sh->supervisor;
    sockit_timer *measure = sockit_timer_new(loop, on_measure, sv);
    sockit_timer *tick = progress ? sockit_timer_new(loop, on_progress, sv) : NULL;
    uint64_t now = bench_now_ns();
    if (sh->measure_ns <= now || measure == NULL)
        on_measure(measure, sv);
    else
        sockit_timer_start(measure, (double)(sh->measure_ns - now) / 1e9, 0);
    if (tick != NULL) {
        uint64_t first = sh->start_ns + 1000000000u;
        sockit_timer_start(tick, first > now ? (double)(first - now) / 1e9 : 0, 1.0);
    }
    if (sh->ndone < sh->nworkers)
        sockit_loop_run(loop);
    sockit_timer_close(measure);
    sockit_timer_close(tick);
    if (!sv->marked)
        on_measure(NULL, sv);
    if (progress)
        bench_report_progress_clear();
    return sv->start;
}

/* The supervisor's loop with its signal watchers, and a loop per worker. Returns 0,
 * or -1 with the reason in sockit_errmsg(). */
static int open_loops(bench_shared *sh, int n, supervisor *sv, sockit_signal *sigs[2])
{
    sh->supervisor = sockit_loop_new(NULL);
    if (sh->supervisor == NULL)
        return -1;
    static const int signums[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        sigs[i] = sockit_signal_new(sh->supervisor, on_signal, sv);
        if (sigs[i] == NULL || sockit_signal_start(sigs[i], signums[i]) < 0)
            return -1;
        /* They keep the loop running while nothing else does: until the last
         * worker's post stops it. */
        sockit_signal_keepalive(sigs[i], true);
    }
    sockit_loop_options lo = SOCKIT_LOOP_OPTIONS_INIT;
    lo.spin_us = sh->cfg->spin_us;
    for (int i = 0; i < n; i++) {
        sh->workers[i].loop = sockit_loop_new(&lo);
        if (sh->workers[i].loop == NULL)
            return -1;
    }
    return 0;
}

/* Closes what open_loops opened (worker loops that ran are closed by their
 * cleanup already). */
static void close_loops(bench_shared *sh, int n, sockit_signal *sigs[2])
{
    for (int i = 0; i < n; i++) {
        sockit_loop_close(sh->workers[i].loop);
        sh->workers[i].loop = NULL;
    }
    sockit_signal_close(sigs[0]);
    sockit_signal_close(sigs[1]);
    sockit_loop_close(sh->supervisor);
    sh->supervisor = NULL;
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

    sh->workers = workers;
    supervisor sv = {.sh = sh, .server_pid = o->server_pid};
    sockit_signal *sigs[2] = {NULL, NULL};
    if (open_loops(sh, cfg->threads, &sv, sigs) < 0) {
        int status = cli_fail("%s", sockit_errmsg());
        close_loops(sh, cfg->threads, sigs);
        bench_pattern_free(&pattern);
        free(sh);
        free(workers);
        free(result);
        free(tids);
        return status;
    }

    /* Workers leave signals to the supervisor's loop. */
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
        if (pthread_create(&tids[i], NULL, bench_worker_run, w) != 0)
            break;
        started++;
        sh->nworkers = started;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < cfg->threads)
        bench_stop_everyone(sh->supervisor, sh);

    bool progress = !o->json && isatty(STDERR_FILENO) && started == cfg->threads;
    cpu_mark start = supervise(&sv, progress);
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
    result->interrupted = sv.interrupted;
    for (int i = 0; i < started; i++)
        bench_worker_cleanup(&workers[i]);
    close_loops(sh, cfg->threads, sigs);

    int status;
    int fatal = atomic_load(&sh->fatal_errno);
    if (started < cfg->threads) {
        status = cli_fail("cannot start %d worker threads", cfg->threads);
    } else if (fatal == EPROTO && result->total.first_reason[BENCH_ERR_CONNECT][0] != '\0') {
        /* A TLS handshake or a proxy's tunnel that failed says why itself. */
        status = cli_fail("%s", result->total.first_reason[BENCH_ERR_CONNECT]);
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
    sockit_tls_ctx_free(o->cfg.tls);
    free(o);
    return status;
}
