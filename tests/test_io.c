/* Moving bytes: send/recv, sendall and recv_exact with their progress counts,
 * datagrams and truncation, sendfile, and a closed peer. */
#include "harness.h"
#include "internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static sockit *udp_bound(int family, sockit_addr *addr)
{
    sockit *s = sockit_socket(family, SOCK_DGRAM);
    assert_sock(s);
    assert_ok(sockit_bind(s, family == AF_INET6 ? "::1" : "127.0.0.1", 0));
    assert_ok(sockit_getsockname(s, addr));
    return s;
}

static void set_buffers_small(sockit *s)
{
    int size = 65536;
    assert_int_equal(setsockopt(sockit_fileno(s), SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    assert_int_equal(setsockopt(sockit_fileno(s), SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
}

static uint8_t pattern(size_t i) { return (uint8_t)((i * 2654435761u) >> 13); }

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return h;
}

#define FNV_START 14695981039346656037u

/* Reads until EOF or `expect` bytes, a few KB at a time with a pause, so a big
 * sendall meets a full socket buffer again and again. */
struct slow_reader {
    sockit *s;
    size_t expect;
    size_t total;
    uint64_t hash;
    ssize_t last;
};

static void *slow_reader_main(void *arg)
{
    struct slow_reader *r = arg;
    uint8_t buf[8192];
    r->hash = FNV_START;
    /* 8 MB in 8 KB reads is 1024 reads; the cap only stops a runaway loop. */
    for (int i = 0; i < 1000000 && r->total < r->expect; i++) {
        ssize_t n = sockit_recv(r->s, buf, sizeof buf, 0);
        r->last = n;
        if (n <= 0)
            break;
        r->hash = fnv1a(r->hash, buf, (size_t)n);
        r->total += (size_t)n;
        if (i % 4 == 0)
            sleep_ms(1);
    }
    return NULL;
}

struct exact_reader {
    sockit *s;
    uint8_t *buf;
    size_t len;
    size_t got;
    ssize_t rc;
};

static void *exact_reader_main(void *arg)
{
    struct exact_reader *r = arg;
    r->rc = sockit_recv_exact(r->s, r->buf, r->len, &r->got);
    return NULL;
}

static void test_send_and_recv_over_tcp_loopback(void **state)
{
    (void)state;
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    assert_int_equal(sockit_send(c, "hello", 5, 0), 5);
    char buf[16];
    assert_int_equal(sockit_recv(srv, buf, 5, MSG_PEEK), 5);
    assert_int_equal(sockit_recv_exact(srv, buf, 5, NULL), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(sockit_send(srv, "world!", 6, 0), 6);
    ssize_t n = sockit_recv(c, buf, sizeof buf, 0);
    assert_true(n > 0 && n <= 6);
    assert_memory_equal(buf, "world!", (size_t)n);
    sockit_close(c);
    sockit_close(srv);
}

static void sendall_through_slow_reader(double timeout)
{
    const size_t len = 8u << 20;
    uint8_t *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = pattern(i);

    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    set_buffers_small(c);
    set_buffers_small(srv);
    assert_ok(sockit_settimeout(c, timeout));
    struct slow_reader r = {.s = srv, .expect = len};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_reader_main, &r), 0);

    size_t sent = 0;
    assert_int_equal(sockit_sendall(c, data, len, 0, &sent), (ssize_t)len);
    assert_int_equal(sent, len);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.total, len);
    assert_true(r.hash == fnv1a(FNV_START, data, len));
    sockit_close(c);
    sockit_close(srv);
    free(data);
}

static void test_sendall_8mb_through_slow_reader_delivers_every_byte(void **state)
{
    (void)state;
    sendall_through_slow_reader(SOCKIT_BLOCKING);
}

static void test_sendall_8mb_in_timeout_mode_delivers_every_byte(void **state)
{
    (void)state;
    sendall_through_slow_reader(60.0);
}

static void test_sendall_timeout_reports_bytes_sent(void **state)
{
    (void)state;
    const size_t len = 100u << 20;
    uint8_t *data = calloc(1, len);
    assert_non_null(data);
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv); /* srv never reads */
    assert_ok(sockit_settimeout(c, 0.3));
    size_t sent = 0;
    double t0 = harness_now();
    assert_code(sockit_sendall(c, data, len, 0, &sent), SOCKIT_ETIMEOUT);
    double elapsed = harness_now() - t0;
    assert_int_equal(sockit_errcode(), SOCKIT_ETIMEOUT);
    assert_true(elapsed >= 0.28);
    assert_true(elapsed < 2.0);
    assert_true(sent > 0);
    assert_true(sent < len);
    sockit_close(c);
    sockit_close(srv);
    free(data);
}

