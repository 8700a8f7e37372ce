/* Moving a loop between threads, for the io_uring backend (uring_internal.h): a
 * ring made with SINGLE_ISSUER + DEFER_TASKRUN belongs to the thread that enabled
 * it, and another thread that runs the loop later takes it over onto a ring of its
 * own (sockit__uring_migrate), its operations carried over or ended so that their
 * owners start them again (docs/streams.md, "Threads"). */
#include "uring_internal.h"

#ifdef SOCKIT_HAVE_URING

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

/* Binds a ring made disabled to the calling thread. */
int sockit__uring_enable(uring_impl *u)
{
    if (!u->bound || u->enabled)
        return 0;
    int rc = io_uring_register(u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    if (rc < 0)
        return sockit__failf(rc, "loop backend uring: enabling the ring");
    u->enabled = true;
    u->owner = pthread_self();
    return 0;
}

/* Whether the calling thread must take the loop over before touching the ring.
 * Asked before every use, not left to the kernel's EEXIST: a timed wait with
 * completions already there does not enter the kernel, and this thread would hand
 * out the old ring's completions. (A thread with the identity of one that exited
 * still meets EEXIST, and moves then.) */
bool sockit__uring_foreign(const uring_impl *u)
{
    return u->bound && u->enabled && !pthread_equal(u->owner, pthread_self());
}

static int carry_one(uring_impl *u, uint64_t tag, int res, bool more, const char *data)
{
    if (u->ncarry == u->carry_cap) {
        size_t c = u->carry_cap ? u->carry_cap * 2 : 64;
        uring_carried *a = sockit__realloc(u->carry, c * sizeof *a);
        if (a == NULL)
            return -ENOMEM;
        u->carry = a;
        u->carry_cap = c;
    }
    size_t n = data != NULL && res > 0 ? (size_t)res : 0;
    if (n > 0) {
        char *d = sockit__realloc(u->carry_data, u->carry_bytes + n);
        if (d == NULL)
            return -ENOMEM;
        memcpy(d + u->carry_bytes, data, n);
        u->carry_data = d;
    }
    u->carry[u->ncarry++] =
        (uring_carried){.tag = tag, .res = res, .more = more, .off = u->carry_bytes, .len = n};
    u->carry_bytes += n;
    return 0;
}

/* The calling thread takes the loop over from the thread its ring is bound to (the
 * kernel refused this one with EEXIST): a new ring, bound to this thread, replaces
 * it. What the old ring completed and nobody took yet is carried over to the next
 * wait, its bytes copied out of the old buffers; every other operation in flight is
 * carried over as a final -ECANCELED, after which its owner starts it again on the
 * new ring (backend.h), and every poll is armed again. Nothing is lost: the kernel
 * does a bound ring's I/O only in its thread's waits, so an operation whose
 * completion is not in the ring has moved no byte, and closing the old ring ends it
 * without moving any. (Closing is all a move can do to the old ring: another
 * process that holds its descriptor, a child forked without exec, keeps its
 * operations, and their sockets, alive.) Returns 0 or a code: before the old ring
 * is closed, with it kept as it was; after, only enabling the new one failed, and
 * the next call tries again. */
int sockit__uring_migrate(uring_impl *u)
{
    if (IO_URING_READ_ONCE(*u->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)
        return sockit__failf(-EBUSY, "loop backend uring: another thread cannot take this loop "
                                     "over: its ring's thread left completions in the "
                                     "kernel's overflow list");
    struct io_uring ring;
    bool bound;
    unsigned features;
    int rc = sockit__uring_make_ring(&ring, &bound, &features);
    if (rc < 0)
        return sockit__failf(rc, "loop backend uring: a ring for the thread taking the loop "
                                 "over");
    uring_bufs *bufs = sockit__malloc(sizeof *bufs);
    rc = bufs != NULL ? sockit__uring_bufs_open(bufs, &ring) : -ENOMEM;
    size_t ncarry = u->ncarry, nbytes = u->carry_bytes;
    /* Where each buffer's next bytes are, moved on as the completions are read (as
     * recycle would), on a copy: a failed move leaves the old ring as it was. With
     * incremental buffers, one buffer holds several completions' bytes. */
    uint32_t *used = sockit__malloc(sizeof u->bufs.used);
    if (rc == 0 && used == NULL)
        rc = -ENOMEM;
    if (used != NULL)
        memcpy(used, u->bufs.used, sizeof u->bufs.used);
    unsigned head;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        uint64_t tag = io_uring_cqe_get_data64(cqe);
        if (rc < 0 || tag == URING_QUIET_TAG || (tag & URING_POLL_BIT))
            continue; /* polls are armed again below */
        bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
        const char *data = sockit__uring_bufs_lent(&u->bufs, cqe->flags);
        if (data != NULL && u->bufs.incremental) {
            unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            data += (ptrdiff_t)used[bid] - (ptrdiff_t)u->bufs.used[bid];
            used[bid] = (cqe->flags & IORING_CQE_F_BUF_MORE) && cqe->res > 0
                            ? used[bid] + (uint32_t)cqe->res
                            : 0;
        }
        rc = carry_one(u, tag, cqe->res, more, data);
        /* Ended here: no final of ours. (Should this fail, the ring's thread still
         * takes this completion, and the set's removal is then a no-op.) */
        if (rc == 0 && !more)
            sockit__uring_live_remove(&u->live, tag);
    }
    /* What is still live after those completions gets its final one. */
    for (size_t i = 0; rc == 0 && i < u->live.cap; i++)
        if (u->live.slots[i] != 0)
            rc = carry_one(u, u->live.slots[i], -ECANCELED, false, NULL);
    sockit__free(used);
    if (rc < 0) {
        u->ncarry = ncarry; /* as it was: this thread cannot run the loop */
        u->carry_bytes = nbytes;
        if (bufs != NULL && bufs->br != NULL)
            sockit__uring_bufs_close(bufs);
        sockit__free(bufs);
        sockit__uring_exit(&ring);
        return sockit__failf(rc, "loop backend uring: taking the loop over from another thread");
    }
    sockit__uring_exit(&u->ring);
    sockit__uring_bufs_close(&u->bufs);
    u->ring = ring;
    u->bufs = *bufs;
    sockit__free(bufs);
    u->bound = bound;
    u->enabled = false;
    sockit__uring_live_free(&u->live);
    for (size_t fd = 0; fd < u->nfds; fd++) {
        uring_entry *e = &u->fds[fd];
        if (!e->armed)
            continue;
        e->armed = false;
        e->seq++;
        if (!e->rearm && sockit__uring_push_rearm(u, (int)fd) == 0)
            e->rearm = true;
    }
    u->migrations++;
    return sockit__uring_enable(u);
}

/* Delivers what a migration carried over; returns how many. */
int sockit__uring_deliver_carried(sockit__backend *b, uring_impl *u)
{
    /* Taken first: a callback may start operations. */
    uring_carried *carry = u->carry;
    char *data = u->carry_data;
    size_t n = u->ncarry;
    u->carry = NULL;
    u->carry_data = NULL;
    u->ncarry = u->carry_cap = u->carry_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const uring_carried *c = &carry[i];
        b->complete(b->complete_ctx, c->tag, c->res, c->len > 0 ? data + c->off : NULL, c->more);
    }
    sockit__free(carry);
    sockit__free(data);
    return (int)n;
}

#endif /* SOCKIT_HAVE_URING */
