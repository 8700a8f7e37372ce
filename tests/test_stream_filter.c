/* The stream's filter seam (src/stream/stream_filter.c, internal: TLS over memory
 * BIOs will be its first user): bytes are transformed both ways between the wire
 * and the callbacks, the filter may speak on the wire by itself, its errors end the
 * stream with a message naming it, its end of the user's side goes out before the
 * half-close or the close, and the queue's watermarks and hard limit count the
 * user's bytes, not the filter's. Runs once per backend.
 *
 * The test filter doubles every byte on the wire: user byte b travels as the pair
 * (~b, '~'). A pair "??" from the peer is a ping the filter answers "!!" by itself,
 * "EE" is a protocol error, and the filter ends the user's side with "BB". The peer
 * is a plain socket the test drives with non-blocking recv(2)/send(2). */
#include "harness.h"
#include "loop_harness.h"
#include "stream/stream_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the test filter ------------------------------------------------------------- */

struct pairs {
    int half; /* the first byte of a pair that has not come whole, or -1 */
    int frees, wire_calls, user_calls, ends;
};

static int pairs_wire(void *ctx, sockit_stream *st, const char *data, size_t len)
{
    struct pairs *p = ctx;
    p->wire_calls++;
    char *out = sockit__filter_buf(sockit_stream_loop(st));
    assert_non_null(out);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (p->half < 0) {
            p->half = (unsigned char)data[i];
            continue;
        }
        char a = (char)p->half, b = data[i];
        p->half = -1;
        if (a == '?' && b == '?') {
            int rc = sockit__filter_send_wire(st, "!!", 2);
            if (rc < 0)
                return rc;
        } else if (a == 'E' && b == 'E') {
            return -EPROTO;
        } else if (b == '~') {
            out[n++] = (char)~a;
        } else {
            return -EBADMSG;
        }
    }
    sockit__filter_deliver(st, out, n);
    /* Whatever on_data did, this filter has not been freed under its own call. */
    assert_int_equal(p->frees, 0);
    return 0;
}

static int pairs_wire_eof(void *ctx, sockit_stream *st)
{
    (void)st;
    struct pairs *p = ctx;
    return p->half >= 0 ? -EPROTO : 0; /* cut inside a pair */
}

static int pairs_user(void *ctx, sockit_stream *st, const char *data, size_t len)
{
    struct pairs *p = ctx;
    p->user_calls++;
    char buf[512];
    for (size_t i = 0; i < len;) {
        size_t n = 0;
        for (; i < len && n < sizeof buf; i++) {
            buf[n++] = (char)~data[i];
            buf[n++] = '~';
        }
        int rc = sockit__filter_send_wire(st, buf, n);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int pairs_user_end(void *ctx, sockit_stream *st)
{
    struct pairs *p = ctx;
    p->ends++;
    return sockit__filter_send_wire(st, "BB", 2);
}

static void pairs_free(void *ctx)
{
    struct pairs *p = ctx;
    p->frees++;
}

static const sockit__filter_ops pairs_ops = {
    .name = "pairs",
    .on_wire = pairs_wire,
    .on_wire_eof = pairs_wire_eof,
    .on_user = pairs_user,
    .on_user_end = pairs_user_end,
    .free = pairs_free,
};

static void encode(const char *plain, char *wire)
{
    for (size_t i = 0; plain[i] != '\0'; i++) {
        wire[2 * i] = (char)~plain[i];
        wire[2 * i + 1] = '~';
    }
}

/* ---- the stream's side ----------------------------------------------------------- */

struct seen {
    char data[256];
    size_t len;
    bool abort_on_data; /* on_data aborts the stream (while the filter decodes) */
    int eofs, errors, closes, drains, dones;
    int code, done_status;
    char errmsg[256];
};

static void on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    struct seen *s = user;
    if (s->len + len < sizeof s->data) {
        memcpy(s->data + s->len, data, len);
        s->len += len;
    }
    if (s->abort_on_data)
        sockit_stream_abort(st);
}

static void on_eof(sockit_stream *st, void *user)
{
    (void)st;
    ((struct seen *)user)->eofs++;
}

static void on_drain(sockit_stream *st, void *user)
{
    (void)st;
    ((struct seen *)user)->drains++;
}

static void on_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    struct seen *s = user;
    s->errors++;
    s->code = code;
    snprintf(s->errmsg, sizeof s->errmsg, "%s", sockit_errmsg());
}

