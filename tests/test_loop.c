/* sockit_loop and its watchers: timers, I/O, signals, wakeups, deferred and posted
 * calls, keepalive, stop, close and fork. Runs once per backend (CTest entries
 * test_loop_epoll and test_loop_poll set SOCKIT_LOOP_BACKEND). */
#include "loop_harness.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the loop itself ------------------------------------------------------------- */

static void test_loop_with_nothing_to_do_returns_at_once(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    double t0 = harness_now();
    assert_ok(sockit_loop_run(loop));
    assert_int_equal(sockit_loop_run_once(loop, -1), 0);
    assert_true(harness_now() - t0 < 0.5);
    close_loop(loop);
    assert_ok(sockit_loop_close(NULL));
}

static void test_loop_new_rejects_unknown_backend_and_bad_options(void **state)
{
    (void)state;
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    o.backend = "kqueue";
    assert_null(sockit_loop_new(&o));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "'kqueue'"));
    assert_non_null(strstr(sockit_errmsg(), "epoll, poll"));
    o.backend = NULL;
    /* size 0 is the base layout (sockit.h, "Versions and compatibility"). */
    o.size = 0;
    sockit_loop *base = sockit_loop_new(&o);
    assert_sock(base);
    close_loop(base);
    /* Longer than this library knows: fine while the unknown bytes are zero (here
     * they are the next struct on the stack, so use a bigger zeroed one). */
    struct {
        sockit_loop_options o;
        unsigned char later[8];
    } newer = {.o = SOCKIT_LOOP_OPTIONS_INIT};
    newer.o.size = sizeof newer;
    base = sockit_loop_new(&newer.o);
    assert_sock(base);
    close_loop(base);
    newer.later[3] = 1;
    assert_null(sockit_loop_new(&newer.o));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "not zero"));
    /* An older, shorter struct is fine: the fields it lacks take their defaults. */
    o.size = offsetof(sockit_loop_options, max_posts);
    sockit_loop *loop = sockit_loop_new(&o);
    assert_sock(loop);
    close_loop(loop);
    static const char *const names[] = {"epoll", "poll"};
    for (int i = 0; i < 2; i++) {
        o = (sockit_loop_options)SOCKIT_LOOP_OPTIONS_INIT;
        o.backend = names[i];
        loop = sockit_loop_new(&o);
        assert_sock(loop);
        assert_string_equal(sockit_loop_backend(loop), names[i]);
        close_loop(loop);
    }
}

static void spin_timer_fired(sockit_timer *t, void *user)
{
    (void)t;
    *(double *)user = harness_now();
}

static void spin_io_ready(sockit_io *io, int events, void *user)
{
    (void)events;
    *(double *)user = harness_now();
    sockit_io_stop(io);
}

/* spin_us: the loop polls that long before it sleeps, yet a timer due sooner fires
 * on time, an event that comes while it spins is delivered, and a spin far longer
 * than the wait never holds a run_once past its timeout. */
static void test_loop_spin_polls_before_sleeping_and_keeps_every_deadline(void **state)
{
    (void)state;
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    o.spin_us = 1000001;
    assert_null(sockit_loop_new(&o));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "spin_us"));

    o.spin_us = 500000; /* half a second of spinning, far longer than every wait below */
    sockit_loop *loop = sockit_loop_new(&o);
    assert_sock(loop);
    const char *want = getenv("SOCKIT_LOOP_BACKEND");
    if (want != NULL && want[0] != '\0')
        assert_string_equal(sockit_loop_backend(loop), want);

    double fired = 0;
    sockit_timer *t = sockit_timer_new(loop, spin_timer_fired, &fired);
    assert_sock(t);
    double t0 = harness_now();
    assert_ok(sockit_timer_start(t, 0.02, 0));
    assert_ok(sockit_loop_run(loop));
    assert_true(fired - t0 >= 0.019 && fired - t0 < 0.3);

    /* A byte written by another process arrives while the loop spins. */
    int p[2];
    assert_ok(pipe(p));
    double seen = 0;
    sockit_io *io = sockit_io_new(loop, p[0], spin_io_ready, &seen);
    assert_sock(io);
    assert_ok(sockit_io_start(io, SOCKIT_EVENT_READ));
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
        _exit(write(p[1], "x", 1) == 1 ? 0 : 1);
    }
    t0 = harness_now();
    assert_ok(sockit_loop_run(loop));
    assert_true(seen > 0 && seen - t0 < 0.3);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);

    /* A run_once timeout shorter than the spin bounds it. */
    t0 = harness_now();
    assert_ok(sockit_io_start(io, SOCKIT_EVENT_READ)); /* the byte is still unread */
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    assert_true(sockit_loop_run_once(loop, 0.02) >= 0);
    assert_true(harness_now() - t0 < 0.3);

    sockit_io_close(io);
    sockit_timer_close(t);
    sockit_loop_run_once(loop, 0);
    close(p[0]);
    close(p[1]);
    close_loop(loop);
}

static void test_loop_now_is_monotonic_seconds_updated_per_iteration(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    double a = sockit_loop_now(loop);
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    assert_true(sockit_loop_now(loop) == a); /* cached */
    sockit_loop_update_time(loop);
    double b = sockit_loop_now(loop);
    assert_true(b - a >= 0.019);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    assert_true(sockit_loop_now(loop) >= b);
    close_loop(loop);
}

