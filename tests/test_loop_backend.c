/* Choosing the loop's backend: the default is io_uring where the library has it and
 * the kernel and process allow a ring, else epoll with the reason kept; a backend
 * asked for by name never falls back. The refusal is made two ways: a seccomp
 * filter in a forked child that denies io_uring_setup (what a container's profile
 * does), and the test hook on ring set-up. Also: io_uring's receive buffers grow
 * when a burst uses them all, and no byte is lost meanwhile. Runs once, not per
 * backend: it chooses the backends itself. */
#include "loop/loop_internal.h"
#include "loop_harness.h"
#ifdef SOCKIT_HAVE_URING
#include "loop/uring_internal.h"
#endif

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether this machine gives the default backend a ring (a container may not). */
static bool ring_works(void)
{
#ifdef SOCKIT_HAVE_URING
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    o.backend = "uring";
    sockit_loop *loop = sockit_loop_new(&o);
    if (loop == NULL)
        return false;
    close_loop(loop);
    return true;
#else
    return false;
#endif
}

static int unset_backend(void **state)
{
    (void)state;
    unsetenv("SOCKIT_LOOP_BACKEND");
    return harness_fd_setup(state);
}

static void test_the_backends_built_in_are_listed_default_first(void **state)
{
    (void)state;
    const char *list = sockit_loop_backends();
#ifdef SOCKIT_HAVE_URING
    assert_string_equal(list, "uring,epoll,poll");
#else
    assert_string_equal(list, "epoll,poll");
#endif
}

static void test_the_default_is_uring_where_a_ring_works_else_epoll_with_the_reason(void **state)
{
    (void)state;
    sockit_loop *loop = sockit_loop_new(NULL);
    assert_sock(loop);
    if (ring_works()) {
        assert_string_equal(sockit_loop_backend(loop), "uring");
        assert_null(sockit_loop_backend_fallback(loop));
    } else {
        assert_string_equal(sockit_loop_backend(loop), "epoll");
#ifdef SOCKIT_HAVE_URING
        assert_non_null(sockit_loop_backend_fallback(loop));
        assert_non_null(strstr(sockit_loop_backend_fallback(loop), "uring"));
#endif
    }
    close_loop(loop);
    assert_null(sockit_loop_backend_fallback(NULL));
}

static void test_a_named_backend_never_reports_a_fallback(void **state)
{
    (void)state;
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    o.backend = "poll";
    sockit_loop *loop = sockit_loop_new(&o);
    assert_sock(loop);
    assert_string_equal(sockit_loop_backend(loop), "poll");
    assert_null(sockit_loop_backend_fallback(loop));
    close_loop(loop);
}

#ifdef SOCKIT_HAVE_URING

static int count;
static void fire(sockit_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    count++;
}

/* A loop that fell back still runs: a timer fires on it. */
static void assert_runs(sockit_loop *loop)
{
    count = 0;
    sockit_timer *t = sockit_timer_new(loop, fire, NULL);
    assert_sock(t);
    assert_ok(sockit_timer_start(t, 0.001, 0));
    assert_ok(sockit_loop_run(loop));
    assert_int_equal(count, 1);
    sockit_timer_close(t);
}

static void test_a_refused_ring_set_up_falls_back_to_epoll_and_says_why(void **state)
{
    (void)state;
    harness_inject(HARNESS_OP(SOCKIT__SYS_RING_SETUP), EPERM, 1, 0);
    sockit_loop *loop = sockit_loop_new(NULL);
    assert_sock(loop);
    assert_int_equal(harness_injected(), 1);
    assert_string_equal(sockit_loop_backend(loop), "epoll");
    const char *why = sockit_loop_backend_fallback(loop);
    assert_non_null(why);
    assert_non_null(strstr(why, "io_uring_setup"));
    assert_non_null(strstr(why, "Operation not permitted"));
    assert_runs(loop);
    close_loop(loop);
}

static void test_uring_asked_by_name_fails_with_the_reason_and_never_falls_back(void **state)
{
    (void)state;
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    o.backend = "uring";
    harness_inject(HARNESS_OP(SOCKIT__SYS_RING_SETUP), EPERM, 1, 0);
    assert_null(sockit_loop_new(&o));
    assert_int_equal(sockit_errcode(), -EPERM);
    assert_non_null(strstr(sockit_errmsg(), "io_uring_setup"));
    /* The same from the environment. */
    setenv("SOCKIT_LOOP_BACKEND", "uring", 1);
    harness_inject(HARNESS_OP(SOCKIT__SYS_RING_SETUP), ENOSYS, 1, 0);
    assert_null(sockit_loop_new(NULL));
    unsetenv("SOCKIT_LOOP_BACKEND");
    assert_int_equal(sockit_errcode(), -ENOSYS);
    /* A selector takes the same way. */
    harness_inject(HARNESS_OP(SOCKIT__SYS_RING_SETUP), EPERM, 1, 0);
    sockit_selector *sel = sockit_selector_new(NULL);
    assert_sock(sel);
    assert_string_equal(sockit_selector_backend(sel), "epoll");
    sockit_selector_close(sel);
}

/* What a container's seccomp profile does: io_uring_setup is EPERM. (The filter
 * checks the call's number only: the child runs this test's own architecture.) */
static int deny_io_uring_setup(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        return -1;
    return 0;
}

