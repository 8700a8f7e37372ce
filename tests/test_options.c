/* Socket options: each helper's effect read back from the kernel, refusals with
 * messages that name the option, and SO_LINGER's reset on close. */
#include "harness.h"

#include <netinet/tcp.h>
#include <string.h>

static sockit *tcp4(void)
{
    sockit *s = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(s);
    return s;
}

static int get_int(const sockit *s, int level, int name)
{
    int v = -12345;
    assert_ok(sockit_getsockopt_int(s, level, name, &v));
    return v;
}

/* Each boolean helper turns its option on, then off, and the kernel agrees. */
static void check_bool(sockit *s, int (*set)(sockit *, bool), int level, int name)
{
    assert_ok(set(s, true));
    assert_int_not_equal(get_int(s, level, name), 0);
    assert_ok(set(s, false));
    assert_int_equal(get_int(s, level, name), 0);
}

static void test_boolean_helpers_set_values_the_kernel_reads_back(void **state)
{
    (void)state;
    sockit *t = tcp4();
    check_bool(t, sockit_set_reuseaddr, SOL_SOCKET, SO_REUSEADDR);
    check_bool(t, sockit_set_reuseport, SOL_SOCKET, SO_REUSEPORT);
    check_bool(t, sockit_set_keepalive, SOL_SOCKET, SO_KEEPALIVE);
    check_bool(t, sockit_set_nodelay, IPPROTO_TCP, TCP_NODELAY);
    sockit_close(t);

    sockit *u = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u);
    check_bool(u, sockit_set_broadcast, SOL_SOCKET, SO_BROADCAST);
    sockit_close(u);
}

static void test_v6only_on_ipv6_socket_reads_back(void **state)
{
    (void)state;
    sockit *s = sockit_socket(AF_INET6, SOCK_STREAM);
    if (s == NULL && sockit_errcode() == -EAFNOSUPPORT)
        skip();
    assert_sock(s);
    check_bool(s, sockit_set_v6only, IPPROTO_IPV6, IPV6_V6ONLY);
    sockit_close(s);
}

/* Linux doubles SO_RCVBUF/SO_SNDBUF to leave room for bookkeeping (socket(7)). */
static void test_buffer_sizes_read_back_doubled(void **state)
{
    (void)state;
    sockit *s = tcp4();
    assert_ok(sockit_set_rcvbuf(s, 8192));
    assert_int_equal(get_int(s, SOL_SOCKET, SO_RCVBUF), 2 * 8192);
    assert_ok(sockit_set_sndbuf(s, 16384));
    assert_int_equal(get_int(s, SOL_SOCKET, SO_SNDBUF), 2 * 16384);
    sockit_close(s);
}

static void test_linger_reads_back_on_and_off(void **state)
{
    (void)state;
    sockit *s = tcp4();
    struct linger l;
    socklen_t len = sizeof l;
    assert_ok(sockit_set_linger(s, true, 7));
    assert_ok(sockit_getsockopt(s, SOL_SOCKET, SO_LINGER, &l, &len));
    assert_int_equal(len, sizeof l);
    assert_int_not_equal(l.l_onoff, 0);
    assert_int_equal(l.l_linger, 7);
    assert_ok(sockit_set_linger(s, false, 0));
    len = sizeof l;
    assert_ok(sockit_getsockopt(s, SOL_SOCKET, SO_LINGER, &l, &len));
    assert_int_equal(l.l_onoff, 0);
    assert_code(sockit_set_linger(s, true, -1), -EINVAL);
    assert_string_equal(sockit_errmsg(), "setsockopt SO_LINGER=on,-1s: Invalid argument");
    sockit_close(s);
}

