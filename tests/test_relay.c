/* sockit_relay (sockit.h section 12): bytes both ways and counted, half-close each
 * way and the end once both have ended, backpressure that pauses the sender and
 * loses nothing, a reset or a failed write resetting both sides, sides made of two
 * pipes, a UDP side (datagrams to bytes and back, its end, a refusing peer), the
 * idle and half-close limits, close, and the arguments it refuses (the streams
 * then still the caller's). Runs once per backend.
 *
 * Each side's far end is a plain descriptor the test drives with non-blocking
 * recv/send from the loop's thread; every wait is bounded (RUN_UNTIL). */
#include "harness.h"
#include "loop_harness.h"
#include "stream/relay_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* What on_end saw. */
struct ending {
    int calls;
    int code;
    char reason[192];
};

static void on_end(sockit_relay *r, int code, const char *reason, void *user)
{
    (void)r;
    struct ending *e = user;
    e->calls++;
    e->code = code;
    snprintf(e->reason, sizeof e->reason, "%s", reason);
}

/* A side: the stream the relay gets and the far end the test drives. */
struct side {
    sockit_stream *st;
    int far;
};

static void set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    assert_true(fl >= 0);
    assert_ok(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

static struct side unix_side(sockit_loop *loop)
{
    int sv[2];
    assert_ok(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    set_nonblocking(sv[0]);
    struct side s = {.st = sockit_stream_new_fd(loop, sv[1], true, NULL, NULL), .far = sv[0]};
    assert_non_null(s.st);
    return s;
}

/* A TCP connection over loopback: a reset needs TCP. */
static struct side tcp_side(sockit_loop *loop)
{
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit *c = sockit_create_connection("127.0.0.1", port, 5.0, NULL);
    assert_sock(c);
    sockit *a = sockit_accept(l, NULL);
    assert_sock(a);
    sockit_close(l);
    int far = sockit_detach(c);
    assert_true(far >= 0);
    set_nonblocking(far);
    struct side s = {.st = sockit_stream_new(loop, a, NULL, NULL), .far = far};
    assert_non_null(s.st);
    return s;
}

static void send_all(sockit_loop *loop, int fd, const char *buf, size_t len)
{
    size_t off = 0;
    double until = harness_now() + 5;
    while (off < len && harness_now() < until) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t)n;
        else
            sockit_loop_run_once(loop, 0.001);
    }
    assert_int_equal(off, len);
}

/* Reads into buf until want bytes came, the end (*eof) or secs passed. */
static size_t read_some(sockit_loop *loop, int fd, char *buf, size_t want, double secs, bool *eof)
{
    size_t got = 0;
    *eof = false;
    double until = harness_now() + secs;
    while (got < want && !*eof && harness_now() < until) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            *eof = true;
        else
            sockit_loop_run_once(loop, 0.002);
    }
    return got;
}

/* Runs the loop until fd's end of stream (or an error) arrives. */
static bool wait_eof(sockit_loop *loop, int fd, double secs)
{
    char buf[4096];
    bool eof = false;
    double until = harness_now() + secs;
    while (!eof && harness_now() < until) {
        size_t got = read_some(loop, fd, buf, sizeof buf, 0.05, &eof);
        (void)got;
    }
    return eof;
}

static void expect_bytes(sockit_loop *loop, int fd, const char *want)
{
    char buf[256];
    bool eof;
    size_t n = strlen(want);
    size_t got = read_some(loop, fd, buf, n, 5, &eof);
    if (got != n)
        fail_msg("expected \"%s\" on fd %d, got %zu bytes%s", want, fd, got,
                 eof ? " and the end" : "");
    assert_memory_equal(buf, want, n);
}

static void test_bytes_pass_both_ways_and_are_counted(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = unix_side(loop), b = tcp_side(loop);
    struct ending e = {0};
    sockit_relay_config cfg = {.on_end = on_end, .user = &e};
    sockit_relay *r = sockit_relay_new(a.st, b.st, &cfg);
    assert_non_null(r);
    send_all(loop, a.far, "hello", 5);
    expect_bytes(loop, b.far, "hello");
    send_all(loop, b.far, "world!", 6);
    expect_bytes(loop, a.far, "world!");
    assert_int_equal(sockit_relay_bytes(r, 0), 5);
    assert_int_equal(sockit_relay_bytes(r, 1), 6);
    assert_int_equal(sockit_relay_bytes(r, 2), 0);
    assert_int_equal(e.calls, 0);
    close(a.far); /* both ends at once: the relay ends cleanly */
    close(b.far);
    RUN_UNTIL(loop, e.calls > 0, 5);
    assert_int_equal(e.calls, 1);
    close_loop(loop);
}

