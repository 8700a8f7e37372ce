/* Idle timeouts without a timer per stream, and the loop's list of its streams.
 *
 * Streams with the same idle timeout share a bucket: a list kept in order of last
 * activity (a stream that moves bytes goes to the tail, two pointer moves) and one
 * timer, due when the head's time is up. Traffic never touches the timer: when it
 * fires for a head that has since moved, it is started again for the new head. So
 * an idle stream costs two pointers and a 32-bit time, not a timer and a heap slot,
 * and 10,000 streams with the same timeout cost one timer. Bucket 0 holds the
 * streams without a timeout, so that every open stream is on exactly one list: a
 * listener or a closing server walks them.
 *
 * close's linger is rare and short-lived: it has a timer of its own, in the ext. */
#include "stream_internal.h"

#include <errno.h>

static uint32_t now_ms(const sockit_loop *loop) { return (uint32_t)(loop->now / 1000000); }

static sockit__idle_bucket *bucket_of(const sockit_stream *st)
{
    return st->loop->stream_buckets[st->bucket];
}

static void unlink_stream(sockit__idle_bucket *b, sockit_stream *st)
{
    if (st->idle_prev != NULL)
        st->idle_prev->idle_next = st->idle_next;
    else
        b->head = st->idle_next;
    if (st->idle_next != NULL)
        st->idle_next->idle_prev = st->idle_prev;
    else
        b->tail = st->idle_prev;
    st->idle_prev = st->idle_next = NULL;
}

static void append(sockit__idle_bucket *b, sockit_stream *st)
{
    st->idle_next = NULL;
    st->idle_prev = b->tail;
    if (b->tail != NULL)
        b->tail->idle_next = st;
    else
        b->head = st;
    b->tail = st;
}

static void arm(sockit__idle_bucket *b)
{
    if (b->timeout_ms == 0 || b->timer == NULL)
        return;
    if (b->head == NULL) {
        sockit_timer_stop(b->timer);
        return;
    }
    uint32_t idle = now_ms(b->loop) - b->head->last_active; /* wraps correctly */
    uint32_t left = idle >= b->timeout_ms ? 0 : b->timeout_ms - idle;
    sockit_timer_start(b->timer, (double)left / 1e3, 0.0);
}

static void bucket_due(sockit_timer *t, void *arg)
{
    (void)t;
    sockit__idle_bucket *b = arg;
    uint32_t now = now_ms(b->loop);
    /* Ending a stream takes it off the list, so the head moves on. */
    while (b->head != NULL && now - b->head->last_active >= b->timeout_ms)
        sockit__stream_fail(b->head, SOCKIT_ETIMEOUT, "idle timeout: peer");
    arm(b);
}

/* A stream left b: an empty bucket keeps no watcher (so the loop can close once its
 * streams are gone); otherwise its timer follows the head. */
static void bucket_left(sockit__idle_bucket *b)
{
    if (b->head == NULL && b->timer != NULL) {
        sockit_timer_close(b->timer);
        b->timer = NULL;
    }
}

/* The bucket for timeout_ms, made if needed. Returns its index or a code. */
static int find_bucket(sockit_loop *loop, uint32_t timeout_ms)
{
    size_t free_at = SIZE_MAX;
    for (size_t i = 0; i < loop->nstream_buckets; i++) {
        sockit__idle_bucket *b = loop->stream_buckets[i];
        if (b->timeout_ms == timeout_ms)
            return (int)i;
        /* An empty bucket of another timeout can be had again. */
        if (i > 0 && b->head == NULL && free_at == SIZE_MAX)
            free_at = i;
    }
    if (free_at != SIZE_MAX) {
        loop->stream_buckets[free_at]->timeout_ms = timeout_ms;
        return (int)free_at;
    }
    if (loop->nstream_buckets >= SOCKIT__IDLE_BUCKETS)
        return sockit__failf(-ENOSPC,
                             "stream idle timeout: more than %d different timeouts "
                             "in use on one loop",
                             SOCKIT__IDLE_BUCKETS - 1);
    sockit__idle_bucket **a = sockit__realloc(
        loop->stream_buckets, (loop->nstream_buckets + 1) * sizeof *loop->stream_buckets);
    if (a == NULL)
        return sockit__fail(-ENOMEM, "stream idle timeout");
    loop->stream_buckets = a;
    sockit__idle_bucket *b = sockit__calloc(1, sizeof *b);
    if (b == NULL)
        return sockit__fail(-ENOMEM, "stream idle timeout");
    b->loop = loop;
    b->timeout_ms = timeout_ms;
    a[loop->nstream_buckets] = b;
    return (int)loop->nstream_buckets++;
}

