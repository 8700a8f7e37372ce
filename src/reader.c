/* Buffered reading: sockit_readline and the read-ahead buffer it shares with
 * sockit_recv and sockit_recv_exact, so the three can be mixed on one connection
 * without losing or reordering bytes. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* Fixed, so one peer that never sends '\n' cannot make a connection hold more than
 * this. It also bounds a line: see the limit in sockit_readline. */
#define RBUF_CAP ((size_t)SOCKIT_LINE_MAX)

size_t sockit_pending(const sockit *s)
{
    if (s == NULL)
        return 0;
    size_t held = s->transport->pending != NULL ? s->transport->pending(s) : 0;
    return s->rbuf.end - s->rbuf.start + held;
}

/* Hands the first n unread bytes to buf and consumes them. */
static void rbuf_consume(sockit__rbuf *b, void *buf, size_t n)
{
    memcpy(buf, b->data + b->start, n);
    b->start += n;
    /* Rewinding when empty keeps the next fill one large read instead of a read into
     * the buffer's tail followed by a compaction. */
    if (b->start == b->end)
        b->start = b->end = 0;
}

size_t sockit__rbuf_take(sockit *s, void *buf, size_t len)
{
    size_t have = s->rbuf.end - s->rbuf.start;
    size_t n = have < len ? have : len;
    if (n > 0)
        rbuf_consume(&s->rbuf, buf, n);
    return n;
}

void sockit__free_parts(sockit *s)
{
    sockit__free(s->tunnel);
    s->tunnel = NULL;
    sockit__free(s->rbuf.data);
    s->rbuf.data = NULL;
    s->rbuf.cap = s->rbuf.start = s->rbuf.end = 0;
}

/* Makes room after the unread bytes for at least one more byte. The caller
 * guarantees fewer than RBUF_CAP bytes are unread. */
static int rbuf_make_room(sockit__rbuf *b)
{
    if (b->data == NULL) {
        b->data = sockit__malloc(RBUF_CAP);
        if (b->data == NULL)
            return -ENOMEM;
        b->cap = RBUF_CAP;
        b->start = b->end = 0;
    }
    if (b->end == b->cap) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
    }
    return 0;
}

int sockit__rbuf_keep(sockit *s, const void *data, size_t len)
{
    sockit__rbuf *b = &s->rbuf;
    if (len == 0)
        return 0;
    if (len > RBUF_CAP - (b->end - b->start))
        return -ENOBUFS;
    int rc = rbuf_make_room(b);
    if (rc < 0)
        return rc;
    if (b->cap - b->end < len) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
    }
    memcpy(b->data + b->end, data, len);
    b->end += len;
    return 0;
}

static ssize_t deliver(sockit__rbuf *b, char *buf, size_t n)
{
    if (n > 0)
        rbuf_consume(b, buf, n);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* Called when the unread bytes fill the caller's limit without a '\n'. Returns 1
 * if the stream goes on (the line is too long), 0 if it ends here, 2 if the buffer
 * has room so the caller's ordinary read will tell, or a code (the bytes stay
 * buffered). A full buffer has no room to read into, so that case peeks. */
static int more_after_full_buffer(sockit *s, int64_t deadline)
{
    sockit__rbuf *b = &s->rbuf;
    if (b->end - b->start < b->cap)
        return 2;
    for (;;) {
        char next;
        short want = POLLIN;
        ssize_t n = s->transport->recv(s, &next, 1, MSG_PEEK, &want);
        if (n >= 0)
            return n > 0;
        if (n != -EAGAIN)
            return (int)n;
        int rc = sockit__await(s, want, deadline);
        if (rc < 0)
            return rc;
    }
}

ssize_t sockit_readline(sockit *s, char *buf, size_t size)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "readline");
    /* size 1 leaves no room for even one byte of a line: every call would fail
     * without progress, so it is refused instead. */
    if (buf == NULL || size < 2)
        return sockit__failf(-EINVAL, "readline: buffer of %zu bytes (need at least 2)",
                             buf == NULL ? (size_t)0 : size);
    /* Bytes of a datagram beyond the buffer's free space would be cut by the kernel;
     * lines are a stream notion, so datagram sockets are refused outright. */
    if (s->type != SOCK_STREAM)
        return sockit__failf(-EOPNOTSUPP, "readline on a datagram socket (use recv)");
    sockit__rbuf *b = &s->rbuf;
    /* A line is held in the buffer until it is complete, so a timeout or would-block
     * mid-line loses nothing; hence no line can be longer than the buffer. */
    size_t limit = size - 1 < RBUF_CAP ? size - 1 : RBUF_CAP;
    int64_t deadline = sockit__call_deadline(s);
    size_t scanned = 0; /* unread bytes already known to hold no '\n' */
    for (;;) {
        size_t have = b->end - b->start;
        size_t upto = have < limit ? have : limit;
        if (upto > scanned) {
            char *from = b->data + b->start;
            char *nl = memchr(from + scanned, '\n', upto - scanned);
            if (nl != NULL)
                return deliver(b, buf, (size_t)(nl - from) + 1);
            scanned = upto;
        }
        if (have >= limit) {
            /* limit bytes and no '\n' is still a whole line if the stream ends right
             * here; only one more byte, or the end, tells which. */
            int more = have > limit ? 1 : more_after_full_buffer(s, deadline);
            if (more == 0)
                return deliver(b, buf, have);
            if (more < 0)
                return sockit__io_fail(s, more, "readline");
            if (more == 1) {
                deliver(b, buf, limit);
                return sockit__failf(SOCKIT_ELINELEN, "readline: no newline in the first %zu bytes",
                                     limit);
            }
        }
        if (rbuf_make_room(b) < 0)
            return sockit__failf(-ENOMEM, "readline: allocating a %zu-byte buffer", RBUF_CAP);
        short want = POLLIN;
        ssize_t n = s->transport->recv(s, b->data + b->end, b->cap - b->end, 0, &want);
        if (n > 0) {
            b->end += (size_t)n;
            continue;
        }
        if (n == 0) /* end of stream: the partial line, or 0 when there is none */
            return deliver(b, buf, have);
        if (n != -EAGAIN)
            return sockit__io_fail(s, (int)n, "readline");
        int rc = sockit__await(s, want, deadline);
        if (rc < 0)
            return sockit__io_fail(s, rc, "readline");
    }
}
