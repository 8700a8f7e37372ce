/* Receiving: one read per readiness into the loop's buffer (fair to the other
 * streams of the loop, and an idle stream holds no buffer), then framing (raw,
 * lines, exact) into on_data calls. Only what a frame still lacks, or what came after
 * a pause inside on_data, is copied to the stream's own buffer. */
#include "stream_internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static bool has_pending(const sockit_stream *st)
{
    return st->ext != NULL && st->ext->pend_off < st->ext->pend_len;
}

void sockit__stream_deliver_soon(sockit_stream *st)
{
    if (st->deliver_scheduled || st->delivering || (!has_pending(st) && !st->eof_pending))
        return;
    sockit__stream_defer(st, SOCKIT__DEFER_DELIVER);
    st->deliver_scheduled = true;
}

int sockit__stream_keep(sockit_stream *st, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    sockit__stream_ext *x = sockit__stream_ext_get(st);
    if (x == NULL)
        return -ENOMEM;
    if (x->pend_off > 0 && x->pend_len + len > x->pend_cap) {
        memmove(x->pend, x->pend + x->pend_off, x->pend_len - x->pend_off);
        x->pend_len -= x->pend_off;
        x->pend_off = 0;
    }
    if (x->pend_len + len > x->pend_cap) {
        size_t cap = x->pend_cap * 2;
        if (cap < x->pend_len + len)
            cap = x->pend_len + len;
        char *p = sockit__realloc(x->pend, cap);
        if (p == NULL)
            return sockit__failf(-ENOMEM, "stream: keeping %zu received bytes", len);
        x->pend = p;
        x->pend_cap = cap;
    }
    memcpy(x->pend + x->pend_len, data, len);
    x->pend_len += len;
    return 0;
}

static void pend_release_if_empty(sockit_stream *st)
{
    sockit__stream_ext *x = st->ext;
    if (x == NULL || x->pend_off < x->pend_len)
        return;
    sockit__free(x->pend);
    x->pend = NULL;
    x->pend_off = x->pend_len = x->pend_cap = 0;
    sockit__stream_ext_trim(st);
}

/* Calls on_data for each whole frame of buf[0, len) until one is incomplete, the
 * stream pauses or closes. Returns the bytes consumed. */
static size_t deliver_frames(sockit_stream *st, const char *buf, size_t len)
{
    size_t off = 0;
    st->delivering = true;
    while (off < len && !st->closing && !st->paused) {
        size_t left = len - off, take;
        if (st->mode == SOCKIT__FRAME_RAW) {
            /* Bytes kept through a pause (a batch of completions on io_uring) go
             * out a read's worth at a time, so a pause in on_data holds the rest. */
            take = left < SOCKIT__STREAM_READ ? left : SOCKIT__STREAM_READ;
        } else if (st->mode == SOCKIT__FRAME_EXACT) {
            if (left < st->frame)
                break;
            take = st->frame;
        } else {
            const char *nl = memchr(buf + off, '\n', left < st->frame ? left : st->frame);
            if (nl != NULL) {
                take = (size_t)(nl - (buf + off)) + 1;
            } else if (left > st->frame) {
                /* frame bytes without a newline may still be a last line that fits, if
                 * the end comes next: only one more byte makes the line too long. */
                char op[64];
                snprintf(op, sizeof op, "read_lines: a line over %u bytes", st->frame);
                st->delivering = false;
                sockit__stream_fail(st, SOCKIT_ELINELEN, op);
                return len;
            } else {
                break;
            }
        }
        off += take;
        if (st->cb != NULL && st->cb->on_data != NULL)
            st->cb->on_data(st, buf + off - take, take, st->user);
    }
    st->delivering = false;
    return off;
}

static void deliver_pending(sockit_stream *st)
{
    while (!st->closing && !st->paused && has_pending(st)) {
        sockit__stream_ext *x = st->ext;
        size_t before = x->pend_off;
        /* The ext stays while delivering (trim waits for it), so x is still valid. */
        size_t used = deliver_frames(st, x->pend + x->pend_off, x->pend_len - x->pend_off);
        x->pend_off += used;
        if (x->pend_off == before)
            break; /* an incomplete frame: wait for more bytes */
    }
    if (!st->closing) {
        bool kept = has_pending(st);
        pend_release_if_empty(st);
        if (!kept && !st->paused)
            sockit__stream_update_io(st); /* all delivered: receiving again */
    }
}

static void received_eof(sockit_stream *st);

void sockit__stream_deliver_later(sockit_stream *st)
{
    st->deliver_scheduled = false;
    deliver_pending(st);
    if (st->eof_pending && !st->closing && !st->paused) {
        st->eof_pending = false;
        received_eof(st);
    }
    sockit__stream_unref(st);
}

void sockit__stream_received(sockit_stream *st, const char *data, size_t len)
{
    if (has_pending(st) || st->delivering) {
        /* Bytes are waiting already: these go after them. */
        if (sockit__stream_keep(st, data, len) < 0) {
            sockit__stream_fail(st, -ENOMEM, "recv");
            return;
        }
        if (!st->delivering)
            deliver_pending(st);
        return;
    }
    size_t used = deliver_frames(st, data, len);
    if (used < len && !st->closing && sockit__stream_keep(st, data + used, len - used) < 0)
        sockit__stream_fail(st, -ENOMEM, "recv");
}

