/* sockit_create_connection: Happy Eyeballs, one deadline over resolution and every
 * attempt, error messages naming every address, and no descriptor leaks. */
#include "harness.h"
#include "internal.h"

#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

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

static sockit_addr ip_addr(const char *host, int port)
{
    sockit_addr a;
    assert_ok(sockit_addr_ip(&a, host, port));
    return a;
}

/* A socket bound to host:port but not listening: connecting to it is refused, and
 * holding it keeps the port from being reused by a parallel test. */
static sockit *refusing(int family, int port)
{
    sockit *s = sockit_socket(family, SOCK_STREAM);
    assert_sock(s);
    sockit_addr a = ip_addr(family == AF_INET6 ? "::1" : "127.0.0.1", port);
    if (sockit_bind_addr(s, &a) < 0) {
        sockit_close(s);
        return NULL;
    }
    return s;
}

static int local_port(const sockit *s)
{
    sockit_addr a;
    assert_ok(sockit_getsockname(s, &a));
    return sockit_addr_port(&a);
}

static int peer_port(const sockit *s)
{
    sockit_addr a;
    assert_ok(sockit_getpeername(s, &a));
    return sockit_addr_port(&a);
}

/* A listener that drops every SYN: backlog 0 with one connection already queued and
 * never accepted. Linux drops SYNs to a listener whose accept queue is full, so a
 * connect to it hangs until the client's own retries give up. */
typedef struct blackhole {
    sockit *listener;
    sockit *filler;
    int port;
} blackhole;

static void blackhole_open(blackhole *b)
{
    b->listener = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(b->listener);
    sockit_addr a = ip_addr("127.0.0.1", 0);
    assert_ok(sockit_bind_addr(b->listener, &a));
    assert_ok(sockit_listen(b->listener, 0));
    b->port = local_port(b->listener);
    b->filler = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(b->filler);
    a = ip_addr("127.0.0.1", b->port);
    assert_ok(sockit_connect_addr(b->filler, &a));
    /* The listener is readable once the filler sits in its accept queue. */
    struct pollfd p = {.fd = sockit_fileno(b->listener), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2000), 1);
}

static void blackhole_close(blackhole *b)
{
    sockit_close(b->filler);
    sockit_close(b->listener);
}

/* ---- scripted resolvers ------------------------------------------------------- */

/* Each entry is a numeric host and its own port (the port asked for is ignored), so
 * one name can resolve to listeners on different ports. */
typedef struct script_entry {
    const char *host;
    int port;
} script_entry;
static script_entry script[8];
static size_t script_len;

static int scripted_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                                struct addrinfo **res)
{
    (void)node;
    (void)service;
    /* Like the real resolver: the scripted name is not a numeric address. */
    if (hints->ai_flags & AI_NUMERICHOST)
        return EAI_NONAME;
    struct addrinfo *head = NULL, **tail = &head;
    for (size_t i = 0; i < script_len; i++) {
        struct addrinfo h = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                             .ai_family = hints->ai_family,
                             .ai_socktype = SOCK_STREAM};
        char port[8];
        snprintf(port, sizeof port, "%d", script[i].port);
        struct addrinfo *one = NULL;
        if (getaddrinfo(script[i].host, port, &h, &one) != 0)
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

static void script_set(size_t n, const script_entry *entries)
{
    assert_true(n <= sizeof script / sizeof script[0]);
    memcpy(script, entries, n * sizeof *entries);
    script_len = n;
    sockit__set_getaddrinfo(scripted_getaddrinfo);
}

static pthread_mutex_t slow_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slow_cv = PTHREAD_COND_INITIALIZER;
static bool slow_finished;

/* A resolver that takes 2 s, then answers 127.0.0.1 and says it has finished. */
static int slow_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                            struct addrinfo **res)
{
    (void)node;
    if (hints->ai_flags & AI_NUMERICHOST)
        return EAI_NONAME;
    struct timespec two = {2, 0};
    nanosleep(&two, NULL);
    struct addrinfo h = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo("127.0.0.1", service, &h, res);
    pthread_mutex_lock(&slow_mu);
    slow_finished = true;
    pthread_cond_broadcast(&slow_cv);
    pthread_mutex_unlock(&slow_mu);
    return rc;
}

