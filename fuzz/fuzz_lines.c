/* libFuzzer target for line and frame reading across random split points:
 * sockit_readline on a non-blocking socket (a partial line must stay buffered
 * across SOCKIT_EWOULDBLOCK), and a stream's line and exact framing on the loop.
 * Input: byte 0 the mode and byte 1 the size (readline's buffer, the stream's
 * max_line or frame), byte 2 seeds where the bytes are cut, the rest is what the
 * peer sends, piece by piece, then it shuts down its side. Beyond "did not crash":
 * every line but a last one ends in '\n', none is longer than allowed, nothing is
 * lost, duplicated or reordered (the pieces put together are the bytes sent, up to
 * where a too-long line stopped the stream, which must be a line too long), and a
 * stream ends with exactly one end. Replayed from fuzz/corpus/lines in every test
 * run (tests/fuzz_replay.c). */
#include "sockit.h"

#include "fuzz_broken.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Below a Unix socket's buffer, so a piece never blocks; four lines of the longest
 * max_line are enough to cross every boundary, and each byte more costs syscalls
 * (4 KiB inputs ran at 1,600 a second, 1 KiB ones several times faster). */
#define PAYLOAD_MAX 1024

typedef struct cutter {
    uint32_t state;
} cutter;

/* 1 to 32 bytes, the next cut. */
static size_t next_cut(cutter *c)
{
    c->state = c->state * 1103515245u + 12345u;
    return 1 + ((c->state >> 16) % 32);
}

typedef struct got {
    char bytes[PAYLOAD_MAX];
    size_t len;
} got;

static void append(got *g, const char *p, size_t n)
{
    if (g->len + n > sizeof g->bytes)
        fuzz_broken("more bytes came out than went in");
    memcpy(g->bytes + g->len, p, n);
    g->len += n;
}

/* ---- sockit_readline on a non-blocking socket */

static void readline_all(sockit *r, size_t cap, got *g, bool eof)
{
    char buf[258];
    for (;;) {
        ssize_t n = sockit_readline(r, buf, cap);
        if (n == SOCKIT_EWOULDBLOCK) {
            if (eof)
                fuzz_broken("readline would block after the peer's end");
            return;
        }
        if (n == 0) {
            if (!eof)
                fuzz_broken("readline said end of stream before the peer ended");
            return;
        }
        if (n == SOCKIT_ELINELEN) {
            /* size - 1 bytes of a longer line, consumed */
            if (memchr(buf, '\n', cap - 1) != NULL || buf[cap - 1] != '\0')
                fuzz_broken("a too-long line's part is not size - 1 bytes without '\\n'");
            append(g, buf, cap - 1);
            continue;
        }
        if (n < 0)
            fuzz_broken("readline failed on a healthy socket");
        if ((size_t)n > cap - 1 || buf[n] != '\0')
            fuzz_broken("a line longer than the buffer, or unterminated");
        char *nl = memchr(buf, '\n', (size_t)n);
        if (nl != NULL && nl != buf + n - 1)
            fuzz_broken("a line with '\\n' inside");
        if (nl == NULL && !eof)
            fuzz_broken("a line without '\\n' before the end of stream");
        append(g, buf, (size_t)n);
    }
}

static void run_readline(size_t cap, uint8_t seed, const char *payload, size_t len)
{
    sockit *p[2];
    if (sockit_socketpair(AF_UNIX, SOCK_STREAM, p) < 0)
        return;
    sockit_setblocking(p[1], false);
    got g = {.len = 0};
    cutter c = {seed};
    for (size_t off = 0; off < len;) {
        size_t n = next_cut(&c);
        if (n > len - off)
            n = len - off;
        if (sockit_sendall(p[0], payload + off, n, 0, NULL) != (ssize_t)n)
            fuzz_broken("a send to a socket pair failed");
        off += n;
        readline_all(p[1], cap, &g, false);
    }
    sockit_shutdown(p[0], SHUT_WR);
    readline_all(p[1], cap, &g, true);
    if (g.len != len || memcmp(g.bytes, payload, len) != 0)
        fuzz_broken("readline's lines put together are not the bytes sent");
    sockit_close(p[0]);
    sockit_close(p[1]);
}

/* ---- a stream's framing on the loop */

typedef struct framing {
    bool exact;
    size_t size;
    got g;
    int error;
    int ends; /* on_eof and on_error calls */
    bool closed;
    bool last_partial; /* a line without '\n' came (only at the end) */
} framing;

