/* sockit_create_server: defaults, options, families, and errors that name the
 * address. */
#include "harness.h"
#include "internal.h"

#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static int local_port(const sockit *s)
{
    sockit_addr a;
    assert_ok(sockit_getsockname(s, &a));
    return sockit_addr_port(&a);
}

static int int_option(const sockit *s, int level, int name)
{
    int v = -1;
    assert_ok(sockit_getsockopt_int(s, level, name, &v));
    return v;
}

/* Connects to 127.0.0.1:port and checks the server accepts it. */
static void assert_accepts_ipv4(sockit *server, int port)
{
    sockit *c = sockit_create_connection("127.0.0.1", port, 5.0, NULL);
    assert_sock(c);
    sockit_addr peer;
    sockit *a = sockit_accept(server, &peer);
    assert_sock(a);
    assert_int_equal(sockit_addr_port(&peer), local_port(c));
    sockit_close(a);
    sockit_close(c);
}

/* Resolves any name to these numeric hosts, with the port asked for. */
static const char *script[4];
static size_t script_len;

static int scripted_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                                struct addrinfo **res)
{
    (void)node;
    if (hints->ai_flags & AI_NUMERICHOST)
        return EAI_NONAME;
    struct addrinfo *head = NULL, **tail = &head;
    for (size_t i = 0; i < script_len; i++) {
        struct addrinfo h = *hints;
        h.ai_flags |= AI_NUMERICHOST;
        struct addrinfo *one = NULL;
        if (getaddrinfo(script[i], service, &h, &one) != 0)
            continue;
        *tail = one;
        while (*tail != NULL)
            tail = &(*tail)->ai_next;
    }
    if (head == NULL)
        return EAI_NONAME;
    *res = head;
    return 0;
}

static void test_create_server_port_zero_gets_real_port(void **state)
{
    (void)state;
    sockit *s = sockit_create_server("127.0.0.1", 0, NULL);
    assert_sock(s);
    int port = local_port(s);
    assert_true(port > 0 && port <= 65535);
    assert_int_equal(sockit_family(s), AF_INET);
    assert_int_equal(sockit_type(s), SOCK_STREAM);
    assert_int_equal(int_option(s, SOL_SOCKET, SO_ACCEPTCONN), 1);
    assert_true(sockit_getblocking(s));
    assert_accepts_ipv4(s, port);
    sockit_close(s);
}

static void test_create_server_turns_reuseaddr_on(void **state)
{
    (void)state;
    sockit *s = sockit_create_server("127.0.0.1", 0, NULL);
    assert_sock(s);
    assert_int_not_equal(int_option(s, SOL_SOCKET, SO_REUSEADDR), 0);
    assert_int_equal(int_option(s, SOL_SOCKET, SO_REUSEPORT), 0);
    sockit_close(s);
}

static void test_create_server_reuse_port_lets_two_servers_share_a_port(void **state)
{
    (void)state;
    sockit_server_options o = {.reuse_port = true};
    sockit *a = sockit_create_server("127.0.0.1", 0, &o);
    assert_sock(a);
    int port = local_port(a);
    sockit *b = sockit_create_server("127.0.0.1", port, &o);
    assert_sock(b);
    assert_int_equal(local_port(b), port);
    assert_int_not_equal(int_option(b, SOL_SOCKET, SO_REUSEPORT), 0);
    sockit_close(b);
    sockit_close(a);
}

static void test_create_server_address_in_use_names_the_address(void **state)
{
    (void)state;
    sockit *a = sockit_create_server("127.0.0.1", 0, NULL);
    assert_sock(a);
    int port = local_port(a);
    assert_null(sockit_create_server("127.0.0.1", port, NULL));
    assert_int_equal(sockit_errcode(), -EADDRINUSE);
    char want[96];
    snprintf(want, sizeof want, "create_server 127.0.0.1:%d: Address already in use", port);
    assert_string_equal(sockit_errmsg(), want);
    sockit_close(a);
}

