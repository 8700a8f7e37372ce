/* A stream's filter (stream_internal.h): the place between the wire and the user
 * where bytes are transformed both ways, which TLS over memory BIOs will use. The
 * stream calls in here at the two points where wire bytes and user bytes meet:
 * after a read (on_wire, on_wire_eof) and on a write (on_user), plus when the
 * user's side ends and when the stream does. */
#include "stream_internal.h"

#include <errno.h>

int sockit__stream_set_filter(sockit_stream *st, const sockit__filter_ops *ops, void *ctx)
{
    if (st == NULL || ops == NULL || ops->on_wire == NULL || ops->on_user == NULL)
        return sockit__failf(-EINVAL, "stream filter: %s", st == NULL ? "no stream" : "no ops");
    sockit__stream_ext *x = st->ext;
    if (st->filtered)
        return sockit__failf(-EEXIST, "stream filter %s: the stream has one (%s)", ops->name,
                             x != NULL && x->filter != NULL ? x->filter->name : "ended");
    /* Bytes already through would be on the wrong side of it. */
    if (st->closing || (x != NULL && (x->wq_head != NULL || x->pend_off < x->pend_len)))
        return sockit__failf(-EBUSY, "stream filter %s: bytes have already gone through",
                             ops->name);
    x = sockit__stream_ext_get(st);
    if (x == NULL)
        return sockit__fail(-ENOMEM, "stream filter");
    x->filter = ops;
    x->filter_ctx = ctx;
    st->filtered = 1;
    return 0;
}

char *sockit__filter_buf(sockit_loop *loop)
{
    if (loop->filter_buf == NULL)
        loop->filter_buf = sockit__malloc(SOCKIT__STREAM_READ);
    return loop->filter_buf;
}

void sockit__filter_deliver(sockit_stream *st, const char *data, size_t len)
{
    if (!st->closing && len > 0)
        sockit__stream_received(st, data, len);
}

int sockit__filter_send_wire(sockit_stream *st, const void *data, size_t len)
{
    if (st->ended)
        return -EPIPE;
    sockit__stream_ext *x = st->ext;
    if (x->wire > 2 * x->limit || len > 2 * x->limit - x->wire)
        return sockit__failf(-ENOBUFS,
                             "stream filter %s: %zu wire bytes queued, %zu more would pass "
                             "twice the limit",
                             x->filter->name, x->wire, len);
    return len > 0 ? sockit__stream_send_bytes(st, data, len, false) : 0;
}

static void failed(sockit_stream *st, int rc, const char *what)
{
    char op[64];
    snprintf(op, sizeof op, "%s (%s)", what, st->ext->filter->name);
    sockit__stream_fail(st, rc, op);
}

void sockit__filter_wire(sockit_stream *st, const char *data, size_t len)
{
    sockit__stream_ext *x = st->ext;
    int rc = x->filter->on_wire(x->filter_ctx, st, data, len);
    if (rc < 0 && !st->ended)
        failed(st, rc, "recv");
}

void sockit__filter_wire_eof(sockit_stream *st)
{
    sockit__stream_ext *x = st->ext;
    int rc = x->filter->on_wire_eof != NULL ? x->filter->on_wire_eof(x->filter_ctx, st) : 0;
    if (rc < 0 && !st->ended)
        failed(st, rc, "end of stream");
}

void sockit__filter_failed_later(sockit_stream *st)
{
    if (!st->ended)
        failed(st, st->ext->filter_error, "send");
    sockit__stream_unref(st);
}

int sockit__filter_user(sockit_stream *st, const void *buf, size_t len)
{
    sockit__stream_ext *x = st->ext;
    int rc = x->filter->on_user(x->filter_ctx, st, buf, len);
    if (rc == 0)
        return 0;
    /* The wire may hold part of what the filter made of it: the stream cannot go
     * on. It ends from the loop, never from inside the write. */
    if (x->filter_error == 0) {
        x->filter_error = rc;
        sockit__stream_defer(st, SOCKIT__DEFER_FILTER);
    }
    return sockit__failf(rc, "stream_write (%s): the filter refused %zu bytes", x->filter->name,
                         len);
}

void sockit__filter_user_end(sockit_stream *st)
{
    sockit__stream_ext *x = st->ext;
    if (x->filter_ended || x->filter->on_user_end == NULL)
        return;
    x->filter_ended = true;
    /* A failure here ends nothing more than the stream already ends. */
    x->filter->on_user_end(x->filter_ctx, st);
}

void sockit__filter_free(sockit_stream *st)
{
    sockit__stream_ext *x = st->ext;
    if (x->filter->free != NULL)
        x->filter->free(x->filter_ctx);
    x->filter = NULL;
    x->filter_ctx = NULL;
}