/* ---- timers ---------------------------------------------------------------------- */

struct fire_log {
    int order[16];
    int n;
};

static void log_fire(sockit_timer *t, void *user)
{
    (void)t;
    (void)user;
}

struct tagged {
    struct fire_log *log;
    int tag;
};

static void tagged_fire(sockit_timer *t, void *user)
{
    (void)t;
    struct tagged *tg = user;
    if (tg->log->n < 16)
        tg->log->order[tg->log->n++] = tg->tag;
}

static void test_timers_fire_in_due_order_and_ties_in_start_order(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct fire_log log = {.n = 0};
    struct tagged tags[5];
    sockit_timer *t[5];
    /* due: 30 ms, 10 ms, 20 ms, 10 ms, 0 ms */
    static const double after[5] = {0.03, 0.01, 0.02, 0.01, 0.0};
    for (int i = 0; i < 5; i++) {
        tags[i] = (struct tagged){&log, i};
        t[i] = sockit_timer_new(loop, tagged_fire, &tags[i]);
        assert_sock(t[i]);
        assert_ok(sockit_timer_start(t[i], after[i], 0));
        assert_true(sockit_timer_active(t[i]));
    }
    double t0 = harness_now();
    assert_ok(sockit_loop_run(loop));
    double elapsed = harness_now() - t0;
    assert_true(elapsed >= 0.029);
    assert_true(elapsed < 1.0);
    assert_int_equal(log.n, 5);
    static const int want[5] = {4, 1, 3, 2, 0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(log.order[i], want[i]);
    for (int i = 0; i < 5; i++) {
        assert_false(sockit_timer_active(t[i]));
        sockit_timer_close(t[i]);
    }
    close_loop(loop);
}

struct repeat_state {
    int fired;
    int stop_at;
};

static void repeat_fire(sockit_timer *t, void *user)
{
    struct repeat_state *r = user;
    if (++r->fired == r->stop_at)
        assert_ok(sockit_timer_stop(t));
}

static void test_repeating_timer_fires_until_stopped(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct repeat_state r = {0, 5};
    sockit_timer *t = sockit_timer_new(loop, repeat_fire, &r);
    assert_ok(sockit_timer_start(t, 0.005, 0.01));
    double t0 = harness_now();
    assert_ok(sockit_loop_run(loop));
    double elapsed = harness_now() - t0;
    assert_int_equal(r.fired, 5);
    assert_true(elapsed >= 0.044); /* 5 ms + 4 x 10 ms */
    assert_true(elapsed < 2.0);
    assert_true(sockit_timer_remaining(t) == -1.0);
    sockit_timer_close(t);
    close_loop(loop);
}

static void test_timer_restart_moves_it_and_stop_cancels_it(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct fire_log log = {.n = 0};
    struct tagged a = {&log, 1}, b = {&log, 2};
    sockit_timer *ta = sockit_timer_new(loop, tagged_fire, &a);
    sockit_timer *tb = sockit_timer_new(loop, tagged_fire, &b);
    assert_ok(sockit_timer_start(ta, 0.01, 0));
    assert_ok(sockit_timer_start(tb, 0.02, 0));
    assert_ok(sockit_timer_start(ta, 0.04, 0)); /* moved after b */
    double left = sockit_timer_remaining(ta);
    assert_true(left > 0.03 && left <= 0.04);
    assert_ok(sockit_loop_run(loop));
    assert_int_equal(log.n, 2);
    assert_int_equal(log.order[0], 2);
    assert_int_equal(log.order[1], 1);

    log.n = 0;
    assert_ok(sockit_timer_start(ta, 0.01, 0));
    assert_ok(sockit_timer_stop(ta));
    assert_ok(sockit_timer_stop(ta)); /* twice is fine */
    assert_ok(sockit_loop_run(loop));
    assert_int_equal(log.n, 0);

    assert_code(sockit_timer_start(ta, -1, 0), -EINVAL);
    assert_code(sockit_timer_start(ta, 0.1, -0.5), -EINVAL);
    assert_code(sockit_timer_start(ta, NAN, 0), -EINVAL);
    assert_null(sockit_timer_new(loop, NULL, NULL));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_null(sockit_timer_new(NULL, log_fire, NULL));
    sockit_timer_close(ta);
    sockit_timer_close(tb);
    sockit_timer_close(NULL);
    close_loop(loop);
}

static void restart_at_once(sockit_timer *t, void *user)
{
    int *n = user;
    (*n)++;
    assert_ok(sockit_timer_start(t, 0, 0));
}

/* A timer that restarts itself with 0 runs once per iteration, never holding the
 * loop in its timer phase. */
static void test_timer_restarting_itself_at_once_runs_once_per_iteration(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int n = 0;
    sockit_timer *t = sockit_timer_new(loop, restart_at_once, &n);
    assert_ok(sockit_timer_start(t, 0, 0));
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(sockit_loop_run_once(loop, 0), 1);
        assert_int_equal(n, i);
    }
    sockit_timer_close(t);
    close_loop(loop);
}

static void count_fire(sockit_timer *t, void *user)
{
    (void)t;
    (*(int *)user)++;
}