static void test_send_in_non_blocking_mode_would_block_when_buffer_is_full(void **state)
{
    (void)state;
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    assert_ok(sockit_setblocking(c, false));
    static uint8_t chunk[65536];
    assert_true(harness_fill_until_full(c, 0) > 0);
    size_t sent = 0;
    assert_code(sockit_sendall(c, chunk, sizeof chunk, 0, &sent), SOCKIT_EWOULDBLOCK);
    sockit_close(c);
    sockit_close(srv);
}

static void test_recv_exact_collects_pieces_sent_apart(void **state)
{
    (void)state;
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    uint8_t buf[8];
    struct exact_reader r = {.s = srv, .buf = buf, .len = sizeof buf};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, exact_reader_main, &r), 0);
    assert_int_equal(sockit_sendall(c, "abc", 3, 0, NULL), 3);
    sleep_ms(50);
    assert_int_equal(sockit_sendall(c, "defgh", 5, 0, NULL), 5);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.rc, 8);
    assert_int_equal(r.got, 8);
    assert_memory_equal(buf, "abcdefgh", 8);
    sockit_close(c);
    sockit_close(srv);
}

static void test_recv_exact_reports_eof_and_bytes_got_when_peer_closes_early(void **state)
{
    (void)state;
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    assert_int_equal(sockit_sendall(c, "abc", 3, 0, NULL), 3);
    sockit_close(c);
    char buf[10];
    size_t got = 99;
    assert_code(sockit_recv_exact(srv, buf, sizeof buf, &got), SOCKIT_EEOF);
    assert_int_equal(sockit_errcode(), SOCKIT_EEOF);
    assert_int_equal(got, 3);
    assert_memory_equal(buf, "abc", 3);
    sockit_close(srv);
}

static void test_recv_exact_timeout_reports_bytes_got(void **state)
{
    (void)state;
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    assert_int_equal(sockit_sendall(c, "ab", 2, 0, NULL), 2);
    assert_ok(sockit_settimeout(srv, 0.3));
    char buf[10];
    size_t got = 0;
    double t0 = harness_now();
    assert_code(sockit_recv_exact(srv, buf, sizeof buf, &got), SOCKIT_ETIMEOUT);
    assert_true(harness_now() - t0 >= 0.28);
    assert_int_equal(got, 2);
    assert_memory_equal(buf, "ab", 2);
    sockit_close(c);
    sockit_close(srv);
}

static void test_recv_returns_zero_at_eof(void **state)
{
    (void)state;
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    assert_ok(sockit_shutdown(c, SHUT_WR));
    char b;
    assert_int_equal(sockit_recv(srv, &b, 1, 0), 0);
    assert_int_equal(sockit_recv(srv, &b, 1, 0), 0); /* EOF stays EOF */
    sockit_close(c);
    sockit_close(srv);
}

static void test_recv_timeout_and_non_blocking_fail_with_their_own_codes(void **state)
{
    (void)state;
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    char b;
    assert_ok(sockit_settimeout(srv, 0.2));
    double t0 = harness_now();
    assert_code(sockit_recv(srv, &b, 1, 0), SOCKIT_ETIMEOUT);
    double elapsed = harness_now() - t0;
    assert_true(elapsed >= 0.19);
    assert_true(elapsed < 1.5);

    assert_ok(sockit_setblocking(srv, false));
    t0 = harness_now();
    assert_code(sockit_recv(srv, &b, 1, 0), SOCKIT_EWOULDBLOCK);
    assert_int_equal(sockit_errcode(), SOCKIT_EWOULDBLOCK);
    assert_true(harness_now() - t0 < 0.5);
    sockit_close(c);
    sockit_close(srv);
}

