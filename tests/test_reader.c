/* sockit_readline, sockit_pending, and mixing readline with recv/recv_exact. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A peer that writes text in pieces of `step` bytes with a pause between, so the
 * reader sees a line arrive across many reads. */
struct dribble {
    sockit *to;
    const char *text;
    size_t step;
    long pause_us;
    bool close_after;
};

static void *dribble_main(void *arg)
{
    struct dribble *d = arg;
    size_t len = strlen(d->text);
    for (size_t off = 0; off < len; off += d->step) {
        size_t n = len - off < d->step ? len - off : d->step;
        if (sockit_sendall(d->to, d->text + off, n, 0, NULL) < 0)
            break;
        struct timespec ts = {0, d->pause_us * 1000};
        nanosleep(&ts, NULL);
    }
    if (d->close_after)
        sockit_shutdown(d->to, SHUT_WR);
    return NULL;
}

static void make_pair(sockit *pair[2]) { assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, pair)); }

static void send_text(sockit *s, const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(sockit_sendall(s, text, len, 0, NULL), (ssize_t)len);
}

static void test_readline_joins_line_split_across_many_small_writes(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    struct dribble d = {p[1], "hello world\nsecond line\nend", 1, 1000, true};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, dribble_main, &d), 0);

    char line[64];
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 12);
    assert_string_equal(line, "hello world\n");
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 12);
    assert_string_equal(line, "second line\n");
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 3);
    assert_string_equal(line, "end");
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 0);

    pthread_join(t, NULL);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_readline_over_tcp_loopback_returns_each_line(void **state)
{
    (void)state;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit *c = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(c);
    assert_ok(sockit_connect(c, "127.0.0.1", port));
    sockit *srv = sockit_accept(l, NULL);
    assert_sock(srv);

    struct dribble d = {c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n", 5, 2000, true};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, dribble_main, &d), 0);
    char line[64];
    assert_int_equal(sockit_readline(srv, line, sizeof line), 16);
    assert_string_equal(line, "GET / HTTP/1.0\r\n");
    assert_int_equal(sockit_readline(srv, line, sizeof line), 9);
    assert_string_equal(line, "Host: x\r\n");
    assert_int_equal(sockit_readline(srv, line, sizeof line), 2);
    assert_string_equal(line, "\r\n");
    assert_int_equal(sockit_readline(srv, line, sizeof line), 0);
    pthread_join(t, NULL);

    sockit_close(srv);
    sockit_close(c);
    sockit_close(l);
}

static void test_readline_returns_many_lines_from_one_write(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    send_text(p[1], "a\nbb\nccc\n");
    char line[16];
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 2);
    assert_string_equal(line, "a\n");
    assert_int_equal(sockit_pending(p[0]), 7);
    /* The rest is buffered: it must come out even with the descriptor non-blocking
     * and nothing more to read from the kernel. */
    assert_ok(sockit_setblocking(p[0], false));
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 3);
    assert_string_equal(line, "bb\n");
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 4);
    assert_string_equal(line, "ccc\n");
    assert_int_equal(sockit_pending(p[0]), 0);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_readline_longer_than_size_returns_elinelen_and_keeps_rest(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    send_text(p[1], "abcdefghij\nnext\n");
    char line[5];
    assert_code(sockit_readline(p[0], line, sizeof line), SOCKIT_ELINELEN);
    assert_string_equal(line, "abcd");
    assert_non_null(strstr(sockit_errmsg(), "readline"));

    char rest[64];
    assert_int_equal(sockit_readline(p[0], rest, sizeof rest), 7);
    assert_string_equal(rest, "efghij\n");
    assert_int_equal(sockit_readline(p[0], rest, sizeof rest), 5);
    assert_string_equal(rest, "next\n");
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_readline_line_exactly_filling_size_is_not_too_long(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    send_text(p[1], "abc\n");
    char line[5];
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 4);
    assert_string_equal(line, "abc\n");
    sockit_close(p[0]);
    sockit_close(p[1]);
}

/* A line longer than the 64 KiB read-ahead buffer cannot be held whole, even when
 * the caller's buffer is bigger: the first 64 KiB come back with ELINELEN. */