/* A million timers: started and stopped in O(log n), the survivors fire once. */
static void test_a_million_timers_start_stop_and_fire(void **state)
{
    (void)state;
    enum { N = 1000000 };
    sockit_loop *loop = new_loop();
    sockit_timer **t = malloc(N * sizeof *t);
    assert_non_null(t);
    int fired = 0;
    unsigned seed = 12345;
    for (int i = 0; i < N; i++) {
        t[i] = sockit_timer_new(loop, count_fire, &fired);
        assert_non_null(t[i]);
        seed = seed * 1103515245u + 12345u;
        assert_int_equal(sockit_timer_start(t[i], (seed >> 8) % 100 / 10000.0, 0), 0);
    }
    for (int i = 0; i < N; i += 2)
        assert_int_equal(sockit_timer_stop(t[i]), 0);
    assert_ok(sockit_loop_run(loop));
    assert_int_equal(fired, N / 2);
    for (int i = 0; i < N; i++)
        sockit_timer_close(t[i]);
    free(t);
    close_loop(loop);
}

/* ---- I/O ------------------------------------------------------------------------- */

struct io_log {
    int calls;
    int last_events;
    bool read_it;
    bool stop_after;
};

static void io_record(sockit_io *io, int events, void *user)
{
    struct io_log *log = user;
    log->calls++;
    log->last_events = events;
    if (log->read_it) {
        char b[64];
        ssize_t n = read(sockit_io_fd(io), b, sizeof b);
        (void)n;
    }
    if (log->stop_after)
        assert_ok(sockit_io_stop(io));
}

static void test_io_is_level_triggered_and_events_change_in_place(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, p));
    struct io_log log = {0};
    sockit_io *io = sockit_io_new(loop, sockit_fileno(p[0]), io_record, &log);
    assert_sock(io);
    assert_int_equal(sockit_io_events(io), 0);
    assert_ok(sockit_io_start(io, SOCKIT_EVENT_READ));
    assert_int_equal(sockit_io_events(io), SOCKIT_EVENT_READ);
    /* Nothing to read: not called. */
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    assert_int_equal(log.calls, 0);
    assert_int_equal(sockit_send(p[1], "x", 1, 0), 1);
    /* Not read: reported again and again. */
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(sockit_loop_run_once(loop, 1.0), 1);
        assert_int_equal(log.calls, i);
        assert_int_equal(log.last_events, SOCKIT_EVENT_READ);
    }
    /* Both: readable and writable at once. */
    assert_ok(sockit_io_start(io, SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE));
    assert_int_equal(sockit_loop_run_once(loop, 1.0), 1);
    assert_int_equal(log.last_events, SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE);
    /* Write only. */
    assert_ok(sockit_io_start(io, SOCKIT_EVENT_WRITE));
    assert_int_equal(sockit_loop_run_once(loop, 1.0), 1);
    assert_int_equal(log.last_events, SOCKIT_EVENT_WRITE);
    /* Stopped: the loop has nothing left. */
    assert_ok(sockit_io_start(io, 0));
    int before = log.calls;
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    assert_int_equal(log.calls, before);
    assert_code(sockit_io_start(io, 4), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "events 0x4"));
    sockit_io_close(io);
    sockit_close(p[0]);
    sockit_close(p[1]);
    close_loop(loop);
}

static void test_io_rejects_bad_descriptors_and_a_second_watcher(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct io_log log = {0};
    assert_null(sockit_io_new(loop, -1, io_record, &log));
    assert_int_equal(sockit_errcode(), -EBADF);
    assert_null(sockit_io_new(loop, 0, NULL, &log));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_null(sockit_io_new_socket(loop, NULL, io_record, &log));
    assert_int_equal(sockit_errcode(), -EBADF);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    sockit_io *a = sockit_io_new(loop, p[0], io_record, &log);
    sockit_io *b = sockit_io_new(loop, p[0], io_record, &log);
    assert_ok(sockit_io_start(a, SOCKIT_EVENT_READ));
    assert_code(sockit_io_start(b, SOCKIT_EVENT_READ), -EEXIST);
    char want[64];
    snprintf(want, sizeof want, "fd %d already has a watcher", p[0]);
    assert_non_null(strstr(sockit_errmsg(), want));
    sockit_io_close(a);
    assert_ok(sockit_io_start(b, SOCKIT_EVENT_READ)); /* free again */
    sockit_io_close(b);

    /* A closed descriptor. */
    int dead = dup(p[0]);
    close(dead);
    sockit_io *c = sockit_io_new(loop, dead, io_record, &log);
    assert_true(sockit_io_start(c, SOCKIT_EVENT_READ) < 0 ||
                strcmp(sockit_loop_backend(loop), "poll") == 0);
    sockit_io_close(c);

    /* A regular file: epoll refuses it, poll calls it always ready. */
    char path[] = "/tmp/sockit-loop-XXXXXX";
    int file = mkstemp(path);
    assert_true(file >= 0);
    unlink(path);
    sockit_io *f = sockit_io_new(loop, file, io_record, &log);
    int rc = sockit_io_start(f, SOCKIT_EVENT_READ);
    if (strcmp(sockit_loop_backend(loop), "epoll") == 0) {
        assert_code(rc, -EPERM);
        assert_non_null(strstr(sockit_errmsg(), "epoll"));
    } else {
        assert_ok(rc);
    }
    sockit_io_close(f);
    close(file);
    close(p[0]);
    close(p[1]);
    close_loop(loop);
}

