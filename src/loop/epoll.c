/* The epoll backend, the default on Linux: level-triggered, so "ready until handled"
 * needs no bookkeeping here, and one epoll_ctl per change of interest. Timed waits
 * use epoll_pwait2, whose timeout is in nanoseconds: epoll_wait's milliseconds would
 * make a timer due in 0.2 ms fire after 1 ms, and a load generator's open loop would
 * count that lateness as the server's latency. Kernels before 5.11 lack it (ENOSYS):
 * those get epoll_wait, timeouts rounded up to the millisecond. */
#include "backend.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* Events collected per epoll_wait. More ready descriptors than this are reported by
 * the next wait, which level triggering guarantees. */
#define EPOLL_BATCH 256

typedef struct epoll_impl {
    int epfd;
    bool no_pwait2; /* the kernel said ENOSYS once */
    struct epoll_event events[EPOLL_BATCH];
} epoll_impl;

static int epoll_open(sockit__backend *b)
{
    epoll_impl *e = sockit__malloc(sizeof *e);
    if (e == NULL)
        return sockit__failf(-ENOMEM, "loop backend epoll");
    e->no_pwait2 = false;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->epfd < 0) {
        int err = errno;
        sockit__free(e);
        return sockit__failf(-err, "loop backend epoll: epoll_create1");
    }
    b->impl = e;
    return 0;
}

static void epoll_close(sockit__backend *b, bool forked)
{
    /* Closing our copy of the epoll descriptor leaves the parent's instance and its
     * registrations alone, so the forked case needs nothing more. */
    (void)forked;
    epoll_impl *e = b->impl;
    close(e->epfd);
    sockit__free(e);
    b->impl = NULL;
}

static uint32_t to_epoll(int events)
{
    return ((events & SOCKIT_EVENT_READ) ? EPOLLIN : 0u) |
           ((events & SOCKIT_EVENT_WRITE) ? EPOLLOUT : 0u);
}

static int epoll_watch(sockit__backend *b, int fd, uint64_t token, int old_events, int new_events)
{
    epoll_impl *e = b->impl;
    struct epoll_event ev = {.events = to_epoll(new_events), .data.u64 = token};
    int op = old_events == 0 ? EPOLL_CTL_ADD : new_events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (sockit__sys_epoll_ctl(e->epfd, op, fd, &ev) == 0)
        return 0;
    int err = errno;
    /* A descriptor closed before it was unwatched has already left the set. */
    if (op == EPOLL_CTL_DEL && (err == EBADF || err == ENOENT))
        return 0;
    return -err;
}

static int epoll_wait_ready(sockit__backend *b, int64_t timeout_ns, sockit__ready_fn ready,
                            void *ctx)
{
    epoll_impl *e = b->impl;
    int n;
    if (timeout_ns > 0 && !e->no_pwait2) {
        struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000),
                              .tv_nsec = (long)(timeout_ns % 1000000000)};
        n = sockit__sys_epoll_pwait2(e->epfd, e->events, EPOLL_BATCH, &ts);
        if (n < 0 && errno == ENOSYS) {
            e->no_pwait2 = true;
            n = sockit__sys_epoll_wait(e->epfd, e->events, EPOLL_BATCH,
                                       sockit__ns_to_ms(timeout_ns));
        }
    } else {
        /* No limit or no wait at all: nothing to round, and the older call is as good. */
        n = sockit__sys_epoll_wait(e->epfd, e->events, EPOLL_BATCH, timeout_ns < 0 ? -1 : 0);
    }
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint32_t got = e->events[i].events;
        int events =
            ((got & EPOLLIN) ? SOCKIT_EVENT_READ : 0) | ((got & EPOLLOUT) ? SOCKIT_EVENT_WRITE : 0);
        /* Errors and hang-ups: the caller's own read or write will say which. */
        if (got & (EPOLLERR | EPOLLHUP))
            events = SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE;
        ready(ctx, e->events[i].data.u64, events);
    }
    return n;
}

const sockit__backend_ops sockit__epoll_backend = {
    .name = "epoll",
    .open = epoll_open,
    .close = epoll_close,
    .watch = epoll_watch,
    .wait = epoll_wait_ready,
};