/* Each end of stream is passed on as a half-close; the other way goes on until it
 * ends too, and then the relay ends with 0, named by the side that ended first. */
static void test_half_close_each_way(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = tcp_side(loop), b = tcp_side(loop);
    struct ending e = {0};
    sockit_relay_config cfg = {
        .name_a = "client", .name_b = "server", .on_end = on_end, .user = &e};
    sockit_relay *r = sockit_relay_new(a.st, b.st, &cfg);
    assert_non_null(r);
    send_all(loop, a.far, "request", 7);
    assert_ok(shutdown(a.far, SHUT_WR));
    expect_bytes(loop, b.far, "request");
    assert_true(wait_eof(loop, b.far, 5)); /* the half-close reached b */
    /* b answers after its input ended, and the answer still arrives */
    send_all(loop, b.far, "reply", 5);
    expect_bytes(loop, a.far, "reply");
    assert_int_equal(e.calls, 0);
    assert_ok(shutdown(b.far, SHUT_WR));
    assert_true(wait_eof(loop, a.far, 5));
    RUN_UNTIL(loop, e.calls > 0, 5);
    assert_int_equal(e.calls, 1);
    assert_int_equal(e.code, 0);
    assert_string_equal(e.reason, "client closed");
    close(a.far);
    close(b.far);
    close_loop(loop);
}

/* A receiver that reads nothing: the sender is paused with at most held_max (and a
 * socket buffer) held, and once the receiver reads, every byte arrives in order. */
static void test_backpressure_pauses_and_loses_nothing(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = unix_side(loop), b = unix_side(loop);
    struct ending e = {0};
    size_t max = 64 * 1024;
    sockit_relay_config cfg = {.held_max = max, .on_end = on_end, .user = &e};
    sockit_relay *r = sockit_relay_new(a.st, b.st, &cfg);
    assert_non_null(r);
    size_t n = (size_t)8 << 20;
    char *big = malloc(n), *in = malloc(n);
    assert_non_null(big);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 7 + i / 4099);
    size_t off = 0;
    double until = harness_now() + 2;
    while (harness_now() < until) {
        ssize_t k = send(a.far, big + off, n - off, MSG_NOSIGNAL);
        if (k > 0)
            off += (size_t)k;
        sockit_loop_run_once(loop, 0.002);
    }
    assert_true(off < n); /* the relay stopped taking: the rest waits at a */
    assert_true(sockit__relay_paused(r, 0));
    assert_true(sockit_stream_queued(b.st) <= max + 2 * 65536);
    /* Now b reads: everything arrives, in order. */
    size_t got = 0;
    until = harness_now() + 30;
    while (got < n && harness_now() < until) {
        if (off < n) {
            ssize_t k = send(a.far, big + off, n - off, MSG_NOSIGNAL);
            if (k > 0)
                off += (size_t)k;
        }
        ssize_t k = recv(b.far, in + got, n - got, 0);
        if (k > 0)
            got += (size_t)k;
        else
            sockit_loop_run_once(loop, 0.001);
    }
    assert_int_equal(got, n);
    assert_memory_equal(in, big, n);
    assert_false(sockit__relay_paused(r, 0));
    assert_int_equal(sockit_relay_bytes(r, 0), n);
    free(big);
    free(in);
    close(a.far);
    close(b.far);
    RUN_UNTIL(loop, e.calls > 0, 5);
    close_loop(loop);
}

