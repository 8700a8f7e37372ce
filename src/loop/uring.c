/* The io_uring backend: completions for streams and listeners, readiness for
 * everything else (sockit_io watchers, the selector, datagram endpoints, pipes).
 *
 * Completions (backend.h): a multishot receive per reading stream into the loop's
 * provided-buffer ring (uring_bufs.c), so a stream costs no system call to read and
 * no memory while idle; one send per stream in flight, submitted with the next wait;
 * a multishot accept per listener. The caller's tag is the completion's user_data,
 * as is; tags have bit 63 clear, which tells them from the polls' below.
 *
 * Readiness: one-shot IORING_OP_POLL_ADD, re-armed after each report, not multishot,
 * because the loop promises level-triggered readiness: a one-shot poll armed on a
 * descriptor that is still ready completes at once, so re-arming what was reported
 * reports it again for as long as it stays ready, as epoll's level triggering does;
 * a multishot poll reports wake-ups (edges) and would stall a watcher that read only
 * part of what was there. Each watched descriptor has an entry: its token, the
 * events asked and the sequence of its poll in flight; the poll's user_data is
 * (bit 63, sequence, descriptor), so a completion of a poll since removed or
 * replaced is recognised and dropped.
 *
 * The ring is bound to one thread where the kernel allows (SINGLE_ISSUER +
 * DEFER_TASKRUN, 6.1): the kernel then completes operations only when that thread
 * waits, in a batch, instead of queueing work to the thread as each arrives, which
 * costs less per message. It is made disabled and enabled by the first thread that
 * hands it work, normally the one that runs the loop. A loop may still be run by one
 * thread and later by another (a server's loops drain on threads of their own when
 * it closes): a thread that is not the ring's (foreign, or the kernel's EEXIST)
 * takes the loop over onto a new ring bound to itself (uring_move.c) before it
 * touches the old one. Elsewhere the ring is made
 * with COOP_TASKRUN, usable from any thread. SQPOLL stays off: it keeps a kernel
 * thread busy polling, and work queued before a setuid would run
 * with the old credentials. Built only when pkg-config finds liburing. */
#include "uring_internal.h"

#ifdef SOCKIT_HAVE_URING

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Hands the submission queue to the kernel now: from the ring's thread, or after
 * taking the loop over from it. A bound ring also runs the kernel's deferred work:
 * an operation ended by a cancel lets go of its file only then, and a cancel is
 * submitted at once so that a close that follows really closes (completions it
 * posts wait in the ring for the next wait). */
static int submit(uring_impl *u)
{
    if (u->dispatching && sockit__uring_foreign(u))
        return -EAGAIN; /* stays queued: the next wait moves the loop, then submits */
    int rc = sockit__uring_foreign(u) ? -EEXIST : sockit__uring_enable(u);
    if (rc == 0)
        rc = u->bound ? io_uring_submit_and_get_events(&u->ring) : io_uring_submit(&u->ring);
    if (rc == -EEXIST && u->bound && !u->dispatching) {
        rc = sockit__uring_migrate(u);
        if (rc == 0)
            rc = io_uring_submit_and_get_events(&u->ring);
    }
    return rc;
}

static uint64_t poll_tag(int fd, uint32_t seq)
{
    return URING_POLL_BIT | ((uint64_t)(seq & 0x7fffffffu) << 32) | (uint32_t)fd;
}

static struct io_uring_sqe *get_sqe(uring_impl *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL) {
        /* The submission queue is full: hand it to the kernel and take a slot. */
        submit(u);
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
    io_uring_sqe_set_data64(sqe, poll_tag(fd, e->seq));
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
    io_uring_prep_poll_remove(sqe, poll_tag(fd, e->seq));
    io_uring_sqe_set_data64(sqe, URING_QUIET_TAG);
    e->armed = false;
    e->seq++; /* whatever the old poll still reports is stale now */
    return 0;
}

/* Whether this kernel runs a multishot receive into provided buffers (6.0): asked
 * once per process, with a socket pair, on a small ring of its own (a loop's ring
 * may not take work before the thread that runs it does). */
static int mapped(int rc);