/* Bytes sockit_readline read ahead are readable though the descriptor is quiet. */
static void test_io_on_a_sockit_reports_read_ahead_bytes(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, p));
    assert_int_equal(sockit_sendall(p[1], "one\ntwo\nthree\n", 14, 0, NULL), 14);
    char line[16];
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 4); /* the rest is buffered */
    struct io_log log = {0};
    sockit_io *io = sockit_io_new_socket(loop, p[0], io_record, &log);
    assert_ok(sockit_io_start(io, SOCKIT_EVENT_READ));
    double t0 = harness_now();
    assert_int_equal(sockit_loop_run_once(loop, 5.0), 1);
    assert_true(harness_now() - t0 < 1.0);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.last_events, SOCKIT_EVENT_READ);
    /* Still buffered (the callback did not read): reported again. */
    assert_int_equal(sockit_loop_run_once(loop, 5.0), 1);
    assert_int_equal(log.calls, 2);
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 4);
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 6);
    assert_int_equal(sockit_pending(p[0]), 0);
    t0 = harness_now();
    assert_int_equal(sockit_loop_run_once(loop, 0.1), 1);
    assert_int_equal(log.calls, 2); /* drained: quiet again */
    assert_true(harness_now() - t0 >= 0.09);
    sockit_io_close(io);
    sockit_close(p[0]);
    sockit_close(p[1]);
    close_loop(loop);
}

/* Two readable descriptors in one batch: the first callback closes the second's
 * descriptor and watcher, and opens a new descriptor that takes the same number
 * with a new watcher. The report already collected for the old one must reach no
 * one: not the freed watcher (ASan would see it), not the new owner. */
struct reuse_ctx {
    sockit_loop *loop;
    int fds[2][2]; /* two pipes */
    sockit_io *w[2];
    int calls[2];
    int reused_fd;
    sockit_io *reused;
    int reused_calls;
    int first;
};

static void reused_cb(sockit_io *io, int events, void *user)
{
    (void)io;
    (void)events;
    struct reuse_ctx *c = user;
    c->reused_calls++;
}

static void reuse_cb(sockit_io *io, int events, void *user)
{
    (void)events;
    struct reuse_ctx *c = user;
    int me = io == c->w[0] ? 0 : 1;
    c->calls[me]++;
    if (c->first >= 0)
        return;
    c->first = me;
    int other = 1 - me;
    sockit_io_close(c->w[other]);
    c->w[other] = NULL;
    int old = c->fds[other][0];
    close(old);
    int np[2];
    assert_int_equal(pipe2(np, O_CLOEXEC), 0);
    assert_int_equal(np[0], old); /* the lowest free number */
    c->reused_fd = np[0];
    close(c->fds[other][1]);
    c->fds[other][0] = np[0];
    c->fds[other][1] = np[1];
    c->reused = sockit_io_new(c->loop, np[0], reused_cb, c);
    assert_ok(sockit_io_start(c->reused, SOCKIT_EVENT_READ)); /* empty: never readable */
}

static void test_event_for_a_closed_and_reused_descriptor_reaches_no_one(void **state)
{
    (void)state;
    struct reuse_ctx c = {.first = -1};
    c.loop = new_loop();
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pipe2(c.fds[i], O_CLOEXEC), 0);
        assert_int_equal(write(c.fds[i][1], "x", 1), 1);
    }
    for (int i = 0; i < 2; i++) {
        c.w[i] = sockit_io_new(c.loop, c.fds[i][0], reuse_cb, &c);
        assert_ok(sockit_io_start(c.w[i], SOCKIT_EVENT_READ));
    }
    assert_int_equal(sockit_loop_run_once(c.loop, 1.0), 1);
    assert_int_equal(c.calls[c.first], 1);
    assert_int_equal(c.calls[1 - c.first], 0);
    assert_int_equal(c.reused_calls, 0);
    assert_int_equal(sockit_loop_run_once(c.loop, 0), 1);
    assert_int_equal(c.reused_calls, 0);
    sockit_io_close(c.w[c.first]);
    sockit_io_close(c.reused);
    for (int i = 0; i < 2; i++) {
        close(c.fds[i][0]);
        close(c.fds[i][1]);
    }
    close_loop(c.loop);
}

static void close_self(sockit_io *io, int events, void *user)
{
    (void)events;
    (*(int *)user)++;
    sockit_io_close(io);
}

static void test_io_callback_may_close_its_own_watcher(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    int calls = 0;
    sockit_io *io = sockit_io_new(loop, p[0], close_self, &calls);
    assert_ok(sockit_io_start(io, SOCKIT_EVENT_READ));
    assert_ok(sockit_loop_run(loop)); /* the only watcher closed itself: run ends */
    assert_int_equal(calls, 1);
    close(p[0]);
    close(p[1]);
    close_loop(loop);
}

static void test_hang_up_is_reported_as_the_asked_events(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, p));
    struct io_log log = {.stop_after = true};
    sockit_io *io = sockit_io_new_socket(loop, p[0], io_record, &log);
    assert_ok(sockit_io_start(io, SOCKIT_EVENT_READ));
    sockit_close(p[1]);
    assert_ok(sockit_loop_run(loop));
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.last_events, SOCKIT_EVENT_READ); /* only what was asked */
    char b;
    assert_int_equal(sockit_recv(p[0], &b, 1, 0), 0);
    sockit_io_close(io);
    sockit_close(p[0]);
    close_loop(loop);
}

/* ---- stop ------------------------------------------------------------------------ */