static void on_signal(int sig) { (void)sig; }

/* ---- tests -------------------------------------------------------------------- */

static void test_create_connection_reaches_ipv4_listener(void **state)
{
    (void)state;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit *c = sockit_create_connection("127.0.0.1", port, 5.0, NULL);
    assert_sock(c);
    sockit_addr peer, expect = ip_addr("127.0.0.1", port);
    assert_ok(sockit_getpeername(c, &peer));
    assert_true(sockit_addr_equal(&peer, &expect));
    assert_int_equal(sockit_family(c), AF_INET);
    /* A timeout given to create_connection stays on the socket. */
    assert_true(sockit_gettimeout(c) == 5.0);
    assert_true(fcntl(sockit_fileno(c), F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(sockit_fileno(c), F_GETFD) & FD_CLOEXEC);

    sockit_addr from, mine;
    sockit *a = sockit_accept(l, &from);
    assert_sock(a);
    assert_ok(sockit_getsockname(c, &mine));
    assert_true(sockit_addr_equal(&from, &mine));
    sockit_close(a);
    sockit_close(c);
    sockit_close(l);
}

static void test_create_connection_reaches_ipv6_listener(void **state)
{
    (void)state;
    if (!have_ipv6_loopback())
        skip();
    int port;
    sockit *l = harness_tcp_listener(AF_INET6, &port);
    sockit *c = sockit_create_connection("::1", port, SOCKIT_BLOCKING, NULL);
    assert_sock(c);
    sockit_addr peer, expect = ip_addr("::1", port);
    assert_ok(sockit_getpeername(c, &peer));
    assert_true(sockit_addr_equal(&peer, &expect));
    /* No timeout: the socket comes back in blocking mode. */
    assert_true(sockit_gettimeout(c) < 0);
    assert_false(fcntl(sockit_fileno(c), F_GETFL) & O_NONBLOCK);
    sockit_close(c);
    sockit_close(l);
}

static void test_create_connection_refused_reports_every_address(void **state)
{
    (void)state;
    if (!have_ipv6_loopback())
        skip();
    /* Both refusing sockets share one port; a bound port can be taken by a parallel
     * test on the other family, so retry a bounded number of times. */
    sockit *v6 = NULL, *v4 = NULL;
    int port = 0;
    for (int i = 0; i < 50 && v4 == NULL; i++) {
        sockit_close(v6);
        v6 = refusing(AF_INET6, 0);
        assert_non_null(v6);
        port = local_port(v6);
        v4 = refusing(AF_INET, port);
    }
    assert_non_null(v4);
    script_set(2, (script_entry[]){{"::1", port}, {"127.0.0.1", port}});

    sockit *c = sockit_create_connection("localhost", port, SOCKIT_BLOCKING, NULL);
    sockit__set_getaddrinfo(NULL);
    assert_null(c);
    assert_int_equal(sockit_errcode(), -ECONNREFUSED);
    char want[256];
    snprintf(want, sizeof want,
             "connect to localhost:%d (tried [::1]:%d: Connection refused, "
             "127.0.0.1:%d: Connection refused): Connection refused",
             port, port, port);
    assert_string_equal(sockit_errmsg(), want);
    sockit_close(v4);
    sockit_close(v6);
}

static void test_create_connection_interleaves_families(void **state)
{
    (void)state;
    if (!have_ipv6_loopback())
        skip();
    sockit *r6a = refusing(AF_INET6, 0), *r6b = refusing(AF_INET6, 0);
    sockit *r4 = refusing(AF_INET, 0);
    assert_non_null(r6a);
    assert_non_null(r6b);
    assert_non_null(r4);
    int pa = local_port(r6a), pb = local_port(r6b), p4 = local_port(r4);
    script_set(3, (script_entry[]){{"::1", pa}, {"::1", pb}, {"127.0.0.1", p4}});

    sockit *c = sockit_create_connection("dual.test", 80, 5.0, NULL);
    sockit__set_getaddrinfo(NULL);
    assert_null(c);
    /* RFC 8305: the IPv4 address goes second, between the two IPv6 ones. */
    char a[64], b[64], v4[64];
    snprintf(a, sizeof a, "[::1]:%d", pa);
    snprintf(b, sizeof b, "[::1]:%d", pb);
    snprintf(v4, sizeof v4, "127.0.0.1:%d", p4);
    const char *msg = sockit_errmsg();
    const char *at_a = strstr(msg, a), *at_b = strstr(msg, b), *at_4 = strstr(msg, v4);
    assert_non_null(at_a);
    assert_non_null(at_b);
    assert_non_null(at_4);
    assert_true(at_a < at_4 && at_4 < at_b);
    sockit_close(r4);
    sockit_close(r6b);
    sockit_close(r6a);
}

static void test_create_connection_rejects_bad_ports(void **state)
{
    (void)state;
    const int bad[] = {0, 65536, -1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(sockit_create_connection("127.0.0.1", bad[i], 1.0, NULL));
        assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);
        char num[16];
        snprintf(num, sizeof num, "%d", bad[i]);
        assert_non_null(strstr(sockit_errmsg(), num));
    }
    /* One reason, stated once: nothing in the message contradicts the range. */
    assert_null(sockit_create_connection("127.0.0.1", 0, 1.0, NULL));
    assert_string_equal(sockit_errmsg(),
                        "connect to 127.0.0.1:0: port 0 out of range 1-65535: Bad port");
    assert_null(sockit_create_connection("127.0.0.1", 65536, 1.0, NULL));
    assert_string_equal(sockit_errmsg(),
                        "connect to 127.0.0.1:65536: port 65536 out of range 1-65535: Bad port");
    assert_null(sockit_create_connection("127.0.0.1", 80, NAN, NULL));
    assert_int_equal(sockit_errcode(), -EINVAL);
}