static int probe_multishot_recv(void)
{
    static int known; /* 0: not asked yet; 1: works; < 0: the code it failed with */
    int k = __atomic_load_n(&known, __ATOMIC_ACQUIRE);
    if (k != 0)
        return k > 0 ? 0 : k;
    uring_impl *u = sockit__calloc(1, sizeof *u);
    if (u == NULL)
        return -ENOMEM;
    int sv[2] = {-1, -1};
    int rc = mapped(io_uring_queue_init(8, &u->ring, 0));
    if (rc < 0) {
        sockit__free(u);
        return rc;
    }
    rc = sockit__uring_bufs_open(&u->bufs, &u->ring);
    if (rc == 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        rc = -errno;
    struct io_uring_sqe *sqe = rc == 0 ? io_uring_get_sqe(&u->ring) : NULL;
    bool measured = false;
    if (sqe != NULL) {
        rc = -EIO;
        io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = URING_BUF_GROUP;
        io_uring_sqe_set_data64(sqe, 1);
        struct io_uring_cqe *cqe;
        if (write(sv[1], "x", 1) == 1 && io_uring_submit(&u->ring) >= 0 &&
            io_uring_wait_cqe(&u->ring, &cqe) == 0) {
            rc = cqe->res == 1 && (cqe->flags & IORING_CQE_F_MORE) ? 0
                 : cqe->res < 0                                    ? cqe->res
                                                                   : -EINVAL;
            measured = true;
            io_uring_cqe_seen(&u->ring, cqe);
        }
    }
    /* The ring's exit ends the receive, whatever state it is in. */
    sockit__uring_exit(&u->ring);
    sockit__uring_bufs_close(&u->bufs);
    sockit__free(u);
    if (sv[0] >= 0) {
        close(sv[0]);
        close(sv[1]);
    }
    /* Only what the receive itself answered is the kernel's for good; a set-up that
     * failed (descriptors, memory) is tried again by the next loop. */
    if (measured)
        __atomic_store_n(&known, rc == 0 ? 1 : rc, __ATOMIC_RELEASE);
    return rc;
}

/* A ring's memory is shared with the kernel and mapped anew for each ring, so a
 * ring one thread has just unmapped and another thread's new ring can sit at the
 * same address. The kernel orders the unmap before the map; ThreadSanitizer cannot
 * see that and takes the two threads' accesses for a race. This counter tells it:
 * released before every unmap, acquired after every map. */
static atomic_uint ring_generation;

void sockit__uring_exit(struct io_uring *ring)
{
    atomic_fetch_add_explicit(&ring_generation, 1, memory_order_release);
    io_uring_queue_exit(ring);
}

static int mapped(int rc)
{
    (void)atomic_load_explicit(&ring_generation, memory_order_acquire);
    return rc;
}

static atomic_bool never_bound;

void sockit__uring_unbound(bool on) { atomic_store(&never_bound, on); }

/* Makes ring: bound to one thread (made disabled, see enable) where the kernel has
 * DEFER_TASKRUN (6.1), else usable from any thread. TASKRUN_FLAG: the kernel says
 * when it holds deferred work, and taking completions (io_uring_peek_cqe) then runs
 * it, since one wait runs only some of it (20 items on 6.18). */
int sockit__uring_make_ring(struct io_uring *ring, bool *bound, unsigned *features)
{
    struct io_uring_params p = {
        .flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
                 IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_R_DISABLED,
        .cq_entries = URING_CQ_ENTRIES,
    };
    int rc = atomic_load(&never_bound) ? -EINVAL
                                       : io_uring_queue_init_params(URING_SQ_ENTRIES, ring, &p);
    *bound = rc == 0;
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
        p.cq_entries = URING_CQ_ENTRIES;
        rc = io_uring_queue_init_params(URING_SQ_ENTRIES, ring, &p);
    }
    if (rc == -EINVAL) {
        /* A kernel before 5.19 knows not every flag; without them it still works. */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = URING_CQ_ENTRIES;
        rc = io_uring_queue_init_params(URING_SQ_ENTRIES, ring, &p);
    }
    *features = p.features;
    return mapped(rc);
}