static void test_create_server_wildcard_defaults_to_ipv4(void **state)
{
    (void)state;
    const char *hosts[] = {NULL, ""};
    for (size_t i = 0; i < 2; i++) {
        sockit *s = sockit_create_server(hosts[i], 0, NULL);
        assert_sock(s);
        sockit_addr a;
        assert_ok(sockit_getsockname(s, &a));
        assert_int_equal(sockit_addr_family(&a), AF_INET);
        assert_int_equal(a.u.in4.sin_addr.s_addr, htonl(INADDR_ANY));
        assert_accepts_ipv4(s, sockit_addr_port(&a));
        sockit_close(s);
    }
}

static void test_create_server_dualstack_accepts_ipv4(void **state)
{
    (void)state;
    if (!sockit_has_dualstack_ipv6())
        skip();
    sockit_server_options o = {.dualstack = true};
    sockit *s = sockit_create_server(NULL, 0, &o);
    assert_sock(s);
    assert_int_equal(sockit_family(s), AF_INET6);
    assert_int_equal(int_option(s, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    assert_accepts_ipv4(s, local_port(s));
    sockit_close(s);
}

static void test_create_server_forced_ipv6_is_ipv6_only(void **state)
{
    (void)state;
    if (!have_ipv6_loopback())
        skip();
    sockit_server_options o = {.family = AF_INET6};
    sockit *s = sockit_create_server(NULL, 0, &o);
    assert_sock(s);
    assert_int_equal(sockit_family(s), AF_INET6);
    assert_int_equal(int_option(s, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    int port = local_port(s);
    sockit *c = sockit_create_connection("::1", port, 5.0, NULL);
    assert_sock(c);
    sockit *a = sockit_accept(s, NULL);
    assert_sock(a);
    sockit_close(a);
    sockit_close(c);
    sockit_close(s);

    /* "localhost" may name both families; the forced family picks IPv4. */
    o.family = AF_INET;
    s = sockit_create_server("localhost", 0, &o);
    assert_sock(s);
    assert_int_equal(sockit_family(s), AF_INET);
    sockit_close(s);
}

static void test_create_server_tries_addresses_until_one_binds(void **state)
{
    (void)state;
    /* 192.0.2.1 (TEST-NET-1) is on no interface here, so binding it fails. */
    script[0] = "192.0.2.1";
    script[1] = "127.0.0.1";
    script_len = 2;
    sockit__set_getaddrinfo(scripted_getaddrinfo);
    sockit *s = sockit_create_server("two.test", 0, NULL);
    sockit__set_getaddrinfo(NULL);
    assert_sock(s);
    sockit_addr a;
    assert_ok(sockit_getsockname(s, &a));
    assert_int_equal(ntohl(a.u.in4.sin_addr.s_addr), INADDR_LOOPBACK);
    int port = local_port(s);

    /* When none binds, every address is named with its error. */
    script[0] = "127.0.0.1";
    script[1] = "192.0.2.1";
    sockit__set_getaddrinfo(scripted_getaddrinfo);
    assert_null(sockit_create_server("two.test", port, NULL));
    sockit__set_getaddrinfo(NULL);
    assert_int_equal(sockit_errcode(), -EADDRINUSE);
    char want[160];
    snprintf(want, sizeof want,
             "create_server two.test:%d (tried 127.0.0.1:%d: Address already in use, "
             "192.0.2.1:%d: Cannot assign requested address): Address already in use",
             port, port, port);
    assert_string_equal(sockit_errmsg(), want);
    sockit_close(s);
}

static void test_create_server_udp_is_bound_not_listening(void **state)
{
    (void)state;
    sockit_server_options o = {.type = SOCK_DGRAM};
    sockit *s = sockit_create_server("127.0.0.1", 0, &o);
    assert_sock(s);
    assert_int_equal(sockit_type(s), SOCK_DGRAM);
    assert_int_equal(int_option(s, SOL_SOCKET, SO_ACCEPTCONN), 0);
    sockit_addr to;
    assert_ok(sockit_getsockname(s, &to));
    assert_true(sockit_addr_port(&to) > 0);

    sockit *c = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(c);
    assert_int_equal(sockit_sendto_addr(c, "ping", 4, 0, &to), 4);
    char buf[16];
    sockit_addr from, mine;
    assert_int_equal(sockit_recvfrom(s, buf, sizeof buf, 0, &from), 4);
    assert_memory_equal(buf, "ping", 4);
    /* The client was bound implicitly on 0.0.0.0; the datagram came from loopback. */
    assert_ok(sockit_getsockname(c, &mine));
    assert_int_equal(sockit_addr_port(&from), sockit_addr_port(&mine));
    assert_int_equal(ntohl(from.u.in4.sin_addr.s_addr), INADDR_LOOPBACK);

    /* Without SO_REUSEADDR on datagram sockets a second server cannot silently take
     * a share of the first one's traffic. */
    assert_int_equal(int_option(s, SOL_SOCKET, SO_REUSEADDR), 0);
    assert_null(sockit_create_server("127.0.0.1", sockit_addr_port(&to), &o));
    assert_int_equal(sockit_errcode(), -EADDRINUSE);
    sockit_close(c);
    sockit_close(s);
}

static void test_create_server_unix_stream_and_stale_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/sockit-server-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], target[140];
    snprintf(path, sizeof path, "%s/s", dir);
    snprintf(target, sizeof target, "unix:%s", path);

    assert_null(sockit_create_server(target, 80, NULL));
    assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);

    sockit *s = sockit_create_server(target, 0, NULL);
    assert_sock(s);
    assert_int_equal(sockit_family(s), AF_UNIX);
    assert_int_equal(int_option(s, SOL_SOCKET, SO_ACCEPTCONN), 1);
    sockit *c = sockit_create_connection(target, 0, 5.0, NULL);
    assert_sock(c);
    sockit *a = sockit_accept(s, NULL);
    assert_sock(a);
    sockit_close(a);
    sockit_close(c);

    /* A live server keeps its path. */
    assert_null(sockit_create_server(target, 0, NULL));
    assert_int_equal(sockit_errcode(), -EADDRINUSE);
    assert_non_null(strstr(sockit_errmsg(), target));

    /* Closed without unlinking, the file is stale and a new server takes it over. */
    sockit_close(s);
    s = sockit_create_server(target, 0, NULL);
    assert_sock(s);
    sockit_close(s);
    unlink(path);
    rmdir(dir);
}

static void test_create_server_rejects_bad_input(void **state)
{
    (void)state;
    assert_null(sockit_create_server("nosuch.invalid", 0, NULL));
    int code = sockit_errcode();
    assert_true(code <= SOCKIT_EAI_AGAIN && code >= SOCKIT_EAI_OTHER);
    assert_non_null(strstr(sockit_errmsg(), "nosuch.invalid"));

    assert_null(sockit_create_server("127.0.0.1", 65536, NULL));
    assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);
    assert_null(sockit_create_server("127.0.0.1", -1, NULL));
    assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);

    sockit_server_options o = {.type = SOCK_RAW};
    assert_null(sockit_create_server("127.0.0.1", 0, &o));
    assert_int_equal(sockit_errcode(), -ESOCKTNOSUPPORT);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        harness_test(test_create_server_port_zero_gets_real_port),
        harness_test(test_create_server_turns_reuseaddr_on),
        harness_test(test_create_server_reuse_port_lets_two_servers_share_a_port),
        harness_test(test_create_server_address_in_use_names_the_address),
        harness_test(test_create_server_wildcard_defaults_to_ipv4),
        harness_test(test_create_server_dualstack_accepts_ipv4),
        harness_test(test_create_server_forced_ipv6_is_ipv6_only),
        harness_test(test_create_server_tries_addresses_until_one_binds),
        harness_test(test_create_server_udp_is_bound_not_listening),
        harness_test(test_create_server_unix_stream_and_stale_file),
        harness_test(test_create_server_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
