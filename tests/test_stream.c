/* sockit_stream (sockit.h section 10): delivery, framing, the write queue and its
 * watermarks, zero-copy writes, pause/resume, half-close, closing (drained, lingering,
 * aborted), the idle timeout, the one error then on_close, closing from inside every
 * callback, descriptors that are not sockets, and injected short writes, EAGAIN and
 * EINTR. Runs once per backend (CTest entries test_stream_epoll and test_stream_poll
 * set SOCKIT_LOOP_BACKEND).
 *
 * The peer of a stream is a plain socket driven by the test in the loop's thread with
 * non-blocking recv(2)/send(2) on its descriptor (not through sockit, so an injected
 * fault only reaches the stream), except the echo test, whose peer is a blocking
 * sockit in a helper thread. Every wait is a loop of sockit_loop_run_once with a
 * deadline, so a broken stream fails the test instead of hanging it. */
#include "harness.h"
#include "loop_harness.h"
#include "sys.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the loop ------------------------------------------------------------------- */

static bool is_epoll(const sockit_loop *loop)
{
    return strcmp(sockit_loop_backend(loop), "epoll") == 0;
}

/* ---- what a stream's callbacks saw ---------------------------------------------- */

enum { MAX_FRAMES = 64 };

struct rec {
    sockit_stream *st; /* NULL once on_close ran */
    char *data;        /* everything on_data got, concatenated */
    size_t len, cap;
    int frames;
    size_t frame_off[MAX_FRAMES], frame_len[MAX_FRAMES];
    int eofs, drains, errors, closes;
    int code;         /* on_error's */
    char errmsg[256]; /* sockit_errmsg() inside on_error */
    char log[128];    /* 'd' data, 'e' eof, 'w' drain, 'E' error, 'C' close */
    int nlog;
    bool ended; /* the test closed or aborted it, or on_error ran */
    int late;   /* callbacks other than on_close after it ended, or after on_close */
    size_t queued_at_drain;
    bool blocked_at_drain;
    int fd_at_close;
    void *user_at_close;
    int write_in_close; /* sockit_stream_write from inside on_close */
    /* Actions the callbacks take after recording. */
    char close_on; /* close from inside this callback ('d', 'e', 'w', 'E') */
    double close_linger;
    bool abort_too; /* and abort right after the close */
    bool pause_on_first;
    bool echo; /* on_data writes the bytes back */
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof *r);
    r->fd_at_close = -2;
}

static void rec_free(struct rec *r) { free(r->data); }

static void rec_log(struct rec *r, char ev)
{
    if (r->nlog < (int)sizeof r->log - 1)
        r->log[r->nlog++] = ev;
    if (r->closes > 0 || (r->ended && ev != 'C'))
        r->late++;
}

static void rec_act(struct rec *r, sockit_stream *st, char ev)
{
    if (r->close_on != ev)
        return;
    r->ended = true;
    sockit_stream_close(st, r->close_linger);
    if (r->abort_too)
        sockit_stream_abort(st);
}

static void on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    struct rec *r = user;
    rec_log(r, 'd');
    if (r->frames < MAX_FRAMES) {
        r->frame_off[r->frames] = r->len;
        r->frame_len[r->frames] = len;
    }
    r->frames++;
    if (r->len + len + 1 > r->cap) {
        r->cap = (r->len + len + 1) * 2;
        r->data = realloc(r->data, r->cap);
        assert_non_null(r->data);
    }
    memcpy(r->data + r->len, data, len);
    r->len += len;
    r->data[r->len] = '\0';
    if (r->echo)
        assert_ok(sockit_stream_write(st, data, len));
    if (r->pause_on_first && r->frames == 1)
        sockit_stream_pause(st);
    rec_act(r, st, 'd');
}

static void on_eof(sockit_stream *st, void *user)
{
    struct rec *r = user;
    rec_log(r, 'e');
    r->eofs++;
    rec_act(r, st, 'e');
}

static void on_drain(sockit_stream *st, void *user)
{
    struct rec *r = user;
    rec_log(r, 'w');
    r->drains++;
    r->queued_at_drain = sockit_stream_queued(st);
    r->blocked_at_drain = sockit_stream_write_blocked(st);
    rec_act(r, st, 'w');
}

static void on_error(sockit_stream *st, int code, void *user)
{
    struct rec *r = user;
    rec_log(r, 'E');
    r->errors++;
    r->code = code;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", sockit_errmsg());
    rec_act(r, st, 'E');
    r->ended = true; /* the stream is closed right after on_error returns */
}

static void on_close(sockit_stream *st, void *user)
{
    struct rec *r = user;
    rec_log(r, 'C');
    r->closes++;
    r->fd_at_close = sockit_stream_fd(st);
    r->user_at_close = sockit_stream_user(st);
    r->write_in_close = sockit_stream_write(st, "x", 1);
    r->st = NULL;
    r->ended = true;
}

static const sockit_stream_callbacks rec_cb = {.on_data = on_data,
                                               .on_eof = on_eof,
                                               .on_drain = on_drain,
                                               .on_error = on_error,
                                               .on_close = on_close};
/* No on_eof: the stream closes itself once the queue has drained. */
static const sockit_stream_callbacks rec_cb_no_eof = {
    .on_data = on_data, .on_drain = on_drain, .on_error = on_error, .on_close = on_close};
/* A write-only descriptor (a pipe's write end, stdout). */
static const sockit_stream_callbacks rec_cb_no_data = {
    .on_eof = on_eof, .on_drain = on_drain, .on_error = on_error, .on_close = on_close};

/* The test ends the stream itself. */
static void rec_close(struct rec *r, double linger)
{
    r->ended = true;
    sockit_stream_close(r->st, linger);
}

static void rec_abort(struct rec *r)
{
    r->ended = true;
    sockit_stream_abort(r->st);
}

/* Waits for on_close and checks it ran once and nothing came after it. */
static void wait_closed(sockit_loop *loop, struct rec *r)
{
    RUN_UNTIL(loop, r->closes > 0, 5.0);
    run_for(loop, 0.01);
    assert_int_equal(r->closes, 1);
    assert_int_equal(r->late, 0);
    assert_int_equal(r->log[r->nlog - 1], 'C');
    assert_null(r->st);
    assert_code(r->write_in_close, -EPIPE);
}

/* ---- peers ---------------------------------------------------------------------- */

/* A connected TCP pair on loopback: *ours becomes the stream, *peer is driven by the
 * test. Small buffers on both, so a megabyte of writes fills the kernel. */
static void tcp_pair(sockit **ours, sockit **peer, bool small)
{
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit *c = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(c);
    if (small)
        assert_ok(sockit_set_rcvbuf(c, 8192));
    assert_ok(sockit_connect(c, "127.0.0.1", port));
    sockit *s = sockit_accept(l, NULL);
    assert_sock(s);
    if (small)
        assert_ok(sockit_set_sndbuf(s, 8192));
    assert_ok(sockit_close(l));
    *ours = s;
    *peer = c;
}

static void unix_pair(sockit **ours, sockit **peer)
{
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, p));
    *ours = p[0];
    *peer = p[1];
}