static int setup(uring_impl *u)
{
    size_t z = 0;
    int rc = sockit__sys_ring_fault(SOCKIT__SYS_RING_SETUP, &z);
    if (rc < 0)
        return sockit__failf(rc, "loop backend uring: io_uring_setup");
    unsigned features = 0;
    rc = sockit__uring_make_ring(&u->ring, &u->bound, &features);
    if (rc < 0)
        return sockit__failf(rc, "loop backend uring: io_uring_setup%s",
                             rc == -EPERM    ? " (denied: kernel.io_uring_disabled, or a seccomp "
                                               "profile)"
                             : rc == -ENOMEM ? " (locked-memory limit too small?)"
                                             : "");
    if (!(features & IORING_FEAT_EXT_ARG)) {
        sockit__uring_exit(&u->ring);
        return sockit__failf(-ENOSYS, "loop backend uring: the kernel lacks timed waits "
                                      "(IORING_FEAT_EXT_ARG, 5.11)");
    }
    struct io_uring_probe *pr = io_uring_get_probe_ring(&u->ring);
    static const int ops[] = {IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE, IORING_OP_RECV,
                              IORING_OP_SEND,     IORING_OP_ACCEPT,      IORING_OP_ASYNC_CANCEL};
    bool ok = pr != NULL;
    for (size_t i = 0; ok && i < sizeof ops / sizeof ops[0]; i++)
        ok = io_uring_opcode_supported(pr, ops[i]);
    if (pr != NULL)
        io_uring_free_probe(pr);
    if (!ok) {
        sockit__uring_exit(&u->ring);
        return sockit__failf(-ENOSYS, "loop backend uring: the kernel lacks an operation it "
                                      "needs (poll, recv, send, accept, cancel)");
    }
    rc = sockit__uring_bufs_open(&u->bufs, &u->ring);
    if (rc < 0) {
        sockit__uring_exit(&u->ring);
        return rc;
    }
    rc = probe_multishot_recv();
    if (rc < 0) {
        sockit__uring_bufs_close(&u->bufs);
        sockit__uring_exit(&u->ring);
        return sockit__failf(rc, "loop backend uring: multishot receive into provided buffers "
                                 "(the kernel has it from 6.0)");
    }
    return 0;
}

static int uring_open(sockit__backend *b)
{
    uring_impl *u = sockit__calloc(1, sizeof *u);
    if (u == NULL)
        return sockit__failf(-ENOMEM, "loop backend uring");
    int rc = setup(u);
    if (rc < 0) {
        sockit__free(u);
        return rc;
    }
    b->impl = u;
    return 0;
}

static void uring_close(sockit__backend *b, bool forked)
{
    /* A forked child unmaps and closes only its copies: the ring stays the parent's. */
    (void)forked;
    uring_impl *u = b->impl;
    sockit__uring_exit(&u->ring);
    sockit__uring_bufs_close(&u->bufs);
    sockit__free(u->fds);
    sockit__free(u->rearm);
    sockit__uring_live_free(&u->live);
    sockit__free(u->carry);
    sockit__free(u->carry_data);
    sockit__free(u);
    b->impl = NULL;
}

static int grow(uring_impl *u, int fd)
{
    void *fds = u->fds;
    int rc = sockit__fd_table_grow(&fds, &u->nfds, sizeof *u->fds, fd);
    u->fds = fds;
    return rc;
}

static int uring_watch(sockit__backend *b, int fd, uint64_t token, int old_events, int new_events)
{
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
            submit(u);
        return 0;
    }
    if (old_events == 0) {
        /* epoll_ctl says at once what it cannot watch; a poll would say it only in
         * its completion. Asked now, the caller gets the same answers. (Streams and
         * listeners use completions, so this is no cost per connection.) */
        struct pollfd pfd = {.fd = fd, .events = 0};
        if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLNVAL))
            return -EBADF;
    }
    return arm(u, fd);
}

/* A bound ring keeps the tags of the operations in flight (see migrate). The entry
 * is taken first: a migration it causes must not count the operation being made. */
