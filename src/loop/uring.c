/* The io_uring backend, first step (issue 12): readiness through one-shot
 * IORING_OP_POLL_ADD, so the loop, the selector, streams and servers run on a ring
 * unchanged. One-shot, not multishot, because the loop promises level-triggered
 * readiness: a one-shot poll armed on a descriptor that is still ready completes at
 * once, so re-arming each reported descriptor before the next wait reports it again
 * for as long as it stays ready, exactly as epoll's level triggering does; a
 * multishot poll reports wake-ups (edges) and would stall a stream that read only
 * part of what was there. Re-arming costs one submission per report, batched into
 * the wait's own io_uring_enter. Completion operations (multishot receive into a
 * buffer ring, sends, accepts) are the next step; submit and cancel stay NULL.
 *
 * Each watched descriptor has an entry: its token, the events asked, and the
 * sequence of its poll in flight. A completion carries (fd, sequence) as its
 * user_data, so one for a poll that was since removed or replaced is recognised and
 * dropped. Built only when pkg-config finds liburing (SOCKIT_HAVE_URING). */
#include "backend.h"

#ifdef SOCKIT_HAVE_URING

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <string.h>

#define URING_ENTRIES 256
/* user_data of a poll removal's own completion, which reports nothing. */
#define REMOVE_TAG UINT64_MAX

typedef struct uring_entry {
    uint64_t token;
    uint32_t seq;   /* of the poll in flight, or of the next one */
    uint8_t events; /* asked; 0: not watched */
    bool armed;     /* a poll is in flight */
    bool rearm;     /* reported: arm again before the next wait */
} uring_entry;

typedef struct uring_impl {
    struct io_uring ring;
    uring_entry *fds;
    size_t nfds;
    int *rearm; /* descriptors to arm again before the next wait */
    size_t nrearm, rearm_cap;
} uring_impl;

static uint64_t tag(int fd, uint32_t seq) { return ((uint64_t)seq << 32) | (uint32_t)fd; }

static struct io_uring_sqe *get_sqe(uring_impl *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL) {
        /* The submission queue is full: hand it to the kernel and take a slot. */
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

static unsigned to_poll(int events)
{
    return ((events & SOCKIT_EVENT_READ) ? POLLIN : 0u) |
           ((events & SOCKIT_EVENT_WRITE) ? POLLOUT : 0u);
}

static int arm(uring_impl *u, int fd)
{
    uring_entry *e = &u->fds[fd];
    struct io_uring_sqe *sqe = get_sqe(u);
    if (sqe == NULL)
        return -EBUSY;
    io_uring_prep_poll_add(sqe, fd, to_poll(e->events));
    io_uring_sqe_set_data64(sqe, tag(fd, e->seq));
    e->armed = true;
    return 0;
}

static int disarm(uring_impl *u, int fd)
{
    uring_entry *e = &u->fds[fd];
    if (!e->armed)
        return 0;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (sqe == NULL)
        return -EBUSY;
    io_uring_prep_poll_remove(sqe, tag(fd, e->seq));
    io_uring_sqe_set_data64(sqe, REMOVE_TAG);
    e->armed = false;
    e->seq++; /* whatever the old poll still reports is stale now */
    return 0;
}

static int uring_open(sockit__backend *b)
{
    uring_impl *u = sockit__calloc(1, sizeof *u);
    if (u == NULL)
        return sockit__failf(-ENOMEM, "loop backend uring");
    int rc = io_uring_queue_init(URING_ENTRIES, &u->ring, 0);
    if (rc < 0) {
        sockit__free(u);
        return sockit__failf(rc, "loop backend uring: io_uring_setup");
    }
    struct io_uring_probe *p = io_uring_get_probe_ring(&u->ring);
    bool ok = p != NULL && io_uring_opcode_supported(p, IORING_OP_POLL_ADD) &&
              io_uring_opcode_supported(p, IORING_OP_POLL_REMOVE);
    if (p != NULL)
        io_uring_free_probe(p);
    if (!ok) {
        io_uring_queue_exit(&u->ring);
        sockit__free(u);
        return sockit__failf(-ENOSYS, "loop backend uring: the kernel lacks poll operations");
    }
    b->impl = u;
    return 0;
}

static void uring_close(sockit__backend *b, bool forked)
{
    /* A forked child unmaps and closes only its copies: the ring stays the parent's. */
    (void)forked;
    uring_impl *u = b->impl;
    io_uring_queue_exit(&u->ring);
    sockit__free(u->fds);
    sockit__free(u->rearm);
    sockit__free(u);
    b->impl = NULL;
}

static int grow(uring_impl *u, int fd)
{
    if ((size_t)fd < u->nfds)
        return 0;
    size_t n = u->nfds ? u->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    uring_entry *a = sockit__realloc(u->fds, n * sizeof *a);
    if (a == NULL)
        return -ENOMEM;
    memset(a + u->nfds, 0, (n - u->nfds) * sizeof *a);
    u->fds = a;
    u->nfds = n;
    return 0;
}

static int uring_watch(sockit__backend *b, int fd, uint64_t token, int old_events, int new_events)
{
    (void)old_events;
    uring_impl *u = b->impl;
    if (fd < 0)
        return -EBADF;
    int rc = grow(u, fd);
    if (rc < 0)
        return rc;
    uring_entry *e = &u->fds[fd];
    rc = disarm(u, fd);
    if (rc < 0)
        return rc;
    e->token = token;
    e->events = (uint8_t)new_events;
    e->rearm = false;
    if (new_events == 0) {
        /* A poll in flight holds the file: submitted now, the removal lets a close
         * that follows really close it (a listener refuses at once, as on epoll). */
        if (old_events != 0)
            io_uring_submit(&u->ring);
        return 0;
    }
    if (old_events == 0) {
        /* epoll_ctl says at once what it cannot watch; a poll would say it only in
         * its completion. Asked now, the caller gets the same answers. */
        struct pollfd pfd = {.fd = fd, .events = 0};
        if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLNVAL))
            return -EBADF;
    }
    return arm(u, fd);
}