static void test_sendto_and_recvfrom_report_the_sender(void **state)
{
    (void)state;
    static const int families[] = {AF_INET, AF_INET6};
    for (int i = 0; i < 2; i++) {
        sockit_addr saddr, caddr, from;
        sockit *srv = udp_bound(families[i], &saddr);
        sockit *cli = udp_bound(families[i], &caddr);
        const char *host = families[i] == AF_INET6 ? "::1" : "127.0.0.1";
        assert_int_equal(sockit_sendto(cli, "ping", 4, 0, host, sockit_addr_port(&saddr)), 4);
        char buf[64];
        assert_int_equal(sockit_recvfrom(srv, buf, sizeof buf, 0, &from), 4);
        assert_memory_equal(buf, "ping", 4);
        assert_true(sockit_addr_equal(&from, &caddr));

        assert_int_equal(sockit_sendto_addr(srv, "pong!", 5, 0, &from), 5);
        assert_int_equal(sockit_recvfrom(cli, buf, sizeof buf, 0, &from), 5);
        assert_memory_equal(buf, "pong!", 5);
        assert_true(sockit_addr_equal(&from, &saddr));
        sockit_close(cli);
        sockit_close(srv);
    }
}

static void test_recvfrom_reports_truncation_and_keeps_the_next_datagram(void **state)
{
    (void)state;
    sockit_addr saddr, caddr, from;
    sockit *srv = udp_bound(AF_INET, &saddr);
    sockit *cli = udp_bound(AF_INET, &caddr);
    uint8_t big[100], small[20];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = pattern(i);
    memset(small, 'z', sizeof small);
    assert_int_equal(sockit_sendto_addr(cli, big, sizeof big, 0, &saddr), 100);
    assert_int_equal(sockit_sendto_addr(cli, small, sizeof small, 0, &saddr), 20);

    uint8_t buf[200];
    memset(&from, 0, sizeof from);
    assert_code(sockit_recvfrom(srv, buf, 10, 0, &from), SOCKIT_ETRUNCATED);
    assert_int_equal(sockit_errcode(), SOCKIT_ETRUNCATED);
    assert_memory_equal(buf, big, 10);
    assert_true(sockit_addr_equal(&from, &caddr));
    assert_int_equal(sockit_recvfrom(srv, buf, sizeof buf, 0, NULL), 20);
    assert_memory_equal(buf, small, 20);
    sockit_close(cli);
    sockit_close(srv);
}

static void test_recv_on_connected_udp_reports_truncation(void **state)
{
    (void)state;
    sockit_addr saddr, caddr;
    sockit *srv = udp_bound(AF_INET, &saddr);
    sockit *cli = udp_bound(AF_INET, &caddr);
    assert_ok(sockit_connect_addr(cli, &saddr));
    uint8_t big[100];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = pattern(i + 7);
    assert_int_equal(sockit_sendto_addr(srv, big, sizeof big, 0, &caddr), 100);
    assert_int_equal(sockit_sendto_addr(srv, "tail!", 5, 0, &caddr), 5);

    uint8_t buf[64];
    assert_code(sockit_recv(cli, buf, 10, 0), SOCKIT_ETRUNCATED);
    assert_memory_equal(buf, big, 10);
    assert_int_equal(sockit_recv(cli, buf, sizeof buf, 0), 5);
    assert_memory_equal(buf, "tail!", 5);
    assert_int_equal(sockit_send(cli, "up", 2, 0), 2);
    assert_int_equal(sockit_recvfrom(srv, buf, sizeof buf, 0, NULL), 2);
    sockit_close(cli);
    sockit_close(srv);
}

static void test_largest_udp_datagram_arrives_whole(void **state)
{
    (void)state;
    const size_t max = 65507; /* 65535 minus the IPv4 and UDP headers */
    sockit_addr saddr, caddr;
    sockit *srv = udp_bound(AF_INET, &saddr);
    sockit *cli = udp_bound(AF_INET, &caddr);
    uint8_t *out = malloc(max + 1), *in = malloc(max + 100);
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < max + 1; i++)
        out[i] = pattern(i);
    assert_int_equal(sockit_sendto_addr(cli, out, max, 0, &saddr), (ssize_t)max);
    assert_int_equal(sockit_recvfrom(srv, in, max + 100, 0, NULL), (ssize_t)max);
    assert_memory_equal(in, out, max);
    assert_code(sockit_sendto_addr(cli, out, max + 1, 0, &saddr), -EMSGSIZE);
    free(out);
    free(in);
    sockit_close(cli);
    sockit_close(srv);
}

/* Answers name lookups without a DNS server: names under .invalid do not exist. */
static int fake_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints,
                            struct addrinfo **res)
{
    size_t n = host != NULL ? strlen(host) : 0;
    if (n >= 8 && strcmp(host + n - 8, ".invalid") == 0)
        return EAI_NONAME;
    return getaddrinfo(host, port, hints, res);
}