static int track(uring_impl *u, struct io_uring_sqe *sqe, uint64_t tag)
{
    if (!u->bound || sockit__uring_live_add(&u->live, tag) == 0)
        return 0;
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, URING_QUIET_TAG);
    return -ENOMEM;
}

static int uring_recv(sockit__backend *b, int fd, uint64_t tag)
{
    uring_impl *u = b->impl;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (sqe == NULL)
        return -EBUSY;
    if (track(u, sqe, tag) < 0)
        return -ENOMEM;
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = URING_BUF_GROUP;
    io_uring_sqe_set_data64(sqe, tag);
    return 0;
}

static int uring_accept(sockit__backend *b, int fd, uint64_t tag)
{
    uring_impl *u = b->impl;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (sqe == NULL)
        return -EBUSY;
    if (track(u, sqe, tag) < 0)
        return -ENOMEM;
    io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    io_uring_sqe_set_data64(sqe, tag);
    return 0;
}

static int uring_send(sockit__backend *b, int fd, const struct msghdr *msg, uint64_t tag)
{
    uring_impl *u = b->impl;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (sqe == NULL)
        return -EBUSY;
    if (track(u, sqe, tag) < 0)
        return -ENOMEM;
    if (msg->msg_iovlen == 1)
        io_uring_prep_send(sqe, fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len,
                           MSG_NOSIGNAL);
    else
        io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, tag);
    return 0;
}

static int uring_cancel(sockit__backend *b, uint64_t tag, bool now)
{
    uring_impl *u = b->impl;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (sqe == NULL)
        return -EBUSY;
    /* Submitted with the next wait: a tag stays its operation's until the final
     * completion, so a late cancel cannot hit another's. */
    io_uring_prep_cancel64(sqe, tag, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, URING_QUIET_TAG);
    if (now)
        submit(u);
    return 0;
}

int sockit__uring_push_rearm(uring_impl *u, int fd)
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

static int poll_events(int res)
{
    if (res < 0 || (res & (POLLERR | POLLHUP | POLLNVAL)))
        return SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE; /* the caller's I/O says why */
    return ((res & POLLIN) ? SOCKIT_EVENT_READ : 0) | ((res & POLLOUT) ? SOCKIT_EVENT_WRITE : 0);
}

/* A poll's completion: reported if it is the descriptor's current one. */
static bool poll_done(uring_impl *u, uint64_t data, int res, sockit__ready_fn ready, void *ctx)
{
    int fd = (int)(uint32_t)data;
    uint32_t seq = (uint32_t)(data >> 32) & 0x7fffffffu;
    if ((size_t)fd >= u->nfds)
        return false;
    uring_entry *e = &u->fds[fd];
    if ((e->seq & 0x7fffffffu) != seq || !e->armed || e->events == 0)
        return false; /* a poll since removed or replaced */
    e->armed = false;
    e->seq++;
    if (res != -EBADF && sockit__uring_push_rearm(u, fd) == 0)
        e->rearm = true;
    ready(ctx, e->token, poll_events(res));
    return true;
}

/* An operation's completion, to the caller with the buffer it lends. */
static void op_done(sockit__backend *b, uring_impl *u, struct io_uring_cqe *cqe)
{
    int res = cqe->res;
    unsigned flags = cqe->flags;
    bool more = (flags & IORING_CQE_F_MORE) != 0;
    const char *data = sockit__uring_bufs_lent(&u->bufs, flags);
    if (res == -ENOBUFS)
        u->bufs.grow_wanted = true;
    uint64_t tag = io_uring_cqe_get_data64(cqe);
    while (data != NULL && res > 0) {
        /* Injected faults reach a receive's completion as they reach recv: short
         * reads deliver the bytes in parts, an error other than a transient one
         * (which a completion never has) ends the receive with it. */
        size_t part = (size_t)res;
        int f = sockit__sys_ring_fault(SOCKIT__SYS_RECV, &part);
        if (f < 0 && f != -EAGAIN && f != -EINTR) {
            res = f;
            break;
        }
        if (f < 0 || part == 0 || part >= (size_t)res)
            break;
        b->complete(b->complete_ctx, tag, (int)part, data, true);
        data += part;
        res -= (int)part;
    }
    int got = cqe->res; /* what the kernel took of the buffer, whatever was injected */
    b->complete(b->complete_ctx, tag, res, res > 0 ? data : NULL, more);
    sockit__uring_bufs_recycle(&u->bufs, flags, got);
}