static void test_generic_setsockopt_int_round_trips(void **state)
{
    (void)state;
    sockit *s = tcp4();
    assert_ok(sockit_setsockopt_int(s, IPPROTO_TCP, TCP_KEEPIDLE, 42));
    assert_int_equal(get_int(s, IPPROTO_TCP, TCP_KEEPIDLE), 42);
    int v = 17;
    assert_ok(sockit_setsockopt(s, IPPROTO_IP, IP_TTL, &v, sizeof v));
    int back = 0;
    socklen_t len = sizeof back;
    assert_ok(sockit_getsockopt(s, IPPROTO_IP, IP_TTL, &back, &len));
    assert_int_equal(back, 17);
    sockit_close(s);
}

static void test_nodelay_on_udp_socket_fails_naming_the_option(void **state)
{
    (void)state;
    sockit *u = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u);
    assert_code(sockit_set_nodelay(u, true), -EOPNOTSUPP);
    assert_non_null(strstr(sockit_errmsg(), "TCP_NODELAY"));
    sockit_close(u);

    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, p));
    assert_code(sockit_set_nodelay(p[0], true), -EOPNOTSUPP);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_v6only_on_ipv4_socket_fails(void **state)
{
    (void)state;
    sockit *s = tcp4();
    assert_code(sockit_set_v6only(s, true), -EAFNOSUPPORT);
    assert_non_null(strstr(sockit_errmsg(), "IPV6_V6ONLY"));
    sockit_close(s);
}

static void test_negative_buffer_sizes_are_einval_with_option_in_message(void **state)
{
    (void)state;
    sockit *s = tcp4();
    int before = get_int(s, SOL_SOCKET, SO_SNDBUF);
    assert_code(sockit_set_sndbuf(s, -1), -EINVAL);
    assert_string_equal(sockit_errmsg(), "setsockopt SO_SNDBUF=-1: Invalid argument");
    assert_int_equal(get_int(s, SOL_SOCKET, SO_SNDBUF), before);
    assert_code(sockit_set_rcvbuf(s, -4096), -EINVAL);
    assert_string_equal(sockit_errmsg(), "setsockopt SO_RCVBUF=-4096: Invalid argument");
    sockit_close(s);
}

static void test_kernel_refusal_message_names_option_and_value(void **state)
{
    (void)state;
    sockit *s = tcp4();
    assert_code(sockit_setsockopt_int(s, IPPROTO_IP, IP_TTL, 1000), -EINVAL);
    assert_string_equal(sockit_errmsg(), "setsockopt IP_TTL=1000: Invalid argument");
    int v;
    assert_code(sockit_getsockopt_int(s, SOL_SOCKET, 9999, &v), -ENOPROTOOPT);
    assert_non_null(strstr(sockit_errmsg(), "getsockopt option 9999 at level 1"));
    assert_code(sockit_set_reuseaddr(NULL, true), -EBADF);
    assert_code(sockit_getsockopt_int(s, SOL_SOCKET, SO_TYPE, NULL), -EINVAL);
    sockit_close(s);
}

static void test_linger_zero_makes_close_reset_the_connection(void **state)
{
    (void)state;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit *c = tcp4();
    assert_ok(sockit_connect(c, "127.0.0.1", port));
    sockit *srv = sockit_accept(l, NULL);
    assert_sock(srv);
    assert_ok(sockit_set_linger(srv, true, 0));
    assert_ok(sockit_close(srv));

    assert_ok(sockit_settimeout(c, 5.0));
    char buf[8];
    assert_code(sockit_recv(c, buf, sizeof buf, 0), -ECONNRESET);
    sockit_close(c);
    sockit_close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_boolean_helpers_set_values_the_kernel_reads_back),
        harness_test(test_v6only_on_ipv6_socket_reads_back),
        harness_test(test_buffer_sizes_read_back_doubled),
        harness_test(test_linger_reads_back_on_and_off),
        harness_test(test_generic_setsockopt_int_round_trips),
        harness_test(test_nodelay_on_udp_socket_fails_naming_the_option),
        harness_test(test_v6only_on_ipv4_socket_fails),
        harness_test(test_negative_buffer_sizes_are_einval_with_option_in_message),
        harness_test(test_kernel_refusal_message_names_option_and_value),
        harness_test(test_linger_zero_makes_close_reset_the_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