static void on_close(sockit_stream *st, void *user)
{
    (void)st;
    ((struct seen *)user)->closes++;
}

static const sockit_stream_callbacks seen_callbacks = {
    .on_data = on_data,
    .on_eof = on_eof,
    .on_drain = on_drain,
    .on_error = on_error,
    .on_close = on_close,
};

struct rig {
    sockit_loop *loop;
    sockit_stream *st;
    int peer;
    struct pairs filter;
    struct seen seen;
};

static void rig_open(struct rig *r)
{
    memset(r, 0, sizeof *r);
    r->filter.half = -1;
    r->loop = new_loop();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    r->peer = sv[1];
    r->st = sockit_stream_new_fd(r->loop, sv[0], true, &seen_callbacks, &r->seen);
    assert_sock(r->st);
    assert_ok(sockit__stream_set_filter(r->st, &pairs_ops, &r->filter));
}

static void rig_close(struct rig *r)
{
    if (r->seen.closes == 0) {
        sockit_stream_abort(r->st);
        RUN_UNTIL(r->loop, r->seen.closes == 1, 2.0);
    }
    assert_int_equal(r->seen.closes, 1);
    /* The filter is freed once, whatever ended the stream. */
    assert_int_equal(r->filter.frees, 1);
    if (r->peer >= 0)
        close(r->peer);
    for (int i = 0; i < 5; i++)
        sockit_loop_run_once(r->loop, 0);
    assert_ok(sockit_loop_close(r->loop));
}

