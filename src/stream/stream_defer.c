/* A stream's deferred calls: what must run from the loop, never inside the call that
 * caused it (on_close, the write-done calls, frames a pause held, a completion
 * backend's first receive, a filter's refusal). Each goes through call_soon, which
 * keeps the order of everything the loop was asked to run; when call_soon has no
 * memory, through the stream's own late node, so that no call is ever lost. */
#include "stream_internal.h"

#include <stddef.h>

static void start_later(sockit_stream *st)
{
    sockit__stream_update_io(st);
    sockit__stream_unref(st);
}

static void run_on_close(sockit_stream *st)
{
    st->loop->on_close_pending--;
    sockit__stream_run_done(st);
    if (st->cb != NULL && st->cb->on_close != NULL)
        st->cb->on_close(st, st->user);
    sockit__stream_unref(st); /* the deferred call's */
    sockit__stream_unref(st); /* the stream's own */
}

static void run_kind(sockit_stream *st, unsigned kind)
{
    switch (kind) {
    case SOCKIT__DEFER_START:
        start_later(st);
        break;
    case SOCKIT__DEFER_DELIVER:
        sockit__stream_deliver_later(st);
        break;
    case SOCKIT__DEFER_DONE:
        sockit__stream_done_later(st);
        break;
    case SOCKIT__DEFER_FILTER:
        sockit__filter_failed_later(st);
        break;
    default:
        run_on_close(st);
        break;
    }
}

static void soon_start(sockit_loop *loop, void *st)
{
    (void)loop, run_kind(st, SOCKIT__DEFER_START);
}
static void soon_deliver(sockit_loop *loop, void *st)
{
    (void)loop, run_kind(st, SOCKIT__DEFER_DELIVER);
}
static void soon_done(sockit_loop *loop, void *st) { (void)loop, run_kind(st, SOCKIT__DEFER_DONE); }
static void soon_filter(sockit_loop *loop, void *st)
{
    (void)loop, run_kind(st, SOCKIT__DEFER_FILTER);
}
static void soon_close(sockit_loop *loop, void *st)
{
    (void)loop, run_kind(st, SOCKIT__DEFER_CLOSE);
}

/* The kinds call_soon had no room for, in their order; each holds its reference, and
 * on_close comes last, so the stream outlives the calls before it. */
static void run_late(sockit_loop *loop, sockit__late *n)
{
    (void)loop;
    sockit_stream *st = (sockit_stream *)((char *)n - offsetof(sockit_stream, late));
    unsigned kinds = st->late_kinds;
    st->late_kinds = 0;
    for (unsigned kind = SOCKIT__DEFER_START; kind <= SOCKIT__DEFER_CLOSE; kind <<= 1)
        if (kinds & kind)
            run_kind(st, kind);
}

void sockit__stream_defer(sockit_stream *st, unsigned kind)
{
    static const sockit_call_fn soon[] = {soon_start, soon_deliver, soon_done, soon_filter,
                                          soon_close};
    unsigned i = 0;
    while ((1u << i) != kind)
        i++;
    st->refs++;
    /* call_soon keeps the order of everything the loop was asked to run; only when
     * its queue cannot grow does the call go on the stream's own node instead. */
    if (sockit_loop_call_soon(st->loop, soon[i], st) == 0)
        return;
    if (st->late_kinds & kind) {
        st->refs--; /* already on the node: it runs once */
        return;
    }
    st->late_kinds |= (uint8_t)kind;
    st->late.run = run_late;
    sockit__late_queue(st->loop, &st->late);
}