/* A reset on one side resets the other at once; on_end has the code and the side. */
static void test_a_reset_resets_the_other_side(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = tcp_side(loop), b = tcp_side(loop);
    struct ending e = {0};
    sockit_relay_config cfg = {.on_end = on_end, .user = &e};
    assert_non_null(sockit_relay_new(a.st, b.st, &cfg));
    send_all(loop, a.far, "x", 1);
    expect_bytes(loop, b.far, "x");
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_ok(setsockopt(a.far, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(a.far);
    RUN_UNTIL(loop, e.calls > 0, 5);
    assert_int_equal(e.calls, 1);
    assert_int_equal(e.code, -ECONNRESET);
    assert_string_equal(e.reason, "a: Connection reset by peer");
    char c;
    ssize_t k;
    double until = harness_now() + 5;
    while ((k = recv(b.far, &c, 1, 0)) < 0 && errno == EAGAIN && harness_now() < until)
        sockit_loop_run_once(loop, 0.002);
    assert_int_equal(k, -1);
    assert_int_equal(errno, ECONNRESET); /* a reset, not an orderly end */
    close(b.far);
    close_loop(loop);
}

/* A side read from one pipe and written to another (stdin and stdout): bytes both
 * ways; the far side's end closes the written pipe, the read pipe's end reaches b. */
static void test_split_side_of_two_pipes(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int in[2], out[2];
    assert_ok(pipe2(in, O_CLOEXEC));
    assert_ok(pipe2(out, O_CLOEXEC));
    set_nonblocking(out[0]);
    sockit_stream *a_in = sockit_stream_new_fd(loop, in[0], true, NULL, NULL);
    sockit_stream *a_out = sockit_stream_new_fd(loop, out[1], true, NULL, NULL);
    assert_non_null(a_in);
    assert_non_null(a_out);
    struct side b = unix_side(loop);
    struct ending e = {0};
    sockit_relay_config cfg = {.on_end = on_end, .user = &e};
    sockit_relay_side sa = {.in = a_in, .out = a_out}, sb = {.in = b.st};
    sockit_relay *r = sockit_relay_join(&sa, &sb, &cfg);
    assert_non_null(r);
    assert_int_equal(write(in[1], "typed\n", 6), 6);
    expect_bytes(loop, b.far, "typed\n");
    send_all(loop, b.far, "shown\n", 6);
    expect_bytes(loop, out[0], "shown\n");
    close(in[1]); /* stdin ends: b gets a half-close */
    assert_true(wait_eof(loop, b.far, 5));
    send_all(loop, b.far, "more", 4);
    expect_bytes(loop, out[0], "more");
    assert_ok(shutdown(b.far, SHUT_WR)); /* and b's end closes the pipe we read */
    assert_true(wait_eof(loop, out[0], 5));
    RUN_UNTIL(loop, e.calls > 0, 5);
    assert_int_equal(e.code, 0);
    close(out[0]);
    close(b.far);
    close_loop(loop);
}

/* A write that fails (the pipe's reader is gone) resets the other side. */
static void test_a_failed_write_ends_the_relay(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int in[2], out[2];
    assert_ok(pipe2(in, O_CLOEXEC));
    assert_ok(pipe2(out, O_CLOEXEC));
    close(out[0]);
    sockit_stream *b_in = sockit_stream_new_fd(loop, in[0], true, NULL, NULL);
    sockit_stream *b_out = sockit_stream_new_fd(loop, out[1], true, NULL, NULL);
    struct side a = unix_side(loop);
    struct ending e = {0};
    sockit_relay_config cfg = {.name_b = "stdout", .on_end = on_end, .user = &e};
    sockit_relay_side sa = {.in = a.st}, sb = {.in = b_in, .out = b_out};
    assert_non_null(sockit_relay_join(&sa, &sb, &cfg));
    send_all(loop, a.far, "lost", 4);
    RUN_UNTIL(loop, e.calls > 0, 5);
    assert_int_equal(e.code, -EPIPE);
    assert_string_equal(e.reason, "write to stdout: Broken pipe");
    assert_true(wait_eof(loop, a.far, 5));
    close(in[1]);
    close(a.far);
    close_loop(loop);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = unix_side(loop), b = unix_side(loop);
    struct ending e = {0};
    sockit_relay_config cfg = {.idle_timeout = 0.3, .on_end = on_end, .user = &e};
    assert_non_null(sockit_relay_new(a.st, b.st, &cfg));
    /* bytes every 0.1 s keep it going past its limit */
    double start = harness_now();
    for (int i = 0; i < 8; i++) {
        send_all(loop, a.far, "k", 1);
        expect_bytes(loop, b.far, "k");
        run_for(loop, 0.1);
    }
    assert_true(harness_now() - start > 0.6);
    assert_int_equal(e.calls, 0);
    RUN_UNTIL(loop, e.calls > 0, 5);
    assert_int_equal(e.code, SOCKIT_ETIMEOUT);
    assert_string_equal(e.reason, "idle for 0.3 s");
    assert_true(wait_eof(loop, a.far, 5));
    assert_true(wait_eof(loop, b.far, 5));
    close(a.far);
    close(b.far);
    close_loop(loop);
}

static void test_half_close_timeout(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = unix_side(loop), b = unix_side(loop);
    struct ending e = {0};
    sockit_relay_config cfg = {.half_close_timeout = 0.2, .on_end = on_end, .user = &e};
    assert_non_null(sockit_relay_new(a.st, b.st, &cfg));
    run_for(loop, 0.4); /* no limit while both directions are open */
    assert_int_equal(e.calls, 0);
    assert_ok(shutdown(a.far, SHUT_WR));
    RUN_UNTIL(loop, e.calls > 0, 5);
    assert_int_equal(e.code, SOCKIT_ETIMEOUT);
    assert_string_equal(e.reason, "b still open 0.2 s after a ended");
    close(a.far);
    close(b.far);
    close_loop(loop);
}

static void test_close_resets_both(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = unix_side(loop), b = unix_side(loop);
    struct ending e = {0};
    sockit_relay_config cfg = {.on_end = on_end, .user = &e};
    sockit_relay *r = sockit_relay_new(a.st, b.st, &cfg);
    assert_non_null(r);
    sockit_relay_close(r);
    assert_int_equal(e.calls, 0); /* from the loop, never from inside close */
    RUN_UNTIL(loop, e.calls > 0, 5);
    assert_int_equal(e.code, -ECANCELED);
    assert_true(wait_eof(loop, a.far, 5));
    assert_true(wait_eof(loop, b.far, 5));
    sockit_relay_close(NULL);
    assert_int_equal(sockit_relay_bytes(NULL, 0), 0);
    close(a.far);
    close(b.far);
    close_loop(loop);
}

/* What the stream saw after a refused relay: its own callbacks still run. */
static int own_closes;
static void own_close(sockit_stream *st, void *user)
{
    (void)st;
    (void)user;
    own_closes++;
}
static const sockit_stream_callbacks own_callbacks = {.on_close = own_close};

static void test_bad_arguments_leave_the_streams_alone(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_loop *other = new_loop();
    struct side a = unix_side(loop), b = unix_side(loop), c = unix_side(other);
    sockit_stream_set_callbacks(a.st, &own_callbacks);
    sockit_stream_set_callbacks(b.st, &own_callbacks);
    assert_null(sockit_relay_new(NULL, b.st, NULL));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_null(sockit_relay_new(a.st, a.st, NULL));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "the same stream on both sides"));
    sockit_relay_side split = {.in = a.st, .out = b.st}, plain = {.in = b.st};
    assert_null(sockit_relay_join(&split, &plain, NULL));
    assert_int_equal(sockit_errcode(), -EINVAL);
    sockit_relay_side none = {0};
    assert_null(sockit_relay_join(&none, &plain, NULL));
    assert_non_null(strstr(sockit_errmsg(), "no stream and no datagram endpoint"));
    assert_null(sockit_relay_join(NULL, &plain, NULL));
    assert_int_equal(sockit_errcode(), -EINVAL);
    sockit_relay_side sized = {.size = 1, .in = a.st};
    assert_null(sockit_relay_join(&sized, &plain, NULL));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_null(sockit_relay_new(a.st, c.st, NULL));
    assert_non_null(strstr(sockit_errmsg(), "different loops"));
    sockit_relay_config bad = {.linger = NAN};
    assert_null(sockit_relay_new(a.st, b.st, &bad));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "linger"));
    bad = (sockit_relay_config){.idle_timeout = -1};
    assert_null(sockit_relay_new(a.st, b.st, &bad));
    assert_int_equal(sockit_errcode(), -EINVAL);
    bad = (sockit_relay_config){.half_close_timeout = 5e6};
    assert_null(sockit_relay_new(a.st, b.st, &bad));
    assert_int_equal(sockit_errcode(), -EINVAL);
    bad = (sockit_relay_config){.size = 3};
    assert_null(sockit_relay_new(a.st, b.st, &bad));
    assert_int_equal(sockit_errcode(), -EINVAL);
    /* The streams are still the caller's: closing them runs their own callbacks. */
    sockit_stream_close(a.st, 0);
    sockit_stream_close(b.st, 0);
    sockit_stream_close(c.st, 0);
    RUN_UNTIL(loop, own_closes == 2, 5);
    assert_int_equal(own_closes, 2);
    close(a.far);
    close(b.far);
    close(c.far);
    close_loop(other);
    close_loop(loop);
}

