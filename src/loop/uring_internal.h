/* The io_uring backend's parts: the ring and its operations (uring.c), the
 * provided-buffer ring receives land in (uring_bufs.c), the set of operations in
 * flight (uring_live.c) and the move of a loop from one thread to another
 * (uring_move.c). Never installed. */
#ifndef SOCKIT_LOOP_URING_INTERNAL_H
#define SOCKIT_LOOP_URING_INTERNAL_H

#include "backend.h"

#ifdef SOCKIT_HAVE_URING

#include <liburing.h>
#include <pthread.h>

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

/* Submission entries: a batch of re-arms and sends bigger than this is handed to the
 * kernel in parts. Completions: room for a busy iteration's worth (10,000 streams
 * each with a receive and a send), so the kernel rarely has to hold them in its
 * overflow list, whose locking cost 5% of a 10,000-connection echo. */
#define URING_SQ_ENTRIES 1024
#define URING_CQ_ENTRIES 32768
#define URING_POLL_BIT   ((uint64_t)1 << 63)
/* user_data of operations whose own completion reports nothing (removals, cancels). */
#define URING_QUIET_TAG UINT64_MAX

typedef struct uring_entry {
    uint64_t token;
    uint32_t seq;   /* of the poll in flight, or of the next one */
    uint8_t events; /* asked; 0: not watched */
    bool armed;     /* a poll is in flight */
    bool rearm;     /* reported: arm again before the next wait */
} uring_entry;

/* A completion a migration carries over to the next wait: the old ring's, with the
 * bytes of its buffer copied out, or a final -ECANCELED for an operation the old
 * ring will never complete. */
typedef struct uring_carried {
    uint64_t tag;
    int res;
    bool more;
    size_t off, len; /* its bytes in the carry's data (len 0: none) */
} uring_carried;

typedef struct uring_impl {
    struct io_uring ring;
    uring_bufs bufs;
    uring_entry *fds;
    size_t nfds;
    int *rearm; /* descriptors to arm again before the next wait */
    size_t nrearm, rearm_cap;
    bool bound;      /* SINGLE_ISSUER + DEFER_TASKRUN: the ring is one thread's */
    bool enabled;    /* bound: enabled by (so bound to) the thread that first submitted */
    pthread_t owner; /* that thread */
    /* Completions are being handed out: a move waits for the next wait, so no buffer
     * of the old ring is freed under a callback. */
    bool dispatching;
    uring_live live;
    uring_carried *carry;
    size_t ncarry, carry_cap;
    char *carry_data;
    size_t carry_bytes;
    unsigned migrations;
} uring_impl;

/* The ring (uring.c): bound to one thread where the kernel allows, made disabled;
 * *bound says which, *features what the kernel offers. 0 or the set-up's code. */
/* io_uring_queue_exit, and the ordering ThreadSanitizer needs (uring.c). */
void sockit__uring_exit(struct io_uring *ring);
int sockit__uring_make_ring(struct io_uring *ring, bool *bound, unsigned *features);
/* Lists fd to be armed again before the next wait (uring.c). 0 or -ENOMEM. */
int sockit__uring_push_rearm(uring_impl *u, int fd);

/* Moving between threads (uring_move.c). enable binds a disabled ring to the calling
 * thread; foreign says the calling thread must take the loop over before touching
 * the ring; migrate does that (0 or a code with the message set); deliver_carried
 * hands out what a migration carried over and returns how many. */
int sockit__uring_enable(uring_impl *u);
bool sockit__uring_foreign(const uring_impl *u);
int sockit__uring_migrate(uring_impl *u);
int sockit__uring_deliver_carried(sockit__backend *b, uring_impl *u);

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