static void test_sendto_rejects_bad_port_and_unknown_host(void **state)
{
    (void)state;
    sockit *s = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(s);
    assert_code(sockit_sendto(s, "x", 1, 0, "127.0.0.1", 65536), SOCKIT_EBADPORT);
    assert_code(sockit_sendto(s, "x", 1, 0, "127.0.0.1", -1), SOCKIT_EBADPORT);
    /* An address of the wrong family cannot be resolved for an IPv4 socket. */
    ssize_t rc = sockit_sendto(s, "x", 1, 0, "::1", 9);
    assert_true(rc <= SOCKIT_EAI_AGAIN && rc >= SOCKIT_EAI_OTHER);
    assert_int_equal(sockit_errcode(), (int)rc);
    sockit__set_getaddrinfo(fake_getaddrinfo);
    assert_code(sockit_sendto(s, "x", 1, 0, "no-such-host.invalid", 9), SOCKIT_EAI_NONAME);
    assert_non_null(strstr(sockit_errmsg(), "no-such-host.invalid"));
    sockit__set_getaddrinfo(NULL);
    sockit_close(s);
}

/* A 1 MB file of pattern bytes, already unlinked: only the descriptor remains. */
static int pattern_file(size_t len)
{
    char path[] = "/tmp/sockit-sendfile-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    uint8_t *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = pattern(i);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    free(data);
    return fd;
}

static void test_sendfile_sends_the_requested_range(void **state)
{
    (void)state;
    const size_t file_len = 1u << 20, offset = 1000, count = 500000;
    int fd = pattern_file(file_len);
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    uint8_t *buf = malloc(count);
    assert_non_null(buf);
    struct exact_reader r = {.s = srv, .buf = buf, .len = count};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, exact_reader_main, &r), 0);
    size_t sent = 0;
    assert_int_equal(sockit_sendfile(c, fd, (off_t)offset, count, &sent), (ssize_t)count);
    assert_int_equal(sent, count);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.rc, (ssize_t)count);
    for (size_t i = 0; i < count; i++)
        if (buf[i] != pattern(offset + i))
            fail_msg("byte %zu differs", i);

    /* count 0 sends up to the end of the file */
    const size_t tail = 777;
    assert_int_equal(sockit_sendfile(c, fd, (off_t)(file_len - tail), 0, &sent), (ssize_t)tail);
    assert_int_equal(sent, tail);
    assert_int_equal(sockit_recv_exact(srv, buf, tail, NULL), (ssize_t)tail);
    for (size_t i = 0; i < tail; i++)
        assert_int_equal(buf[i], pattern(file_len - tail + i));

    sent = 1;
    assert_true(sockit_sendfile(c, -1, 0, 10, &sent) < 0);
    assert_int_equal(sent, 0);
    free(buf);
    close(fd);
    sockit_close(c);
    sockit_close(srv);
}

/* Sends until the closed peer's reset shows; a bounded number of tries. */
static ssize_t send_until_error(sockit *s)
{
    ssize_t rc = 0;
    for (int i = 0; i < 200 && rc >= 0; i++) {
        rc = sockit_send(s, "x", 1, 0);
        if (rc >= 0)
            sleep_ms(5);
    }
    return rc;
}