static void test_readline_line_longer_than_read_buffer_returns_elinelen(void **state)
{
    (void)state;
    enum { LINE = 70000, CAP = 64 * 1024 };
    sockit *p[2];
    make_pair(p);
    char *text = malloc(LINE + 2);
    assert_non_null(text);
    for (size_t i = 0; i < LINE; i++)
        text[i] = (char)('a' + i % 26);
    text[LINE] = '\n';
    text[LINE + 1] = '\0';
    struct dribble d = {p[1], text, 8192, 0, true};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, dribble_main, &d), 0);

    char *line = malloc(LINE + 100);
    assert_non_null(line);
    assert_code(sockit_readline(p[0], line, LINE + 100), SOCKIT_ELINELEN);
    assert_int_equal(strlen(line), CAP);
    assert_memory_equal(line, text, CAP);
    assert_int_equal(sockit_readline(p[0], line, LINE + 100), LINE + 1 - CAP);
    assert_memory_equal(line, text + CAP, LINE + 1 - CAP);
    assert_int_equal(sockit_readline(p[0], line, LINE + 100), 0);

    pthread_join(t, NULL);
    free(line);
    free(text);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

/* More lines than the 64 KiB buffer holds, written in chunks that split lines, so
 * the buffer must shift a partial line to its front to keep reading. */
static void test_readline_reads_every_line_of_a_stream_larger_than_its_buffer(void **state)
{
    (void)state;
    enum { LINES = 10000, WIDTH = 11 };
    sockit *p[2];
    make_pair(p);
    char *text = malloc(LINES * WIDTH + 1);
    assert_non_null(text);
    for (int i = 0; i < LINES; i++)
        snprintf(text + i * WIDTH, WIDTH + 1, "line %05d\n", i);
    struct dribble d = {p[1], text, 7000, 0, true};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, dribble_main, &d), 0);

    char line[64], want[64];
    for (int i = 0; i < LINES; i++) {
        snprintf(want, sizeof want, "line %05d\n", i);
        assert_int_equal(sockit_readline(p[0], line, sizeof line), WIDTH);
        assert_string_equal(line, want);
    }
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 0);
    pthread_join(t, NULL);
    free(text);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_readline_final_line_without_newline_then_eof(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    send_text(p[1], "first\nlast");
    assert_ok(sockit_shutdown(p[1], SHUT_WR));
    char line[32];
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 6);
    assert_string_equal(line, "first\n");
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 4);
    assert_string_equal(line, "last");
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 0);
    assert_string_equal(line, "");
    /* End of stream stays end of stream. */
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 0);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_readline_at_eof_with_nothing_returns_zero(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    sockit_close(p[1]);
    char line[8] = "garbage";
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 0);
    assert_string_equal(line, "");
    sockit_close(p[0]);
}

static void test_readline_then_recv_and_recv_exact_get_following_bytes(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    send_text(p[1], "header\nABCDEFGH");
    char line[32];
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 7);
    assert_string_equal(line, "header\n");
    assert_int_equal(sockit_pending(p[0]), 8);

    char buf[32] = {0};
    size_t got = 0;
    assert_int_equal(sockit_recv_exact(p[0], buf, 3, &got), 3);
    assert_int_equal(got, 3);
    assert_memory_equal(buf, "ABC", 3);
    assert_int_equal(sockit_pending(p[0]), 5);

    /* recv_exact spanning the buffer and the socket: 5 buffered + 3 from the kernel. */
    send_text(p[1], "IJK");
    assert_int_equal(sockit_recv_exact(p[0], buf, 8, &got), 8);
    assert_memory_equal(buf, "DEFGHIJK", 8);
    assert_int_equal(sockit_pending(p[0]), 0);

    send_text(p[1], "tail\nmore");
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 5);
    assert_string_equal(line, "tail\n");
    memset(buf, 0, sizeof buf);
    assert_int_equal(sockit_recv(p[0], buf, sizeof buf, 0), 4);
    assert_memory_equal(buf, "more", 4);
    assert_int_equal(sockit_pending(p[0]), 0);

    /* Once the buffer is drained, recv reads the socket again. */
    send_text(p[1], "xyz");
    assert_int_equal(sockit_recv(p[0], buf, sizeof buf, 0), 3);
    assert_memory_equal(buf, "xyz", 3);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_readline_timeout_without_newline_keeps_partial_line(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    assert_ok(sockit_settimeout(p[0], 0.2));
    send_text(p[1], "partial");
    char line[32];
    double t0 = harness_now();
    assert_code(sockit_readline(p[0], line, sizeof line), SOCKIT_ETIMEOUT);
    double elapsed = harness_now() - t0;
    assert_true(elapsed >= 0.19);
    assert_true(elapsed < 2.0);
    assert_int_equal(sockit_pending(p[0]), 7);

    /* The bytes read before the timeout were kept: the line completes. */
    send_text(p[1], " line\n");
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 13);
    assert_string_equal(line, "partial line\n");
    sockit_close(p[0]);
    sockit_close(p[1]);
}