/* A connected UDP pair on loopback: the relay's endpoint and the far socket. */
struct dside {
    sockit_datagram *d;
    int far;
};

static struct dside udp_side(sockit_loop *loop)
{
    int far = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(far >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_ok(bind(far, (struct sockaddr *)&a, sizeof a));
    socklen_t alen = sizeof a;
    assert_ok(getsockname(far, (struct sockaddr *)&a, &alen));
    sockit *s = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(s);
    sockit_addr to = {.len = sizeof a};
    to.u.in4 = a;
    assert_ok(sockit_bind(s, "127.0.0.1", 0));
    assert_ok(sockit_connect_addr(s, &to));
    sockit_addr mine;
    assert_ok(sockit_getsockname(s, &mine));
    assert_ok(connect(far, &mine.u.sa, mine.len));
    struct dside d = {.d = sockit_datagram_new(loop, s, NULL, NULL), .far = far};
    assert_non_null(d.d);
    return d;
}

/* Datagrams from a UDP side reach a stream as bytes; a stream's bytes reach the
 * UDP side as datagrams of at most 65,507 bytes; the stream's end is the relay's
 * end 0.5 s later, with code 0 (a datagram side cannot end by itself). */
static void test_datagram_side(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = unix_side(loop);
    struct dside b = udp_side(loop);
    struct ending e = {0};
    sockit_relay_config cfg = {.name_b = "udp", .on_end = on_end, .user = &e};
    sockit_relay_side sa = {.in = a.st}, sb = {.datagram = b.d};
    sockit_relay *r = sockit_relay_join(&sa, &sb, &cfg);
    assert_non_null(r);
    assert_int_equal(send(b.far, "one", 3, 0), 3);
    assert_int_equal(send(b.far, "two", 3, 0), 3);
    expect_bytes(loop, a.far, "onetwo");
    /* 100,000 bytes from the stream: two datagrams, the first as big as UDP carries */
    size_t n = 100000;
    char *big = malloc(n), *in = malloc(65536);
    assert_non_null(big);
    assert_non_null(in);
    memset(big, 'z', n);
    send_all(loop, a.far, big, n);
    size_t got = 0;
    int datagrams = 0;
    ssize_t largest = 0;
    double until = harness_now() + 5;
    while (got < n && harness_now() < until) {
        ssize_t k = recv(b.far, in, 65536, 0);
        if (k > 0) {
            got += (size_t)k;
            datagrams++;
            if (k > largest)
                largest = k;
        } else {
            sockit_loop_run_once(loop, 0.002);
        }
    }
    assert_int_equal(got, n);
    assert_true(largest <= 65507);
    assert_true(datagrams >= 2);
    assert_ok(shutdown(a.far, SHUT_WR));
    double t0 = harness_now();
    RUN_UNTIL(loop, e.calls > 0, 5);
    assert_int_equal(e.calls, 1);
    assert_int_equal(e.code, 0);
    assert_string_equal(e.reason, "udp: no more datagrams 0.5 s after a ended");
    assert_true(harness_now() - t0 >= 0.4);
    free(big);
    free(in);
    close(a.far);
    close(b.far);
    close_loop(loop);
}

/* No one at the UDP peer's port: the ICMP error ends the relay with -ECONNREFUSED. */
static void test_datagram_peer_refuses(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = unix_side(loop);
    struct dside b = udp_side(loop);
    close(b.far); /* the port is closed now */
    struct ending e = {0};
    sockit_relay_config cfg = {.name_b = "udp", .on_end = on_end, .user = &e};
    sockit_relay_side sa = {.in = a.st}, sb = {.datagram = b.d};
    assert_non_null(sockit_relay_join(&sa, &sb, &cfg));
    double until = harness_now() + 5;
    while (e.calls == 0 && harness_now() < until) {
        send(a.far, "ping", 4, MSG_NOSIGNAL);
        run_for(loop, 0.05);
    }
    assert_int_equal(e.calls, 1);
    assert_int_equal(e.code, -ECONNREFUSED);
    assert_string_equal(e.reason, "udp: Connection refused");
    close(a.far);
    close_loop(loop);
}

/* A held_max below the receiver's high watermark: the queue never passes it, so
 * no drain comes, and the paused sender is resumed by looking at the queue. */
static void test_held_max_below_the_watermark_still_resumes(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = unix_side(loop), b = unix_side(loop);
    struct ending e = {0};
    sockit_relay_config cfg = {.held_max = 8192, .on_end = on_end, .user = &e};
    sockit_relay *r = sockit_relay_new(a.st, b.st, &cfg);
    assert_non_null(r);
    size_t n = (size_t)4 << 20, off = 0, got = 0;
    char *big = malloc(n), *in = malloc(n);
    assert_non_null(big);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 13 + i / 5003);
    bool was_paused = false;
    double until = harness_now() + 30;
    while (got < n && harness_now() < until) {
        if (off < n) {
            ssize_t k = send(a.far, big + off, n - off, MSG_NOSIGNAL);
            if (k > 0)
                off += (size_t)k;
        }
        sockit_loop_run_once(loop, 0.001);
        was_paused |= sockit__relay_paused(r, 0);
        if (!was_paused)
            continue; /* b reads only once the relay has had to pause */
        ssize_t k = recv(b.far, in + got, n - got, 0);
        if (k > 0)
            got += (size_t)k;
    }
    assert_true(was_paused);
    assert_int_equal(got, n);
    assert_memory_equal(in, big, n);
    free(big);
    free(in);
    close(a.far);
    close(b.far);
    RUN_UNTIL(loop, e.calls > 0, 5);
    close_loop(loop);
}