/* The peer ended its side: a last partial frame, then on_eof (or a close). */
static void received_eof(sockit_stream *st)
{
    st->eof = true;
    sockit__stream_update_io(st);
    /* Whole frames still kept (read ahead, or held by a pause) go first, one by one. */
    deliver_pending(st);
    if (st->closing)
        return;
    if (st->paused) {
        /* The rest waits for resume; end of stream is told after it. (A completion
         * backend can see the end while paused: its receive was on its way.) */
        st->eof_pending = true;
        return;
    }
    sockit__stream_ext *x = st->ext;
    size_t left = x != NULL ? x->pend_len - x->pend_off : 0;
    if (left > 0 && !st->closing) {
        if (st->mode == SOCKIT__FRAME_EXACT) {
            char op[80];
            snprintf(op, sizeof op, "read_exact: end of stream after %zu of %u bytes", left,
                     st->frame);
            sockit__stream_fail(st, SOCKIT_EEOF, op);
            return;
        }
        /* An unterminated last line is a line (as readline). */
        x->pend_off = x->pend_len;
        st->delivering = true;
        if (st->cb != NULL && st->cb->on_data != NULL)
            st->cb->on_data(st, x->pend + x->pend_len - left, left, st->user);
        st->delivering = false;
        if (!st->closing)
            pend_release_if_empty(st);
    }
    if (st->closing)
        return;
    if (st->cb != NULL && st->cb->on_eof != NULL)
        st->cb->on_eof(st, st->user);
    else
        sockit_stream_close(st, -1);
}

/* n bytes read (0: end of stream), from a read or a receive's completion. */
static void got(sockit_stream *st, const char *data, size_t n)
{
    sockit__stream_touch(st);
    if (st->filtered) {
        /* The filter decides what of it is the user's, and when the end is. */
        if (n > 0)
            sockit__filter_wire(st, data, n);
        else
            sockit__filter_wire_eof(st);
        if (n == 0 && !st->ended && !st->eof)
            received_eof(st);
        return;
    }
    if (n == 0)
        received_eof(st);
    else
        sockit__stream_received(st, data, n);
}

void sockit__stream_readable(sockit_stream *st)
{
    if (st->paused || st->eof || st->closing)
        return;
    sockit_loop *loop = st->loop;
    if (loop->stream_buf == NULL) {
        loop->stream_buf = sockit__malloc(SOCKIT__STREAM_READ);
        if (loop->stream_buf == NULL) {
            sockit__stream_fail(st, -ENOMEM, "recv");
            return;
        }
    }
    int fd = st->h.fd;
    ssize_t n = st->is_socket ? sockit__sys_recv(fd, loop->stream_buf, SOCKIT__STREAM_READ, 0)
                              : read(fd, loop->stream_buf, SOCKIT__STREAM_READ);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            sockit__stream_fail(st, -errno, st->is_socket ? "recv" : "read");
        return;
    }
    got(st, loop->stream_buf, (size_t)n);
}

void sockit__stream_recv_done(sockit_stream *st, int res, const char *data, bool more)
{
    if (!more)
        st->recv_on = st->recv_stop = false;
    /* Bytes that come after a close or while a pause's cancel is on its way: a
     * closing stream reads no more (as on readiness, where they would stay in the
     * kernel); a paused one keeps them for resume. */
    if (!st->closing) {
        if (res >= 0)
            got(st, data, (size_t)res);
        else if (res != -ECANCELED && res != -ENOBUFS && res != -EINTR)
            sockit__stream_fail(st, res, "recv");
        /* A receive ended by the kernel (out of buffers, its thread gone) or by a
         * cancel is started again below if the stream still reads. */
    }
    if (more)
        return;
    if (!st->ended)
        sockit__stream_update_io(st);
    else if (st->close_waits && !st->send_on)
        sockit__stream_schedule_close(st);
    sockit__stream_unref(st);
}

void sockit_stream_resume(sockit_stream *st)
{
    if (st == NULL || !st->paused)
        return;
    st->paused = false;
    sockit__stream_deliver_soon(st);
    sockit__stream_update_io(st);
}

static int set_mode(sockit_stream *st, sockit__frame_mode mode, size_t frame)
{
    if (frame > UINT32_MAX)
        return sockit__failf(-EINVAL, "stream framing: a frame of %zu bytes (at most %u)", frame,
                             UINT32_MAX);
    st->mode = (unsigned)mode;
    st->frame = (uint32_t)frame;
    /* Bytes already here may make whole frames in the new mode. */
    if (!st->closing && !st->paused)
        sockit__stream_deliver_soon(st);
    return 0;
}

int sockit_stream_read_lines(sockit_stream *st, size_t max_line)
{
    if (st == NULL)
        return sockit__fail(-EINVAL, "stream_read_lines");
    return set_mode(st, SOCKIT__FRAME_LINES, max_line == 0 ? SOCKIT_LINE_MAX : max_line);
}

int sockit_stream_read_exact(sockit_stream *st, size_t n)
{
    if (st == NULL || n == 0)
        return sockit__failf(-EINVAL, "stream_read_exact: %s",
                             st == NULL ? "no stream" : "a frame of 0 bytes");
    return set_mode(st, SOCKIT__FRAME_EXACT, n);
}

int sockit_stream_read_raw(sockit_stream *st)
{
    if (st == NULL)
        return sockit__fail(-EINVAL, "stream_read_raw");
    return set_mode(st, SOCKIT__FRAME_RAW, 0);
}