/* One deadline covers the whole call: a peer that keeps sending bytes without a
 * newline must not extend it. */
static void test_readline_timeout_is_one_deadline_despite_trickling_bytes(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    assert_ok(sockit_settimeout(p[0], 0.3));
    struct dribble d = {p[1], "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 1, 50000, false};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, dribble_main, &d), 0);
    char line[64];
    double t0 = harness_now();
    assert_code(sockit_readline(p[0], line, sizeof line), SOCKIT_ETIMEOUT);
    double elapsed = harness_now() - t0;
    assert_true(elapsed >= 0.29);
    assert_true(elapsed < 1.2);
    pthread_join(t, NULL);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_readline_nonblocking_returns_ewouldblock(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    assert_ok(sockit_setblocking(p[0], false));
    char line[32];
    assert_code(sockit_readline(p[0], line, sizeof line), SOCKIT_EWOULDBLOCK);
    send_text(p[1], "half");
    /* An injected EAGAIN (the fault runs) may come before the bytes are read: a
     * non-blocking caller calls again, as it would once poll said readable. */
    for (int i = 0; i < 50 && sockit_pending(p[0]) < 4; i++)
        assert_code(sockit_readline(p[0], line, sizeof line), SOCKIT_EWOULDBLOCK);
    assert_int_equal(sockit_pending(p[0]), 4);
    send_text(p[1], "\n");
    ssize_t n = SOCKIT_EWOULDBLOCK;
    for (int i = 0; i < 50 && n == SOCKIT_EWOULDBLOCK; i++)
        n = sockit_readline(p[0], line, sizeof line);
    assert_int_equal(n, 5);
    assert_string_equal(line, "half\n");
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_readline_rejects_invalid_arguments(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    char line[8];
    assert_code(sockit_readline(NULL, line, sizeof line), -EBADF);
    assert_code(sockit_readline(p[0], NULL, 8), -EINVAL);
    assert_code(sockit_readline(p[0], line, 0), -EINVAL);
    assert_code(sockit_readline(p[0], line, 1), -EINVAL);
    assert_int_equal(sockit_pending(NULL), 0);
    assert_int_equal(sockit_pending(p[0]), 0);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_readline_refuses_datagram_sockets_rather_than_cut(void **state)
{
    (void)state;
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_DGRAM, p));
    assert_int_equal(sockit_send(p[1], "one\n", 4, 0), 4);
    char line[8];
    assert_code(sockit_readline(p[0], line, sizeof line), -EOPNOTSUPP);
    /* The datagram was not consumed by the refused call. */
    assert_int_equal(sockit_recv(p[0], line, sizeof line, 0), 4);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_close_frees_unread_buffered_bytes(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    send_text(p[1], "one\ntwo\nthree\n");
    char line[8];
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 4);
    assert_true(sockit_pending(p[0]) > 0);
    /* ASan reports the buffer as leaked if close does not free it. */
    assert_ok(sockit_close(p[0]));
    sockit_close(p[1]);
}

/* A final unterminated line that exactly fills the caller's limit is a whole line:
 * only the end of the stream after it tells, so readline must look for it. */
static void test_readline_final_line_exactly_filling_size_then_eof(void **state)
{
    (void)state;
    sockit *p[2];
    make_pair(p);
    send_text(p[1], "abcdefg");
    assert_ok(sockit_shutdown(p[1], SHUT_WR));
    char line[8];
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 7);
    assert_string_equal(line, "abcdefg");
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 0);
    sockit_close(p[0]);
    sockit_close(p[1]);

    /* One byte more, or the newline after it, does not fit. */
    static const char *const too_long[] = {"abcdefgh", "abcdefg\n"};
    for (size_t i = 0; i < 2; i++) {
        make_pair(p);
        send_text(p[1], too_long[i]);
        assert_ok(sockit_shutdown(p[1], SHUT_WR));
        assert_code(sockit_readline(p[0], line, sizeof line), SOCKIT_ELINELEN);
        assert_string_equal(line, "abcdefg");
        assert_int_equal(sockit_readline(p[0], line, sizeof line), 1);
        assert_int_equal(line[0], too_long[i][7]);
        sockit_close(p[0]);
        sockit_close(p[1]);
    }
}