static void test_send_to_a_peer_that_reset_reports_epipe_or_econnreset(void **state)
{
    (void)state;
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(sockit_fileno(srv), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    sockit_close(srv); /* RST at once */
    ssize_t rc = send_until_error(c);
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
    assert_int_equal(sockit_errcode(), (int)rc);
    sockit_close(c);
}

static void test_send_after_peer_closed_reports_epipe_or_econnreset(void **state)
{
    (void)state;
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    sockit_close(srv);
    ssize_t rc = send_until_error(c);
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
    size_t sent = 99;
    rc = sockit_sendall(c, "more", 4, 0, &sent);
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
    assert_int_equal(sent, 0);
    sockit_close(c);
}

/* Python raises BlockingIOError at once for MSG_DONTWAIT, whatever the mode. */
static void test_msg_dontwait_never_waits_in_any_mode(void **state)
{
    (void)state;
    static const double modes[] = {SOCKIT_BLOCKING, 5.0};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        sockit *c, *srv;
        harness_tcp_pair(AF_INET, &c, &srv);
        assert_ok(sockit_settimeout(srv, modes[m]));
        assert_ok(sockit_settimeout(c, modes[m]));
        char b[8];
        double t0 = harness_now();
        assert_code(sockit_recv(srv, b, sizeof b, MSG_DONTWAIT), SOCKIT_EWOULDBLOCK);
        sockit_addr from;
        assert_code(sockit_recvfrom(srv, b, sizeof b, MSG_DONTWAIT, &from), SOCKIT_EWOULDBLOCK);
        assert_true(harness_now() - t0 < 0.5);

        /* Fill the path until a send with MSG_DONTWAIT would block. */
        set_buffers_small(c);
        set_buffers_small(srv);
        static char chunk[65536];
        t0 = harness_now();
        harness_fill_until_full(c, MSG_DONTWAIT);
        size_t sent = 99;
        assert_code(sockit_sendall(c, chunk, sizeof chunk, MSG_DONTWAIT, &sent),
                    SOCKIT_EWOULDBLOCK);
        assert_true(sent < sizeof chunk);
        assert_true(harness_now() - t0 < 0.5);
        /* The socket keeps its mode: a plain recv still waits and gets the bytes. */
        assert_true(sockit_recv(srv, b, sizeof b, 0) > 0);
        sockit_close(c);
        sockit_close(srv);
    }
}

static void test_msg_dontwait_on_datagram_sockets_never_waits(void **state)
{
    (void)state;
    sockit_addr a;
    sockit *u = udp_bound(AF_INET, &a);
    char b[8];
    sockit_addr from;
    double t0 = harness_now();
    assert_code(sockit_recvfrom(u, b, sizeof b, MSG_DONTWAIT, &from), SOCKIT_EWOULDBLOCK);
    assert_code(sockit_recv(u, b, sizeof b, MSG_DONTWAIT), SOCKIT_EWOULDBLOCK);
    assert_true(harness_now() - t0 < 0.5);
    /* A call that does not wait may meet an injected EAGAIN (the fault runs): the
     * caller tries again, as after poll. */
    ssize_t n = SOCKIT_EWOULDBLOCK;
    for (int i = 0; i < 50 && n == SOCKIT_EWOULDBLOCK; i++)
        n = sockit_sendto_addr(u, "x", 1, MSG_DONTWAIT, &a);
    assert_int_equal(n, 1);
    n = SOCKIT_EWOULDBLOCK;
    for (int i = 0; i < 50 && n == SOCKIT_EWOULDBLOCK; i++)
        n = sockit_recvfrom(u, b, sizeof b, MSG_DONTWAIT, &from);
    assert_int_equal(n, 1);
    assert_true(sockit_addr_equal(&from, &a));
    sockit_close(u);
}

/* Python's recv(0) returns b'' at once; so does sockit_recv with len 0. */
static void test_recv_of_zero_bytes_returns_zero_at_once(void **state)
{
    (void)state;
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    char b[4];
    double t0 = harness_now();
    assert_int_equal(sockit_recv(srv, b, 0, 0), 0);
    sockit_addr from;
    assert_int_equal(sockit_recvfrom(srv, b, 0, 0, &from), 0);
    assert_true(harness_now() - t0 < 0.5);
    /* Nothing was consumed. */
    assert_int_equal(sockit_send(c, "ab", 2, 0), 2);
    assert_int_equal(sockit_recv(srv, b, 0, 0), 0);
    assert_int_equal(sockit_recv_exact(srv, b, 2, NULL), 2);
    assert_memory_equal(b, "ab", 2);
    sockit_close(c);
    sockit_close(srv);

    sockit_addr a;
    sockit *u = udp_bound(AF_INET, &a);
    t0 = harness_now();
    assert_int_equal(sockit_recv(u, b, 0, 0), 0);
    assert_true(harness_now() - t0 < 0.5);
    sockit_close(u);
}

/* The header promises the peer's address in *from on a stream socket, with or
 * without bytes read ahead by readline. */
