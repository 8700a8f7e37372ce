/* The poll backend: portable POSIX, O(n) per wait. It exists so the interface in
 * backend.h is kept honest by a second implementation, and for systems without
 * epoll. */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

typedef struct poll_ready {
    uint64_t token;
    int events;
} poll_ready;

typedef struct poll_impl {
    struct pollfd *fds; /* the watched set, packed */
    uint64_t *tokens;   /* tokens[i] belongs to fds[i] */
    poll_ready *ready;  /* one wait's results, collected before any is reported */
    size_t count, cap;
    int *slot_of; /* slot_of[fd]: index into fds, or -1 */
    size_t slot_cap;
} poll_impl;

static int poll_open(sockit__backend *b)
{
    poll_impl *p = sockit__calloc(1, sizeof *p);
    if (p == NULL)
        return sockit__failf(-ENOMEM, "loop backend poll");
    b->impl = p;
    return 0;
}

static void poll_close(sockit__backend *b, bool forked)
{
    (void)forked; /* poll registers nothing in the kernel */
    poll_impl *p = b->impl;
    sockit__free(p->fds);
    sockit__free(p->tokens);
    sockit__free(p->ready);
    sockit__free(p->slot_of);
    sockit__free(p);
    b->impl = NULL;
}

static short to_poll(int events)
{
    return (short)(((events & SOCKIT_EVENT_READ) ? POLLIN : 0) |
                   ((events & SOCKIT_EVENT_WRITE) ? POLLOUT : 0));
}

static int grow(poll_impl *p, int fd)
{
    if ((size_t)fd >= p->slot_cap) {
        size_t cap = p->slot_cap ? p->slot_cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        int *m = sockit__realloc(p->slot_of, cap * sizeof *m);
        if (m == NULL)
            return -ENOMEM;
        for (size_t i = p->slot_cap; i < cap; i++)
            m[i] = -1;
        p->slot_of = m;
        p->slot_cap = cap;
    }
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct pollfd *f = sockit__realloc(p->fds, cap * sizeof *f);
        if (f == NULL)
            return -ENOMEM;
        p->fds = f;
        uint64_t *t = sockit__realloc(p->tokens, cap * sizeof *t);
        if (t == NULL)
            return -ENOMEM;
        p->tokens = t;
        poll_ready *r = sockit__realloc(p->ready, cap * sizeof *r);
        if (r == NULL)
            return -ENOMEM;
        p->ready = r;
        p->cap = cap;
    }
    return 0;
}

static int poll_watch(sockit__backend *b, int fd, uint64_t token, int old_events, int new_events)
{
    poll_impl *p = b->impl;
    if (fd < 0)
        return -EBADF;
    int slot = (size_t)fd < p->slot_cap ? p->slot_of[fd] : -1;
    if (old_events == 0) {
        if (slot >= 0)
            return -EEXIST;
        /* poll itself would take a descriptor that is not open and report it ready
         * (POLLNVAL) on every wait; refuse it now, as epoll_ctl does. */
        if (fcntl(fd, F_GETFD) < 0)
            return -errno;
        int rc = grow(p, fd);
        if (rc < 0)
            return rc;
        slot = (int)p->count++;
        p->slot_of[fd] = slot;
        p->fds[slot] = (struct pollfd){.fd = fd, .events = to_poll(new_events)};
        p->tokens[slot] = token;
        return 0;
    }
    if (slot < 0)
        return -ENOENT;
    if (new_events != 0) {
        p->fds[slot].events = to_poll(new_events);
        p->tokens[slot] = token;
        return 0;
    }
    /* Removal keeps the set packed: the last entry takes the freed slot. */
    size_t last = --p->count;
    if ((size_t)slot != last) {
        p->fds[slot] = p->fds[last];
        p->tokens[slot] = p->tokens[last];
        p->slot_of[p->fds[slot].fd] = slot;
    }
    p->slot_of[fd] = -1;
    return 0;
}

static int poll_wait(sockit__backend *b, int64_t timeout_ns, sockit__ready_fn ready, void *ctx)
{
    poll_impl *p = b->impl;
    int n = sockit__sys_poll(p->fds, (nfds_t)p->count, sockit__ns_to_ms(timeout_ns));
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    /* Collected first: a ready callback may watch or unwatch, which reorders fds. */
    size_t found = 0;
    for (size_t i = 0; i < p->count && found < (size_t)n; i++) {
        short got = p->fds[i].revents;
        if (got == 0)
            continue;
        int events =
            ((got & POLLIN) ? SOCKIT_EVENT_READ : 0) | ((got & POLLOUT) ? SOCKIT_EVENT_WRITE : 0);
        if (got & (POLLERR | POLLHUP | POLLNVAL))
            events = SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE;
        p->ready[found++] = (poll_ready){p->tokens[i], events};
    }
    for (size_t i = 0; i < found; i++)
        ready(ctx, p->ready[i].token, p->ready[i].events);
    return (int)found;
}

const sockit__backend_ops sockit__poll_backend = {
    .name = "poll",
    .open = poll_open,
    .close = poll_close,
    .watch = poll_watch,
    .wait = poll_wait,
};