static void peer_send(sockit *peer, const void *buf, size_t len)
{
    assert_int_equal(send(sockit_fileno(peer), buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* What the peer has read so far, and how its last read ended. */
struct sink {
    unsigned char *buf;
    size_t len, cap;
    bool eof;
    int err; /* -errno of a failed read, 0 if none */
};

static void sink_init(struct sink *k, size_t cap)
{
    memset(k, 0, sizeof *k);
    k->cap = cap;
    k->buf = malloc(cap > 0 ? cap : 1);
    assert_non_null(k->buf);
}

/* Reads what is there without waiting. */
static void sink_poll(sockit *peer, struct sink *k)
{
    while (!k->eof && k->err == 0) {
        unsigned char tmp[65536];
        ssize_t n = recv(sockit_fileno(peer), tmp, sizeof tmp, MSG_DONTWAIT);
        if (n > 0) {
            size_t keep = k->len + (size_t)n <= k->cap ? (size_t)n : k->cap - k->len;
            memcpy(k->buf + k->len, tmp, keep);
            k->len += keep;
            if (keep < (size_t)n)
                k->err = -ENOSPC; /* more than the test ever wrote */
        } else if (n == 0) {
            k->eof = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else if (errno != EINTR) {
            k->err = -errno;
        }
    }
}

/* Runs the loop while the peer reads, until it has want bytes (and, if until_end, the
 * end of stream or an error) or secs pass. */
static void sink_drain(sockit_loop *loop, sockit *peer, struct sink *k, size_t want, bool until_end,
                       double secs)
{
    double until = harness_now() + secs;
    for (;;) {
        sink_poll(peer, k);
        bool done = until_end ? (k->eof || k->err != 0) : k->len >= want || k->eof || k->err;
        if (done || harness_now() >= until)
            return;
        sockit_loop_run_once(loop, 0.005);
    }
}

static unsigned char pat(size_t i) { return (unsigned char)((i * 131u + (i >> 13)) & 0xff); }

static unsigned char *pattern(size_t len)
{
    unsigned char *p = malloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = pat(i);
    return p;
}

/* Writes until the kernel holds no more and the stream has queued at least `least`. */
static size_t fill(sockit_stream *st, size_t least)
{
    static char chunk[65536];
    memset(chunk, 'f', sizeof chunk);
    size_t total = 0;
    for (int i = 0; i < 1024 && sockit_stream_queued(st) < least; i++) {
        assert_ok(sockit_stream_write(st, chunk, sizeof chunk));
        total += sizeof chunk;
    }
    assert_true(sockit_stream_queued(st) >= least);
    return total;
}

static void set_linger0(sockit *s) { assert_ok(sockit_set_linger(s, true, 0)); }

/* ---- delivery ------------------------------------------------------------------- */

static void test_on_data_delivers_what_the_peer_sent(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, false);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    peer_send(peer, "hello, stream", 13);
    RUN_UNTIL(loop, r.len >= 13, 5.0);
    assert_int_equal(r.len, 13);
    assert_memory_equal(r.data, "hello, stream", 13);
    assert_int_equal(r.eofs + r.errors + r.closes, 0);
    /* The peer ends its side: on_eof, and the stream stays open until closed. */
    assert_ok(sockit_shutdown(peer, SHUT_WR));
    RUN_UNTIL(loop, r.eofs > 0, 5.0);
    assert_int_equal(r.eofs, 1);
    run_for(loop, 0.05);
    assert_int_equal(r.closes, 0);
    assert_ok(sockit_stream_write(r.st, "still", 5)); /* writing still works */
    struct sink k;
    sink_init(&k, 64);
    sink_drain(loop, peer, &k, 5, false, 5.0);
    assert_int_equal(k.len, 5);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    assert_int_equal(r.errors, 0);
    /* one on_data, or several when the bytes came in parts (short receives) */
    size_t datas = strspn(r.log, "d");
    assert_true(datas >= 1);
    assert_string_equal(r.log + datas, "eC");
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_true(k.eof);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* The peer is a blocking sockit in another thread: it sends 300 KB, ends its side and
 * reads the echo to the end. The stream has no on_eof, so it closes once the echo has
 * drained. */
struct echo_client {
    int port;
    size_t len;
    int result; /* 1: echo intact then end of stream; < 0: what failed */
};

static void *echo_client_main(void *arg)
{
    struct echo_client *ec = arg;
    sockit *c = sockit_create_connection("127.0.0.1", ec->port, 5.0, NULL);
    if (c == NULL) {
        ec->result = -1;
        return NULL;
    }
    unsigned char *out = malloc(ec->len), *in = malloc(ec->len);
    for (size_t i = 0; i < ec->len; i++)
        out[i] = pat(i);
    ec->result = -2;
    /* Sending it all before reading could deadlock a stream that did not queue, so
     * send in pieces while the echo comes back in the same order. */
    size_t got = 0;
    for (size_t off = 0; off < ec->len; off += 10000) {
        size_t n = ec->len - off < 10000 ? ec->len - off : 10000;
        if (sockit_sendall(c, out + off, n, 0, NULL) != (ssize_t)n)
            goto out;
        if (off % 50000 == 0) {
            ssize_t m = sockit_recv(c, in + got, ec->len - got, 0);
            if (m <= 0)
                goto out;
            got += (size_t)m;
        }
    }
    ec->result = -3;
    if (sockit_shutdown(c, SHUT_WR) < 0)
        goto out;
    ec->result = -4;
    if (got < ec->len && sockit_recv_exact(c, in + got, ec->len - got, NULL) < 0)
        goto out;
    ec->result = -5;
    if (memcmp(in, out, ec->len) != 0)
        goto out;
    ec->result = -6;
    char one;
    if (sockit_recv(c, &one, 1, 0) != 0)
        goto out;
    ec->result = 1;
out:
    free(out);
    free(in);
    sockit_close(c);
    return NULL;
}

static void test_echo_round_trip_with_a_blocking_peer_thread(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct echo_client ec = {0, 300000, 0};
    sockit *l = harness_tcp_listener(AF_INET, &ec.port);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, echo_client_main, &ec), 0);
    assert_ok(sockit_settimeout(l, 5.0));
    sockit *s = sockit_accept(l, NULL);
    assert_sock(s);
    assert_ok(sockit_close(l));
    struct rec r;
    rec_init(&r);
    r.echo = true;
    r.st = sockit_stream_new(loop, s, &rec_cb_no_eof, &r);
    assert_sock(r.st);
    RUN_UNTIL(loop, r.closes > 0, 8.0);
    pthread_join(t, NULL);
    assert_int_equal(ec.result, 1);
    assert_int_equal(r.len, ec.len);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.late, 0);
    rec_free(&r);
    close_loop(loop);
}

/* ---- writing -------------------------------------------------------------------- */

/* On readiness backends a write the kernel takes whole is sent inside the call; on
 * a completion backend (uring) it is queued and leaves with the next wait. Either
 * way nothing waits past one iteration and the watermark is not passed. Under
 * injected faults the kernel may take part or nothing: then it all still arrives. */
static void test_write_the_kernel_takes_whole_queues_nothing(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, false);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    unsigned char *src = pattern(1000);
    assert_ok(sockit_stream_write(r.st, src, 1000));
    bool completes = strcmp(sockit_loop_backend(loop), "uring") == 0;
    bool faults = getenv("SOCKIT_FAULTS") != NULL;
    if (!faults)
        assert_int_equal(sockit_stream_queued(r.st), completes ? 1000 : 0);
    assert_false(sockit_stream_write_blocked(r.st));
    assert_ok(sockit_stream_write(r.st, src, 0)); /* nothing is fine */
    assert_true(sockit_loop_run_once(loop, 1.0) >= 0);
    if (completes || faults)
        RUN_UNTIL(loop, sockit_stream_queued(r.st) == 0, 2.0);
    assert_int_equal(sockit_stream_queued(r.st), 0);
    struct sink k;
    sink_init(&k, 2000);
    sink_drain(loop, peer, &k, 1000, false, 5.0);
    assert_int_equal(k.len, 1000);
    assert_memory_equal(k.buf, src, 1000);
    assert_int_equal(r.drains, 0); /* never passed the high watermark */
    rec_close(&r, -1);
    wait_closed(loop, &r);
    free(src);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_write_queues_past_high_and_drains_to_low(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    size_t total = 1 << 20;
    unsigned char *src = pattern(total);
    assert_ok(sockit_stream_write(r.st, src, total));
    size_t q = sockit_stream_queued(r.st);
    assert_true(q > 0);
    assert_true(q <= total);
    assert_true(q > 64 * 1024); /* the kernel holds far less than a megabyte here */
    assert_true(sockit_stream_write_blocked(r.st));
    /* The peer does not read: nothing drains, the queue stays. */
    run_for(loop, 0.1);
    assert_int_equal(r.drains, 0);
    assert_true(sockit_stream_write_blocked(r.st));
    assert_true(sockit_stream_queued(r.st) > 64 * 1024);
    /* The peer reads: on_drain once the queue is at the low watermark (16 KiB). */
    struct sink k;
    sink_init(&k, total);
    sink_drain(loop, peer, &k, total, false, 5.0);
    assert_int_equal(k.len, total);
    assert_memory_equal(k.buf, src, total);
    RUN_UNTIL(loop, r.drains > 0, 1.0);
    assert_int_equal(r.drains, 1);
    assert_true(r.queued_at_drain <= 16 * 1024);
    assert_false(r.blocked_at_drain);
    assert_int_equal(sockit_stream_queued(r.st), 0);
    assert_false(sockit_stream_write_blocked(r.st));
    rec_close(&r, -1);
    wait_closed(loop, &r);
    assert_int_equal(r.errors, 0);
    free(src);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_watermarks_set_by_the_caller_decide_blocked_and_drain(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_set_watermarks(r.st, 100000, 200000, 1 << 22));
    size_t total = fill(r.st, 1);
    size_t q = sockit_stream_queued(r.st);
    assert_true(q < 200000); /* one chunk past the kernel */
    assert_false(sockit_stream_write_blocked(r.st));
    static char more[200000];
    assert_ok(sockit_stream_write(r.st, more, sizeof more));
    total += sizeof more;
    assert_true(sockit_stream_write_blocked(r.st));
    struct sink k;
    sink_init(&k, total);
    sink_drain(loop, peer, &k, total, false, 5.0);
    assert_int_equal(k.len, total);
    RUN_UNTIL(loop, r.drains > 0, 1.0);
    assert_int_equal(r.drains, 1);
    assert_true(r.queued_at_drain <= 100000);
    /* At the low watermark, not once the queue is empty: the kernel takes far less
     * than 100000 bytes per flush, so the queue passes through (0, 100000]. */
    assert_true(r.queued_at_drain > 0);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_write_past_the_hard_limit_is_enobufs_and_queues_nothing(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    const size_t limit = 256 * 1024;
    assert_ok(sockit_stream_set_watermarks(r.st, 1024, 4096, limit));
    fill(r.st, 1); /* the kernel is full; the queue holds something */
    size_t q = sockit_stream_queued(r.st);
    assert_true(q > 0 && q <= limit);
    static char big[256 * 1024 + 1];
    /* Up to the limit is taken; one byte more is refused whole. */
    assert_ok(sockit_stream_write(r.st, big, limit - q));
    assert_true(sockit_stream_queued(r.st) <= limit);
    q = sockit_stream_queued(r.st);
    assert_code(sockit_stream_write(r.st, big, limit - q + 1), -ENOBUFS);
    assert_int_equal(sockit_stream_queued(r.st), q);
    assert_code(sockit_stream_write(r.st, big, sizeof big), -ENOBUFS);
    assert_int_equal(sockit_stream_queued(r.st), q);
    /* A zero-copy write past it is refused too, and its done is never called. */
    int done_calls = 0;
    assert_code(sockit_stream_write_ref(r.st, big, sizeof big, NULL, &done_calls), -ENOBUFS);
    assert_int_equal(sockit_stream_queued(r.st), q);
    /* A producer that ignores the refusals against a peer that never reads: the
     * queue never grows past the limit, and the stream lives on. */
    int refused = 0;
    for (int i = 0; i < 200; i++) {
        int rc = sockit_stream_write(r.st, big, 65536);
        assert_true(rc == 0 || rc == -ENOBUFS);
        refused += rc == -ENOBUFS;
        assert_true(sockit_stream_queued(r.st) <= limit);
        if (i % 20 == 0)
            sockit_loop_run_once(loop, 0);
    }
    assert_true(refused > 150);
    assert_int_equal(r.errors + r.closes, 0);
    rec_abort(&r);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Lowering the hard limit under what is queued: every write is refused until the
 * queue is back under it. */
static void test_limit_lowered_below_the_queue_refuses_writes(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    fill(r.st, 300000);
    size_t q = sockit_stream_queued(r.st);
    assert_ok(sockit_stream_set_watermarks(r.st, 1000, 10000, 100000));
    int rc = sockit_stream_write(r.st, "x", 1);
    if (rc != -ENOBUFS)
        fail_msg("with %zu bytes queued and the limit lowered to 100000, a 1-byte write "
                 "returned %d (%s), not -ENOBUFS; queued now %zu",
                 q, rc, sockit_errname(rc), sockit_stream_queued(r.st));
    assert_int_equal(sockit_stream_queued(r.st), q);
    rec_abort(&r);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* An allocation that fails inside a write: either the write succeeds whole, or it
 * fails having taken nothing, so a caller that retries does not send bytes twice. */
static void test_write_that_fails_for_memory_has_sent_nothing(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    size_t total = 1 << 20;
    unsigned char *src = pattern(total);
    harness_inject(HARNESS_OP(SOCKIT__SYS_ALLOC), ENOMEM, 1, 0);
    int rc = sockit_stream_write(r.st, src, total);
    int hit = harness_injected();
    harness_inject(0, 0, 0, 0);
    struct sink k;
    sink_init(&k, total);
    sink_drain(loop, peer, &k, rc == 0 ? total : 1, false, rc == 0 ? 5.0 : 0.3);
    if (rc < 0 && k.len > 0)
        fail_msg("stream_write failed with %s after the peer got %zu of its bytes: a "
                 "caller that retries sends them twice",
                 sockit_errname(rc), k.len);
    if (rc == 0)
        assert_int_equal(k.len, total);
    assert_true(hit <= 1);
    rec_abort(&r);
    wait_closed(loop, &r);
    free(src);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

struct done_log {
    int calls;
    int status;
    struct rec *r;   /* the stream's record, if the test wants order checked */
    int after_close; /* calls after its on_close (the stream was freed by then) */
};

static void write_done(sockit_stream *st, int status, void *arg)
{
    (void)st;
    struct done_log *d = arg;
    if (d->r != NULL && d->r->closes > 0)
        d->after_close++;
    d->calls++;
    d->status = status;
}

static void test_write_ref_done_once_with_zero_after_the_bytes_went_out(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    /* Small: the kernel takes it at once. */
    static const char small[] = "zero copy";
    struct done_log d1 = {0};
    assert_ok(sockit_stream_write_ref(r.st, small, 9, write_done, &d1));
    assert_int_equal(d1.calls, 0); /* always from the loop */
    RUN_UNTIL(loop, d1.calls > 0, 5.0);
    assert_int_equal(d1.calls, 1);
    assert_int_equal(d1.status, 0);
    /* Large: most of it waits for the peer; done only once all of it went out. */
    size_t total = 1 << 20;
    unsigned char *src = pattern(total);
    struct done_log d2 = {0};
    assert_ok(sockit_stream_write_ref(r.st, src, total, write_done, &d2));
    assert_true(sockit_stream_queued(r.st) > 0);
    run_for(loop, 0.05);
    assert_int_equal(d2.calls, 0);
    struct sink k;
    sink_init(&k, total + 9);
    sink_drain(loop, peer, &k, total + 9, false, 5.0);
    assert_int_equal(k.len, total + 9);
    assert_memory_equal(k.buf, small, 9);
    assert_memory_equal(k.buf + 9, src, total);
    RUN_UNTIL(loop, d2.calls > 0, 2.0);
    run_for(loop, 0.02);
    assert_int_equal(d2.calls, 1);
    assert_int_equal(d2.status, 0);
    assert_int_equal(d1.calls, 1);
    /* done may be NULL. */
    assert_ok(sockit_stream_write_ref(r.st, small, 9, NULL, NULL));
    rec_close(&r, -1);
    wait_closed(loop, &r);
    free(src);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_write_ref_done_gets_a_code_when_the_stream_is_aborted_first(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    fill(r.st, 1);
    static char buf[100000];
    struct done_log d = {0};
    d.r = &r;
    assert_ok(sockit_stream_write_ref(r.st, buf, sizeof buf, write_done, &d));
    rec_abort(&r);
    assert_int_equal(d.calls, 0); /* never from inside abort */
    wait_closed(loop, &r);
    RUN_UNTIL(loop, d.calls > 0, 1.0);
    run_for(loop, 0.02);
    assert_int_equal(d.calls, 1);
    assert_code(d.status, -ECANCELED);
    assert_int_equal(d.after_close, 0); /* on_close is the last callback */
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* The peer resets the connection while a write is queued: one on_error (-ECONNRESET
 * or -EPIPE) naming the peer, then on_close, and the zero-copy write's done gets a
 * code. */
static void test_peer_reset_during_a_queued_write_is_one_error_then_close(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    sockit_addr local;
    assert_ok(sockit_getsockname(peer, &local));
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    fill(r.st, 200000);
    static char buf[100000];
    struct done_log d = {0};
    assert_ok(sockit_stream_write_ref(r.st, buf, sizeof buf, write_done, &d));
    set_linger0(peer);
    assert_ok(sockit_close(peer)); /* RST */
    wait_closed(loop, &r);
    assert_int_equal(r.errors, 1);
    assert_true(r.code == -ECONNRESET || r.code == -EPIPE);
    assert_string_equal(r.log, "EC");
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", sockit_addr_port(&local));
    if (strstr(r.errmsg, want) == NULL)
        fail_msg("on_error's message \"%s\" does not name the peer %s", r.errmsg, want);
    RUN_UNTIL(loop, d.calls > 0, 1.0);
    assert_int_equal(d.calls, 1);
    assert_code(d.status, r.code); /* the error that ended the stream */
    rec_free(&r);
    close_loop(loop);
}

/* Copied and zero-copy writes, mixed, with the queue full most of the time: the peer
 * gets the bytes in the order they were written. */
static void test_write_and_write_ref_mixed_keep_their_order(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    size_t total = 2 << 20;
    unsigned char *src = pattern(total);
    struct done_log d[40];
    memset(d, 0, sizeof d);
    size_t off = 0;
    int refs = 0;
    struct sink k;
    sink_init(&k, total);
    for (int i = 0; off < total; i++) {
        size_t n = (size_t)(1 + (i * 7919) % 100000);
        if (n > total - off)
            n = total - off;
        if (i % 2 == 1 && refs < 40)
            assert_ok(sockit_stream_write_ref(r.st, src + off, n, write_done, &d[refs++]));
        else
            assert_ok(sockit_stream_write(r.st, src + off, n));
        off += n;
        if (i % 5 == 0) { /* the peer reads a little now and then */
            sink_poll(peer, &k);
            sockit_loop_run_once(loop, 0);
        }
    }
    sink_drain(loop, peer, &k, total, false, 8.0);
    assert_int_equal(k.len, total);
    for (size_t i = 0; i < total; i++)
        if (k.buf[i] != src[i])
            fail_msg("byte %zu differs: got %u, wrote %u", i, k.buf[i], src[i]);
    RUN_UNTIL(loop, d[refs - 1].calls > 0, 2.0);
    for (int i = 0; i < refs; i++) {
        assert_int_equal(d[i].calls, 1);
        assert_int_equal(d[i].status, 0);
    }
    rec_close(&r, -1);
    wait_closed(loop, &r);
    free(src);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Empty writes: NULL with 0 is fine, and an empty write_ref's done still runs once. */
static void test_empty_writes_are_fine_and_done_still_runs_once(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_write(r.st, NULL, 0));
    struct done_log d1 = {0}, d2 = {0};
    assert_ok(sockit_stream_write_ref(r.st, NULL, 0, write_done, &d1));
    assert_ok(sockit_stream_write_ref(r.st, "", 0, write_done, &d2));
    assert_int_equal(d1.calls + d2.calls, 0); /* always from the loop */
    RUN_UNTIL(loop, d1.calls > 0 && d2.calls > 0, 5.0);
    run_for(loop, 0.02);
    assert_int_equal(d1.calls, 1);
    assert_int_equal(d1.status, 0);
    assert_int_equal(d2.calls, 1);
    assert_int_equal(d2.status, 0);
    assert_int_equal(sockit_stream_queued(r.st), 0);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* A producer that writes its next piece from the previous piece's done call; the
 * last done closes the stream. */
struct chain {
    const unsigned char *src;
    size_t piece, total, off;
    int dones;
    int bad_status;
    struct rec *r;
};

static void chain_done(sockit_stream *st, int status, void *arg)
{
    struct chain *c = arg;
    c->dones++;
    c->bad_status += status != 0;
    if (c->off >= c->total) {
        c->r->ended = true;
        sockit_stream_close(st, -1);
        return;
    }
    size_t n = c->total - c->off < c->piece ? c->total - c->off : c->piece;
    const unsigned char *p = c->src + c->off;
    c->off += n;
    assert_ok(sockit_stream_write_ref(st, p, n, chain_done, c));
}

static void test_write_ref_from_inside_done_chains_in_order(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    size_t total = 1 << 20;
    unsigned char *src = pattern(total);
    struct chain c = {src, 40000, total, 40000, 0, 0, &r};
    assert_ok(sockit_stream_write_ref(r.st, src, 40000, chain_done, &c));
    struct sink k;
    sink_init(&k, total);
    sink_drain(loop, peer, &k, 0, true, 8.0);
    assert_true(k.eof);
    assert_int_equal(k.len, total);
    assert_memory_equal(k.buf, src, total);
    wait_closed(loop, &r);
    assert_int_equal(c.dones, (int)((total + 39999) / 40000));
    assert_int_equal(c.bad_status, 0);
    free(src);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_bad_writes_and_writes_after_close_are_refused(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_code(sockit_stream_write(r.st, NULL, 5), -EINVAL);
    struct done_log d = {0};
    assert_code(sockit_stream_write_ref(r.st, NULL, 5, write_done, &d), -EINVAL);
    assert_int_equal(sockit_stream_queued(r.st), 0);
    /* After shutdown, writing is -EPIPE (reading goes on). */
    assert_ok(sockit_stream_shutdown(r.st));
    assert_code(sockit_stream_write(r.st, "x", 1), -EPIPE);
    assert_code(sockit_stream_write_ref(r.st, "x", 1, write_done, &d), -EPIPE);
    rec_close(&r, -1);
    /* The stream lives until on_close; it is closed already. */
    assert_code(sockit_stream_write(r.st, "x", 1), -EPIPE);
    assert_code(sockit_stream_write_ref(r.st, "x", 1, write_done, &d), -EPIPE);
    assert_code(sockit_stream_shutdown(r.st), -EPIPE);
    sockit_stream_close(r.st, -1); /* closing again does nothing */
    wait_closed(loop, &r);
    run_for(loop, 0.02);
    assert_int_equal(d.calls, 0); /* refused writes never call done */
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* ---- reading: pause, framing ---------------------------------------------------- */

static void test_pause_holds_delivery_and_resume_delivers(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    sockit_stream_pause(r.st);
    peer_send(peer, "held", 4);
    run_for(loop, 0.15);
    assert_int_equal(r.frames, 0);
    peer_send(peer, " back", 5);
    sockit_stream_resume(r.st);
    RUN_UNTIL(loop, r.len >= 9, 5.0);
    assert_string_equal(r.data, "held back");
    /* Paused, even the end of stream waits. */
    sockit_stream_pause(r.st);
    assert_ok(sockit_shutdown(peer, SHUT_WR));
    run_for(loop, 0.1);
    assert_int_equal(r.eofs, 0);
    sockit_stream_resume(r.st);
    RUN_UNTIL(loop, r.eofs > 0, 5.0);
    assert_int_equal(r.eofs, 1);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Pausing inside on_data with several lines from one read: the rest wait in the
 * stream and come first on resume, before bytes that arrived meanwhile. */
static void test_pause_inside_on_data_keeps_the_rest_of_the_read_for_resume(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.pause_on_first = true;
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_lines(r.st, 0));
    peer_send(peer, "one\ntwo\nthree\n", 14);
    RUN_UNTIL(loop, r.frames > 0, 5.0);
    run_for(loop, 0.15);
    assert_int_equal(r.frames, 1);
    assert_string_equal(r.data, "one\n");
    peer_send(peer, "four\n", 5);
    run_for(loop, 0.05);
    assert_int_equal(r.frames, 1);
    sockit_stream_resume(r.st);
    RUN_UNTIL(loop, r.frames >= 4, 5.0);
    assert_int_equal(r.frames, 4);
    assert_string_equal(r.data, "one\ntwo\nthree\nfour\n");
    assert_int_equal(r.frame_len[1], 4);
    assert_int_equal(r.frame_len[2], 6);
    assert_int_equal(r.frame_len[3], 5);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Paused inside on_data with whole frames kept, and the peer has ended its side
 * meanwhile: on resume the kept frames come one by one, in order, and then on_eof;
 * the end of stream does not turn them into one "last line" or a short frame. */
static void frames_kept_by_a_pause_then_eof(bool exact)
{
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.pause_on_first = true;
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    if (exact) {
        assert_ok(sockit_stream_read_exact(r.st, 3));
        peer_send(peer, "aaabbbccc", 9);
    } else {
        assert_ok(sockit_stream_read_lines(r.st, 0));
        peer_send(peer, "one\ntwo\nthree\n", 14);
    }
    RUN_UNTIL(loop, r.frames > 0, 5.0);
    run_for(loop, 0.05);
    assert_int_equal(r.frames, 1);
    assert_ok(sockit_shutdown(peer, SHUT_WR));
    run_for(loop, 0.05);
    assert_int_equal(r.eofs, 0); /* paused: the end waits too */
    sockit_stream_resume(r.st);
    RUN_UNTIL(loop, r.eofs > 0 || r.closes > 0, 5.0);
    run_for(loop, 0.02);
    if (r.errors > 0)
        fail_msg("%s mode: on_error %s after resume; frames %d, log \"%s\"",
                 exact ? "exact" : "lines", sockit_errname(r.code), r.frames, r.log);
    if (r.frames != 3)
        fail_msg("%s mode: %d frames after resume (want 3), the second of %zu bytes: "
                 "whole frames kept by the pause were delivered as one at end of stream",
                 exact ? "exact" : "lines", r.frames, r.frame_len[1]);
    assert_string_equal(r.log, "ddde");
    if (exact) {
        assert_string_equal(r.data, "aaabbbccc");
        for (int i = 0; i < 3; i++)
            assert_int_equal(r.frame_len[i], 3);
    } else {
        assert_string_equal(r.data, "one\ntwo\nthree\n");
        assert_int_equal(r.frame_len[1], 4);
        assert_int_equal(r.frame_len[2], 6);
    }
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_lines_kept_by_a_pause_come_one_by_one_before_eof(void **state)
{
    (void)state;
    frames_kept_by_a_pause_then_eof(false);
}

static void test_exact_frames_kept_by_a_pause_come_one_by_one_before_eof(void **state)
{
    (void)state;
    frames_kept_by_a_pause_then_eof(true);
}

static void test_read_lines_splits_and_joins_reads_into_lines(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_lines(r.st, 0));
    peer_send(peer, "hel", 3);
    run_for(loop, 0.1);
    assert_int_equal(r.frames, 0); /* no line yet */
    peer_send(peer, "lo\nwor", 6);
    RUN_UNTIL(loop, r.frames >= 1, 5.0);
    run_for(loop, 0.05);
    assert_int_equal(r.frames, 1);
    peer_send(peer, "ld\na\nbb\n\nccc\n", 13);
    RUN_UNTIL(loop, r.frames >= 6, 5.0);
    run_for(loop, 0.02);
    assert_int_equal(r.frames, 6);
    assert_string_equal(r.data, "hello\nworld\na\nbb\n\nccc\n");
    static const size_t lens[] = {6, 6, 2, 3, 1, 4};
    for (int i = 0; i < 6; i++)
        assert_int_equal(r.frame_len[i], lens[i]);
    /* Each frame is one line ending in '\n'. */
    for (int i = 0; i < 6; i++)
        assert_int_equal(r.data[r.frame_off[i] + r.frame_len[i] - 1], '\n');
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* The loop is not freed under a stream whose on_close is still to come (its memory
 * and the user's go with on_close): close is -EBUSY until the loop has run it. */
static void test_loop_close_waits_for_a_closed_streams_on_close(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    rec_close(&r, 0);
    assert_code(sockit_loop_close(loop), -EBUSY);
    assert_non_null(strstr(sockit_errmsg(), "still closing"));
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* max_line bytes without a newline may be a last line that fits, not yet one too
 * long: only the next byte decides (found by fuzz/fuzz_lines.c). */
static void test_read_lines_last_line_of_max_line_bytes_is_a_line(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_lines(r.st, 8));
    peer_send(peer, "abcd", 4);
    run_for(loop, 0.05);
    peer_send(peer, "efgh", 4); /* 8 bytes, the limit, and no '\n' yet */
    run_for(loop, 0.05);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.frames, 0);
    assert_ok(sockit_shutdown(peer, SHUT_WR));
    RUN_UNTIL(loop, r.eofs > 0, 5.0);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.frames, 1);
    assert_string_equal(r.data, "abcdefgh");
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_read_lines_limit_counts_the_newline_and_longer_is_elinelen(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_lines(r.st, 8));
    peer_send(peer, "1234567\n", 8); /* exactly max_line with its '\n' */
    RUN_UNTIL(loop, r.frames >= 1, 5.0);
    assert_int_equal(r.frames, 1);
    assert_string_equal(r.data, "1234567\n");
    peer_send(peer, "12345678\n", 9); /* one more */
    wait_closed(loop, &r);
    assert_int_equal(r.frames, 1); /* never cut */
    assert_int_equal(r.errors, 1);
    assert_code(r.code, SOCKIT_ELINELEN);
    assert_string_equal(r.log, "dEC");
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_read_lines_delivers_an_unterminated_last_line_before_eof(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_lines(r.st, 0));
    peer_send(peer, "first\nlast", 10);
    RUN_UNTIL(loop, r.frames >= 1, 5.0);
    run_for(loop, 0.05);
    assert_int_equal(r.frames, 1); /* "last" waits for its '\n' */
    assert_ok(sockit_shutdown(peer, SHUT_WR));
    RUN_UNTIL(loop, r.eofs > 0, 5.0);
    assert_int_equal(r.frames, 2);
    assert_int_equal(r.frame_len[1], 4);
    assert_string_equal(r.data, "first\nlast");
    assert_string_equal(r.log, "dde");
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* A length-prefixed protocol: a 2-byte big-endian length, then that many bytes; the
 * framing is switched from inside on_data. */
struct lp {
    struct rec r;
    bool in_body;
    int bodies;
    char body[8][400];
    size_t body_len[8];
};

static void lp_on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    struct lp *p = user;
    if (!p->in_body) {
        assert_int_equal(len, 2);
        size_t n = ((size_t)(unsigned char)data[0] << 8) | (unsigned char)data[1];
        assert_ok(sockit_stream_read_exact(st, n));
        p->in_body = true;
        return;
    }
    if (p->bodies < 8) {
        memcpy(p->body[p->bodies], data, len < 400 ? len : 400);
        p->body_len[p->bodies] = len;
    }
    p->bodies++;
    assert_ok(sockit_stream_read_exact(st, 2));
    p->in_body = false;
}

static const sockit_stream_callbacks lp_cb = {
    .on_data = lp_on_data, .on_eof = on_eof, .on_error = on_error, .on_close = on_close};

static void test_read_exact_follows_a_length_prefix_switched_inside_on_data(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct lp p;
    memset(&p, 0, sizeof p);
    rec_init(&p.r);
    p.r.st = sockit_stream_new(loop, s, &lp_cb, &p);
    assert_sock(p.r.st);
    assert_code(sockit_stream_read_exact(p.r.st, 0), -EINVAL);
    assert_ok(sockit_stream_read_exact(p.r.st, 2));
    /* Three frames in one send, then one split across sends. */
    unsigned char wire[1024];
    size_t n = 0;
    static const char *const bodies[] = {"hello", "x", NULL};
    for (int i = 0; bodies[i] != NULL; i++) {
        size_t bl = strlen(bodies[i]);
        wire[n++] = (unsigned char)(bl >> 8);
        wire[n++] = (unsigned char)bl;
        memcpy(wire + n, bodies[i], bl);
        n += bl;
    }
    wire[n++] = 300 >> 8;
    wire[n++] = 300 & 0xff;
    for (int i = 0; i < 300; i++)
        wire[n++] = (unsigned char)('a' + i % 26);
    peer_send(peer, wire, n);
    RUN_UNTIL(loop, p.bodies >= 3, 5.0);
    assert_int_equal(p.bodies, 3);
    assert_int_equal(p.body_len[0], 5);
    assert_memory_equal(p.body[0], "hello", 5);
    assert_int_equal(p.body_len[1], 1);
    assert_memory_equal(p.body[1], "x", 1);
    assert_int_equal(p.body_len[2], 300);
    assert_memory_equal(p.body[2], wire + n - 300, 300);
    peer_send(peer, "\0", 1);
    run_for(loop, 0.05);
    peer_send(peer, "\3ab", 3);
    run_for(loop, 0.05);
    assert_int_equal(p.bodies, 3);
    peer_send(peer, "c", 1);
    RUN_UNTIL(loop, p.bodies >= 4, 5.0);
    assert_int_equal(p.body_len[3], 3);
    assert_memory_equal(p.body[3], "abc", 3);
    p.r.ended = true;
    sockit_stream_close(p.r.st, -1);
    wait_closed(loop, &p.r);
    assert_int_equal(p.r.errors, 0);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* A header line, then a body whose size it gave, then lines again: the framing
 * changes from inside on_data and applies to the bytes after the current frame,
 * though they came in the same read. */
struct hb {
    struct rec r;
    bool in_body;
};

static void hb_on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    struct hb *h = user;
    on_data(st, data, len, &h->r);
    if (h->in_body) {
        assert_ok(sockit_stream_read_lines(st, 0));
        h->in_body = false;
    } else {
        assert_ok(sockit_stream_read_exact(st, (size_t)atoi(data)));
        h->in_body = true;
    }
}

static const sockit_stream_callbacks hb_cb = {
    .on_data = hb_on_data, .on_eof = on_eof, .on_error = on_error, .on_close = on_close};

static void test_framing_switches_from_lines_to_exact_inside_one_read(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct hb h;
    memset(&h, 0, sizeof h);
    rec_init(&h.r);
    h.r.st = sockit_stream_new(loop, s, &hb_cb, &h);
    assert_sock(h.r.st);
    assert_ok(sockit_stream_read_lines(h.r.st, 0));
    peer_send(peer, "5\nhe\nlo3\nab\n", 12);
    RUN_UNTIL(loop, h.r.frames >= 4, 5.0);
    run_for(loop, 0.02);
    assert_int_equal(h.r.frames, 4);
    assert_string_equal(h.r.data, "5\nhe\nlo3\nab\n");
    static const size_t lens[] = {2, 5, 2, 3};
    for (int i = 0; i < 4; i++)
        assert_int_equal(h.r.frame_len[i], lens[i]);
    h.r.ended = true;
    sockit_stream_close(h.r.st, -1);
    wait_closed(loop, &h.r);
    rec_free(&h.r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* max_line 0 is SOCKIT_LINE_MAX, the '\n' included. */
static void test_read_lines_default_limit_is_sockit_line_max(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_lines(r.st, 0));
    char *line = malloc(SOCKIT_LINE_MAX + 1);
    assert_non_null(line);
    memset(line, 'L', SOCKIT_LINE_MAX + 1);
    line[SOCKIT_LINE_MAX - 1] = '\n';
    size_t off = 0;
    while (off < SOCKIT_LINE_MAX) { /* the socket pair may take it in pieces */
        ssize_t n = send(sockit_fileno(peer), line + off, SOCKIT_LINE_MAX - off, MSG_DONTWAIT);
        if (n > 0)
            off += (size_t)n;
        sockit_loop_run_once(loop, 0.005);
    }
    RUN_UNTIL(loop, r.frames >= 1, 5.0);
    assert_int_equal(r.frames, 1);
    assert_int_equal(r.frame_len[0], SOCKIT_LINE_MAX);
    line[SOCKIT_LINE_MAX - 1] = 'L';
    line[SOCKIT_LINE_MAX] = '\n';
    off = 0;
    while (off < SOCKIT_LINE_MAX + 1 && r.closes == 0) {
        ssize_t n = send(sockit_fileno(peer), line + off, SOCKIT_LINE_MAX + 1 - off, MSG_DONTWAIT);
        if (n > 0)
            off += (size_t)n;
        sockit_loop_run_once(loop, 0.005);
    }
    wait_closed(loop, &r);
    assert_int_equal(r.frames, 1);
    assert_int_equal(r.errors, 1);
    assert_code(r.code, SOCKIT_ELINELEN);
    free(line);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Frames bigger than one read: an exact frame of 300000 bytes and a line of 150000
 * (under its max_line) are each delivered whole. */
static void test_frames_larger_than_one_read_are_delivered_whole(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_exact(r.st, 300000));
    size_t total = 300000 + 150000;
    unsigned char *src = pattern(total);
    for (size_t i = 300000; i < total - 1; i++)
        if (src[i] == '\n')
            src[i] = 'n';
    src[total - 1] = '\n';
    size_t off = 0;
    bool switched = false;
    double until = harness_now() + 8.0;
    while ((off < total || r.frames < 2) && harness_now() < until) {
        if (off < total) {
            ssize_t n = send(sockit_fileno(peer), src + off, total - off, MSG_DONTWAIT);
            if (n > 0)
                off += (size_t)n;
        }
        sockit_loop_run_once(loop, 0.005);
        if (r.frames == 1 && !switched) {
            assert_ok(sockit_stream_read_lines(r.st, 200000));
            switched = true;
        }
    }
    assert_int_equal(r.frames, 2);
    assert_int_equal(r.frame_len[0], 300000);
    assert_int_equal(r.frame_len[1], 150000);
    assert_memory_equal(r.data, src, total);
    assert_int_equal(r.errors, 0);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    free(src);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Paused inside on_data, then closed: the lines kept for resume are dropped. */
static void test_close_while_paused_with_kept_lines_drops_them(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.pause_on_first = true;
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_lines(r.st, 0));
    peer_send(peer, "1\n2\n3\n", 6);
    RUN_UNTIL(loop, r.frames > 0, 5.0);
    run_for(loop, 0.05);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    assert_int_equal(r.frames, 1);
    assert_string_equal(r.log, "dC");
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_read_exact_short_frame_at_eof_is_eeof(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_exact(r.st, 10));
    peer_send(peer, "0123456789abcd", 14);
    RUN_UNTIL(loop, r.frames >= 1, 5.0);
    assert_int_equal(r.frames, 1);
    assert_int_equal(r.frame_len[0], 10);
    assert_ok(sockit_shutdown(peer, SHUT_WR));
    wait_closed(loop, &r);
    assert_int_equal(r.frames, 1); /* the 4 bytes are never delivered */
    assert_int_equal(r.errors, 1);
    assert_code(r.code, SOCKIT_EEOF);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_read_raw_after_lines_delivers_what_each_read_brought(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_lines(r.st, 0));
    assert_ok(sockit_stream_read_raw(r.st));
    peer_send(peer, "no\nlines\nhere", 13);
    RUN_UNTIL(loop, r.len >= 13, 5.0);
    assert_int_equal(r.frames, 1);
    assert_string_equal(r.data, "no\nlines\nhere");
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* ---- ending --------------------------------------------------------------------- */

static void test_without_on_eof_the_stream_closes_after_its_queue_drains(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb_no_eof, &r);
    assert_sock(r.st);
    size_t total = 1 << 20;
    unsigned char *src = pattern(total);
    assert_ok(sockit_stream_write(r.st, src, total));
    assert_ok(sockit_shutdown(peer, SHUT_WR));
    run_for(loop, 0.1);
    assert_int_equal(r.closes, 0); /* the queue has not drained */
    struct sink k;
    sink_init(&k, total);
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_true(k.eof);
    assert_int_equal(k.err, 0);
    assert_int_equal(k.len, total);
    assert_memory_equal(k.buf, src, total);
    wait_closed(loop, &r);
    assert_int_equal(r.errors, 0);
    free(src);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_shutdown_half_closes_and_reading_goes_on(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, false);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_write(r.st, "bye", 3));
    assert_ok(sockit_stream_shutdown(r.st));
    struct sink k;
    sink_init(&k, 64);
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_true(k.eof);
    assert_int_equal(k.len, 3);
    assert_memory_equal(k.buf, "bye", 3);
    peer_send(peer, "after", 5);
    RUN_UNTIL(loop, r.len >= 5, 5.0);
    assert_string_equal(r.data, "after");
    assert_int_equal(r.closes + r.errors, 0);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Shutdown waits for the queue: the peer reads every byte, then the end. */
static void test_shutdown_with_a_full_queue_sends_it_all_first(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    size_t total = 1 << 20;
    unsigned char *src = pattern(total);
    assert_ok(sockit_stream_write(r.st, src, total));
    assert_true(sockit_stream_queued(r.st) > 0);
    assert_ok(sockit_stream_shutdown(r.st));
    assert_code(sockit_stream_write(r.st, "x", 1), -EPIPE);
    struct sink k;
    sink_init(&k, total);
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_true(k.eof);
    assert_int_equal(k.err, 0);
    assert_int_equal(k.len, total);
    assert_memory_equal(k.buf, src, total);
    peer_send(peer, "still reading", 13);
    RUN_UNTIL(loop, r.len >= 13, 5.0);
    assert_string_equal(r.data, "still reading");
    assert_int_equal(r.closes + r.errors, 0);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    free(src);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* A linger that runs out aborts: the peer is reset, the zero-copy write's done gets
 * SOCKIT_ETIMEOUT, and on_error is not called (the user closed the stream). */
static void test_close_whose_linger_runs_out_aborts(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    fill(r.st, 200000);
    static char buf[1000];
    struct done_log d = {0};
    assert_ok(sockit_stream_write_ref(r.st, buf, sizeof buf, write_done, &d));
    double t0 = harness_now();
    rec_close(&r, 0.2);
    RUN_UNTIL(loop, r.closes > 0, 3.0);
    double took = harness_now() - t0;
    wait_closed(loop, &r);
    if (took < 0.15 || took > 1.5)
        fail_msg("a 0.2 s linger ended after %.3f s", took);
    assert_int_equal(r.errors, 0);
    RUN_UNTIL(loop, d.calls > 0, 1.0);
    assert_int_equal(d.calls, 1);
    assert_code(d.status, SOCKIT_ETIMEOUT);
    struct sink k;
    sink_init(&k, 64 << 20);
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_code(k.err, -ECONNRESET);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_close_with_linger_drains_the_queue_before_closing(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    size_t total = 1 << 20;
    unsigned char *src = pattern(total);
    assert_ok(sockit_stream_write(r.st, src, total));
    assert_true(sockit_stream_queued(r.st) > 0);
    rec_close(&r, 5.0);
    assert_int_equal(r.closes, 0); /* on_close runs from the loop, never inside close */
    run_for(loop, 0.05);
    assert_int_equal(r.closes, 0); /* still draining */
    struct sink k;
    sink_init(&k, total);
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_true(k.eof);
    assert_int_equal(k.err, 0);
    assert_int_equal(k.len, total);
    assert_memory_equal(k.buf, src, total);
    wait_closed(loop, &r);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.drains, 0); /* nothing after close but on_close */
    assert_int_equal(r.fd_at_close, -1);
    free(src);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_close_with_linger_zero_and_a_full_queue_aborts(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    size_t total = 1 << 20;
    unsigned char *src = pattern(total);
    assert_ok(sockit_stream_write(r.st, src, total));
    assert_true(sockit_stream_queued(r.st) > 0);
    struct done_log d = {0};
    assert_ok(sockit_stream_write_ref(r.st, src, 1000, write_done, &d));
    rec_close(&r, 0);
    assert_int_equal(d.calls, 0); /* never from inside close */
    wait_closed(loop, &r);
    RUN_UNTIL(loop, d.calls > 0, 1.0);
    assert_int_equal(d.calls, 1);
    assert_code(d.status, -ECANCELED);
    assert_int_equal(r.errors, 0);
    struct sink k;
    sink_init(&k, total);
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_false(k.eof); /* not a clean end */
    assert_code(k.err, -ECONNRESET);
    assert_true(k.len < total);
    free(src);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* close with a NaN linger does not wait: like 0, a full queue is aborted. */
static void test_close_with_a_nan_linger_aborts_a_full_queue(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    fill(r.st, 200000);
    static char buf[1000];
    struct done_log d = {0};
    assert_ok(sockit_stream_write_ref(r.st, buf, sizeof buf, write_done, &d));
    rec_close(&r, NAN);
    wait_closed(loop, &r);
    RUN_UNTIL(loop, d.calls > 0, 1.0);
    assert_int_equal(d.calls, 1);
    assert_code(d.status, -ECANCELED);
    struct sink k;
    sink_init(&k, 64 << 20);
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_code(k.err, -ECONNRESET);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_abort_resets_the_peer(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, false);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_write(r.st, "x", 1));
    rec_abort(&r);
    assert_int_equal(r.closes, 0); /* on_close runs from the loop */
    sockit_stream_abort(r.st);     /* again: nothing */
    sockit_stream_close(r.st, -1);
    wait_closed(loop, &r);
    assert_int_equal(r.errors, 0);
    struct sink k;
    sink_init(&k, 16);
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_code(k.err, -ECONNRESET);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_idle_timeout_closes_with_etimeout_naming_the_peer(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, false);
    sockit_addr local;
    assert_ok(sockit_getsockname(peer, &local));
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_code(sockit_stream_set_idle_timeout(r.st, -1), -EINVAL);
    assert_code(sockit_stream_set_idle_timeout(r.st, NAN), -EINVAL);
    assert_ok(sockit_stream_set_idle_timeout(r.st, 0.2));
    double t0 = harness_now();
    RUN_UNTIL(loop, r.closes > 0, 3.0);
    double took = harness_now() - t0;
    wait_closed(loop, &r);
    assert_int_equal(r.errors, 1);
    assert_code(r.code, SOCKIT_ETIMEOUT);
    assert_string_equal(r.log, "EC");
    if (took < 0.19 || took > 1.0)
        fail_msg("a 0.2 s idle timeout ended the stream after %.3f s", took);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", sockit_addr_port(&local));
    if (strstr(r.errmsg, want) == NULL)
        fail_msg("on_error's message \"%s\" does not name the peer %s", r.errmsg, want);
    /* The peer sees an ordinary end of stream. */
    struct sink k;
    sink_init(&k, 16);
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_true(k.eof);
    assert_int_equal(k.err, 0);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* The program spent time outside the loop before making a stream with an idle
 * timeout: the timeout counts from when it was set, not from the loop's last look
 * at the clock. */
static void test_idle_timeout_set_after_time_outside_the_loop_is_not_early(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_loop_run_once(loop, 0);
    struct timespec nap = {0, 300 * 1000000};
    nanosleep(&nap, NULL); /* busy elsewhere */
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    double t0 = harness_now();
    assert_ok(sockit_stream_set_idle_timeout(r.st, 0.2));
    RUN_UNTIL(loop, r.closes > 0, 3.0);
    double took = harness_now() - t0;
    wait_closed(loop, &r);
    assert_code(r.code, SOCKIT_ETIMEOUT);
    if (took < 0.17)
        fail_msg("a 0.2 s idle timeout set after 0.3 s outside the loop ended the stream "
                 "after %.3f s",
                 took);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Idle timeouts up to 4e6 s; at most 254 distinct values in use on one loop at once
 * (the next is -ENOSPC, and a value in use, or a freed one, is fine again). */
static void test_idle_timeout_limits_and_distinct_values_per_loop(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    enum { N = 255 };
    struct rec *r = calloc(N, sizeof *r);
    assert_non_null(r);
    for (int i = 0; i < N; i++) {
        rec_init(&r[i]);
        int fd = dup(p[0]);
        assert_true(fd >= 0);
        r[i].st = sockit_stream_new_fd(loop, fd, true, &rec_cb, &r[i]);
        assert_sock(r[i].st);
    }
    assert_code(sockit_stream_set_idle_timeout(r[0].st, 4e6 + 1), -EINVAL);
    assert_code(sockit_stream_set_idle_timeout(r[0].st, INFINITY), -EINVAL);
    for (int i = 0; i < N - 1; i++) /* 254 distinct values, 1000 s and up */
        assert_ok(sockit_stream_set_idle_timeout(r[i].st, 1000.0 + i));
    assert_code(sockit_stream_set_idle_timeout(r[N - 1].st, 4e6), -ENOSPC);
    assert_ok(sockit_stream_set_idle_timeout(r[N - 1].st, 1000.0)); /* in use: shared */
    assert_ok(sockit_stream_set_idle_timeout(r[N - 1].st, 0));      /* off again */
    assert_ok(sockit_stream_set_idle_timeout(r[0].st, 1000.0 + 1)); /* frees 1000 */
    assert_ok(sockit_stream_set_idle_timeout(r[N - 1].st, 4e6));    /* now there is room */
    run_for(loop, 0.05);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].closes + r[i].errors, 0);
        rec_close(&r[i], -1);
    }
    int closed = 0;
    double until = harness_now() + 5.0;
    while (closed < N && harness_now() < until) {
        sockit_loop_run_once(loop, 0.01);
        closed = 0;
        for (int i = 0; i < N; i++)
            closed += r[i].closes;
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].closes, 1);
        assert_int_equal(r[i].late, 0);
        rec_free(&r[i]);
    }
    free(r);
    close(p[0]);
    close(p[1]);
    close_loop(loop);
}

/* Bytes keep an idle timeout from firing; 0 turns it off. */
static void test_idle_timeout_is_reset_by_traffic_and_zero_turns_it_off(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_set_idle_timeout(r.st, 0.25));
    for (int i = 0; i < 5; i++) { /* 0.5 s with a byte every 0.1 s */
        peer_send(peer, "k", 1);
        run_for(loop, 0.1);
    }
    assert_int_equal(r.closes + r.errors, 0);
    assert_int_equal(r.len, 5);
    assert_ok(sockit_stream_set_idle_timeout(r.st, 0));
    run_for(loop, 0.4);
    assert_int_equal(r.closes + r.errors, 0);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Several streams with idle timeouts, some sharing a value: each ends on its own
 * schedule. Activity (a byte received, or sent) moves a stream's deadline; a changed
 * timeout moves it too; 0 turns it off. Never early. */
static void test_idle_timeouts_of_many_streams_end_each_on_its_own_schedule(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    enum { A, B, C, D, E, F, N };
    sockit *s[N], *peer[N];
    struct rec r[N];
    double closed_at[N];
    for (int i = 0; i < N; i++) {
        unix_pair(&s[i], &peer[i]);
        rec_init(&r[i]);
        r[i].st = sockit_stream_new(loop, s[i], &rec_cb, &r[i]);
        assert_sock(r[i].st);
        closed_at[i] = -1;
    }
    double t0 = harness_now();
    assert_ok(sockit_stream_set_idle_timeout(r[A].st, 0.4)); /* active at 0.25: ends ~0.65 */
    assert_ok(sockit_stream_set_idle_timeout(r[B].st, 0.4)); /* ends ~0.4 */
    assert_ok(sockit_stream_set_idle_timeout(r[C].st, 0.8)); /* ends ~0.8 */
    assert_ok(sockit_stream_set_idle_timeout(r[D].st, 0.4)); /* turned off at 0.1 */
    assert_ok(sockit_stream_set_idle_timeout(r[E].st, 5.0)); /* 0.3 from 0.1: ~0.4 */
    assert_ok(sockit_stream_set_idle_timeout(r[F].st, 0.3)); /* writes every 0.1 s */
    bool a_poked = false, changed = false;
    double next_write = t0 + 0.1;
    struct sink k;
    sink_init(&k, 1 << 16);
    while (harness_now() - t0 < 1.2) {
        sockit_loop_run_once(loop, 0.005);
        double now = harness_now();
        for (int i = 0; i < N; i++)
            if (closed_at[i] < 0 && r[i].closes > 0)
                closed_at[i] = now - t0;
        if (!changed && now - t0 >= 0.1) {
            assert_ok(sockit_stream_set_idle_timeout(r[D].st, 0));
            assert_ok(sockit_stream_set_idle_timeout(r[E].st, 0.3));
            changed = true;
        }
        if (!a_poked && now - t0 >= 0.25) {
            peer_send(peer[A], "a", 1);
            a_poked = true;
        }
        if (now >= next_write && r[F].st != NULL && now - t0 < 0.8) {
            assert_ok(sockit_stream_write(r[F].st, "f", 1));
            next_write = now + 0.1;
        }
        sink_poll(peer[F], &k);
    }
    const double slack = 0.03; /* clock reads a little apart */
    assert_true(closed_at[B] >= 0.4 - slack);
    assert_true(closed_at[A] >= 0.65 - slack);
    assert_true(closed_at[B] < closed_at[A]);
    assert_true(closed_at[C] >= 0.8 - slack);
    assert_true(closed_at[E] >= 0.4 - slack);
    /* F was written to until 0.8 s: it lived at least that long, then ended ~1.1 s. */
    assert_true(closed_at[F] < 0 || closed_at[F] >= 0.8);
    assert_true(k.len >= 5);
    for (int i = 0; i < N; i++) {
        if (i == D || i == F)
            continue;
        if (closed_at[i] < 0)
            fail_msg("stream %d was still open after 1.2 s", i);
        assert_int_equal(r[i].errors, 1);
        assert_code(r[i].code, SOCKIT_ETIMEOUT);
    }
    assert_true(closed_at[D] < 0); /* turned off */
    assert_int_equal(r[D].errors, 0);
    rec_close(&r[D], -1);
    if (r[F].st != NULL)
        rec_close(&r[F], -1);
    for (int i = 0; i < N; i++) {
        wait_closed(loop, &r[i]);
        rec_free(&r[i]);
        assert_ok(sockit_close(peer[i]));
    }
    free(k.buf);
    close_loop(loop);
}

/* A stream with an idle timeout closed early, then another with the same value: the
 * second still times out, and nothing is left behind for the loop. Two loops in one
 * thread with the same timeout value keep separate schedules. */
static void test_idle_timeout_after_an_earlier_stream_with_it_closed_and_on_two_loops(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_loop *other = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec a;
    rec_init(&a);
    a.st = sockit_stream_new(loop, s, &rec_cb, &a);
    assert_sock(a.st);
    assert_ok(sockit_stream_set_idle_timeout(a.st, 0.2));
    rec_close(&a, -1);
    wait_closed(loop, &a);
    assert_int_equal(a.errors, 0);
    assert_ok(sockit_close(peer));

    sockit *s2, *peer2, *s3, *peer3;
    unix_pair(&s2, &peer2);
    unix_pair(&s3, &peer3);
    struct rec b, c;
    rec_init(&b);
    rec_init(&c);
    b.st = sockit_stream_new(loop, s2, &rec_cb, &b);
    assert_sock(b.st);
    c.st = sockit_stream_new(other, s3, &rec_cb, &c);
    assert_sock(c.st);
    assert_ok(sockit_stream_set_idle_timeout(b.st, 0.2));
    double t0 = harness_now();
    /* c's loop waits 0.3 s before c gets the same timeout value. */
    while (harness_now() - t0 < 0.3) {
        sockit_loop_run_once(loop, 0.005);
        sockit_loop_run_once(other, 0);
    }
    assert_ok(sockit_stream_set_idle_timeout(c.st, 0.2));
    double t1 = harness_now(), b_at = -1, c_at = -1;
    while (harness_now() - t0 < 2.0 && (b.closes == 0 || c.closes == 0)) {
        sockit_loop_run_once(loop, 0.002);
        sockit_loop_run_once(other, 0.002);
        if (b_at < 0 && b.closes > 0)
            b_at = harness_now() - t0;
        if (c_at < 0 && c.closes > 0)
            c_at = harness_now() - t1;
    }
    assert_int_equal(b.closes, 1);
    assert_code(b.code, SOCKIT_ETIMEOUT);
    assert_true(b_at >= 0.17 && b_at < 1.0);
    assert_int_equal(c.closes, 1);
    assert_code(c.code, SOCKIT_ETIMEOUT);
    if (c_at < 0.17 || c_at > 1.0)
        fail_msg("on the second loop a 0.2 s idle timeout ended after %.3f s", c_at);
    wait_closed(loop, &b);
    wait_closed(other, &c);
    rec_free(&a);
    rec_free(&b);
    rec_free(&c);
    assert_ok(sockit_close(peer2));
    assert_ok(sockit_close(peer3));
    close_loop(loop);
    close_loop(other);
}

/* ---- closing from inside every callback ----------------------------------------- */

static void test_close_inside_on_data_stops_delivery(void **state)
{
    (void)state;
    for (int abort_too = 0; abort_too < 2; abort_too++) {
        sockit_loop *loop = new_loop();
        sockit *s, *peer;
        unix_pair(&s, &peer);
        struct rec r;
        rec_init(&r);
        r.close_on = 'd';
        r.close_linger = -1;
        r.abort_too = abort_too;
        r.st = sockit_stream_new(loop, s, &rec_cb, &r);
        assert_sock(r.st);
        assert_ok(sockit_stream_read_lines(r.st, 0));
        peer_send(peer, "a\nb\nc\n", 6);
        wait_closed(loop, &r);
        assert_int_equal(r.frames, 1);
        assert_string_equal(r.log, "dC");
        rec_free(&r);
        assert_ok(sockit_close(peer));
        close_loop(loop);
    }
}

static void test_close_inside_on_eof_closes_once(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.close_on = 'e';
    r.close_linger = -1;
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    peer_send(peer, "end", 3);
    assert_ok(sockit_shutdown(peer, SHUT_WR));
    wait_closed(loop, &r);
    assert_string_equal(r.log, "deC");
    struct sink k;
    sink_init(&k, 16);
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_true(k.eof);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_close_inside_on_drain_still_sends_the_rest(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.close_on = 'w';
    r.close_linger = -1;
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    size_t total = 1 << 19;
    unsigned char *src = pattern(total);
    assert_ok(sockit_stream_write(r.st, src, total));
    assert_true(sockit_stream_write_blocked(r.st));
    struct sink k;
    sink_init(&k, total);
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_true(k.eof);
    assert_int_equal(k.len, total);
    assert_memory_equal(k.buf, src, total);
    wait_closed(loop, &r);
    assert_int_equal(r.drains, 1);
    assert_int_equal(r.errors, 0);
    free(src);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_close_and_abort_inside_on_error_close_once(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.close_on = 'E';
    r.close_linger = 0;
    r.abort_too = true;
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_lines(r.st, 4));
    peer_send(peer, "toolong\n", 8);
    wait_closed(loop, &r);
    assert_int_equal(r.errors, 1);
    assert_code(r.code, SOCKIT_ELINELEN);
    assert_string_equal(r.log, "EC");
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Two streams readable in the same iteration: whichever runs first closes the other,
 * which then gets nothing but on_close. */
struct pair_close {
    struct rec r[2];
};

static void pc_on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    struct rec *me = user;
    on_data(st, data, len, me);
    struct pair_close *pc = me->user_at_close; /* set by the test: the pair */
    struct rec *other = me == &pc->r[0] ? &pc->r[1] : &pc->r[0];
    if (other->st != NULL && !other->ended) {
        other->ended = true;
        sockit_stream_close(other->st, 0);
    }
}

static void pc_on_close(sockit_stream *st, void *user)
{
    struct rec *me = user;
    void *keep = me->user_at_close;
    on_close(st, user);
    me->user_at_close = keep;
}

static const sockit_stream_callbacks pc_cb = {.on_data = pc_on_data,
                                              .on_eof = on_eof,
                                              .on_drain = on_drain,
                                              .on_error = on_error,
                                              .on_close = pc_on_close};

static void test_closing_another_stream_from_a_callback_stops_its_delivery(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct pair_close pc;
    sockit *s[2], *peer[2];
    for (int i = 0; i < 2; i++) {
        unix_pair(&s[i], &peer[i]);
        rec_init(&pc.r[i]);
        pc.r[i].user_at_close = &pc;
        pc.r[i].st = sockit_stream_new(loop, s[i], &pc_cb, &pc.r[i]);
        assert_sock(pc.r[i].st);
    }
    peer_send(peer[0], "zero", 4);
    peer_send(peer[1], "one", 3);
    RUN_UNTIL(loop, pc.r[0].closes + pc.r[1].closes > 0, 5.0);
    run_for(loop, 0.05);
    assert_int_equal(pc.r[0].frames + pc.r[1].frames, 1);
    int first = pc.r[0].frames == 1 ? 0 : 1;
    assert_int_equal(pc.r[1 - first].closes, 1);
    assert_int_equal(pc.r[1 - first].late, 0);
    assert_string_equal(pc.r[1 - first].log, "C");
    assert_int_equal(pc.r[1 - first].write_in_close, -EPIPE);
    rec_close(&pc.r[first], -1);
    wait_closed(loop, &pc.r[first]);
    for (int i = 0; i < 2; i++) {
        rec_free(&pc.r[i]);
        assert_ok(sockit_close(peer[i]));
    }
    close_loop(loop);
}

/* A stream aborted inside its on_data, and a new stream made right there on a new
 * connection that may get the same descriptor number: each gets only its own bytes. */
struct reuse {
    struct rec first, second;
    sockit_loop *loop;
    sockit *second_peer;
    int first_fd;
};

static void reuse_on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    struct rec *r = user;
    on_data(st, data, len, r);
    struct reuse *u = (struct reuse *)r; /* first is at offset 0 */
    if (r != &u->first || u->second.st != NULL)
        return;
    u->first_fd = sockit_stream_fd(st);
    u->first.ended = true;
    sockit_stream_abort(st);
    sockit *s, *peer;
    unix_pair(&s, &peer);
    u->second_peer = peer;
    u->second.st = sockit_stream_new(u->loop, s, &rec_cb, &u->second);
    assert_sock(u->second.st);
    peer_send(peer, "second", 6);
}

static const sockit_stream_callbacks reuse_cb = {.on_data = reuse_on_data,
                                                 .on_eof = on_eof,
                                                 .on_drain = on_drain,
                                                 .on_error = on_error,
                                                 .on_close = on_close};

static void test_a_new_stream_on_a_reused_descriptor_gets_only_its_own_events(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct reuse u;
    memset(&u, 0, sizeof u);
    rec_init(&u.first);
    rec_init(&u.second);
    u.loop = loop;
    sockit *s, *peer;
    unix_pair(&s, &peer);
    u.first.st = sockit_stream_new(loop, s, &reuse_cb, &u.first);
    assert_sock(u.first.st);
    /* The first peer keeps sending: bytes for the old stream must reach no one. */
    peer_send(peer, "first", 5);
    RUN_UNTIL(loop, u.second.len >= 6, 5.0);
    for (int i = 0; i < 5; i++) {
        send(sockit_fileno(peer), "more", 4, MSG_NOSIGNAL | MSG_DONTWAIT);
        sockit_loop_run_once(loop, 0.01);
    }
    wait_closed(loop, &u.first);
    assert_string_equal(u.first.data, "first");
    assert_string_equal(u.second.data, "second");
    assert_int_equal(u.second.late, 0);
    assert_int_equal(u.second.errors + u.second.eofs + u.second.closes, 0);
    rec_close(&u.second, -1);
    wait_closed(loop, &u.second);
    rec_free(&u.first);
    rec_free(&u.second);
    assert_ok(sockit_close(peer));
    assert_ok(sockit_close(u.second_peer));
    close_loop(loop);
}

/* An allocation that fails: no stream, and the sockit is still the caller's. */
static void test_stream_new_out_of_memory_leaves_the_sockit_to_the_caller(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    harness_inject(HARNESS_OP(SOCKIT__SYS_ALLOC), ENOMEM, 1, 0);
    assert_null(sockit_stream_new(loop, s, &rec_cb, &r));
    assert_int_equal(harness_injected(), 1);
    assert_int_equal(sockit_errcode(), -ENOMEM);
    harness_inject(0, 0, 0, 0);
    /* Still a working blocking socket of the caller's. */
    peer_send(peer, "mine", 4);
    char buf[8];
    assert_int_equal(sockit_recv(s, buf, sizeof buf, 0), 4);
    assert_true(sockit_getblocking(s));
    /* And a stream can be made of it after all. */
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* A stream keeps the loop running while it reads or has bytes queued. */
static void test_a_stream_keeps_the_loop_alive_while_it_reads_or_writes(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, true);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    sockit_stream_pause(r.st);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    fill(r.st, 1); /* queued bytes keep it alive, paused or not */
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    sockit_stream_resume(r.st);
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    assert_code(sockit_loop_close(loop), -EBUSY); /* a stream is open */
    rec_abort(&r);
    wait_closed(loop, &r);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* IPv6: the peer's address and on_error's message, "[::1]:port". */
static void test_ipv6_stream_knows_its_peer_and_names_it_in_errors(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int port;
    sockit *l = harness_tcp_listener(AF_INET6, &port);
    sockit *peer = sockit_create_connection("::1", port, 5.0, NULL);
    assert_sock(peer);
    sockit *s = sockit_accept(l, NULL);
    assert_sock(s);
    assert_ok(sockit_close(l));
    sockit_addr local;
    assert_ok(sockit_getsockname(peer, &local));
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    sockit_addr got;
    assert_ok(sockit_stream_peer(r.st, &got));
    assert_int_equal(sockit_addr_family(&got), AF_INET6);
    assert_true(sockit_addr_equal(&got, &local));
    assert_ok(sockit_stream_read_lines(r.st, 4));
    peer_send(peer, "too long\n", 9);
    wait_closed(loop, &r);
    assert_code(r.code, SOCKIT_ELINELEN);
    char want[64];
    snprintf(want, sizeof want, "[::1]:%d", sockit_addr_port(&local));
    if (strstr(r.errmsg, want) == NULL)
        fail_msg("on_error's message \"%s\" does not name the peer %s", r.errmsg, want);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Paused before the loop ran: even read-ahead bytes wait for resume. */
static void test_pause_holds_read_ahead_bytes_too(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    peer_send(peer, "x\nahead", 7);
    char line[8];
    assert_int_equal(sockit_readline(s, line, sizeof line), 2);
    assert_int_equal(sockit_pending(s), 5);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    sockit_stream_pause(r.st);
    run_for(loop, 0.1);
    assert_int_equal(r.frames, 0);
    sockit_stream_resume(r.st);
    RUN_UNTIL(loop, r.len >= 5, 5.0);
    assert_string_equal(r.data, "ahead");
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Lines, no on_eof, the peer ends mid-line: the last piece, then the stream closes. */
static void test_unterminated_last_line_then_close_without_on_eof(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb_no_eof, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_lines(r.st, 0));
    peer_send(peer, "x\ny", 3);
    assert_ok(sockit_shutdown(peer, SHUT_WR));
    wait_closed(loop, &r);
    assert_int_equal(r.frames, 2);
    assert_string_equal(r.data, "x\ny");
    assert_string_equal(r.log, "ddC");
    assert_int_equal(r.errors, 0);
    struct sink k;
    sink_init(&k, 16);
    sink_drain(loop, peer, &k, 0, true, 5.0);
    assert_true(k.eof);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* ---- making streams ------------------------------------------------------------- */

static void test_stream_new_refuses_a_datagram_socket_and_leaves_it_to_the_caller(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *u = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u);
    struct rec r;
    rec_init(&r);
    assert_null(sockit_stream_new(loop, u, &rec_cb, &r));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_true(fcntl(sockit_fileno(u), F_GETFD) >= 0); /* still open */
    assert_ok(sockit_bind(u, "127.0.0.1", 0));          /* and usable */
    assert_ok(sockit_close(u));
    run_for(loop, 0.02);
    assert_int_equal(r.nlog, 0);
    close_loop(loop);
}

static void test_accessors_and_bad_arguments(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, false);
    int fd = sockit_fileno(s);
    sockit_addr want;
    assert_ok(sockit_getsockname(peer, &want));
    struct rec r, other;
    rec_init(&r);
    rec_init(&other);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_int_equal(sockit_stream_fd(r.st), fd);
    assert_ptr_equal(sockit_stream_loop(r.st), loop);
    assert_ptr_equal(sockit_stream_user(r.st), &r);
    sockit_addr got;
    assert_ok(sockit_stream_peer(r.st, &got));
    assert_true(sockit_addr_equal(&got, &want));
    /* The descriptor is non-blocking now. */
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    /* Watermarks: low <= high <= limit, limit > 0. */
    assert_code(sockit_stream_set_watermarks(r.st, 10, 5, 100), -EINVAL);
    assert_code(sockit_stream_set_watermarks(r.st, 1, 200, 100), -EINVAL);
    assert_code(sockit_stream_set_watermarks(r.st, 0, 0, 0), -EINVAL);
    assert_ok(sockit_stream_set_watermarks(r.st, 0, 0, 1));
    assert_ok(sockit_stream_set_watermarks(r.st, 5, 5, 5));
    assert_ok(sockit_stream_set_watermarks(r.st, 16384, 65536, 16 << 20));
    assert_code(sockit_stream_read_exact(r.st, 0), -EINVAL);
    /* The user pointer moves the callbacks' argument. */
    sockit_stream_set_user(r.st, &other);
    assert_ptr_equal(sockit_stream_user(r.st), &other);
    other.st = r.st;
    r.st = NULL;
    peer_send(peer, "to other", 8);
    RUN_UNTIL(loop, other.len >= 8, 5.0);
    assert_int_equal(r.nlog, 0);
    assert_string_equal(other.data, "to other");
    rec_close(&other, -1);
    wait_closed(loop, &other);
    assert_int_equal(other.fd_at_close, -1);
    assert_ptr_equal(other.user_at_close, &other);
    rec_free(&r);
    rec_free(&other);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* set_callbacks replaces the table: the next callbacks come from the new one. */
static int swapped_calls;
static void swapped_on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)st;
    (void)data;
    (void)len;
    (void)user;
    swapped_calls++;
}

static void test_set_callbacks_replaces_the_table(void **state)
{
    (void)state;
    static const sockit_stream_callbacks swapped = {
        .on_data = swapped_on_data, .on_error = on_error, .on_close = on_close};
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    swapped_calls = 0;
    sockit_stream_set_callbacks(r.st, &swapped);
    peer_send(peer, "x", 1);
    RUN_UNTIL(loop, swapped_calls > 0, 5.0);
    assert_int_equal(swapped_calls, 1);
    assert_int_equal(r.frames, 0);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Bytes sockit_readline read ahead live in the sockit, not the descriptor: the stream
 * delivers them first. */
static void test_read_ahead_bytes_of_an_adopted_sockit_come_first(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    peer_send(peer, "first\nsecond\nthird", 18);
    char line[64];
    assert_int_equal(sockit_readline(s, line, sizeof line), 6);
    assert_string_equal(line, "first\n");
    assert_int_equal(sockit_pending(s), 12);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    RUN_UNTIL(loop, r.len >= 12, 5.0); /* nothing more arrives on the descriptor */
    assert_string_equal(r.data, "second\nthird");
    peer_send(peer, "MORE", 4);
    RUN_UNTIL(loop, r.len >= 16, 5.0);
    assert_string_equal(r.data, "second\nthirdMORE");
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Read-ahead bytes in line mode set right after adopting (before the loop runs). */
static void test_read_ahead_bytes_are_framed_as_lines(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    peer_send(peer, "a\nb\nc", 5);
    char line[8];
    assert_int_equal(sockit_readline(s, line, sizeof line), 2);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_lines(r.st, 0));
    peer_send(peer, "d\n", 2);
    RUN_UNTIL(loop, r.frames >= 2, 5.0);
    run_for(loop, 0.02);
    assert_int_equal(r.frames, 2);
    assert_string_equal(r.data, "b\ncd\n");
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Read-ahead bytes holding several lines, and the peer already ended its side: the
 * lines come one by one, then on_eof. */
static void test_read_ahead_lines_then_eof_come_one_by_one(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    unix_pair(&s, &peer);
    peer_send(peer, "a\nb\nc\n", 6);
    assert_ok(sockit_shutdown(peer, SHUT_WR));
    char line[8];
    assert_int_equal(sockit_readline(s, line, sizeof line), 2);
    assert_int_equal(sockit_pending(s), 4);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    assert_ok(sockit_stream_read_lines(r.st, 0));
    RUN_UNTIL(loop, r.eofs > 0 || r.closes > 0, 5.0);
    run_for(loop, 0.02);
    if (r.frames != 2)
        fail_msg("%d frames (want 2), the first of %zu bytes: read-ahead lines were "
                 "delivered as one at end of stream",
                 r.frames, r.frame_len[0]);
    assert_string_equal(r.data, "b\nc\n");
    assert_string_equal(r.log, "dde");
    rec_close(&r, -1);
    wait_closed(loop, &r);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_stream_on_a_pipe_not_owned_leaves_it_open_and_its_mode_as_found(void **state)
{
    (void)state;
    for (int nonblock = 0; nonblock < 2; nonblock++) {
        sockit_loop *loop = new_loop();
        int p[2];
        assert_int_equal(pipe(p), 0);
        if (nonblock)
            assert_int_equal(fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK), 0);
        struct rec r;
        rec_init(&r);
        r.st = sockit_stream_new_fd(loop, p[0], false, &rec_cb, &r);
        assert_sock(r.st);
        assert_int_equal(sockit_stream_fd(r.st), p[0]);
        sockit_addr a;
        assert_code(sockit_stream_peer(r.st, &a), -ENOTSOCK);
        assert_int_equal(write(p[1], "piped", 5), 5);
        RUN_UNTIL(loop, r.len >= 5, 5.0);
        assert_string_equal(r.data, "piped");
        assert_int_equal(close(p[1]), 0);
        RUN_UNTIL(loop, r.eofs > 0, 5.0);
        assert_int_equal(r.eofs, 1);
        rec_close(&r, -1);
        wait_closed(loop, &r);
        int flags = fcntl(p[0], F_GETFL);
        assert_true(flags >= 0); /* still open */
        assert_int_equal((flags & O_NONBLOCK) != 0, nonblock);
        assert_int_equal(close(p[0]), 0);
        rec_free(&r);
        close_loop(loop);
    }
}

static void test_stream_on_a_pipe_owned_closes_it(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new_fd(loop, p[0], true, &rec_cb, &r);
    assert_sock(r.st);
    assert_int_equal(write(p[1], "x", 1), 1);
    RUN_UNTIL(loop, r.len >= 1, 5.0);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    assert_int_equal(fcntl(p[0], F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    close(p[1]);
    rec_free(&r);
    close_loop(loop);
}

/* A write-only descriptor (a pipe's write end, as stdout): written, queued when the
 * pipe is full, drained as the reader reads. */
static void test_stream_on_a_pipe_write_end_writes_and_queues(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new_fd(loop, p[1], true, &rec_cb_no_data, &r);
    assert_sock(r.st);
    size_t total = 300000; /* more than a pipe holds (64 KiB by default) */
    unsigned char *src = pattern(total);
    assert_ok(sockit_stream_write(r.st, src, total));
    assert_true(sockit_stream_queued(r.st) > 0);
    unsigned char *got = malloc(total);
    size_t len = 0;
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    double until = harness_now() + 5.0;
    while (len < total && harness_now() < until) {
        ssize_t n = read(p[0], got + len, total - len);
        if (n > 0)
            len += (size_t)n;
        sockit_loop_run_once(loop, 0.005);
    }
    assert_int_equal(len, total);
    assert_memory_equal(got, src, total);
    rec_close(&r, -1);
    wait_closed(loop, &r);
    assert_int_equal(r.errors, 0);
    assert_int_equal(read(p[0], got, 1), 0); /* the write end was closed */
    close(p[0]);
    free(got);
    free(src);
    rec_free(&r);
    close_loop(loop);
}

static void test_stream_on_a_regular_file_per_backend(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    char path[] = "/tmp/sockit-stream-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, "file bytes", 10), 10);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    int flags = fcntl(fd, F_GETFL);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new_fd(loop, fd, false, &rec_cb, &r);
    if (is_epoll(loop)) {
        /* Always ready: epoll refuses it, and the descriptor is left as it was. */
        assert_null(r.st);
        assert_int_equal(sockit_errcode(), -EPERM);
        assert_int_equal(fcntl(fd, F_GETFL), flags);
    } else {
        /* poll calls it always ready: its bytes, then the end. */
        assert_sock(r.st);
        RUN_UNTIL(loop, r.eofs > 0, 5.0);
        assert_string_equal(r.data, "file bytes");
        assert_int_equal(r.eofs, 1);
        rec_close(&r, -1);
        wait_closed(loop, &r);
        assert_int_equal(fcntl(fd, F_GETFL), flags);
    }
    assert_int_equal(close(fd), 0);
    rec_free(&r);
    close_loop(loop);
}

/* ---- injected faults ------------------------------------------------------------ */

/* Short writes, EAGAIN and EINTR on send and recv: every byte arrives, in order. */
static void test_injected_short_writes_eagain_and_eintr_lose_nothing(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *s, *peer;
    tcp_pair(&s, &peer, false);
    struct rec r;
    rec_init(&r);
    r.st = sockit_stream_new(loop, s, &rec_cb, &r);
    assert_sock(r.st);
    const unsigned sends = HARNESS_OP(SOCKIT__SYS_SEND) | HARNESS_OP(SOCKIT__SYS_SENDMSG);
    const unsigned recvs = HARNESS_OP(SOCKIT__SYS_RECV) | HARNESS_OP(SOCKIT__SYS_RECVMSG);
    size_t total = 200000;
    unsigned char *src = pattern(total);
    struct sink k;
    sink_init(&k, total);
    size_t off = 0;

    /* Short writes: each send takes at most 7 bytes for a while. */
    harness_inject(sends, 0, 40, 7);
    assert_ok(sockit_stream_write(r.st, src, 50000));
    struct done_log d = {0};
    assert_ok(sockit_stream_write_ref(r.st, src + 50000, 50000, write_done, &d));
    off = 100000;
    sink_drain(loop, peer, &k, off, false, 5.0);
    assert_true(harness_injected() > 1);
    assert_int_equal(k.len, off);
    RUN_UNTIL(loop, d.calls > 0, 2.0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);

    /* EAGAIN on send: the bytes wait for writability. */
    harness_inject(sends, EAGAIN, 3, 0);
    assert_ok(sockit_stream_write(r.st, src + off, 50000));
    off += 50000;
    sink_drain(loop, peer, &k, off, false, 5.0);
    assert_true(harness_injected() >= 1);
    assert_int_equal(k.len, off);

    /* EINTR on send: retried. */
    harness_inject(sends, EINTR, 3, 0);
    assert_ok(sockit_stream_write(r.st, src + off, total - off));
    sink_drain(loop, peer, &k, total, false, 5.0);
    assert_true(harness_injected() >= 1);
    assert_int_equal(k.len, total);
    assert_memory_equal(k.buf, src, total);
    assert_int_equal(r.errors, 0);

    /* EINTR, then EAGAIN, then short reads on recv. */
    harness_inject(recvs, EINTR, 3, 0);
    peer_send(peer, "interrupted ", 12);
    RUN_UNTIL(loop, r.len >= 12, 5.0);
    assert_true(harness_injected() >= 1);
    harness_inject(recvs, EAGAIN, 3, 0);
    peer_send(peer, "wouldblock ", 11);
    RUN_UNTIL(loop, r.len >= 23, 5.0);
    assert_true(harness_injected() >= 1);
    harness_inject(recvs, 0, 100, 3);
    peer_send(peer, "short reads", 11);
    RUN_UNTIL(loop, r.len >= 34, 5.0);
    assert_true(harness_injected() > 1);
    harness_inject(0, 0, 0, 0);
    assert_int_equal(r.len, 34);
    assert_string_equal(r.data, "interrupted wouldblock short reads");
    assert_int_equal(r.errors, 0);

    rec_close(&r, -1);
    wait_closed(loop, &r);
    free(src);
    free(k.buf);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_on_data_delivers_what_the_peer_sent),
        harness_test(test_echo_round_trip_with_a_blocking_peer_thread),
        harness_test(test_write_the_kernel_takes_whole_queues_nothing),
        harness_test(test_write_queues_past_high_and_drains_to_low),
        harness_test(test_watermarks_set_by_the_caller_decide_blocked_and_drain),
        harness_test(test_write_past_the_hard_limit_is_enobufs_and_queues_nothing),
        harness_test(test_limit_lowered_below_the_queue_refuses_writes),
        harness_fault_test(test_write_that_fails_for_memory_has_sent_nothing),
        harness_test(test_write_ref_done_once_with_zero_after_the_bytes_went_out),
        harness_test(test_write_ref_done_gets_a_code_when_the_stream_is_aborted_first),
        harness_test(test_peer_reset_during_a_queued_write_is_one_error_then_close),
        harness_test(test_write_and_write_ref_mixed_keep_their_order),
        harness_test(test_empty_writes_are_fine_and_done_still_runs_once),
        harness_test(test_write_ref_from_inside_done_chains_in_order),
        harness_test(test_bad_writes_and_writes_after_close_are_refused),
        harness_test(test_pause_holds_delivery_and_resume_delivers),
        harness_test(test_pause_inside_on_data_keeps_the_rest_of_the_read_for_resume),
        harness_test(test_lines_kept_by_a_pause_come_one_by_one_before_eof),
        harness_test(test_exact_frames_kept_by_a_pause_come_one_by_one_before_eof),
        harness_test(test_read_lines_splits_and_joins_reads_into_lines),
        harness_test(test_read_lines_limit_counts_the_newline_and_longer_is_elinelen),
        harness_test(test_read_lines_last_line_of_max_line_bytes_is_a_line),
        harness_test(test_loop_close_waits_for_a_closed_streams_on_close),
        harness_test(test_read_lines_delivers_an_unterminated_last_line_before_eof),
        harness_test(test_read_exact_follows_a_length_prefix_switched_inside_on_data),
        harness_test(test_framing_switches_from_lines_to_exact_inside_one_read),
        harness_test(test_read_lines_default_limit_is_sockit_line_max),
        harness_test(test_frames_larger_than_one_read_are_delivered_whole),
        harness_test(test_close_while_paused_with_kept_lines_drops_them),
        harness_test(test_read_exact_short_frame_at_eof_is_eeof),
        harness_test(test_read_raw_after_lines_delivers_what_each_read_brought),
        harness_test(test_without_on_eof_the_stream_closes_after_its_queue_drains),
        harness_test(test_shutdown_half_closes_and_reading_goes_on),
        harness_test(test_shutdown_with_a_full_queue_sends_it_all_first),
        harness_test(test_close_whose_linger_runs_out_aborts),
        harness_test(test_close_with_linger_drains_the_queue_before_closing),
        harness_test(test_close_with_linger_zero_and_a_full_queue_aborts),
        harness_test(test_close_with_a_nan_linger_aborts_a_full_queue),
        harness_test(test_abort_resets_the_peer),
        harness_test(test_idle_timeout_closes_with_etimeout_naming_the_peer),
        harness_test(test_idle_timeout_set_after_time_outside_the_loop_is_not_early),
        harness_test(test_idle_timeout_limits_and_distinct_values_per_loop),
        harness_test(test_idle_timeout_is_reset_by_traffic_and_zero_turns_it_off),
        harness_test(test_idle_timeouts_of_many_streams_end_each_on_its_own_schedule),
        harness_test(test_idle_timeout_after_an_earlier_stream_with_it_closed_and_on_two_loops),
        harness_test(test_close_inside_on_data_stops_delivery),
        harness_test(test_close_inside_on_eof_closes_once),
        harness_test(test_close_inside_on_drain_still_sends_the_rest),
        harness_test(test_close_and_abort_inside_on_error_close_once),
        harness_test(test_closing_another_stream_from_a_callback_stops_its_delivery),
        harness_test(test_a_new_stream_on_a_reused_descriptor_gets_only_its_own_events),
        harness_fault_test(test_stream_new_out_of_memory_leaves_the_sockit_to_the_caller),
        harness_test(test_a_stream_keeps_the_loop_alive_while_it_reads_or_writes),
        harness_test(test_ipv6_stream_knows_its_peer_and_names_it_in_errors),
        harness_test(test_pause_holds_read_ahead_bytes_too),
        harness_test(test_unterminated_last_line_then_close_without_on_eof),
        harness_test(test_stream_new_refuses_a_datagram_socket_and_leaves_it_to_the_caller),
        harness_test(test_accessors_and_bad_arguments),
        harness_test(test_set_callbacks_replaces_the_table),
        harness_test(test_read_ahead_bytes_of_an_adopted_sockit_come_first),
        harness_test(test_read_ahead_bytes_are_framed_as_lines),
        harness_test(test_read_ahead_lines_then_eof_come_one_by_one),
        harness_test(test_stream_on_a_pipe_not_owned_leaves_it_open_and_its_mode_as_found),
        harness_test(test_stream_on_a_pipe_owned_closes_it),
        harness_test(test_stream_on_a_pipe_write_end_writes_and_queues),
        harness_test(test_stream_on_a_regular_file_per_backend),
        harness_fault_test(test_injected_short_writes_eagain_and_eintr_lose_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