static int push_rearm(uring_impl *u, int fd)
{
    if (u->nrearm == u->rearm_cap) {
        size_t c = u->rearm_cap ? u->rearm_cap * 2 : 64;
        int *a = sockit__realloc(u->rearm, c * sizeof *a);
        if (a == NULL)
            return -ENOMEM;
        u->rearm = a;
        u->rearm_cap = c;
    }
    u->rearm[u->nrearm++] = fd;
    return 0;
}

static int uring_wait(sockit__backend *b, int64_t timeout_ns, sockit__ready_fn ready, void *ctx)
{
    uring_impl *u = b->impl;
    if (sockit__sys_ring_wait_fault() < 0)
        return errno == EINTR ? 0 : -errno;
    /* Level triggering: what was reported and is still watched is asked again. */
    for (size_t i = 0; i < u->nrearm; i++) {
        int fd = u->rearm[i];
        uring_entry *e = &u->fds[fd];
        if (e->rearm && e->events != 0 && !e->armed)
            arm(u, fd);
        e->rearm = false;
    }
    u->nrearm = 0;
    struct io_uring_cqe *cqe = NULL;
    int rc;
    if (timeout_ns == 0) {
        rc = io_uring_submit(&u->ring);
    } else if (timeout_ns < 0) {
        rc = io_uring_submit_and_wait(&u->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
                                       .tv_nsec = timeout_ns % 1000000000};
        rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        if (rc == -ETIME)
            rc = 0;
    }
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY && rc != -EAGAIN)
        return rc;
    int reported = 0;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        seen++;
        uint64_t data = io_uring_cqe_get_data64(cqe);
        if (data == REMOVE_TAG)
            continue;
        int fd = (int)(uint32_t)data;
        uint32_t seq = (uint32_t)(data >> 32);
        if ((size_t)fd >= u->nfds)
            continue;
        uring_entry *e = &u->fds[fd];
        if (e->seq != seq || !e->armed || e->events == 0)
            continue; /* a poll since removed or replaced */
        e->armed = false;
        e->seq++;
        int res = cqe->res;
        int events;
        if (res < 0)
            events = SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE; /* the caller's I/O says why */
        else if (res & (POLLERR | POLLHUP | POLLNVAL))
            events = SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE;
        else
            events = ((res & POLLIN) ? SOCKIT_EVENT_READ : 0) |
                     ((res & POLLOUT) ? SOCKIT_EVENT_WRITE : 0);
        if (res != -EBADF && push_rearm(u, fd) == 0)
            e->rearm = true;
        ready(ctx, e->token, events);
        reported++;
    }
    io_uring_cq_advance(&u->ring, seen);
    return reported;
}

const sockit__backend_ops sockit__uring_backend = {
    .name = "uring",
    .open = uring_open,
    .close = uring_close,
    .watch = uring_watch,
    .wait = uring_wait,
};

#endif /* SOCKIT_HAVE_URING */
