/* Timers: a binary min-heap ordered by (due, seq), each timer knowing its index, so
 * start, stop and restart are O(log n) and the next deadline is O(1). */
#include "loop_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#define NOT_IN_HEAP SIZE_MAX

static bool earlier(const sockit_timer *a, const sockit_timer *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void place(sockit_timer **heap, size_t i, sockit_timer *t)
{
    heap[i] = t;
    t->heap_index = i;
}

static void sift_up(sockit_timer **heap, size_t i)
{
    sockit_timer *t = heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(t, heap[parent]))
            break;
        place(heap, i, heap[parent]);
        i = parent;
    }
    place(heap, i, t);
}

static void sift_down(sockit_timer **heap, size_t n, size_t i)
{
    sockit_timer *t = heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && earlier(heap[child + 1], heap[child]))
            child++;
        if (!earlier(heap[child], t))
            break;
        place(heap, i, heap[child]);
        i = child;
    }
    place(heap, i, t);
}

static void heap_remove(sockit_loop *loop, sockit_timer *t)
{
    size_t i = t->heap_index;
    size_t last = --loop->nheap;
    t->heap_index = NOT_IN_HEAP;
    if (i == last)
        return;
    sockit_timer *moved = loop->heap[last];
    place(loop->heap, i, moved);
    if (i > 0 && earlier(moved, loop->heap[(i - 1) / 2]))
        sift_up(loop->heap, i);
    else
        sift_down(loop->heap, loop->nheap, i);
}

static int heap_insert(sockit_loop *loop, sockit_timer *t)
{
    if (loop->nheap == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        sockit_timer **h = sockit__realloc(loop->heap, cap * sizeof *h);
        if (h == NULL)
            return -ENOMEM;
        loop->heap = h;
        loop->heap_cap = cap;
    }
    place(loop->heap, loop->nheap++, t);
    sift_up(loop->heap, t->heap_index);
    return 0;
}

sockit_timer *sockit_timer_new(sockit_loop *loop, sockit_timer_fn cb, void *user)
{
    if (loop == NULL || cb == NULL) {
        sockit__failf(-EINVAL, "timer_new: %s", loop == NULL ? "no loop" : "no callback");
        return NULL;
    }
    sockit_timer *t = sockit__calloc(1, sizeof *t);
    if (t == NULL) {
        sockit__failf(-ENOMEM, "timer_new");
        return NULL;
    }
    sockit__watcher_init(&t->base, loop, SOCKIT__TIMER, user, true);
    t->cb = cb;
    t->heap_index = NOT_IN_HEAP;
    return t;
}

/* Seconds to nanoseconds for a time the caller gave; beyond ~292 years saturates. */
static int64_t to_ns(double seconds)
{
    return seconds > 9.0e9 ? INT64_MAX / 2 : (int64_t)(seconds * 1e9);
}

int sockit_timer_start(sockit_timer *t, double after, double repeat)
{
    if (t == NULL || t->base.closing)
        return sockit__failf(-EINVAL, "timer_start: %s", t ? "timer is closed" : "no timer");
    if (isnan(after) || isnan(repeat) || after < 0 || repeat < 0)
        return sockit__failf(-EINVAL, "timer_start: after %g, repeat %g (need >= 0)", after,
                             repeat);
    sockit_loop *loop = t->base.loop;
    if (t->heap_index != NOT_IN_HEAP)
        heap_remove(loop, t);
    t->due = loop->now + to_ns(after);
    t->repeat_ns = to_ns(repeat);
    t->seq = loop->timer_seq++;
    int rc = heap_insert(loop, t);
    if (rc < 0) {
        sockit__watcher_set_active(&t->base, false);
        return sockit__failf(rc, "timer_start");
    }
    sockit__watcher_set_active(&t->base, true);
    return 0;
}

int sockit_timer_stop(sockit_timer *t)
{
    if (t == NULL)
        return sockit__failf(-EINVAL, "timer_stop: no timer");
    if (t->heap_index != NOT_IN_HEAP)
        heap_remove(t->base.loop, t);
    sockit__watcher_set_active(&t->base, false);
    return 0;
}

bool sockit_timer_active(const sockit_timer *t) { return t != NULL && t->base.active; }

double sockit_timer_remaining(const sockit_timer *t)
{
    if (t == NULL || !t->base.active)
        return -1.0;
    int64_t left = t->due - t->base.loop->now;
    return left > 0 ? (double)left / 1e9 : 0.0;
}

void sockit_timer_keepalive(sockit_timer *t, bool on)
{
    if (t != NULL)
        sockit__watcher_set_keepalive(&t->base, on);
}

void sockit_timer_close(sockit_timer *t)
{
    if (t == NULL || t->base.closing)
        return;
    sockit_timer_stop(t);
    sockit__watcher_release(&t->base);
}

void sockit__timer_free(sockit_timer *t) { sockit__free(t); }

int64_t sockit__timers_next(const sockit_loop *loop)
{
    if (loop->nheap == 0)
        return -1;
    int64_t left = loop->heap[0]->due - loop->now;
    return left > 0 ? left : 0;
}

void sockit__timers_run(sockit_loop *loop)
{
    /* Timers started by these callbacks (also a repeat rescheduled here) have a seq
     * from now on and wait for the next iteration, even when due at once: a timer
     * that restarts itself with 0 cannot hold the loop in this phase. */
    uint64_t first_new = loop->timer_seq;
    while (loop->nheap > 0) {
        sockit_timer *t = loop->heap[0];
        if (t->due > loop->now || t->seq >= first_new)
            break;
        heap_remove(loop, t);
        if (t->repeat_ns > 0) {
            /* Periodic on its own schedule; one that fell behind fires once and
             * continues from now, never in a burst. */
            int64_t next = t->due + t->repeat_ns;
            t->due = next > loop->now ? next : loop->now + t->repeat_ns;
            t->seq = loop->timer_seq++;
            if (heap_insert(loop, t) < 0)
                sockit__watcher_set_active(&t->base, false);
        } else {
            sockit__watcher_set_active(&t->base, false);
        }
        t->cb(t, t->base.user);
    }
}