/* Bucket 0 (no timeout) exists before any other. */
static int ensure_none_bucket(sockit_loop *loop)
{
    if (loop->nstream_buckets > 0)
        return 0;
    int rc = find_bucket(loop, 0);
    return rc < 0 ? rc : 0;
}

int sockit__stream_idle_set(sockit_stream *st, uint32_t timeout_ms)
{
    sockit_loop *loop = st->loop;
    int rc = ensure_none_bucket(loop);
    if (rc < 0)
        return rc;
    bool listed = st->idle_prev != NULL || bucket_of(st)->head == st;
    int to = find_bucket(loop, timeout_ms);
    if (to < 0)
        return to;
    sockit__idle_bucket *b = loop->stream_buckets[to];
    if (timeout_ms > 0 && b->timer == NULL) {
        b->timer = sockit_timer_new(loop, bucket_due, b);
        if (b->timer == NULL)
            return sockit_errcode();
        /* The streams' descriptors keep the loop running; their timer alone must not. */
        sockit_timer_keepalive(b->timer, false);
    }
    if (listed) {
        sockit__idle_bucket *from = bucket_of(st);
        unlink_stream(from, st);
        if (from != b)
            bucket_left(from);
    }
    st->bucket = (uint8_t)to;
    st->last_active = now_ms(loop);
    append(b, st);
    if (b->head == st)
        arm(b);
    else if (b->timer != NULL && !sockit_timer_active(b->timer))
        arm(b);
    return 0;
}

uint32_t sockit__stream_idle_ms(const sockit_stream *st) { return bucket_of(st)->timeout_ms; }

void sockit__stream_touch(sockit_stream *st)
{
    sockit__idle_bucket *b = bucket_of(st);
    st->last_active = now_ms(st->loop);
    if (b->timeout_ms == 0 || b->tail == st)
        return;
    unlink_stream(b, st);
    append(b, st);
}

void sockit__stream_idle_remove(sockit_stream *st)
{
    sockit_loop *loop = st->loop;
    if (loop->nstream_buckets == 0)
        return;
    sockit__idle_bucket *b = bucket_of(st);
    if (st->idle_prev == NULL && b->head != st)
        return; /* not listed */
    unlink_stream(b, st);
    bucket_left(b);
}

sockit_stream *sockit__stream_first(sockit_loop *loop)
{
    for (size_t i = 0; i < loop->nstream_buckets; i++)
        if (loop->stream_buckets[i]->head != NULL)
            return loop->stream_buckets[i]->head;
    return NULL;
}

sockit_stream *sockit__stream_next(sockit_stream *st)
{
    if (st->idle_next != NULL)
        return st->idle_next;
    sockit_loop *loop = st->loop;
    for (size_t i = (size_t)st->bucket + 1; i < loop->nstream_buckets; i++)
        if (loop->stream_buckets[i]->head != NULL)
            return loop->stream_buckets[i]->head;
    return NULL;
}

void sockit__stream_buckets_free(sockit_loop *loop)
{
    for (size_t i = 0; i < loop->nstream_buckets; i++)
        sockit__free(loop->stream_buckets[i]);
    sockit__free(loop->stream_buckets);
    loop->stream_buckets = NULL;
    loop->nstream_buckets = 0;
}

int sockit_stream_set_idle_timeout(sockit_stream *st, double secs)
{
    if (st == NULL || !(secs >= 0) || secs > SOCKIT__IDLE_MAX_S)
        return sockit__failf(-EINVAL, "stream_set_idle_timeout: %g s (need 0 to 4e6)", secs);
    if (st->ended)
        return 0;
    /* Outside a run the loop's time may be long past: the clock starts now. */
    if (!st->loop->running)
        sockit_loop_update_time(st->loop);
    uint32_t ms = (uint32_t)(secs * 1e3 + 0.999);
    if (ms == 0 && secs > 0)
        ms = 1;
    return sockit__stream_idle_set(st, ms);
}

static void linger_over(sockit_timer *t, void *arg)
{
    (void)t;
    /* close's linger ran out with bytes still queued: they are dropped. */
    sockit__stream_end(arg, SOCKIT_ETIMEOUT, true);
}

void sockit__stream_arm_linger(sockit_stream *st)
{
    sockit__stream_ext *x = st->ext;
    if (st->ended || x == NULL || x->linger_at == 0)
        return;
    if (x->linger == NULL) {
        x->linger = sockit_timer_new(st->loop, linger_over, st);
        if (x->linger == NULL) {
            sockit__stream_end(st, -ENOMEM, true);
            return;
        }
    }
    int64_t in = x->linger_at - st->loop->now;
    sockit_timer_start(x->linger, in > 0 ? (double)in / 1e9 : 0.0, 0.0);
}