/* A clean end with linger < 0 (no limit) closes the streams after their queues
 * drained, never resets them: b reads everything after the relay has ended. */
static void test_clean_end_without_a_linger_limit_keeps_the_queue(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = unix_side(loop), b = unix_side(loop);
    struct ending e = {0};
    size_t n = (size_t)1 << 20;
    sockit_relay_config cfg = {.held_max = 4 * n, .linger = -1, .on_end = on_end, .user = &e};
    /* b's queue may hold all of it: the relay pauses nobody */
    assert_ok(sockit_stream_set_watermarks(b.st, 16384, 4 * n, 16 * n));
    assert_non_null(sockit_relay_new(a.st, b.st, &cfg));
    char *big = malloc(n), *in = malloc(n + 1);
    assert_non_null(big);
    assert_non_null(in);
    memset(big, 'q', n);
    send_all(loop, a.far, big, n);
    assert_ok(shutdown(a.far, SHUT_WR));
    assert_ok(shutdown(b.far, SHUT_WR));
    run_for(loop, 0.3); /* both ends reached the relay; b has read nothing */
    bool eof;
    size_t got = read_some(loop, b.far, in, n + 1, 10, &eof);
    assert_int_equal(got, n);
    assert_true(eof || read_some(loop, b.far, in, 1, 5, &eof) == 0);
    RUN_UNTIL(loop, e.calls > 0, 5);
    assert_int_equal(e.code, 0);
    free(big);
    free(in);
    close(a.far);
    close(b.far);
    close_loop(loop);
}