static void test_stop_before_run_makes_one_iteration_without_waiting(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int fired = 0;
    sockit_timer *t = sockit_timer_new(loop, count_fire, &fired);
    assert_ok(sockit_timer_start(t, 10.0, 0)); /* keeps it alive */
    sockit_loop_stop(loop);
    double t0 = harness_now();
    assert_ok(sockit_loop_run(loop));
    assert_true(harness_now() - t0 < 0.5);
    assert_int_equal(fired, 0);
    sockit_timer_close(t);
    close_loop(loop);
}

struct stopper {
    sockit_loop *loop;
    double after;
};

static void *stop_later(void *arg)
{
    struct stopper *s = arg;
    struct timespec ts = {0, (long)(s->after * 1e9)};
    nanosleep(&ts, NULL);
    sockit_loop_stop(s->loop);
    return NULL;
}

static void test_stop_from_another_thread_returns_run_at_once(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int fired = 0;
    sockit_timer *t = sockit_timer_new(loop, count_fire, &fired);
    assert_ok(sockit_timer_start(t, 30.0, 0));
    struct stopper s = {loop, 0.1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_later, &s), 0);
    double t0 = harness_now();
    assert_ok(sockit_loop_run(loop));
    double elapsed = harness_now() - t0;
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(elapsed >= 0.09);
    assert_true(elapsed < 1.0);
    sockit_timer_close(t);
    close_loop(loop);
}

static sockit_loop *signal_target;
static void stop_from_handler(int sig)
{
    (void)sig;
    sockit_loop_stop(signal_target);
}

static void test_stop_from_a_signal_handler_returns_run_at_once(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    signal_target = loop;
    int fired = 0;
    sockit_timer *t = sockit_timer_new(loop, count_fire, &fired);
    assert_ok(sockit_timer_start(t, 30.0, 0));
    harness_signal_no_restart(SIGUSR2, stop_from_handler);
    harness_signal_after(SIGUSR2, 0.1);
    double t0 = harness_now();
    assert_ok(sockit_loop_run(loop));
    double elapsed = harness_now() - t0;
    assert_true(elapsed >= 0.09 && elapsed < 1.0);
    assert_int_equal(fired, 0);
    signal(SIGUSR2, SIG_DFL);
    signal_target = NULL;
    sockit_timer_close(t);
    close_loop(loop);
}

static void nothing(int sig) { (void)sig; }

static void test_interrupted_wait_is_retried_and_timer_fires_on_time(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int fired = 0;
    sockit_timer *t = sockit_timer_new(loop, count_fire, &fired);
    assert_ok(sockit_timer_start(t, 0.3, 0));
    harness_signal_no_restart(SIGUSR2, nothing);
    harness_signal_after(SIGUSR2, 0.05);
    harness_signal_after(SIGUSR2, 0.1);
    double t0 = harness_now();
    assert_ok(sockit_loop_run(loop));
    double elapsed = harness_now() - t0;
    assert_int_equal(fired, 1);
    assert_true(elapsed >= 0.29 && elapsed < 1.5);
    signal(SIGUSR2, SIG_DFL);
    sockit_timer_close(t);
    close_loop(loop);
}

static void run_inside(sockit_timer *t, void *user)
{
    (void)t;
    sockit_loop *loop = *(sockit_loop **)user;
    assert_code(sockit_loop_run(loop), -EBUSY);
    assert_code(sockit_loop_run_once(loop, 0), -EBUSY);
    assert_code(sockit_loop_close(loop), -EBUSY);
}

static void test_run_from_a_callback_and_close_while_running_are_ebusy(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_timer *t = sockit_timer_new(loop, run_inside, &loop);
    assert_ok(sockit_timer_start(t, 0, 0));
    assert_ok(sockit_loop_run(loop));
    sockit_timer_close(t);
    close_loop(loop);
}

static void test_close_with_open_watchers_is_ebusy_and_frees_nothing(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int fired = 0;
    sockit_timer *t = sockit_timer_new(loop, count_fire, &fired);
    assert_null(sockit_wakeup_new(loop, NULL, NULL)); /* no callback */
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_code(sockit_loop_close(loop), -EBUSY);
    assert_non_null(strstr(sockit_errmsg(), "1 timer"));
    assert_ok(sockit_timer_start(t, 0, 0)); /* still usable */
    assert_ok(sockit_loop_run(loop));
    assert_int_equal(fired, 1);
    sockit_timer_close(t);
    close_loop(loop);
}

/* ---- deferred and posted calls ----------------------------------------------------- */

struct calls {
    int seen[32];
    int n;
    sockit_loop *loop;
};

static void note_call(sockit_loop *loop, void *arg);

static void queue_again(sockit_loop *loop, void *arg)
{
    struct calls *c = arg;
    c->seen[c->n++] = 100;
    assert_ok(sockit_loop_call_soon(loop, note_call, c));
}

static void note_call(sockit_loop *loop, void *arg)
{
    (void)loop;
    struct calls *c = arg;
    int i = c->n++;
    c->seen[i] = i;
}

