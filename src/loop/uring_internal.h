/* The io_uring backend's parts: the ring and its operations (uring.c), the
 * provided-buffer ring receives land in (uring_bufs.c). Never installed. */
#ifndef SOCKIT_LOOP_URING_INTERNAL_H
#define SOCKIT_LOOP_URING_INTERNAL_H

#include "backend.h"

#ifdef SOCKIT_HAVE_URING

#include <liburing.h>

/* Receive buffers: BUFS_SLAB buffers of BUF_SIZE bytes are made at a time, the first
 * slab when the ring is set up and one more each time receives ran out of them
 * (-ENOBUFS), up to BUFS_MAX (the ring's entries). 4 KiB is what one receive of a
 * request/response protocol needs; a larger read takes several. The cap bounds what
 * a loop can hold (16 MiB) whatever its peers send. */
#define URING_BUF_SIZE  4096
#define URING_BUFS_SLAB 256
#define URING_BUFS_MAX  4096
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
    char *slabs[URING_BUFS_MAX / URING_BUFS_SLAB];
    unsigned nslabs;
    bool grow_wanted; /* a receive ran out: one more slab after this batch */
    bool incremental; /* the kernel consumes buffers incrementally */
    /* Incremental: where each buffer's next bytes go (the kernel moves on in it). */
    uint16_t used[URING_BUFS_MAX];
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

/* The receive buffers a uring backend has made so far (for tests: they grow when
 * receives run out). */
unsigned sockit__uring_buffers(const sockit__backend *b);

#endif /* SOCKIT_HAVE_URING */

#endif /* SOCKIT_LOOP_URING_INTERNAL_H */
