/* A loop run by one thread and later by another, on every backend. On io_uring the
 * ring is bound to the thread that first hands it work (SINGLE_ISSUER +
 * DEFER_TASKRUN), so the second thread takes the loop over onto a ring of its own:
 * these tests check that nothing is lost or doubled when it does, whether the first
 * thread has exited or still lives, with bytes that arrived between the two, a send
 * the kernel was holding, and a listener closed just before the move. */
#include "loop/loop_internal.h"
#include "loop_harness.h"
#ifdef SOCKIT_HAVE_URING
#include "loop/uring_internal.h"
#endif

#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Every operation had exactly one final completion: none missing (the count would
 * stay up), none twice (it would go below zero). Then the loop closes. */
static void close_settled(sockit_loop *loop)
{
    for (int i = 0; i < 10; i++)
        sockit_loop_run_once(loop, 0);
    assert_int_equal(loop->ops_pending, 0);
    close_loop(loop);
}

/* Migrations the loop's ring has been through, or -1 where the backend has no ring
 * bound to a thread (epoll, poll, or a kernel without DEFER_TASKRUN). */
static int migrations(sockit_loop *loop)
{
#ifdef SOCKIT_HAVE_URING
    if (strcmp(sockit_loop_backend(loop), "uring") == 0 && sockit__uring_bound(&loop->backend))
        return (int)sockit__uring_migrations(&loop->backend);
#endif
    (void)loop;
    return -1;
}

/* An echo stream on the loop side of a socket pair; the test holds the other end. */
struct echo {
    sockit_stream *st;
    size_t got;
    bool closed;
};

static void echo_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    struct echo *e = user;
    e->got += len;
    assert_ok(sockit_stream_write(st, data, len));
}

static void echo_close(sockit_stream *st, void *user)
{
    (void)st;
    struct echo *e = user;
    e->closed = true;
}

static const sockit_stream_callbacks echo_cb = {.on_data = echo_data, .on_close = echo_close};

/* A socket pair, its sv[0] an echo stream on loop, sv[1] the test's. */
static void echo_pair(sockit_loop *loop, int sv[2], struct echo *e)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    e->st = sockit_stream_new_fd(loop, sv[0], true, &echo_cb, e);
    assert_sock(e->st);
}

/* Sends msg on fd and reads its echo back while running the loop from this thread. */
static void exchange(sockit_loop *loop, int fd, const char *msg)
{
    size_t n = strlen(msg);
    assert_int_equal(send(fd, msg, n, MSG_NOSIGNAL), (ssize_t)n);
    char buf[256];
    size_t have = 0;
    double until = harness_now() + 5.0;
    while (have < n && harness_now() < until) {
        sockit_loop_run_once(loop, 0.01);
        ssize_t r = recv(fd, buf + have, sizeof buf - have, MSG_DONTWAIT);
        if (r > 0)
            have += (size_t)r;
    }
    assert_int_equal(have, n);
    assert_memory_equal(buf, msg, n);
}

struct runner {
    sockit_loop *loop;
    int fd;
    int rounds;
    /* Held alive after its rounds until released (the "first thread still lives"
     * case). */
    bool stay;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, release;
};