static void test_recvfrom_on_a_stream_socket_reports_the_peer(void **state)
{
    (void)state;
    static const int families[] = {AF_INET, AF_INET6};
    for (int i = 0; i < 2; i++) {
        sockit *c, *srv;
        harness_tcp_pair(families[i], &c, &srv);
        sockit_addr want, from;
        assert_ok(sockit_getsockname(c, &want));
        assert_int_equal(sockit_sendall(c, "line\nrest", 9, 0, NULL), 9);
        char b[16];
        memset(&from, 0, sizeof from);
        assert_int_equal(sockit_readline(srv, b, sizeof b), 5);
        assert_int_equal(sockit_recvfrom(srv, b, sizeof b, 0, &from), 4); /* read ahead */
        assert_true(sockit_addr_equal(&from, &want));
        assert_int_equal(sockit_send(c, "xyz", 3, 0), 3);
        memset(&from, 0, sizeof from);
        assert_int_equal(sockit_recvfrom(srv, b, sizeof b, 0, &from), 3); /* from the kernel */
        assert_memory_equal(b, "xyz", 3);
        assert_true(sockit_addr_equal(&from, &want));
        char text[SOCKIT_ADDRSTRLEN];
        assert_true(sockit_addr_format(&from, text, sizeof text) > 0);
        sockit_close(c);
        memset(&from, 0, sizeof from);
        assert_int_equal(sockit_recvfrom(srv, b, sizeof b, 0, &from), 0); /* EOF */
        assert_true(sockit_addr_equal(&from, &want));
        sockit_close(srv);
    }
}

static void test_sendto_addr_with_an_empty_address_is_ebadaddr(void **state)
{
    (void)state;
    sockit_addr a, empty;
    memset(&empty, 0, sizeof empty);
    sockit *u = udp_bound(AF_INET, &a);
    assert_code(sockit_sendto_addr(u, "x", 1, 0, &empty), SOCKIT_EBADADDR);
    assert_code(sockit_sendto_addr(u, "x", 1, 0, NULL), SOCKIT_EBADADDR);
    sockit *t = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(t);
    assert_code(sockit_connect_addr(t, &empty), SOCKIT_EBADADDR);
    assert_code(sockit_bind_addr(u, &empty), SOCKIT_EBADADDR);
    sockit_close(t);
    sockit_close(u);
}

static void test_sendfile_leaves_the_file_position_alone(void **state)
{
    (void)state;
    int fd = pattern_file(4096);
    assert_int_equal(lseek(fd, 123, SEEK_SET), 123);
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    size_t sent = 0;
    assert_int_equal(sockit_sendfile(c, fd, 1000, 2000, &sent), 2000);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 123);
    uint8_t buf[2000];
    assert_int_equal(sockit_recv_exact(srv, buf, sizeof buf, NULL), 2000);
    assert_int_equal(buf[0], pattern(1000));
    close(fd);
    sockit_close(c);
    sockit_close(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_send_and_recv_over_tcp_loopback),
        harness_test(test_sendall_8mb_through_slow_reader_delivers_every_byte),
        harness_test(test_sendall_8mb_in_timeout_mode_delivers_every_byte),
        harness_test(test_sendall_timeout_reports_bytes_sent),
        harness_test(test_send_in_non_blocking_mode_would_block_when_buffer_is_full),
        harness_test(test_recv_exact_collects_pieces_sent_apart),
        harness_test(test_recv_exact_reports_eof_and_bytes_got_when_peer_closes_early),
        harness_test(test_recv_exact_timeout_reports_bytes_got),
        harness_test(test_recv_returns_zero_at_eof),
        harness_test(test_recv_timeout_and_non_blocking_fail_with_their_own_codes),
        harness_test(test_sendto_and_recvfrom_report_the_sender),
        harness_test(test_recvfrom_reports_truncation_and_keeps_the_next_datagram),
        harness_test(test_recv_on_connected_udp_reports_truncation),
        harness_test(test_largest_udp_datagram_arrives_whole),
        harness_test(test_sendto_rejects_bad_port_and_unknown_host),
        harness_test(test_sendfile_sends_the_requested_range),
        harness_test(test_sendfile_leaves_the_file_position_alone),
        harness_test(test_send_to_a_peer_that_reset_reports_epipe_or_econnreset),
        harness_test(test_send_after_peer_closed_reports_epipe_or_econnreset),
        harness_test(test_msg_dontwait_never_waits_in_any_mode),
        harness_test(test_msg_dontwait_on_datagram_sockets_never_waits),
        harness_test(test_recv_of_zero_bytes_returns_zero_at_once),
        harness_test(test_recvfrom_on_a_stream_socket_reports_the_peer),
        harness_test(test_sendto_addr_with_an_empty_address_is_ebadaddr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