static void peer_send(struct rig *r, const void *data, size_t len)
{
    assert_int_equal(send(r->peer, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads what the peer has, running the loop, until want bytes came or 2 s. */
static size_t peer_read(struct rig *r, char *buf, size_t want)
{
    size_t got = 0;
    double until = harness_now() + 2.0;
    while (got < want && harness_now() < until) {
        ssize_t n = recv(r->peer, buf + got, want - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0)
            break;
        else
            sockit_loop_run_once(r->loop, 0.01);
    }
    return got;
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_bytes_are_transformed_both_ways(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    char wire[16];
    encode("hello", wire);
    peer_send(&r, wire, 10);
    RUN_UNTIL(r.loop, r.seen.len == 5, 2.0);
    assert_int_equal(r.seen.len, 5);
    assert_memory_equal(r.seen.data, "hello", 5);
    assert_ok(sockit_stream_write(r.st, "world", 5));
    char got[16], want[16];
    encode("world", want);
    assert_int_equal(peer_read(&r, got, 10), 10);
    assert_memory_equal(got, want, 10);
    rig_close(&r);
}

static void test_a_pair_split_across_reads_is_decoded_whole(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    char wire[2];
    encode("x", wire);
    peer_send(&r, wire, 1);
    RUN_UNTIL(r.loop, r.filter.wire_calls == 1, 2.0);
    assert_int_equal(r.seen.len, 0); /* half a pair is no user byte yet */
    peer_send(&r, wire + 1, 1);
    RUN_UNTIL(r.loop, r.seen.len == 1, 2.0);
    assert_int_equal(r.seen.len, 1);
    assert_int_equal(r.seen.data[0], 'x');
    rig_close(&r);
}

static void test_the_filter_answers_on_the_wire_by_itself(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    peer_send(&r, "??", 2);
    char got[2];
    assert_int_equal(peer_read(&r, got, 2), 2);
    assert_memory_equal(got, "!!", 2);
    assert_int_equal(r.seen.len, 0); /* nothing of it was the user's */
    assert_int_equal(r.filter.user_calls, 0);
    rig_close(&r);
}

static void test_a_filter_error_ends_the_stream_naming_the_filter(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    peer_send(&r, "EE", 2);
    RUN_UNTIL(r.loop, r.seen.closes == 1, 2.0);
    assert_int_equal(r.seen.errors, 1);
    assert_int_equal(r.seen.code, -EPROTO);
    assert_non_null(strstr(r.seen.errmsg, "pairs"));
    rig_close(&r);
}

static void test_end_of_stream_inside_a_pair_is_the_filters_error(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    peer_send(&r, "a", 1);
    shutdown(r.peer, SHUT_WR);
    RUN_UNTIL(r.loop, r.seen.closes == 1, 2.0);
    assert_int_equal(r.seen.code, -EPROTO);
    assert_int_equal(r.seen.eofs, 0);
    rig_close(&r);
}

static void test_a_clean_end_of_stream_reaches_on_eof(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    char wire[4];
    encode("ok", wire);
    peer_send(&r, wire, 4);
    shutdown(r.peer, SHUT_WR);
    RUN_UNTIL(r.loop, r.seen.eofs == 1, 2.0);
    assert_int_equal(r.seen.eofs, 1);
    assert_int_equal(r.seen.len, 2);
    assert_int_equal(r.seen.errors, 0);
    rig_close(&r);
}

/* Fills the kernel's buffers (the peer reads nothing) until a write is queued. */
/* Writes until the kernel takes no more: the queue keeps bytes after the loop has
 * had time to hand them over (a completion backend queues every write until its
 * next wait, so the queue alone does not say the kernel is full). */
static void fill_kernel(struct rig *r)
{
    char block[1000];
    memset(block, 'q', sizeof block);
    for (int i = 0; i < 10000 && sockit_stream_queued(r->st) == 0; i++) {
        assert_ok(sockit_stream_write(r->st, block, sizeof block));
        for (int k = 0; k < 3 && sockit_stream_queued(r->st) > 0; k++)
            sockit_loop_run_once(r->loop, 0.005);
    }
    assert_true(sockit_stream_queued(r->st) > 0);
}

static void test_the_hard_limit_counts_user_bytes_not_wire_bytes(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    int small = 4096;
    setsockopt(sockit_stream_fd(r.st), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    fill_kernel(&r);
    size_t q = sockit_stream_queued(r.st);
    /* A user write of 1,000 bytes is 2,000 on the wire: with 1,500 of room, it fits
     * only if the limit counts what the user wrote. */
    assert_ok(sockit_stream_set_watermarks(r.st, 10, 100, q + 1500));
    char block[1000];
    memset(block, 'r', sizeof block);
    assert_ok(sockit_stream_write(r.st, block, sizeof block));
    assert_int_equal(sockit_stream_queued(r.st), q + 1000);
    assert_code(sockit_stream_write(r.st, block, sizeof block), -ENOBUFS);
    assert_int_equal(sockit_stream_queued(r.st), q + 1000);
    assert_true(sockit_stream_write_blocked(r.st));
    /* The peer reads everything: the count falls to 0 and on_drain comes. */
    char sink[65536];
    double until = harness_now() + 3.0;
    while (sockit_stream_queued(r.st) > 0 && harness_now() < until) {
        while (recv(r.peer, sink, sizeof sink, 0) > 0)
            continue;
        sockit_loop_run_once(r.loop, 0.01);
    }
    assert_int_equal(sockit_stream_queued(r.st), 0);
    assert_int_equal(r.seen.drains, 1);
    assert_false(sockit_stream_write_blocked(r.st));
    rig_close(&r);
}

static void write_done(sockit_stream *st, int status, void *arg)
{
    (void)st;
    struct seen *s = arg;
    s->dones++;
    s->done_status = status;
}

static void test_write_ref_is_done_when_its_wire_bytes_are_gone(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    int small = 4096;
    setsockopt(sockit_stream_fd(r.st), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    fill_kernel(&r);
    static const char mine[] = "zero copy";
    assert_ok(sockit_stream_write_ref(r.st, mine, 9, write_done, &r.seen));
    sockit_loop_run_once(r.loop, 0.05);
    assert_int_equal(r.seen.dones, 0); /* its wire bytes wait behind the queue */
    char sink[65536];
    double until = harness_now() + 3.0;
    while (r.seen.dones == 0 && harness_now() < until) {
        while (recv(r.peer, sink, sizeof sink, 0) > 0)
            continue;
        sockit_loop_run_once(r.loop, 0.01);
    }
    assert_int_equal(r.seen.dones, 1);
    assert_int_equal(r.seen.done_status, 0);
    /* With nothing queued it is done at once (from the loop). */
    assert_ok(sockit_stream_write_ref(r.st, mine, 9, write_done, &r.seen));
    assert_int_equal(r.seen.dones, 1);
    RUN_UNTIL(r.loop, r.seen.dones == 2, 2.0);
    assert_int_equal(r.seen.dones, 2);
    rig_close(&r);
}

static void test_shutdown_sends_the_filters_end_before_the_half_close(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    assert_ok(sockit_stream_write(r.st, "ab", 2));
    assert_ok(sockit_stream_shutdown(r.st));
    char got[16], want[8];
    encode("ab", want);
    memcpy(want + 4, "BB", 2);
    assert_int_equal(peer_read(&r, got, 7), 6); /* then end of stream */
    assert_memory_equal(got, want, 6);
    assert_int_equal(r.filter.ends, 1);
    /* A close after it does not end the user's side twice. */
    sockit_stream_close(r.st, 1.0);
    RUN_UNTIL(r.loop, r.seen.closes == 1, 2.0);
    assert_int_equal(r.filter.ends, 1);
    rig_close(&r);
}

static void test_close_sends_the_filters_end_then_closes(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    sockit_stream_close(r.st, 1.0);
    char got[4];
    assert_int_equal(peer_read(&r, got, 3), 2);
    assert_memory_equal(got, "BB", 2);
    RUN_UNTIL(r.loop, r.seen.closes == 1, 2.0);
    rig_close(&r);
}

static void test_a_filter_is_set_before_any_byte_and_once(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    struct pairs other = {.half = -1};
    assert_code(sockit__stream_set_filter(r.st, &pairs_ops, &other), -EEXIST);
    rig_close(&r);

    /* A stream with bytes queued already cannot take one. */
    sockit_loop *loop = new_loop();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    struct seen seen = {0};
    sockit_stream *st = sockit_stream_new_fd(loop, sv[0], true, &seen_callbacks, &seen);
    assert_sock(st);
    char block[65536] = {0};
    while (sockit_stream_queued(st) == 0)
        assert_ok(sockit_stream_write(st, block, sizeof block));
    assert_code(sockit__stream_set_filter(st, &pairs_ops, &other), -EBUSY);
    assert_code(sockit__stream_set_filter(st, NULL, &other), -EINVAL);
    sockit_stream_abort(st);
    RUN_UNTIL(loop, seen.closes == 1, 2.0);
    assert_int_equal(other.frees, 0);
    close(sv[1]);
    for (int i = 0; i < 5; i++)
        sockit_loop_run_once(loop, 0);
    assert_ok(sockit_loop_close(loop));
}

/* on_data ends the stream while on_wire is still decoding (one read holds two
 * lines): the filter's context must outlive the filter's own call. */
static void test_a_stream_aborted_from_on_data_inside_on_wire(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    r.seen.abort_on_data = true;
    assert_ok(sockit_stream_read_lines(r.st, 0));
    char wire[32];
    encode("a\nbb\n", wire);
    peer_send(&r, wire, 10);
    RUN_UNTIL(r.loop, r.seen.closes == 1, 2.0);
    assert_int_equal(r.seen.closes, 1);
    assert_int_equal(r.seen.len, 2); /* "a\n", and nothing after the abort */
    rig_close(&r);
}

/* A peer that makes the filter talk (pings) and never reads what it answers: the
 * filter's own bytes are bounded too, and the stream ends with -ENOBUFS. */
static void test_the_filters_own_bytes_are_bounded(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    int small = 4096;
    setsockopt(sockit_stream_fd(r.st), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(r.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    assert_ok(sockit_stream_set_watermarks(r.st, 100, 1000, 4000));
    char pings[4096];
    memset(pings, '?', sizeof pings);
    double until = harness_now() + 5.0;
    while (r.seen.closes == 0 && harness_now() < until) {
        (void)send(r.peer, pings, sizeof pings, MSG_NOSIGNAL | MSG_DONTWAIT);
        sockit_loop_run_once(r.loop, 0.001);
    }
    assert_int_equal(r.seen.closes, 1);
    assert_int_equal(r.seen.code, -ENOBUFS);
    rig_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_bytes_are_transformed_both_ways),
        harness_test(test_a_pair_split_across_reads_is_decoded_whole),
        harness_test(test_the_filter_answers_on_the_wire_by_itself),
        harness_test(test_a_filter_error_ends_the_stream_naming_the_filter),
        harness_test(test_end_of_stream_inside_a_pair_is_the_filters_error),
        harness_test(test_a_clean_end_of_stream_reaches_on_eof),
        harness_test(test_the_hard_limit_counts_user_bytes_not_wire_bytes),
        harness_test(test_write_ref_is_done_when_its_wire_bytes_are_gone),
        harness_test(test_shutdown_sends_the_filters_end_before_the_half_close),
        harness_test(test_close_sends_the_filters_end_then_closes),
        harness_test(test_a_filter_is_set_before_any_byte_and_once),
        harness_test(test_a_stream_aborted_from_on_data_inside_on_wire),
        harness_test(test_the_filters_own_bytes_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