static void test_call_soon_runs_next_iteration_in_order(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct calls c = {.n = 0};
    assert_ok(sockit_loop_call_soon(loop, note_call, &c));
    assert_ok(sockit_loop_call_soon(loop, queue_again, &c));
    assert_ok(sockit_loop_call_soon(loop, note_call, &c));
    assert_int_equal(c.n, 0);                           /* not before the loop runs */
    assert_int_equal(sockit_loop_run_once(loop, 0), 1); /* the one queue_again added */
    assert_int_equal(c.n, 3);
    assert_int_equal(c.seen[0], 0);
    assert_int_equal(c.seen[1], 100);
    assert_int_equal(c.seen[2], 2);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    assert_int_equal(c.n, 4);
    assert_code(sockit_loop_call_soon(loop, NULL, &c), -EINVAL);
    assert_code(sockit_loop_call_soon(NULL, note_call, &c), -EINVAL);
    close_loop(loop);
}

#define POSTERS    4
#define PER_POSTER 2000

struct post_log {
    atomic_int total;
    int last[POSTERS]; /* loop thread only */
    bool in_order;
};

struct post_item {
    struct post_log *log;
    int poster, seq;
};

static struct post_item post_items[POSTERS][PER_POSTER];

static void posted(sockit_loop *loop, void *arg)
{
    struct post_item *it = arg;
    if (it->seq != it->log->last[it->poster] + 1)
        it->log->in_order = false;
    it->log->last[it->poster] = it->seq;
    if (atomic_fetch_add(&it->log->total, 1) + 1 == POSTERS * PER_POSTER)
        sockit_loop_stop(loop);
}

struct poster_arg {
    sockit_loop *loop;
    int poster;
};

static void *poster_main(void *arg)
{
    struct poster_arg *p = arg;
    for (int i = 0; i < PER_POSTER; i++) {
        /* The queue is bounded: a full one says so, and the poster tries again. */
        int rc;
        for (int tries = 0; (rc = sockit_loop_post(p->loop, posted, &post_items[p->poster][i])) ==
                                SOCKIT_EWOULDBLOCK &&
                            tries < 100000;
             tries++)
            sched_yield();
        if (rc < 0)
            return (void *)1;
    }
    return NULL;
}

static void test_posts_from_threads_all_run_in_order_per_thread(void **state)
{
    (void)state;
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    o.max_posts = 64; /* small, so posters meet the bound */
    sockit_loop *loop = sockit_loop_new(&o);
    assert_sock(loop);
    struct post_log log = {.in_order = true};
    atomic_init(&log.total, 0);
    for (int p = 0; p < POSTERS; p++) {
        log.last[p] = -1;
        for (int i = 0; i < PER_POSTER; i++)
            post_items[p][i] = (struct post_item){&log, p, i};
    }
    /* A timer keeps the loop alive while the posters start. */
    int fired = 0;
    sockit_timer *guard = sockit_timer_new(loop, count_fire, &fired);
    assert_ok(sockit_timer_start(guard, 30.0, 0));
    pthread_t th[POSTERS];
    struct poster_arg args[POSTERS];
    for (int p = 0; p < POSTERS; p++) {
        args[p] = (struct poster_arg){loop, p};
        assert_int_equal(pthread_create(&th[p], NULL, poster_main, &args[p]), 0);
    }
    assert_ok(sockit_loop_run(loop));
    for (int p = 0; p < POSTERS; p++) {
        void *ret;
        assert_int_equal(pthread_join(th[p], &ret), 0);
        assert_null(ret);
    }
    assert_int_equal(atomic_load(&log.total), POSTERS * PER_POSTER);
    assert_true(log.in_order);
    sockit_timer_close(guard);
    close_loop(loop);
}

static void test_post_beyond_the_limit_is_ewouldblock(void **state)
{
    (void)state;
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    o.max_posts = 3;
    sockit_loop *loop = sockit_loop_new(&o);
    assert_sock(loop);
    struct calls c = {.n = 0};
    for (int i = 0; i < 3; i++)
        assert_ok(sockit_loop_post(loop, note_call, &c));
    assert_code(sockit_loop_post(loop, note_call, &c), SOCKIT_EWOULDBLOCK);
    assert_non_null(strstr(sockit_errmsg(), "max_posts"));
    /* Queued posts keep the loop alive until they ran. */
    assert_ok(sockit_loop_run(loop));
    assert_int_equal(c.n, 3);
    assert_ok(sockit_loop_post(loop, note_call, &c)); /* room again */
    assert_ok(sockit_loop_run(loop));
    assert_int_equal(c.n, 4);
    close_loop(loop);
}

/* ---- wakeups ----------------------------------------------------------------------- */

struct wake_state {
    atomic_int sent;
    int calls;
    sockit_loop *loop;
};

static void on_wake(sockit_wakeup *w, void *user)
{
    (void)w;
    struct wake_state *s = user;
    s->calls++;
    if (atomic_load(&s->sent) == 1000)
        sockit_loop_stop(s->loop);
}

struct waker {
    sockit_wakeup *w;
    struct wake_state *s;
};

static void *waker_main(void *arg)
{
    struct waker *k = arg;
    for (int i = 0; i < 1000; i++) {
        atomic_fetch_add(&k->s->sent, 1);
        sockit_wakeup_send(k->w);
    }
    return NULL;
}

static void test_wakeups_from_a_thread_are_coalesced_and_none_is_lost(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct wake_state s = {.loop = loop};
    atomic_init(&s.sent, 0);
    sockit_wakeup *w = sockit_wakeup_new(loop, on_wake, &s);
    assert_sock(w);
    sockit_wakeup_keepalive(w, true); /* else run would return at once */
    struct waker k = {w, &s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waker_main, &k), 0);
    assert_ok(sockit_loop_run(loop)); /* stops once the last send was seen */
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(s.calls >= 1);
    assert_true(s.calls <= 1000);
    sockit_wakeup_close(w);
    close_loop(loop);
}