static void test_create_connection_unknown_host_reports_resolver_error(void **state)
{
    (void)state;
    assert_null(sockit_create_connection("nosuch.invalid", 80, 10.0, NULL));
    int code = sockit_errcode();
    assert_true(code <= SOCKIT_EAI_AGAIN && code >= SOCKIT_EAI_OTHER);
    assert_non_null(strstr(sockit_errmsg(), "nosuch.invalid"));
}

static void test_create_connection_happy_eyeballs_skips_blackhole(void **state)
{
    (void)state;
    blackhole b;
    blackhole_open(&b);
    int live_port;
    sockit *live = harness_tcp_listener(AF_INET, &live_port);
    script_set(2, (script_entry[]){{"127.0.0.1", b.port}, {"127.0.0.1", live_port}});

    double t0 = harness_now();
    sockit *c = sockit_create_connection("eyeballs.test", 80, 10.0, NULL);
    double elapsed = harness_now() - t0;
    sockit__set_getaddrinfo(NULL);
    assert_sock(c);
    /* The second attempt starts after the 250 ms delay, long before the first
     * attempt's SYN retransmission (1 s) could matter. */
    assert_true(elapsed >= 0.2);
    assert_true(elapsed < 2.0);
    assert_int_equal(peer_port(c), live_port);
    sockit_close(c);
    sockit_close(live);
    blackhole_close(&b);
}

static void test_create_connection_failed_attempt_starts_next_at_once(void **state)
{
    (void)state;
    sockit *refuser = refusing(AF_INET, 0);
    assert_non_null(refuser);
    int live_port;
    sockit *live = harness_tcp_listener(AF_INET, &live_port);
    script_set(2, (script_entry[]){{"127.0.0.1", local_port(refuser)}, {"127.0.0.1", live_port}});

    double t0 = harness_now();
    sockit *c = sockit_create_connection("fallback.test", 80, 10.0, NULL);
    double elapsed = harness_now() - t0;
    sockit__set_getaddrinfo(NULL);
    assert_sock(c);
    assert_int_equal(peer_port(c), live_port);
    assert_true(elapsed < 0.2);
    sockit_close(c);
    sockit_close(live);
    sockit_close(refuser);
}