static int uring_wait(sockit__backend *b, int64_t timeout_ns, sockit__ready_fn ready, void *ctx)
{
    uring_impl *u = b->impl;
    if (sockit__sys_ring_wait_fault() < 0)
        return errno == EINTR ? 0 : -errno;
    bool retried = false;
again:
    if (sockit__uring_foreign(u)) {
        int mrc = sockit__uring_migrate(u);
        if (mrc < 0)
            return mrc;
    }
    if (u->ncarry > 0)
        return sockit__uring_deliver_carried(b, u);
    /* Level triggering: what was reported and is still watched is asked again. */
    for (size_t i = 0; i < u->nrearm; i++) {
        int fd = u->rearm[i];
        uring_entry *e = &u->fds[fd];
        if (e->rearm && e->events != 0 && !e->armed)
            arm(u, fd);
        e->rearm = false;
    }
    u->nrearm = 0;
    if (u->ncarry > 0)
        goto again; /* an arm that filled the queue moved the loop */
    struct io_uring_cqe *cqe = NULL;
    int rc = sockit__uring_enable(u);
    if (rc < 0)
        return rc;
    if (timeout_ns == 0) {
        /* With GETEVENTS: the kernel's pending completion work runs now, so what
         * has finished is there to take without sleeping. */
        rc = io_uring_submit_and_get_events(&u->ring);
    } else if (timeout_ns < 0) {
        rc = io_uring_submit_and_wait(&u->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
                                       .tv_nsec = timeout_ns % 1000000000};
        rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
    }
    if (rc == -EEXIST && u->bound && !retried) {
        /* Another thread's ring: this thread takes the loop over. */
        retried = true;
        rc = sockit__uring_migrate(u);
        if (rc < 0)
            return rc;
        goto again;
    }
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY && rc != -EAGAIN)
        return rc;
    int reported = 0;
    u->dispatching = true;
    /* Completions are taken one at a time, each marked seen before its callback
     * runs: a callback may submit (a full queue submits, and with COOP_TASKRUN a
     * submit may run the kernel's pending completions), which a batch held across
     * the callbacks would race. */
    for (int n = 0; n < URING_CQ_ENTRIES && io_uring_peek_cqe(&u->ring, &cqe) == 0; n++) {
        struct io_uring_cqe c = *cqe;
        io_uring_cqe_seen(&u->ring, cqe);
        uint64_t data = io_uring_cqe_get_data64(&c);
        if (data == URING_QUIET_TAG)
            continue;
        if (data & URING_POLL_BIT) {
            if (poll_done(u, data, c.res, ready, ctx))
                reported++;
            continue;
        }
        /* Out of the set before its owner hears: it may start the next at once. */
        if (u->bound && !(c.flags & IORING_CQE_F_MORE))
            sockit__uring_live_remove(&u->live, data);
        op_done(b, u, &c);
        reported++;
    }
    u->dispatching = false;
    sockit__uring_bufs_grow(&u->bufs);
    return reported;
}

bool sockit__uring_bound(const sockit__backend *b)
{
    const uring_impl *u = b->impl;
    return u->bound;
}

unsigned sockit__uring_migrations(const sockit__backend *b)
{
    const uring_impl *u = b->impl;
    return u->migrations;
}

unsigned sockit__uring_buffers(const sockit__backend *b)
{
    const uring_impl *u = b->impl;
    return u->bufs.nslabs * u->bufs.per_slab;
}

const sockit__backend_ops sockit__uring_backend = {
    .name = "uring",
    .open = uring_open,
    .close = uring_close,
    .watch = uring_watch,
    .wait = uring_wait,
    .recv = uring_recv,
    .accept = uring_accept,
    .send = uring_send,
    .cancel = uring_cancel,
};

#endif /* SOCKIT_HAVE_URING */