/* In the child: 0 when everything held, else the number of the check that failed. */
static int seccomp_child(void)
{
    if (deny_io_uring_setup() < 0)
        return 1;
    sockit_loop *loop = sockit_loop_new(NULL);
    if (loop == NULL || strcmp(sockit_loop_backend(loop), "epoll") != 0)
        return 2;
    const char *why = sockit_loop_backend_fallback(loop);
    if (why == NULL || strstr(why, "Operation not permitted") == NULL ||
        strstr(why, "seccomp") == NULL)
        return 3;
    count = 0;
    sockit_timer *t = sockit_timer_new(loop, fire, NULL);
    if (t == NULL || sockit_timer_start(t, 0.001, 0) < 0 || sockit_loop_run(loop) < 0 || count != 1)
        return 4;
    sockit_timer_close(t);
    if (sockit_loop_close(loop) < 0)
        return 5;
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    o.backend = "uring";
    if (sockit_loop_new(&o) != NULL || sockit_errcode() != -EPERM)
        return 6;
    return 0;
}

static void test_a_seccomp_filter_that_denies_io_uring_leaves_the_loop_on_epoll(void **state)
{
    (void)state;
    if (!ring_works())
        skip(); /* refused here already: the default test above covers it */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(seccomp_child());
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- the receive buffers ---------------------------------------------------------- */

#define BURST_PEERS 300
#define BURST_BYTES 8192

struct burst {
    size_t got[BURST_PEERS];
    bool bad;
    int eofs;
};
static struct burst burst;

static void burst_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)st;
    size_t i = (size_t)(uintptr_t)user;
    for (size_t k = 0; k < len; k++)
        if ((unsigned char)data[k] != (unsigned char)((burst.got[i] + k + i) & 0xff))
            burst.bad = true;
    burst.got[i] += len;
}

static void burst_eof(sockit_stream *st, void *user)
{
    (void)user;
    burst.eofs++;
    sockit_stream_close(st, -1);
}

static const sockit_stream_callbacks burst_cb = {.on_data = burst_data, .on_eof = burst_eof};

/* 300 peers send 8 KiB each before the loop runs: 600 buffers' worth at once, more
 * than the first slab. The receives that run out start again on more buffers, and
 * every byte arrives in order. */
static void run_burst(void)
{
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    o.backend = "uring";
    sockit_loop *loop = sockit_loop_new(&o);
    assert_sock(loop);
    memset(&burst, 0, sizeof burst);
    unsigned first = sockit__uring_buffers(&loop->backend);
    assert_true(first > 0);
    int peer[BURST_PEERS];
    for (size_t i = 0; i < BURST_PEERS; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        peer[i] = sv[1];
        assert_sock(sockit_stream_new_fd(loop, sv[0], true, &burst_cb, (void *)(uintptr_t)i));
    }
    /* The receives start with the first iteration; the bytes are there by then. */
    unsigned char buf[BURST_BYTES];
    for (size_t i = 0; i < BURST_PEERS; i++) {
        for (size_t k = 0; k < BURST_BYTES; k++)
            buf[k] = (unsigned char)((k + i) & 0xff);
        assert_int_equal(send(peer[i], buf, sizeof buf, 0), (ssize_t)sizeof buf);
        assert_int_equal(shutdown(peer[i], SHUT_WR), 0);
    }
    RUN_UNTIL(loop, burst.eofs == BURST_PEERS, 10.0);
    assert_int_equal(burst.eofs, BURST_PEERS);
    assert_false(burst.bad);
    for (size_t i = 0; i < BURST_PEERS; i++)
        assert_int_equal(burst.got[i], BURST_BYTES);
    assert_true(sockit__uring_buffers(&loop->backend) > first);
    assert_true(sockit__uring_buffers(&loop->backend) <= URING_BUFS_MAX);
    for (size_t i = 0; i < BURST_PEERS; i++)
        close(peer[i]);
    RUN_UNTIL(loop, !sockit_loop_run_once(loop, 0), 5.0);
    close_loop(loop);
}

static void test_a_burst_past_the_receive_buffers_grows_them_and_loses_nothing(void **state)
{
    (void)state;
    if (!ring_works())
        skip();
    run_burst();
}

/* The same where each receive takes a whole buffer (kernels before 6.12). */
static void test_the_burst_with_whole_buffers_per_receive_loses_nothing(void **state)
{
    (void)state;
    if (!ring_works())
        skip();
    sockit__uring_whole_buffers(true);
    run_burst();
    sockit__uring_whole_buffers(false);
}

#endif /* SOCKIT_HAVE_URING */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_the_backends_built_in_are_listed_default_first,
                                        unset_backend, harness_fault_teardown),
        cmocka_unit_test_setup_teardown(
            test_the_default_is_uring_where_a_ring_works_else_epoll_with_the_reason, unset_backend,
            harness_fault_teardown),
        cmocka_unit_test_setup_teardown(test_a_named_backend_never_reports_a_fallback,
                                        unset_backend, harness_fault_teardown),
#ifdef SOCKIT_HAVE_URING
        cmocka_unit_test_setup_teardown(test_a_refused_ring_set_up_falls_back_to_epoll_and_says_why,
                                        unset_backend, harness_fault_teardown),
        cmocka_unit_test_setup_teardown(
            test_uring_asked_by_name_fails_with_the_reason_and_never_falls_back, unset_backend,
            harness_fault_teardown),
        cmocka_unit_test_setup_teardown(
            test_a_seccomp_filter_that_denies_io_uring_leaves_the_loop_on_epoll, unset_backend,
            harness_fault_teardown),
        cmocka_unit_test_setup_teardown(
            test_a_burst_past_the_receive_buffers_grows_them_and_loses_nothing, unset_backend,
            harness_fault_teardown),
        cmocka_unit_test_setup_teardown(test_the_burst_with_whole_buffers_per_receive_loses_nothing,
                                        unset_backend, harness_fault_teardown),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