static void *run_rounds(void *arg)
{
    struct runner *r = arg;
    for (int i = 0; i < r->rounds; i++)
        exchange(r->loop, r->fd, "ping from the first thread");
    pthread_mutex_lock(&r->mu);
    r->done = true;
    pthread_cond_broadcast(&r->cv);
    while (r->stay && !r->release)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void start_runner(struct runner *r, pthread_t *t)
{
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    assert_int_equal(pthread_create(t, NULL, run_rounds, r), 0);
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void stop_runner(struct runner *r, pthread_t t)
{
    pthread_mutex_lock(&r->mu);
    r->release = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    assert_int_equal(pthread_join(t, NULL), 0);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

static void moves_and_echoes(bool first_stays)
{
    sockit_loop *loop = new_loop();
    int sv[2];
    struct echo e = {0};
    echo_pair(loop, sv, &e);
    struct runner r = {.loop = loop, .fd = sv[1], .rounds = 20, .stay = first_stays};
    pthread_t t;
    start_runner(&r, &t);
    if (!first_stays)
        stop_runner(&r, t);
    /* Bytes that come while no thread runs the loop: the first thread's ring had a
     * receive waiting for them. */
    const char *between = "sent while nobody ran the loop";
    assert_int_equal(send(sv[1], between, strlen(between), 0), (ssize_t)strlen(between));
    usleep(20000);
    char buf[64] = {0};
    size_t have = 0;
    double until = harness_now() + 5.0;
    while (have < strlen(between) && harness_now() < until) {
        sockit_loop_run_once(loop, 0.01);
        ssize_t n = recv(sv[1], buf + have, sizeof buf - 1 - have, MSG_DONTWAIT);
        if (n > 0)
            have += (size_t)n;
    }
    assert_string_equal(buf, between);
    for (int i = 0; i < 20; i++)
        exchange(loop, sv[1], "ping from the second thread");
    size_t want = 20 * strlen("ping from the first thread") + strlen(between) +
                  20 * strlen("ping from the second thread");
    assert_int_equal(e.got, want); /* each byte once */
    int m = migrations(loop);
    if (m >= 0)
        assert_int_equal(m, 1);
    if (first_stays)
        stop_runner(&r, t);
    sockit_stream_close(e.st, 0);
    RUN_UNTIL(loop, e.closed, 5.0);
    assert_true(e.closed);
    close(sv[1]);
    close_settled(loop);
}

/* Whether the running kernel is 6.1 or later, where io_uring rings are bound. */
static bool kernel_binds_rings(void)
{
    struct utsname u;
    int major = 0, minor = 0;
    return uname(&u) == 0 && sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
           (major > 6 || (major == 6 && minor >= 1));
}

static void test_a_loop_moves_to_a_second_thread_after_the_first_exits(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    if (strcmp(sockit_loop_backend(loop), "uring") == 0 && kernel_binds_rings())
        assert_true(migrations(loop) == 0); /* bound, and not moved yet */
    close_loop(loop);
    moves_and_echoes(false);
}

static void test_a_loop_moves_to_a_second_thread_while_the_first_still_lives(void **state)
{
    (void)state;
    moves_and_echoes(true);
}

/* On io_uring, the same with a ring that is not bound to a thread (kernels before
 * 6.1): the second thread runs it as it is. */
static void test_an_unbound_ring_moves_between_threads_as_it_is(void **state)
{
    (void)state;
#ifdef SOCKIT_HAVE_URING
    const char *want = getenv("SOCKIT_LOOP_BACKEND");
    if (want == NULL || strcmp(want, "uring") != 0)
        skip();
    sockit__uring_unbound(true);
    sockit_loop *loop = new_loop();
    assert_false(sockit__uring_bound(&loop->backend));
    close_loop(loop);
    moves_and_echoes(false);
    moves_and_echoes(true);
    sockit__uring_unbound(false);
#else
    skip();
#endif
}

/* A write bigger than the socket pair's buffers, made on the first thread to a peer
 * that does not read: the kernel holds the rest of it when that thread exits. The
 * second thread runs the loop while the peer reads: every byte arrives once, in
 * order. */
enum { BIG = 4 << 20 };

struct sink {
    int fd;
    size_t got;
    bool bad;
};

static void *drain_peer(void *arg)
{
    struct sink *s = arg;
    unsigned char buf[65536];
    while (s->got < BIG) {
        ssize_t n = recv(s->fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            s->bad |= buf[i] != (unsigned char)((s->got + (size_t)i) % 251);
        s->got += (size_t)n;
    }
    return NULL;
}

struct writer {
    sockit_loop *loop;
    sockit_stream *st;
};

static void *write_big(void *arg)
{
    struct writer *w = arg;
    unsigned char *buf = malloc(BIG);
    assert_non_null(buf);
    for (size_t i = 0; i < BIG; i++)
        buf[i] = (unsigned char)(i % 251);
    assert_ok(sockit_stream_write(w->st, buf, BIG));
    free(buf);
    run_for(w->loop, 0.1); /* hands the kernel what it takes; the rest waits */
    return NULL;
}

static void test_a_send_the_kernel_held_when_its_thread_exited_is_sent_once(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int sv[2];
    struct echo e = {0};
    echo_pair(loop, sv, &e);
    struct writer w = {.loop = loop, .st = e.st};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_big, &w), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(sockit_stream_queued(e.st) > 0); /* the peer has read nothing yet */
    struct sink s = {.fd = sv[1]};
    assert_int_equal(pthread_create(&t, NULL, drain_peer, &s), 0);
    RUN_UNTIL(loop, sockit_stream_queued(e.st) == 0, 10.0);
    assert_int_equal(sockit_stream_queued(e.st), 0);
    sockit_stream_close(e.st, 0);
    RUN_UNTIL(loop, e.closed, 5.0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(s.got, BIG);
    assert_false(s.bad);
    int m = migrations(loop);
    if (m >= 0)
        assert_int_equal(m, 1);
    close(sv[1]);
    close_settled(loop);
}

/* A listener closed on the first thread, which then exits without running the loop
 * again: its last completion comes on the second thread, which frees it, and the
 * loop closes clean. */
struct closer {
    sockit_loop *loop;
    sockit_listener *l;
};

static void *close_listener(void *arg)
{
    struct closer *c = arg;
    run_for(c->loop, 0.05);
    sockit_listener_close(c->l);
    return NULL;
}

static void no_accept(sockit_listener *l, sockit_stream *st, const sockit_addr *peer, void *user)
{
    (void)l;
    (void)peer;
    (void)user;
    sockit_stream_close(st, 0);
}

static void test_a_listener_closed_on_the_first_thread_is_freed_on_the_second(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s = sockit_create_server("127.0.0.1", 0, NULL);
    assert_sock(s);
    sockit_listener_config cfg = {0};
    cfg.on_accept = no_accept;
    sockit_listener *l = sockit_listener_new(loop, s, &cfg);
    assert_sock(l);
    struct closer c = {.loop = loop, .l = l};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, close_listener, &c), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* close_loop runs the loop here, then closes it: -EBUSY would mean the
     * listener's accept never ended. */
    close_settled(loop);
}

/* Bytes the kernel received for two streams while the first thread was still
 * there, whose completions it posted (a watcher stopped: a submit that runs the
 * kernel's deferred work) but never took: the second thread gets each stream's
 * bytes exactly, out of the buffer they share (with incremental buffers, one
 * buffer holds both). */
struct collect {
    char buf[64];
    size_t len;
};

static void collect_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)st;
    struct collect *c = user;
    assert_true(c->len + len < sizeof c->buf);
    memcpy(c->buf + c->len, data, len);
    c->len += len;
}

static const sockit_stream_callbacks collect_cb = {.on_data = collect_data};

static void ignore_io(sockit_io *io, int events, void *user)
{
    (void)io;
    (void)events;
    (void)user;
}

struct poster {
    sockit_loop *loop;
    int peer[2];
    sockit_io *io;
};

static void *receive_then_leave(void *arg)
{
    struct poster *p = arg;
    run_for(p->loop, 0.05); /* the receives are in the kernel, on this thread's ring */
    assert_int_equal(send(p->peer[0], "first stream", 12, 0), 12);
    assert_int_equal(send(p->peer[1], "second", 6, 0), 6);
    usleep(20000);
    assert_ok(sockit_io_stop(p->io)); /* submits at once; nobody takes what it posts */
    return NULL;
}

static void test_completions_the_first_thread_left_untaken_reach_the_second(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct collect got[2];
    memset(got, 0, sizeof got);
    struct poster p = {.loop = loop};
    sockit_stream *st[2];
    for (int i = 0; i < 2; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        st[i] = sockit_stream_new_fd(loop, sv[0], true, &collect_cb, &got[i]);
        assert_sock(st[i]);
        p.peer[i] = sv[1];
    }
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    p.io = sockit_io_new(loop, pipefd[0], ignore_io, NULL);
    assert_sock(p.io);
    assert_ok(sockit_io_start(p.io, SOCKIT_EVENT_READ));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, receive_then_leave, &p), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    RUN_UNTIL(loop, got[0].len == 12 && got[1].len == 6, 5.0);
    assert_int_equal(got[0].len, 12);
    assert_memory_equal(got[0].buf, "first stream", 12);
    assert_int_equal(got[1].len, 6);
    assert_memory_equal(got[1].buf, "second", 6);
    int m = migrations(loop);
    if (m >= 0)
        assert_int_equal(m, 1);
    for (int i = 0; i < 2; i++) {
        sockit_stream_close(st[i], 0);
        close(p.peer[i]);
    }
    sockit_io_close(p.io);
    close(pipefd[0]);
    close(pipefd[1]);
    close_settled(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_a_loop_moves_to_a_second_thread_after_the_first_exits),
        harness_test(test_a_loop_moves_to_a_second_thread_while_the_first_still_lives),
        harness_test(test_an_unbound_ring_moves_between_threads_as_it_is),
        harness_test(test_a_send_the_kernel_held_when_its_thread_exited_is_sent_once),
        harness_test(test_a_listener_closed_on_the_first_thread_is_freed_on_the_second),
        harness_test(test_completions_the_first_thread_left_untaken_reach_the_second),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
