/* Wakeups and deferred calls: sockit_wakeup (any thread or signal handler asks for a
 * callback in the loop), sockit_loop_call_soon (next iteration, loop thread) and
 * sockit_loop_post (next iteration, any thread, bounded). */
#include "loop_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

sockit_wakeup *sockit_wakeup_new(sockit_loop *loop, sockit_wakeup_fn cb, void *user)
{
    if (loop == NULL || cb == NULL) {
        sockit__failf(-EINVAL, "wakeup_new: %s", loop == NULL ? "no loop" : "no callback");
        return NULL;
    }
    sockit_wakeup *w = sockit__calloc(1, sizeof *w);
    if (w == NULL) {
        sockit__failf(-ENOMEM, "wakeup_new");
        return NULL;
    }
    sockit__watcher_init(&w->base, loop, SOCKIT__WAKEUP, user, false);
    w->cb = cb;
    atomic_init(&w->pending, false);
    w->next = loop->wakeups;
    if (loop->wakeups != NULL)
        loop->wakeups->prev = w;
    loop->wakeups = w;
    sockit__watcher_set_active(&w->base, true);
    return w;
}

void sockit_wakeup_send(sockit_wakeup *w)
{
    if (w == NULL)
        return;
    if (!atomic_exchange(&w->pending, true))
        sockit__loop_wake(w->base.loop);
}

void sockit_wakeup_keepalive(sockit_wakeup *w, bool on)
{
    if (w != NULL)
        sockit__watcher_set_keepalive(&w->base, on);
}

void sockit_wakeup_close(sockit_wakeup *w)
{
    if (w == NULL || w->base.closing)
        return;
    sockit_loop *loop = w->base.loop;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        loop->wakeups = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    /* Links kept: a walk in progress may stand on this watcher. */
    sockit__watcher_set_active(&w->base, false);
    sockit__watcher_release(&w->base);
}

void sockit__wakeups_run(sockit_loop *loop)
{
    for (sockit_wakeup *w = loop->wakeups; w != NULL;) {
        sockit_wakeup *next = w->next;
        if (!w->base.closing && atomic_exchange(&w->pending, false))
            w->cb(w, w->base.user);
        w = next;
    }
}

static int push(sockit__call **calls, size_t *n, size_t *cap, sockit_call_fn fn, void *arg)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        sockit__call *a = sockit__realloc(*calls, c * sizeof *a);
        if (a == NULL)
            return -ENOMEM;
        *calls = a;
        *cap = c;
    }
    (*calls)[(*n)++] = (sockit__call){fn, arg};
    return 0;
}

int sockit_loop_call_soon(sockit_loop *loop, sockit_call_fn fn, void *arg)
{
    if (loop == NULL || fn == NULL)
        return sockit__failf(-EINVAL, "loop_call_soon: %s", loop ? "no function" : "no loop");
    int rc = push(&loop->soon, &loop->nsoon, &loop->soon_cap, fn, arg);
    return rc < 0 ? sockit__failf(rc, "loop_call_soon") : 0;
}

void sockit__soon_run(sockit_loop *loop)
{
    /* Only the calls queued before this phase: what they queue waits for the next
     * iteration, so a call that queues itself cannot hold the loop here. The array
     * may move while they run, hence the index. */
    size_t n = loop->nsoon;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        sockit__call c = loop->soon[i];
        c.fn(loop, c.arg);
    }
    loop->nsoon -= n;
    memmove(loop->soon, loop->soon + n, loop->nsoon * sizeof *loop->soon);
}

int sockit_loop_post(sockit_loop *loop, sockit_call_fn fn, void *arg)
{
    if (loop == NULL || fn == NULL)
        return sockit__failf(-EINVAL, "loop_post: %s", loop ? "no function" : "no loop");
    pthread_mutex_lock(&loop->post_lock);
    int rc = SOCKIT_EWOULDBLOCK;
    if (loop->nposts < loop->max_posts)
        rc = push(&loop->posts, &loop->nposts, &loop->posts_cap, fn, arg);
    if (rc == 0)
        atomic_fetch_add(&loop->posts_waiting, 1);
    pthread_mutex_unlock(&loop->post_lock);
    if (rc == SOCKIT_EWOULDBLOCK)
        return sockit__failf(rc, "loop_post: %zu calls already waiting (max_posts)",
                             loop->max_posts);
    if (rc < 0)
        return sockit__failf(rc, "loop_post");
    sockit__loop_wake(loop);
    return 0;
}

void sockit__posts_run(sockit_loop *loop)
{
    /* Swapped out under the lock and run without it, so a posting thread never waits
     * for a callback, and a callback may post. */
    pthread_mutex_lock(&loop->post_lock);
    sockit__call *calls = loop->posts;
    size_t n = loop->nposts, cap = loop->posts_cap;
    loop->posts = loop->posts_spare;
    loop->posts_cap = loop->spare_cap;
    loop->nposts = 0;
    pthread_mutex_unlock(&loop->post_lock);
    for (size_t i = 0; i < n; i++) {
        calls[i].fn(loop, calls[i].arg);
        atomic_fetch_sub(&loop->posts_waiting, 1);
    }
    pthread_mutex_lock(&loop->post_lock);
    loop->posts_spare = calls;
    loop->spare_cap = cap;
    pthread_mutex_unlock(&loop->post_lock);
}
