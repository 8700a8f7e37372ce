/* sockit_send_fds / sockit_recv_fds: descriptors cross a Unix socket, arrive
 * close-on-exec and usable, and no failure path leaks one. */
#include "harness.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static void make_pair(int type, sockit *pair[2])
{
    assert_ok(sockit_socketpair(AF_UNIX, type, pair));
}

/* Three descriptors to pass: a pipe's read and write ends and /dev/null. */
static void open_three(int fds[3])
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fds[0] = p[0];
    fds[1] = p[1];
    fds[2] = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_true(fds[2] >= 0);
}

static void close_n(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

static void test_send_fds_passes_pipe_ends_and_devnull_that_work(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(SOCK_STREAM, p);
    int mine[3];
    open_three(mine);
    assert_int_equal(sockit_send_fds(p[0], "F", 1, mine, 3), 1);
    /* The sender keeps its descriptors; closing them must not affect the copies. */
    close_n(mine, 3);

    char buf[8];
    int got[8];
    size_t n = 99;
    assert_int_equal(sockit_recv_fds(p[1], buf, sizeof buf, got, 8, &n), 1);
    assert_int_equal(buf[0], 'F');
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        int flags = fcntl(got[i], F_GETFD);
        assert_true(flags >= 0);
        assert_true(flags & FD_CLOEXEC);
    }
    /* The pipe works end to end through the received copies. */
    assert_int_equal(write(got[1], "ping", 4), 4);
    char back[4];
    assert_int_equal(read(got[0], back, sizeof back), 4);
    assert_memory_equal(back, "ping", 4);
    assert_int_equal(write(got[2], "discarded", 9), 9);
    close_n(got, n);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_recv_fds_more_than_maxfds_closes_all_and_reports_emsgsize(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(SOCK_STREAM, p);
    int mine[3];
    open_three(mine);
    int before = harness_count_fds();
    assert_int_equal(sockit_send_fds(p[0], "A", 1, mine, 3), 1);
    assert_int_equal(sockit_send_fds(p[0], "B", 1, mine, 1), 1);

    char buf[1];
    int got[2] = {-1, -1};
    size_t n = 99;
    assert_code(sockit_recv_fds(p[1], buf, sizeof buf, got, 2, &n), -EMSGSIZE);
    assert_int_equal(n, 0);
    assert_non_null(strstr(sockit_errmsg(), "recv_fds"));
    assert_int_equal(harness_count_fds(), before);

    /* maxfds 0: the caller wants none, so an arriving one is closed and reported. */
    assert_code(sockit_recv_fds(p[1], buf, sizeof buf, NULL, 0, &n), -EMSGSIZE);
    assert_int_equal(n, 0);
    assert_int_equal(harness_count_fds(), before);

    close_n(mine, 3);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_recv_fds_without_descriptors_returns_data_and_zero_fds(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(SOCK_STREAM, p);
    assert_int_equal(sockit_send(p[0], "plain", 5, 0), 5);
    char buf[16];
    int got[4];
    size_t n = 99;
    assert_int_equal(sockit_recv_fds(p[1], buf, sizeof buf, got, 4, &n), 5);
    assert_memory_equal(buf, "plain", 5);
    assert_int_equal(n, 0);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_recv_fds_truncated_datagram_closes_fds_and_reports_etruncated(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(SOCK_DGRAM, p);
    int mine[3];
    open_three(mine);
    int before = harness_count_fds();
    assert_int_equal(sockit_send_fds(p[0], "0123456789", 10, mine, 2), 10);
    char buf[4];
    int got[4];
    size_t n = 99;
    assert_code(sockit_recv_fds(p[1], buf, sizeof buf, got, 4, &n), SOCKIT_ETRUNCATED);
    assert_int_equal(n, 0);
    assert_int_equal(harness_count_fds(), before);
    close_n(mine, 3);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_recv_fds_honours_timeout_and_nonblocking_mode(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(SOCK_STREAM, p);
    char buf[4];
    int got[1];
    size_t n;
    assert_ok(sockit_settimeout(p[1], 0.15));
    double t0 = harness_now();
    assert_code(sockit_recv_fds(p[1], buf, sizeof buf, got, 1, &n), SOCKIT_ETIMEOUT);
    assert_true(harness_now() - t0 >= 0.14);
    assert_ok(sockit_setblocking(p[1], false));
    assert_code(sockit_recv_fds(p[1], buf, sizeof buf, got, 1, &n), SOCKIT_EWOULDBLOCK);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_send_fds_nonblocking_full_socket_returns_ewouldblock(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(SOCK_STREAM, p);
    assert_ok(sockit_set_sndbuf(p[0], 4096));
    assert_ok(sockit_setblocking(p[0], false));
    assert_true(harness_fill_until_full(p[0], 0) > 0);
    int fd = STDIN_FILENO;
    assert_code(sockit_send_fds(p[0], "x", 1, &fd, 1), SOCKIT_EWOULDBLOCK);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_recv_fds_returns_bytes_readline_buffered_first(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(SOCK_STREAM, p);
    assert_int_equal(sockit_send(p[0], "line\nrest", 9, 0), 9);
    char line[16];
    assert_int_equal(sockit_readline(p[1], line, sizeof line), 5);
    char buf[16];
    int got[2];
    size_t n = 99;
    assert_int_equal(sockit_recv_fds(p[1], buf, sizeof buf, got, 2, &n), 4);
    assert_memory_equal(buf, "rest", 4);
    assert_int_equal(n, 0);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_fds_reject_invalid_arguments(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(SOCK_STREAM, p);
    int fds[SOCKIT_MAX_FDS + 1];
    for (size_t i = 0; i < SOCKIT_MAX_FDS + 1; i++)
        fds[i] = STDIN_FILENO;
    assert_code(sockit_send_fds(p[0], "x", 1, fds, SOCKIT_MAX_FDS + 1), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "send_fds"));
    assert_code(sockit_send_fds(p[0], "x", 0, fds, 1), -EINVAL);
    assert_code(sockit_send_fds(p[0], NULL, 1, fds, 1), -EINVAL);
    assert_code(sockit_send_fds(p[0], "x", 1, NULL, 1), -EINVAL);
    assert_code(sockit_send_fds(NULL, "x", 1, fds, 1), -EBADF);

    char buf[4];
    int got[4];
    size_t n = 99;
    assert_code(sockit_recv_fds(p[1], buf, 0, got, 4, &n), -EINVAL);
    assert_int_equal(n, 0);
    assert_code(sockit_recv_fds(p[1], buf, sizeof buf, got, 4, NULL), -EINVAL);
    assert_code(sockit_recv_fds(p[1], buf, sizeof buf, NULL, 4, &n), -EINVAL);
    assert_code(sockit_recv_fds(NULL, buf, sizeof buf, got, 4, &n), -EBADF);

    /* Nothing was sent by the rejected calls. */
    assert_ok(sockit_setblocking(p[1], false));
    assert_code(sockit_recv(p[1], buf, sizeof buf, 0), SOCKIT_EWOULDBLOCK);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

/* TCP would silently drop SCM_RIGHTS; refusing says so instead. */
static void test_send_fds_on_tcp_socket_is_refused(void **state)
{
    (void)state;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit *c = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(c);
    assert_ok(sockit_connect(c, "127.0.0.1", port));
    int fd = STDIN_FILENO;
    assert_code(sockit_send_fds(c, "x", 1, &fd, 1), -EOPNOTSUPP);
    assert_non_null(strstr(sockit_errmsg(), "AF_UNIX"));
    char buf[4];
    size_t n;
    assert_code(sockit_recv_fds(c, buf, sizeof buf, NULL, 0, &n), -EOPNOTSUPP);
    sockit_close(c);
    sockit_close(l);
}

static void test_send_fds_maximum_count_arrives_whole(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(SOCK_STREAM, p);
    int mine[SOCKIT_MAX_FDS];
    for (size_t i = 0; i < SOCKIT_MAX_FDS; i++)
        mine[i] = STDIN_FILENO;
    assert_int_equal(sockit_send_fds(p[0], "m", 1, mine, SOCKIT_MAX_FDS), 1);
    char buf[1];
    int got[SOCKIT_MAX_FDS];
    size_t n = 0;
    assert_int_equal(sockit_recv_fds(p[1], buf, 1, got, SOCKIT_MAX_FDS, &n), 1);
    assert_int_equal(n, SOCKIT_MAX_FDS);
    close_n(got, n);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_send_fds_passes_pipe_ends_and_devnull_that_work),
        harness_test(test_recv_fds_more_than_maxfds_closes_all_and_reports_emsgsize),
        harness_test(test_recv_fds_without_descriptors_returns_data_and_zero_fds),
        harness_test(test_recv_fds_truncated_datagram_closes_fds_and_reports_etruncated),
        harness_test(test_recv_fds_honours_timeout_and_nonblocking_mode),
        harness_test(test_send_fds_nonblocking_full_socket_returns_ewouldblock),
        harness_test(test_recv_fds_returns_bytes_readline_buffered_first),
        harness_test(test_fds_reject_invalid_arguments),
        harness_test(test_send_fds_on_tcp_socket_is_refused),
        harness_test(test_send_fds_maximum_count_arrives_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