/* A side that is only written (in NULL): a's bytes reach the pipe, a is told the
 * end at once, and no half-close limit runs while a goes on sending. */
static void test_write_only_side(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = unix_side(loop);
    int out[2];
    assert_ok(pipe2(out, O_CLOEXEC));
    set_nonblocking(out[0]);
    sockit_stream *w = sockit_stream_new_fd(loop, out[1], true, NULL, NULL);
    assert_non_null(w);
    struct ending e = {0};
    sockit_relay_config cfg = {.half_close_timeout = 0.2, .on_end = on_end, .user = &e};
    sockit_relay_side sa = {.in = a.st}, sb = {.out = w};
    assert_non_null(sockit_relay_join(&sa, &sb, &cfg));
    assert_true(wait_eof(loop, a.far, 5)); /* nothing will come from b */
    for (int i = 0; i < 4; i++) {
        send_all(loop, a.far, "log\n", 4);
        expect_bytes(loop, out[0], "log\n");
        run_for(loop, 0.1);
    }
    assert_int_equal(e.calls, 0); /* 0.4 s and more: no half-close limit ran */
    assert_ok(shutdown(a.far, SHUT_WR));
    assert_true(wait_eof(loop, out[0], 5));
    RUN_UNTIL(loop, e.calls > 0, 5);
    assert_int_equal(e.code, 0);
    struct side c = unix_side(loop), d = unix_side(loop);
    sockit_relay_side wo = {.out = c.st}, wo2 = {.out = d.st};
    assert_null(sockit_relay_join(&wo, &wo2, NULL));
    assert_non_null(strstr(sockit_errmsg(), "neither side is read"));
    sockit_stream_close(c.st, 0);
    sockit_stream_close(d.st, 0);
    close(c.far);
    close(d.far);
    close(out[0]);
    close(a.far);
    close_loop(loop);
}