static sockit_wakeup *handler_wakeup;
static void wake_from_handler(int sig)
{
    (void)sig;
    sockit_wakeup_send(handler_wakeup);
}

static void stop_loop_call(sockit_wakeup *w, void *user)
{
    (void)w;
    struct wake_state *s = user;
    s->calls++;
    sockit_loop_stop(s->loop);
}

static void test_wakeup_from_a_signal_handler_runs_its_callback(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct wake_state s = {.loop = loop};
    handler_wakeup = sockit_wakeup_new(loop, stop_loop_call, &s);
    sockit_wakeup_keepalive(handler_wakeup, true);
    harness_signal_no_restart(SIGUSR2, wake_from_handler);
    harness_signal_after(SIGUSR2, 0.05);
    double t0 = harness_now();
    assert_ok(sockit_loop_run(loop));
    assert_true(harness_now() - t0 < 1.0);
    assert_int_equal(s.calls, 1);
    signal(SIGUSR2, SIG_DFL);
    sockit_wakeup_close(handler_wakeup);
    close_loop(loop);
}

/* ---- signals ----------------------------------------------------------------------- */

struct sig_state {
    int calls, signum, count;
    sockit_loop *loop;
};

static void on_sig(sockit_signal *w, int signum, int count, void *user)
{
    (void)w;
    struct sig_state *s = user;
    s->calls++;
    s->signum = signum;
    s->count += count;
    sockit_loop_stop(s->loop);
}

static void test_signal_is_delivered_as_a_callback_in_the_loop(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct sig_state s = {.loop = loop};
    sockit_signal *w = sockit_signal_new(loop, on_sig, &s);
    assert_sock(w);
    assert_ok(sockit_signal_start(w, SIGUSR1));
    sockit_signal_keepalive(w, true);
    harness_signal_after(SIGUSR1, 0.05);
    assert_ok(sockit_loop_run(loop));
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.signum, SIGUSR1);
    assert_int_equal(s.count, 1);
    /* Sent twice before the loop looks: one callback or two, never a lost one. */
    s = (struct sig_state){.loop = loop};
    raise(SIGUSR1);
    raise(SIGUSR1);
    assert_int_equal(sockit_loop_run_once(loop, 1.0), 1);
    assert_int_equal(s.count, 2);
    sockit_signal_close(w);
    close_loop(loop);
}

static void test_every_loop_watching_a_signal_gets_it_and_old_handler_returns(void **state)
{
    (void)state;
    struct sigaction before;
    harness_signal_no_restart(SIGUSR1, nothing);
    sigaction(SIGUSR1, NULL, &before);
    sockit_loop *a = new_loop(), *b = new_loop();
    struct sig_state sa = {.loop = a}, sb = {.loop = b};
    sockit_signal *wa = sockit_signal_new(a, on_sig, &sa);
    sockit_signal *wb = sockit_signal_new(b, on_sig, &sb);
    assert_ok(sockit_signal_start(wa, SIGUSR1));
    assert_ok(sockit_signal_start(wb, SIGUSR1));
    raise(SIGUSR1);
    assert_int_equal(sockit_loop_run_once(a, 1.0), 0);
    assert_int_equal(sockit_loop_run_once(b, 1.0), 0);
    assert_int_equal(sa.count, 1);
    assert_int_equal(sb.count, 1);
    sockit_signal_close(wa);
    struct sigaction now;
    sigaction(SIGUSR1, NULL, &now);
    assert_ptr_not_equal(now.sa_handler, before.sa_handler); /* b still watches */
    sockit_signal_close(wb);
    sigaction(SIGUSR1, NULL, &now);
    assert_ptr_equal(now.sa_handler, before.sa_handler);
    signal(SIGUSR1, SIG_DFL);
    close_loop(a);
    close_loop(b);
}

static void test_signal_watchers_reject_unwatchable_signals(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct sig_state s = {.loop = loop};
    sockit_signal *w = sockit_signal_new(loop, on_sig, &s);
    static const int bad[] = {0, -1, SIGKILL, SIGSTOP, SIGSEGV, 65, 1000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_code(sockit_signal_start(w, bad[i]), -EINVAL);
        char want[32];
        snprintf(want, sizeof want, "signal %d", bad[i]);
        assert_non_null(strstr(sockit_errmsg(), want));
    }
    assert_ok(sockit_signal_stop(w)); /* never started: fine */
    sockit_signal_close(w);
    close_loop(loop);
}

/* ---- keepalive ----------------------------------------------------------------------- */