static void test_create_connection_deadline_covers_all_attempts(void **state)
{
    (void)state;
    blackhole b1, b2;
    blackhole_open(&b1);
    blackhole_open(&b2);
    script_set(2, (script_entry[]){{"127.0.0.1", b1.port}, {"127.0.0.1", b2.port}});

    double t0 = harness_now();
    sockit *c = sockit_create_connection("blackholes.test", 80, 0.5, NULL);
    double elapsed = harness_now() - t0;
    sockit__set_getaddrinfo(NULL);
    assert_null(c);
    assert_int_equal(sockit_errcode(), SOCKIT_ETIMEOUT);
    /* One deadline for both attempts: 0.5 s, not 0.5 s each. */
    assert_true(elapsed >= 0.5);
    assert_true(elapsed < 0.9);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d: Timed out", b2.port);
    assert_non_null(strstr(sockit_errmsg(), want));
    blackhole_close(&b2);
    blackhole_close(&b1);
}

static void test_create_connection_deadline_names_untried_addresses(void **state)
{
    (void)state;
    blackhole b;
    blackhole_open(&b);
    sockit *r = refusing(AF_INET, 0);
    assert_non_null(r);
    int never = local_port(r);
    /* Attempts start at 0, 250 and 500 ms; the fourth would start at 750 ms. */
    script_set(4, (script_entry[]){{"127.0.0.1", b.port},
                                   {"127.0.0.1", b.port},
                                   {"127.0.0.1", b.port},
                                   {"127.0.0.1", never}});
    sockit *c = sockit_create_connection("slowpath.test", 80, 0.6, NULL);
    sockit__set_getaddrinfo(NULL);
    assert_null(c);
    assert_int_equal(sockit_errcode(), SOCKIT_ETIMEOUT);
    char want[64];
    snprintf(want, sizeof want, "not tried: 127.0.0.1:%d", never);
    assert_non_null(strstr(sockit_errmsg(), want));
    sockit_close(r);
    blackhole_close(&b);
}

static void test_create_connection_deadline_survives_signals(void **state)
{
    (void)state;
    harness_signal_no_restart(SIGUSR1, on_signal);
    blackhole b;
    blackhole_open(&b);
    int live_port;
    sockit *live = harness_tcp_listener(AF_INET, &live_port);

    /* Signals during the attempts neither restart the clock nor end the race. */
    script_set(2, (script_entry[]){{"127.0.0.1", b.port}, {"127.0.0.1", b.port}});
    harness_signal_after(SIGUSR1, 0.1);
    harness_signal_after(SIGUSR1, 0.3);
    double t0 = harness_now();
    sockit *c = sockit_create_connection("signals.test", 80, 0.5, NULL);
    double elapsed = harness_now() - t0;
    assert_null(c);
    assert_int_equal(sockit_errcode(), SOCKIT_ETIMEOUT);
    assert_true(elapsed >= 0.5 && elapsed < 0.9);

    script_set(2, (script_entry[]){{"127.0.0.1", b.port}, {"127.0.0.1", live_port}});
    harness_signal_after(SIGUSR1, 0.05);
    harness_signal_after(SIGUSR1, 0.15);
    c = sockit_create_connection("signals.test", 80, 5.0, NULL);
    sockit__set_getaddrinfo(NULL);
    assert_sock(c);
    assert_int_equal(peer_port(c), live_port);
    /* Let the last signal land before the handler goes away. */
    struct timespec rest = {0, 200 * 1000000L};
    nanosleep(&rest, NULL);
    signal(SIGUSR1, SIG_IGN);
    sockit_close(c);
    sockit_close(live);
    blackhole_close(&b);
}