static void on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)st;
    framing *f = user;
    if (f->last_partial)
        fuzz_broken("a frame after the unterminated last line");
    if (f->exact) {
        if (len != f->size)
            fuzz_broken("an exact frame of the wrong size");
    } else {
        if (len == 0 || len > f->size)
            fuzz_broken("a line empty or over max_line");
        const char *nl = memchr(data, '\n', len);
        if (nl != NULL && nl != data + len - 1)
            fuzz_broken("a line with '\\n' inside");
        if (nl == NULL)
            f->last_partial = true;
    }
    append(&f->g, data, len);
}

static void on_eof(sockit_stream *st, void *user)
{
    framing *f = user;
    f->ends++;
    sockit_stream_close(st, 0);
}

static void on_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    framing *f = user;
    f->ends++;
    f->error = code;
}

static void on_close(sockit_stream *st, void *user)
{
    (void)st;
    ((framing *)user)->closed = true;
}

static const sockit_stream_callbacks callbacks = {
    .on_data = on_data, .on_eof = on_eof, .on_error = on_error, .on_close = on_close};

static void run_stream(bool exact, size_t size, uint8_t seed, const char *payload, size_t len)
{
    /* One loop for every input (making one is most of an input's cost); each input
     * leaves it with nothing open, which sockit_loop_close checks at exit. */
    static sockit_loop *loop;
    if (loop == NULL) {
        sockit_loop_options lo = SOCKIT_LOOP_OPTIONS_INIT;
        lo.backend = "epoll";
        if ((loop = sockit_loop_new(&lo)) == NULL)
            return;
    }
    sockit *p[2];
    if (sockit_socketpair(AF_UNIX, SOCK_STREAM, p) < 0)
        return;
    framing f = {.exact = exact, .size = size};
    sockit_stream *st = sockit_stream_new(loop, p[1], &callbacks, &f);
    if (st == NULL)
        fuzz_broken("a stream over a socket pair could not be made");
    if ((exact ? sockit_stream_read_exact(st, size) : sockit_stream_read_lines(st, size)) != 0)
        fuzz_broken("a valid framing was refused");
    cutter c = {seed};
    for (size_t off = 0; off < len && !f.closed;) {
        size_t n = next_cut(&c);
        if (n > len - off)
            n = len - off;
        if (sockit_sendall(p[0], payload + off, n, 0, NULL) != (ssize_t)n)
            break; /* the stream ended (a too-long line) and the peer is gone */
        off += n;
        sockit_loop_run_once(loop, 0);
    }
    sockit_shutdown(p[0], SHUT_WR);
    for (int i = 0; i < 1000 && !f.closed; i++)
        sockit_loop_run_once(loop, 0.01);
    if (!f.closed || f.ends != 1)
        fuzz_broken("the stream did not end exactly once");
    if (f.g.len > len || memcmp(f.g.bytes, payload, f.g.len) != 0)
        fuzz_broken("the frames put together are not a prefix of the bytes sent");
    if (f.error == 0 && f.g.len != len)
        fuzz_broken("a clean end lost bytes");
    if (f.error == SOCKIT_ELINELEN) {
        const char *rest = payload + f.g.len;
        size_t left = len - f.g.len;
        if (exact || left <= size || memchr(rest, '\n', size) != NULL)
            fuzz_broken("SOCKIT_ELINELEN for a line that fits");
    } else if (f.error == SOCKIT_EEOF) {
        if (!exact || len - f.g.len == 0 || len - f.g.len >= size)
            fuzz_broken("SOCKIT_EEOF without a short last frame");
    } else if (f.error != 0) {
        fuzz_broken("the stream failed with an unexpected code");
    }
    sockit_close(p[0]);
    if (sockit_loop_run_once(loop, 0) != 0)
        fuzz_broken("the loop still has something open after the stream closed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size - 3 > PAYLOAD_MAX)
        return 0;
    const char *payload = (const char *)data + 3;
    size_t len = size - 3;
    size_t param = 2 + data[1] % 255; /* 2 to 256 */
    switch (data[0] % 3) {
    case 0:
        run_readline(param, data[2], payload, len);
        break;
    case 1:
        run_stream(false, param, data[2], payload, len);
        break;
    default:
        run_stream(true, param - 1, data[2], payload, len);
        break;
    }
    return 0;
}