static void test_keepalive_decides_what_keeps_run_going(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct sig_state s = {.loop = loop};
    sockit_signal *sig = sockit_signal_new(loop, on_sig, &s);
    assert_ok(sockit_signal_start(sig, SIGUSR1));
    struct wake_state ws = {.loop = loop};
    sockit_wakeup *w = sockit_wakeup_new(loop, stop_loop_call, &ws);
    double t0 = harness_now();
    assert_ok(sockit_loop_run(loop)); /* signal and wakeup watchers alone: returns */
    int fired = 0;
    sockit_timer *t = sockit_timer_new(loop, count_fire, &fired);
    assert_ok(sockit_timer_start(t, 30.0, 0));
    sockit_timer_keepalive(t, false);
    assert_ok(sockit_loop_run(loop)); /* an unref'd timer does not keep it either */
    assert_true(harness_now() - t0 < 0.5);
    assert_int_equal(fired, 0);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    sockit_timer_keepalive(t, true);
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    struct io_log log = {0};
    sockit_io *io = sockit_io_new(loop, p[0], io_record, &log);
    assert_ok(sockit_io_start(io, SOCKIT_EVENT_READ));
    sockit_timer_keepalive(t, false);
    sockit_io_keepalive(io, false);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    sockit_io_keepalive(io, true);
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    sockit_io_close(io);
    close(p[0]);
    close(p[1]);
    sockit_timer_close(t);
    sockit_wakeup_close(w);
    sockit_signal_close(sig);
    close_loop(loop);
}

/* ---- fork ---------------------------------------------------------------------------- */

static void test_forked_child_cannot_run_the_loop_but_can_close_it(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    struct io_log log = {0};
    sockit_io *io = sockit_io_new(loop, p[0], io_record, &log);
    assert_ok(sockit_io_start(io, SOCKIT_EVENT_READ));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int rc = sockit_loop_run(loop) == -ECHILD ? 0 : 1;
        rc |= sockit_loop_run_once(loop, 0) == -ECHILD ? 0 : 2;
        rc |= sockit_loop_close(loop) == 0 ? 0 : 4; /* with the watcher open */
        _exit(rc);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The parent's registration survived the child's close. */
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(sockit_loop_run_once(loop, 1.0), 1);
    assert_int_equal(log.calls, 1);
    sockit_io_close(io);
    close(p[0]);
    close(p[1]);
    close_loop(loop);
}

/* epoll waits with a nanosecond timeout (epoll_pwait2): a timer due in 0.1 ms must
 * not wait for a whole millisecond, as a millisecond timeout rounded up would make it.
 * Never early, on every backend; and under epoll, one of 20 tries (the VM may be busy
 * for the others) must be done within 0.9 ms, which rounding up can never be. */
static void fire_note(sockit_timer *t, void *user)
{
    (void)t;
    *(double *)user = harness_now();
}

static void test_sub_millisecond_timer_is_not_rounded_up_to_a_millisecond(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    bool epoll = strcmp(sockit_loop_backend(loop), "epoll") == 0;
    double fired = 0, best = 1.0;
    sockit_timer *t = sockit_timer_new(loop, fire_note, &fired);
    for (int i = 0; i < 20; i++) {
        sockit_loop_update_time(loop);
        double t0 = sockit_loop_now(loop);
        assert_ok(sockit_timer_start(t, 0.0001, 0));
        assert_ok(sockit_loop_run(loop));
        assert_true(fired - t0 >= 0.0001);
        if (fired - t0 < best)
            best = fired - t0;
    }
    if (epoll)
        assert_true(best < 0.0009);
    sockit_timer_close(t);
    close_loop(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_loop_with_nothing_to_do_returns_at_once),
        harness_test(test_loop_new_rejects_unknown_backend_and_bad_options),
        harness_test(test_loop_spin_polls_before_sleeping_and_keeps_every_deadline),
        harness_test(test_loop_now_is_monotonic_seconds_updated_per_iteration),
        harness_test(test_timers_fire_in_due_order_and_ties_in_start_order),
        harness_test(test_repeating_timer_fires_until_stopped),
        harness_test(test_timer_restart_moves_it_and_stop_cancels_it),
        harness_test(test_timer_restarting_itself_at_once_runs_once_per_iteration),
        harness_test(test_a_million_timers_start_stop_and_fire),
        harness_test(test_io_is_level_triggered_and_events_change_in_place),
        harness_test(test_io_rejects_bad_descriptors_and_a_second_watcher),
        harness_test(test_io_on_a_sockit_reports_read_ahead_bytes),
        harness_test(test_event_for_a_closed_and_reused_descriptor_reaches_no_one),
        harness_test(test_io_callback_may_close_its_own_watcher),
        harness_test(test_hang_up_is_reported_as_the_asked_events),
        harness_test(test_stop_before_run_makes_one_iteration_without_waiting),
        harness_test(test_stop_from_another_thread_returns_run_at_once),
        harness_test(test_stop_from_a_signal_handler_returns_run_at_once),
        harness_test(test_interrupted_wait_is_retried_and_timer_fires_on_time),
        harness_test(test_sub_millisecond_timer_is_not_rounded_up_to_a_millisecond),
        harness_test(test_run_from_a_callback_and_close_while_running_are_ebusy),
        harness_test(test_close_with_open_watchers_is_ebusy_and_frees_nothing),
        harness_test(test_call_soon_runs_next_iteration_in_order),
        harness_test(test_posts_from_threads_all_run_in_order_per_thread),
        harness_test(test_post_beyond_the_limit_is_ewouldblock),
        harness_test(test_wakeups_from_a_thread_are_coalesced_and_none_is_lost),
        harness_test(test_wakeup_from_a_signal_handler_runs_its_callback),
        harness_test(test_signal_is_delivered_as_a_callback_in_the_loop),
        harness_test(test_every_loop_watching_a_signal_gets_it_and_old_handler_returns),
        harness_test(test_signal_watchers_reject_unwatchable_signals),
        harness_test(test_keepalive_decides_what_keeps_run_going),
        harness_test(test_forked_child_cannot_run_the_loop_but_can_close_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