static void test_create_connection_deadline_covers_name_resolution(void **state)
{
    (void)state;
    int threads_before = harness_count_threads();
    pthread_mutex_lock(&slow_mu);
    slow_finished = false;
    pthread_mutex_unlock(&slow_mu);
    sockit__set_getaddrinfo(slow_getaddrinfo);

    double t0 = harness_now();
    sockit *c = sockit_create_connection("slow.test", 80, 0.3, NULL);
    double elapsed = harness_now() - t0;
    assert_null(c);
    assert_int_equal(sockit_errcode(), SOCKIT_ETIMEOUT);
    assert_true(elapsed >= 0.3 && elapsed < 1.0);
    assert_non_null(strstr(sockit_errmsg(), "slow.test:80"));

    /* The abandoned lookup finishes on its own and frees its result; wait for it so
     * that the hook is not swapped under it and the thread count settles. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&slow_mu);
    while (!slow_finished)
        if (pthread_cond_timedwait(&slow_cv, &slow_mu, &until) != 0)
            break;
    bool finished = slow_finished;
    pthread_mutex_unlock(&slow_mu);
    assert_true(finished);
    sockit__set_getaddrinfo(NULL);
    for (int i = 0; i < 200 && harness_count_threads() > threads_before; i++)
        poll(NULL, 0, 10);
    assert_true(harness_count_threads() <= threads_before);
}

static void test_create_connection_binds_source_address(void **state)
{
    (void)state;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit_addr source = ip_addr("127.0.0.1", 0);
    /* "localhost" may also name ::1; the IPv4 source limits the attempts to IPv4. */
    sockit *c = sockit_create_connection("localhost", port, 5.0, &source);
    assert_sock(c);
    sockit_addr mine;
    assert_ok(sockit_getsockname(c, &mine));
    assert_int_equal(sockit_addr_family(&mine), AF_INET);
    assert_int_equal(ntohl(mine.u.in4.sin_addr.s_addr), INADDR_LOOPBACK);
    assert_true(sockit_addr_port(&mine) > 0);
    assert_int_equal(peer_port(c), port);
    sockit_close(c);
    sockit_close(l);
}

static void test_create_connection_unix_path(void **state)
{
    (void)state;
    char dir[] = "/tmp/sockit-connect-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], target[140];
    snprintf(path, sizeof path, "%s/s", dir);
    snprintf(target, sizeof target, "unix:%s", path);

    assert_null(sockit_create_connection(target, 0, 1.0, NULL));
    assert_int_equal(sockit_errcode(), -ENOENT);
    assert_non_null(strstr(sockit_errmsg(), target));

    sockit *l = sockit_socket(AF_UNIX, SOCK_STREAM);
    assert_sock(l);
    sockit_addr a;
    assert_ok(sockit_addr_unix(&a, path));
    assert_ok(sockit_bind_addr(l, &a));
    assert_ok(sockit_listen(l, 4));
    sockit *c = sockit_create_connection(target, 0, 5.0, NULL);
    assert_sock(c);
    assert_int_equal(sockit_family(c), AF_UNIX);
    assert_true(sockit_gettimeout(c) == 5.0);
    sockit *srv = sockit_accept(l, NULL);
    assert_sock(srv);
    assert_int_equal(sockit_send(c, "x", 1, 0), 1);
    char ch;
    assert_int_equal(sockit_recv(srv, &ch, 1, 0), 1);
    assert_int_equal(ch, 'x');

    assert_null(sockit_create_connection(target, 80, 1.0, NULL));
    assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);

    sockit_close(srv);
    sockit_close(c);
    sockit_close(l);
    unlink(path);
    rmdir(dir);
}

static void test_refused_numeric_host_names_the_address_once(void **state)
{
    (void)state;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit_close(l); /* the port is now closed: connecting is refused */
    assert_null(sockit_create_connection("127.0.0.1", port, 2.0, NULL));
    char want[96];
    snprintf(want, sizeof want, "connect to 127.0.0.1:%d: Connection refused", port);
    assert_string_equal(sockit_errmsg(), want);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        harness_test(test_refused_numeric_host_names_the_address_once),
        harness_test(test_create_connection_reaches_ipv4_listener),
        harness_test(test_create_connection_reaches_ipv6_listener),
        harness_test(test_create_connection_refused_reports_every_address),
        harness_test(test_create_connection_interleaves_families),
        harness_test(test_create_connection_rejects_bad_ports),
        harness_test(test_create_connection_unknown_host_reports_resolver_error),
        harness_test(test_create_connection_happy_eyeballs_skips_blackhole),
        harness_test(test_create_connection_failed_attempt_starts_next_at_once),
        harness_test(test_create_connection_deadline_covers_all_attempts),
        harness_test(test_create_connection_deadline_names_untried_addresses),
        harness_test(test_create_connection_deadline_survives_signals),
        harness_test(test_create_connection_deadline_covers_name_resolution),
        harness_test(test_create_connection_binds_source_address),
        harness_test(test_create_connection_unix_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
