/* sockit bench: one worker's run on its sockit_loop, whatever the protocol. The
 * loop's timers mark the phases (the end of the warm-up, of -d, of the drain), sweep
 * for timeouts and reconnects, and in the open loop (--rate) hand out each request
 * when it is due; the transport (bench_tcp.c, bench_udp.c) does the I/O in its
 * watchers' callbacks and calls bench_settle after each, which stops the loop when
 * the run is over. */
#include "bench.h"

#include <errno.h>
#include <sys/prctl.h>

/* The loop's timers take seconds from the loop's time; the run's marks are absolute
 * nanoseconds on the same clock (CLOCK_MONOTONIC). */
static void start_at(bench_worker *w, sockit_timer *t, uint64_t when_ns)
{
    uint64_t now = bench_loop_now(w);
    sockit_timer_start(t, when_ns > now ? (double)(when_ns - now) / 1e9 : 0, 0);
}

static void finish(bench_worker *w) { sockit_loop_stop(w->loop); }

/* The end of -d, then of the drain: what bench_drain decides. */
static void end_or_drain(bench_worker *w, uint64_t now)
{
    bool stream = w->shared->cfg->mode == BENCH_STREAM;
    long connecting = w->outstanding == 0 || stream ? w->transport->connecting(w) : 1;
    if (!bench_drain(w, now, w->outstanding, connecting)) {
        finish(w);
        return;
    }
    w->budget_spent = true; /* past -d: no new requests */
    start_at(w, w->phase, w->stop_ns);
}

void bench_loop_settle(bench_worker *w)
{
    if (w->draining) {
        /* Only worth the transport's count once nothing is outstanding. */
        if (w->outstanding == 0)
            end_or_drain(w, bench_loop_now(w));
    } else if (w->outstanding == 0) {
        finish(w); /* -n spent and everything answered */
    }
}

static void on_phase(sockit_timer *t, void *user)
{
    bench_worker *w = user;
    uint64_t now = bench_loop_now(w);
    bench_measuring(w, now);
    if (now < w->shared->end_ns)
        start_at(w, t, w->shared->end_ns);
    else
        end_or_drain(w, now);
}

static void on_sweep(sockit_timer *t, void *user)
{
    bench_worker *w = user;
    uint64_t now = bench_loop_now(w);
    uint64_t next = w->transport->sweep(w, now);
    bench_publish(w);
    sockit_timer_start(t, (double)next / 1e9, 0);
    bench_settle(w);
}

static void arm_schedule(bench_worker *w, uint64_t now);

/* Open loop: hands out every request whose time has come. */
static void schedule(bench_worker *w, uint64_t now)
{
    while (!w->budget_spent) {
        uint64_t due = bench_due_ns(w->shared, w->next_g, w->interval_ns);
        if (due > now)
            break;
        if (!bench_claim(w->shared)) {
            w->budget_spent = true;
            break;
        }
        w->transport->issue_due(w, w->next_g++, due, now);
    }
    arm_schedule(w, now);
    bench_settle(w);
}

static void on_spin(sockit_loop *loop, void *user)
{
    (void)loop;
    bench_worker *w = user;
    w->spinning = false;
    schedule(w, bench_loop_now(w));
}

static void on_schedule(sockit_timer *t, void *user)
{
    (void)t;
    bench_worker *w = user;
    schedule(w, bench_loop_now(w));
}

/* Sleeps on a timer until BENCH_SPIN_NS before the next request is due, then polls:
 * a call_soon that queues itself makes each iteration wait for I/O without
 * sleeping, so replies are still read while it polls. */
static void arm_schedule(bench_worker *w, uint64_t now)
{
    if (w->budget_spent)
        return;
    uint64_t due = bench_due_ns(w->shared, w->next_g, w->interval_ns);
    if (due <= now + BENCH_SPIN_NS) {
        if (!w->spinning && sockit_loop_call_soon(w->loop, on_spin, w) == 0)
            w->spinning = true;
        else if (!w->spinning) /* no memory for the call: sleep instead */
            sockit_timer_start(w->schedule, 0, 0);
    } else {
        sockit_timer_start(w->schedule, (double)(due - BENCH_SPIN_NS - now) / 1e9, 0);
    }
}

static int open_timers(bench_worker *w)
{
    w->phase = sockit_timer_new(w->loop, on_phase, w);
    w->sweeper = sockit_timer_new(w->loop, on_sweep, w);
    w->schedule = sockit_timer_new(w->loop, on_schedule, w);
    return w->phase && w->sweeper && w->schedule ? 0 : -1;
}

static void post_done(bench_worker *w);

void *bench_worker_run(void *worker)
{
    bench_worker *w = worker;
    bench_shared *sh = w->shared;
    const bench_config *cfg = sh->cfg;
    w->stop_ns = sh->end_ns;
    w->transport = cfg->udp ? &bench_udp_transport : &bench_tcp_transport;
    /* The loop waits in this thread: the default 50 us timer slack would add itself
     * to every open-loop latency measured. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    if (open_timers(w) < 0) {
        bench_count_error(w, BENCH_ERR_OTHER, ENOMEM);
        goto out;
    }
    if (w->rate > 0)
        w->interval_ns = 1e9 / w->rate;
    sockit_loop_update_time(w->loop);
    uint64_t now = bench_loop_now(w);
    if (w->transport->start(w, now) < 0)
        goto out;
    bench_measuring(w, now);
    start_at(w, w->phase, w->measuring ? sh->end_ns : sh->measure_ns);
    sockit_timer_start(w->sweeper, (double)w->first_sweep_ns / 1e9, 0);
    if (w->rate > 0)
        arm_schedule(w, now);
    /* A stop already asked (a signal, another worker's fatal error) makes this one
     * iteration; one of this worker's own callbacks may have asked it too. */
    int rc = sockit_loop_run(w->loop);
    if (rc < 0)
        bench_count_error(w, BENCH_ERR_OTHER, -rc);
out:
    w->finished_ns = bench_now_ns();
    bench_publish(w);
    post_done(w);
    return NULL;
}

/* Runs in the supervisor's loop: the last worker done ends it. */
static void worker_done(sockit_loop *supervisor, void *shared)
{
    bench_shared *sh = shared;
    if (++sh->ndone == sh->nworkers)
        sockit_loop_stop(supervisor);
}

static void post_done(bench_worker *w)
{
    /* A post fails only beyond max_posts or without memory: then the supervisor
     * would wait forever, so it is retried (it waits for nothing but memory). */
    while (sockit_loop_post(w->shared->supervisor, worker_done, w->shared) < 0)
        continue;
}

void bench_stop_everyone(sockit_loop *supervisor, void *shared)
{
    (void)supervisor;
    bench_shared *sh = shared;
    atomic_store(&sh->stop, true);
    for (int i = 0; i < sh->nworkers; i++)
        sockit_loop_stop(sh->workers[i].loop);
}

void bench_worker_cleanup(bench_worker *w)
{
    if (w->transport != NULL)
        w->transport->cleanup(w);
    sockit_timer_close(w->phase);
    sockit_timer_close(w->sweeper);
    sockit_timer_close(w->schedule);
    w->phase = w->sweeper = w->schedule = NULL;
    sockit_loop_close(w->loop);
    w->loop = NULL;
}
