/* Faults injected through the system-call and allocation layer (src/sys.h): what
 * the kernel and the allocator do rarely must not change what the caller sees.
 * EINTR is retried, EAGAIN in blocking mode is waited out, short writes are
 * finished, and ENOMEM fails the one call cleanly (nothing leaked, nothing half
 * made). */
#include "harness.h"
#include "internal.h"

#include <string.h>
#include <unistd.h>

static void inject(sockit__sysop op, int err, int count, size_t shorten)
{
    harness_inject(HARNESS_OP(op), err, count, shorten);
}

static void pair(sockit *p[2]) { assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, p)); }

/* TCP, not a socketpair, where many one-byte writes are at stake: a Unix socket
 * charges each write's whole buffer overhead, so a few hundred fill it. */
static void test_eintr_on_send_and_recv_is_retried(void **state)
{
    (void)state;
    sockit *p[2];
    pair(p);
    inject(SOCKIT__SYS_SEND, EINTR, 3, 0);
    assert_int_equal(sockit_send(p[0], "abc", 3, 0), 3);
    assert_int_equal(harness_injected(), 3);
    inject(SOCKIT__SYS_RECV, EINTR, 3, 0);
    char b[8];
    assert_int_equal(sockit_recv(p[1], b, sizeof b, 0), 3);
    assert_int_equal(harness_injected(), 3);
    assert_memory_equal(b, "abc", 3);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_eagain_in_blocking_mode_is_waited_out(void **state)
{
    (void)state;
    sockit *p[2];
    pair(p);
    assert_int_equal(sockit_send(p[0], "xy", 2, 0), 2);
    inject(SOCKIT__SYS_RECV, EAGAIN, 2, 0);
    char b[8];
    assert_int_equal(sockit_recv(p[1], b, sizeof b, 0), 2);
    assert_int_equal(harness_injected(), 2);
    /* In non-blocking mode the same EAGAIN is the caller's answer. */
    assert_int_equal(sockit_send(p[0], "z", 1, 0), 1);
    assert_ok(sockit_setblocking(p[1], false));
    inject(SOCKIT__SYS_RECV, EAGAIN, 1, 0);
    assert_code(sockit_recv(p[1], b, sizeof b, 0), SOCKIT_EWOULDBLOCK);
    assert_int_equal(sockit_recv(p[1], b, sizeof b, 0), 1);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_sendall_finishes_one_byte_writes_and_readline_joins_one_byte_reads(void **state)
{
    (void)state;
    sockit *p[2];
    harness_tcp_pair(AF_INET, &p[0], &p[1]);
    char text[2000];
    for (size_t i = 0; i < sizeof text - 1; i++)
        text[i] = (char)('a' + i % 26);
    text[sizeof text - 1] = '\n';
    inject(SOCKIT__SYS_SEND, 0, 100000, 1);
    size_t sent = 0;
    assert_int_equal(sockit_sendall(p[0], text, sizeof text, 0, &sent), (ssize_t)sizeof text);
    assert_int_equal(sent, sizeof text);
    assert_int_equal(harness_injected(), (int)sizeof text);
    inject(SOCKIT__SYS_RECV, 0, 100000, 1);
    char line[4096];
    assert_int_equal(sockit_readline(p[1], line, sizeof line), (ssize_t)sizeof text);
    assert_memory_equal(line, text, sizeof text);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void count_fire(sockit_timer *t, void *user)
{
    (void)t;
    (*(int *)user)++;
}

static void test_enomem_fails_the_one_call_and_leaks_nothing(void **state)
{
    (void)state;
    inject(SOCKIT__SYS_ALLOC, ENOMEM, 1, 0);
    assert_null(sockit_loop_new(NULL));
    assert_int_equal(sockit_errcode(), -ENOMEM);
    sockit_loop *loop = sockit_loop_new(NULL);
    assert_sock(loop);
    inject(SOCKIT__SYS_ALLOC, ENOMEM, 1, 0);
    int fired = 0;
    assert_null(sockit_timer_new(loop, count_fire, &fired));
    assert_int_equal(sockit_errcode(), -ENOMEM);
    assert_ok(sockit_loop_close(loop)); /* nothing was left open by the failure */

    inject(SOCKIT__SYS_ALLOC, ENOMEM, 1, 0);
    assert_null(sockit_socket(AF_INET, SOCK_STREAM));
    assert_int_equal(sockit_errcode(), -ENOMEM);

    sockit *p[2];
    pair(p);
    assert_int_equal(sockit_send(p[0], "line\n", 5, 0), 5);
    inject(SOCKIT__SYS_ALLOC, ENOMEM, 1, 0);
    char line[16];
    assert_code(sockit_readline(p[1], line, sizeof line), -ENOMEM);
    assert_int_equal(sockit_readline(p[1], line, sizeof line), 5); /* nothing was lost */
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_interrupted_backend_waits_are_retried_by_the_loop(void **state)
{
    (void)state;
    sockit_loop *loop = sockit_loop_new(NULL);
    assert_sock(loop);
    int fired = 0;
    sockit_timer *t = sockit_timer_new(loop, count_fire, &fired);
    assert_ok(sockit_timer_start(t, 0.05, 0));
    /* epoll's and io_uring's waits are both SOCKIT__SYS_EPOLL_WAIT to the hook. */
    bool poll = strcmp(sockit_loop_backend(loop), "poll") == 0;
    inject(poll ? SOCKIT__SYS_POLL : SOCKIT__SYS_EPOLL_WAIT, EINTR, 5, 0);
    assert_ok(sockit_loop_run(loop));
    assert_int_equal(fired, 1);
    assert_int_equal(harness_injected(), 5);
    sockit_timer_close(t);
    assert_ok(sockit_loop_close(loop));
}

static void test_eintr_on_accept_and_connect_is_handled(void **state)
{
    (void)state;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    inject(SOCKIT__SYS_CONNECT, EINTR, 1, 0);
    sockit *c = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(c);
    /* An interrupted connect goes on in the kernel; sockit waits for it. */
    assert_ok(sockit_connect(c, "127.0.0.1", port));
    inject(SOCKIT__SYS_ACCEPT, EINTR, 2, 0);
    sockit *s = sockit_accept(l, NULL);
    assert_sock(s);
    assert_int_equal(harness_injected(), 2);
    sockit_close(s);
    sockit_close(c);
    sockit_close(l);
}

static void on_io_count(sockit_io *io, int events, void *user)
{
    (void)events;
    char b;
    if (read(sockit_io_fd(io), &b, 1) == 1)
        (*(int *)user)++;
}

/* A registration the kernel refused (ENOMEM in epoll_ctl) leaves the watcher stopped
 * and the descriptor free for the next try. */
static void test_refused_registration_leaves_the_watcher_stopped_and_retryable(void **state)
{
    (void)state;
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    o.backend = "epoll";
    sockit_loop *loop = sockit_loop_new(&o);
    assert_sock(loop);
    int p[2];
    assert_int_equal(pipe(p), 0);
    int fired = 0;
    sockit_io *io = sockit_io_new(loop, p[0], on_io_count, &fired);
    assert_sock(io);
    inject(SOCKIT__SYS_EPOLL_CTL, ENOMEM, 1, 0);
    assert_code(sockit_io_start(io, SOCKIT_EVENT_READ), -ENOMEM);
    assert_non_null(strstr(sockit_errmsg(), "epoll"));
    assert_int_equal(sockit_io_events(io), 0);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0); /* nothing keeps it alive */
    assert_ok(sockit_io_start(io, SOCKIT_EVENT_READ));
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(sockit_loop_run_once(loop, 1.0), 1);
    assert_int_equal(fired, 1);
    sockit_io_close(io);
    close(p[0]);
    close(p[1]);
    assert_ok(sockit_loop_close(loop));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_fault_test(test_eintr_on_send_and_recv_is_retried),
        harness_fault_test(test_eagain_in_blocking_mode_is_waited_out),
        harness_fault_test(test_sendall_finishes_one_byte_writes_and_readline_joins_one_byte_reads),
        harness_fault_test(test_enomem_fails_the_one_call_and_leaks_nothing),
        harness_fault_test(test_interrupted_backend_waits_are_retried_by_the_loop),
        harness_fault_test(test_eintr_on_accept_and_connect_is_handled),
        harness_fault_test(test_refused_registration_leaves_the_watcher_stopped_and_retryable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
