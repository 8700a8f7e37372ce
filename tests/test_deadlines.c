/* One deadline per call, whatever stands in its way: name resolution, a descriptor
 * that polls ready but still would block, and refusals where a deadline-bound
 * "exact" read would otherwise cut datagrams. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static atomic_int slow_started, slow_finished;

/* A resolver that takes a second for names and answers 127.0.0.1. */
static int slow_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints,
                            struct addrinfo **res)
{
    if (hints->ai_flags & AI_NUMERICHOST)
        return EAI_NONAME;
    atomic_fetch_add(&slow_started, 1);
    struct timespec second = {1, 0};
    nanosleep(&second, NULL);
    (void)host;
    struct addrinfo h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    int rc = getaddrinfo("127.0.0.1", port, &h, res);
    atomic_fetch_add(&slow_finished, 1);
    return rc;
}

/* The abandoned lookup finishes in the background; wait for it so the hook can be
 * swapped back safely and nothing outlives the test. */
static void wait_for_abandoned_lookups(void)
{
    for (int i = 0; i < 300 && atomic_load(&slow_finished) < atomic_load(&slow_started); i++)
        usleep(10000);
    assert_int_equal(atomic_load(&slow_finished), atomic_load(&slow_started));
    usleep(20000); /* the lookup thread frees its job right after the hook returns */
}

static void test_connect_timeout_bounds_name_resolution(void **state)
{
    (void)state;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit__set_getaddrinfo(slow_getaddrinfo);
    sockit *c = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(c);
    assert_ok(sockit_settimeout(c, 0.2));
    double t0 = harness_now();
    assert_code(sockit_connect(c, "slow.example", port), SOCKIT_ETIMEOUT);
    double elapsed = harness_now() - t0;
    assert_true(elapsed >= 0.15);
    assert_true(elapsed < 0.8);
    assert_non_null(strstr(sockit_errmsg(), "slow.example"));
    wait_for_abandoned_lookups();
    sockit__set_getaddrinfo(NULL);
    sockit_close(c);
    sockit_close(l);
}

static void test_sendto_timeout_bounds_name_resolution(void **state)
{
    (void)state;
    sockit__set_getaddrinfo(slow_getaddrinfo);
    sockit *u = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u);
    assert_ok(sockit_settimeout(u, 0.2));
    double t0 = harness_now();
    assert_code(sockit_sendto(u, "x", 1, 0, "slow.example", 9), SOCKIT_ETIMEOUT);
    assert_true(harness_now() - t0 < 0.8);
    wait_for_abandoned_lookups();
    sockit__set_getaddrinfo(NULL);
    sockit_close(u);
}

/* Linux reports an unconnected Unix datagram sender writable by its own buffer while
 * sendto to a full receiver says EAGAIN: the deadline must still end the call. */
static void test_deadline_ends_a_send_that_polls_ready_but_would_block(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "@sockit-test-full-%d", (int)getpid());
    sockit_addr to;
    assert_ok(sockit_addr_unix(&to, path));
    sockit *rx = sockit_socket(AF_UNIX, SOCK_DGRAM);
    assert_sock(rx);
    assert_ok(sockit_bind_addr(rx, &to));
    sockit *tx = sockit_socket(AF_UNIX, SOCK_DGRAM);
    assert_sock(tx);
    assert_ok(sockit_settimeout(tx, 0.3));
    char msg[512];
    memset(msg, 'x', sizeof msg);
    double t0 = harness_now();
    ssize_t rc = 0;
    /* Bounded: the receiver's queue fills long before this many datagrams. */
    for (int i = 0; i < 100000 && rc >= 0; i++)
        rc = sockit_sendto_addr(tx, msg, sizeof msg, 0, &to);
    assert_code(rc, SOCKIT_ETIMEOUT);
    assert_true(harness_now() - t0 < 5.0);
    sockit_close(tx);
    sockit_close(rx);
}

static void test_recv_exact_refuses_datagram_sockets(void **state)
{
    (void)state;
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_DGRAM, p));
    assert_int_equal(sockit_send(p[1], "0123456789", 10, 0), 10);
    char buf[4];
    size_t got = 99;
    assert_code(sockit_recv_exact(p[0], buf, sizeof buf, &got), -EOPNOTSUPP);
    assert_int_equal(got, 0);
    /* The datagram is still there, whole. */
    char whole[16];
    assert_int_equal(sockit_recv(p[0], whole, sizeof whole, 0), 10);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_seqpacket_truncation_is_reported(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
    sockit *a = sockit_fromfd(fds[0]);
    assert_sock(a);
    close(fds[0]);
    assert_int_equal(write(fds[1], "0123456789", 10), 10);
    char buf[4];
    assert_code(sockit_recv(a, buf, sizeof buf, 0), SOCKIT_ETRUNCATED);
    assert_memory_equal(buf, "0123", 4);
    assert_int_equal(write(fds[1], "abcdefghij", 10), 10);
    assert_code(sockit_recvfrom(a, buf, sizeof buf, 0, NULL), SOCKIT_ETRUNCATED);
    close(fds[1]);
    sockit_close(a);
}

static void test_recvfrom_on_a_stream_returns_readline_buffered_bytes_first(void **state)
{
    (void)state;
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, p));
    assert_int_equal(sockit_sendall(p[1], "line\nrest", 9, 0, NULL), 9);
    char line[16];
    /* Both writes may arrive in one read, so readline may have buffered "rest". */
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 5);
    assert_ok(sockit_shutdown(p[1], SHUT_WR));
    char buf[16];
    size_t total = 0;
    for (int i = 0; i < 10 && total < 4; i++) {
        ssize_t n = sockit_recvfrom(p[0], buf + total, sizeof buf - total, 0, NULL);
        assert_true(n > 0);
        total += (size_t)n;
    }
    assert_int_equal(total, 4);
    assert_memory_equal(buf, "rest", 4);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_connect_timeout_bounds_name_resolution),
        harness_test(test_sendto_timeout_bounds_name_resolution),
        harness_test(test_deadline_ends_a_send_that_polls_ready_but_would_block),
        harness_test(test_recv_exact_refuses_datagram_sockets),
        harness_test(test_seqpacket_truncation_is_reported),
        harness_test(test_recvfrom_on_a_stream_returns_readline_buffered_bytes_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