/* A datagram another sender got into the endpoint's queue before it was connected
 * is dropped: only the peer's pass. */
static void test_datagram_side_drops_other_senders(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct side a = unix_side(loop);
    sockit *s = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(s);
    assert_ok(sockit_bind(s, "127.0.0.1", 0));
    sockit_addr mine;
    assert_ok(sockit_getsockname(s, &mine));
    int stranger = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int peer = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(stranger >= 0 && peer >= 0);
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_ok(bind(peer, (struct sockaddr *)&lo, sizeof lo));
    assert_int_equal(sendto(stranger, "stranger", 8, 0, &mine.u.sa, mine.len), 8);
    run_for(loop, 0.05); /* it is in s's queue now */
    sockit_addr pa = {.len = sizeof lo};
    socklen_t plen = sizeof pa.u.in4;
    assert_ok(getsockname(peer, &pa.u.sa, &plen));
    assert_ok(sockit_connect_addr(s, &pa));
    assert_int_equal(sendto(peer, "peer", 4, 0, &mine.u.sa, mine.len), 4);
    sockit_datagram *d = sockit_datagram_new(loop, s, NULL, NULL);
    assert_non_null(d);
    struct ending e = {0};
    sockit_relay_config cfg = {.on_end = on_end, .user = &e};
    sockit_relay_side sa = {.in = a.st}, sb = {.datagram = d};
    sockit_relay *r = sockit_relay_join(&sa, &sb, &cfg);
    assert_non_null(r);
    expect_bytes(loop, a.far, "peer");
    run_for(loop, 0.1);
    char extra[16];
    bool eof;
    assert_int_equal(read_some(loop, a.far, extra, sizeof extra, 0.2, &eof), 0);
    assert_int_equal(sockit_relay_bytes(r, 1), 4);
    sockit_relay_close(r);
    RUN_UNTIL(loop, e.calls > 0, 5);
    close(stranger);
    close(peer);
    close(a.far);
    close_loop(loop);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bytes_pass_both_ways_and_are_counted, harness_fd_setup,
                                        harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_half_close_each_way, harness_fd_setup,
                                        harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_pauses_and_loses_nothing,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_a_reset_resets_the_other_side, harness_fd_setup,
                                        harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_split_side_of_two_pipes, harness_fd_setup,
                                        harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_write_ends_the_relay, harness_fd_setup,
                                        harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_half_close_timeout, harness_fd_setup,
                                        harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_close_resets_both, harness_fd_setup,
                                        harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments_leave_the_streams_alone,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_datagram_side, harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_datagram_peer_refuses, harness_fd_setup,
                                        harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_held_max_below_the_watermark_still_resumes,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_clean_end_without_a_linger_limit_keeps_the_queue,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_write_only_side, harness_fd_setup,
                                        harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_datagram_side_drops_other_senders, harness_fd_setup,
                                        harness_fd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
