/* The stream's one timer: the idle timeout and close's linger, whichever is due
 * first. Traffic only records the loop's time (last_active); the timer is not moved
 * per byte: when it fires early for an idle deadline that traffic pushed back, it is
 * started again for the rest. */
#include "stream_internal.h"

#include <errno.h>

static int64_t next_deadline(const sockit_stream *st)
{
    int64_t due = INT64_MAX;
    if (st->idle_ns > 0)
        due = st->last_active + st->idle_ns;
    if (st->linger_at > 0 && st->linger_at < due)
        due = st->linger_at;
    return due;
}

static void on_timer(sockit_timer *t, void *arg)
{
    (void)t;
    sockit_stream *st = arg;
    int64_t now = st->loop->now;
    if (st->linger_at > 0 && now >= st->linger_at) {
        /* close's linger ran out with bytes still queued: they are dropped. */
        sockit__stream_end(st, SOCKIT_ETIMEOUT, true);
        return;
    }
    if (st->idle_ns > 0 && now >= st->last_active + st->idle_ns) {
        sockit__stream_fail(st, SOCKIT_ETIMEOUT, "idle timeout: peer");
        return;
    }
    sockit__stream_arm_timer(st);
}

void sockit__stream_arm_timer(sockit_stream *st)
{
    if (st->ended)
        return;
    int64_t due = next_deadline(st);
    if (due == INT64_MAX) {
        if (st->timer != NULL)
            sockit_timer_stop(st->timer);
        return;
    }
    if (st->timer == NULL) {
        st->timer = sockit_timer_new(st->loop, on_timer, st);
        if (st->timer == NULL) {
            sockit__stream_fail(st, -ENOMEM, "stream timer");
            return;
        }
        /* The descriptor's watcher keeps the loop running; a timer alone must not. */
        sockit_timer_keepalive(st->timer, false);
    }
    int64_t in = due - st->loop->now;
    sockit_timer_start(st->timer, in > 0 ? (double)in / 1e9 : 0.0, 0.0);
}

int sockit_stream_set_idle_timeout(sockit_stream *st, double secs)
{
    if (st == NULL || !(secs >= 0) || secs > 1e9)
        return sockit__failf(-EINVAL, "stream_set_idle_timeout: %g s (need 0 or more)", secs);
    if (st->ended)
        return 0;
    st->idle_ns = (int64_t)(secs * 1e9);
    st->last_active = st->loop->now;
    sockit__stream_arm_timer(st);
    return 0;
}
