/* Accepting on the loop. The listener is level-triggered: while the backlog holds
 * connections it stays readable, so draining it in one callback costs one wait for
 * a whole burst, and stopping the watcher is all it takes to pause. */
#include "accepter.h"

#include "netlog.h"

#include <errno.h>
#include <stdlib.h>

#define EMFILE_BACKOFF 100 /* ms without accepting after EMFILE/ENFILE */

struct accepter {
    sockit *listener;
    sockit_io *io;
    sockit_timer *backoff; /* running while short of descriptors */
    long count, max;
    bool short_of_fds; /* said once per shortage, not once per retry */
    accepter_fn cb;
    void *user;
};

static void watch(accepter *a)
{
    bool on = a->count < a->max && !sockit_timer_active(a->backoff);
    sockit_io_start(a->io, on ? SOCKIT_EVENT_READ : 0);
}

static void on_listener(sockit_io *io, int events, void *user)
{
    (void)io;
    (void)events;
    accepter *a = user;
    while (a->count < a->max) {
        sockit_addr peer;
        sockit *c = sockit_accept(a->listener, &peer);
        if (c == NULL) {
            int code = sockit_errcode();
            if (code == -EMFILE || code == -ENFILE) {
                if (!a->short_of_fds)
                    netlog_warn("%s (retrying every %d ms)", sockit_errmsg(), EMFILE_BACKOFF);
                a->short_of_fds = true;
                sockit_timer_start(a->backoff, EMFILE_BACKOFF / 1000.0, 0);
            }
            /* EAGAIN: the backlog is empty. Anything else (ECONNABORTED and the
             * like) is a client that is gone: the next readiness goes on. */
            break;
        }
        a->short_of_fds = false;
        a->count++;
        a->cb(c, &peer, a->user);
    }
    watch(a);
}

static void on_backoff(sockit_timer *t, void *user)
{
    (void)t;
    watch(user);
}

accepter *accepter_new(sockit_loop *loop, sockit *listener, long max, accepter_fn cb, void *user)
{
    accepter *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    *a = (accepter){.listener = listener, .max = max, .cb = cb, .user = user};
    sockit_setblocking(listener, false);
    a->io = sockit_io_new_socket(loop, listener, on_listener, a);
    a->backoff = sockit_timer_new(loop, on_backoff, a);
    if (a->io == NULL || a->backoff == NULL) {
        accepter_close(a);
        return NULL;
    }
    watch(a);
    return a;
}

void accepter_release(accepter *a)
{
    if (a->count-- == a->max)
        watch(a);
}

void accepter_close(accepter *a)
{
    if (a == NULL)
        return;
    sockit_io_close(a->io);
    sockit_timer_close(a->backoff);
    free(a);
}