static void test_readline_final_line_of_line_max_bytes_then_eof(void **state)
{
    (void)state;
    static char text[SOCKIT_LINE_MAX + 2];
    static char line[SOCKIT_LINE_MAX + 2];
    memset(text, 'x', SOCKIT_LINE_MAX);
    sockit *p[2];
    make_pair(p);
    send_text(p[1], text);
    /* The whole buffer is full and the peer has not ended yet: the call waits for
     * the next byte or the end, and a timeout keeps every byte. */
    assert_ok(sockit_settimeout(p[0], 0.1));
    assert_code(sockit_readline(p[0], line, sizeof line), SOCKIT_ETIMEOUT);
    assert_int_equal(sockit_pending(p[0]), SOCKIT_LINE_MAX);
    assert_ok(sockit_shutdown(p[1], SHUT_WR));
    assert_int_equal(sockit_readline(p[0], line, sizeof line), SOCKIT_LINE_MAX);
    assert_int_equal(strlen(line), SOCKIT_LINE_MAX);
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 0);
    sockit_close(p[0]);
    sockit_close(p[1]);

    /* With the newline after them, they are one byte too many. One send: after
     * 64 KiB nobody reads, a Unix socket is not writable again (poll wants it a
     * quarter full at most), so a second send refused by an injected EAGAIN (the
     * fault runs) would wait for ever, though the kernel has room for it. */
    make_pair(p);
    text[SOCKIT_LINE_MAX] = '\n';
    send_text(p[1], text);
    assert_ok(sockit_shutdown(p[1], SHUT_WR));
    assert_code(sockit_readline(p[0], line, sizeof line), SOCKIT_ELINELEN);
    assert_int_equal(sockit_readline(p[0], line, sizeof line), 1);
    assert_string_equal(line, "\n");
    sockit_close(p[0]);
    sockit_close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_readline_joins_line_split_across_many_small_writes),
        harness_test(test_readline_over_tcp_loopback_returns_each_line),
        harness_test(test_readline_returns_many_lines_from_one_write),
        harness_test(test_readline_longer_than_size_returns_elinelen_and_keeps_rest),
        harness_test(test_readline_line_exactly_filling_size_is_not_too_long),
        harness_test(test_readline_line_longer_than_read_buffer_returns_elinelen),
        harness_test(test_readline_reads_every_line_of_a_stream_larger_than_its_buffer),
        harness_test(test_readline_final_line_without_newline_then_eof),
        harness_test(test_readline_final_line_exactly_filling_size_then_eof),
        harness_test(test_readline_final_line_of_line_max_bytes_then_eof),
        harness_test(test_readline_at_eof_with_nothing_returns_zero),
        harness_test(test_readline_then_recv_and_recv_exact_get_following_bytes),
        harness_test(test_readline_timeout_without_newline_keeps_partial_line),
        harness_test(test_readline_timeout_is_one_deadline_despite_trickling_bytes),
        harness_test(test_readline_nonblocking_returns_ewouldblock),
        harness_test(test_readline_rejects_invalid_arguments),
        harness_test(test_readline_refuses_datagram_sockets_rather_than_cut),
        harness_test(test_close_frees_unread_buffered_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
