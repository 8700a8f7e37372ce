/* The io_uring backend's parts: the ring and its operations (uring.c), the
 * provided-buffer ring receives land in (uring_bufs.c). Never installed. */
#ifndef SOCKIT_LOOP_URING_INTERNAL_H
#define SOCKIT_LOOP_URING_INTERNAL_H

#include "backend.h"

#ifdef SOCKIT_HAVE_URING

#include <liburing.h>

/* Receive buffers, made a slab at a time: the first when the ring is set up, one
 * more each time receives ran out of them (-ENOBUFS), up to 16 MiB in all.
 * Where the kernel consumes them incrementally (below), a receive takes only what
 * it needs of a buffer and the rest serves the next receives, so buffers can be as
 * big as a large read (16 KiB: a 16 KiB message in one completion) and few (64, 1
 * MiB, for 10,000 clients sending 64 bytes at once). Otherwise each receive takes a
 * whole buffer: 4 KiB, what a request/response message needs, and 256 of them. */
#define URING_BUFS_MAX  4096 /* the ring's entries */
#define URING_SLABS_MAX 64
#define URING_BUF_BYTES ((size_t)16 * 1024 * 1024)
#define URING_BUF_GROUP 0

/* Incremental consumption (Linux 6.12; not in liburing 2.3's header): a receive
 * takes only the bytes it needs of a buffer, and the next receive goes on in the
 * same buffer, so a 64-byte message does not use up 4 KiB; a completion that leaves
 * room in its buffer is flagged BUF_MORE. */
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif

typedef struct uring_bufs {
    struct io_uring_buf_ring *br; /* the ring the kernel takes buffers from */
    size_t br_bytes;
    char *slabs[URING_SLABS_MAX];
    unsigned nslabs;
    unsigned size, per_slab; /* bytes a buffer, buffers a slab */
    bool grow_wanted;        /* a receive ran out: one more slab after this batch */
    bool incremental;        /* the kernel consumes buffers incrementally */
    /* Incremental: where each buffer's next bytes go (the kernel moves on in it). */
    uint32_t used[URING_BUFS_MAX];
} uring_bufs;

/* Sets up and registers the buffer ring with its first slab. 0 or a code with the
 * message set ("loop backend uring: ..."). */
int sockit__uring_bufs_open(uring_bufs *bufs, struct io_uring *ring);
void sockit__uring_bufs_close(uring_bufs *bufs);
/* Where the bytes of a completion whose flags name a buffer (IORING_CQE_F_BUFFER)
 * are, or NULL. */
char *sockit__uring_bufs_lent(uring_bufs *bufs, unsigned cqe_flags);
/* After the completion's res bytes were delivered: the buffer goes back to the
 * kernel once nothing more of it will be used. */
void sockit__uring_bufs_recycle(uring_bufs *bufs, unsigned cqe_flags, int res);
/* Adds a slab if a receive ran out since the last call and the cap allows. */
void sockit__uring_bufs_grow(uring_bufs *bufs);

/* The operations in flight on a ring bound to one thread (SINGLE_ISSUER with
 * DEFER_TASKRUN), by tag (uring_live.c). The kernel completes them only for the
 * thread that submitted them; when another thread takes the loop over, the loop gets
 * a new ring and every tag here gets a final -ECANCELED, which makes its owner start
 * the operation again on the new ring (backend.h). 8 bytes a slot, at most three
 * quarters full. */
typedef struct uring_live {
    uint64_t *slots; /* 0: empty */
    size_t cap, n;
} uring_live;
/* 0, or -ENOMEM with the set unchanged. */
int sockit__uring_live_add(uring_live *s, uint64_t tag);
void sockit__uring_live_remove(uring_live *s, uint64_t tag);
void sockit__uring_live_free(uring_live *s);

/* For tests: rings set up from now on use whole buffers per receive, as on a
 * kernel before 6.12, so that path runs here too. */
void sockit__uring_whole_buffers(bool on);

/* For tests: rings set up from now on are not bound to a thread (COOP_TASKRUN), as
 * on a kernel before 6.1, so that path runs here too. */
void sockit__uring_unbound(bool on);

/* For tests: the thread-bound ring's state: whether the ring is bound to one thread
 * (false where the kernel has no DEFER_TASKRUN: 6.1), and how many times a thread
 * took it over from another. */
bool sockit__uring_bound(const sockit__backend *b);
unsigned sockit__uring_migrations(const sockit__backend *b);

/* The receive buffers a uring backend has made so far (for tests: they grow when
 * receives run out). */
unsigned sockit__uring_buffers(const sockit__backend *b);

#endif /* SOCKIT_HAVE_URING */

#endif /* SOCKIT_LOOP_URING_INTERNAL_H */
