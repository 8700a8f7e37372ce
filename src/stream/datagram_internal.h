/* The datagram endpoint's internals, shared by datagram.c (life and receiving),
 * datagram_send.c (the send queue) and the event server's datagram side. Never
 * installed.
 *
 * Shape, chosen for a completion backend: receives land in the loop's batch of
 * buffers and are handed on from there (sockit__datagram_deliver), and sends are a
 * queue of datagrams flushed with sendmmsg, which a completion backend can submit
 * as they are. */
#ifndef SOCKIT_DATAGRAM_INTERNAL_H
#define SOCKIT_DATAGRAM_INTERNAL_H

#include "../loop/loop_internal.h"

#include <sys/socket.h>

/* Datagrams one recvmmsg takes, and the room of each: 64 KiB holds any UDP
 * datagram whole. The batch's 2 MiB are address space: the kernel writes (and the
 * process pays RSS for) only the pages datagrams fill. */
#define SOCKIT__DGRAM_BATCH 32
#define SOCKIT__DGRAM_ROOM  65536
/* Batches one readiness report reads before the loop moves on (fairness). */
#define SOCKIT__DGRAM_ROUNDS 16
/* Datagrams one sendmmsg sends. */
#define SOCKIT__DGRAM_SEND_BATCH 64
#define SOCKIT__DGRAM_LIMIT      ((size_t)1024 * 1024)

/* The loop's receive batch, and the sends the endpoint being delivered makes
 * meanwhile: those point into the batch's own buffers when they echo what came
 * (else their bytes are copied to the arena) and leave in one sendmmsg when the
 * batch's callbacks have returned, so a reply costs no allocation. */
typedef struct sockit__dgram_batch {
    struct mmsghdr msgs[SOCKIT__DGRAM_BATCH];
    struct iovec iov[SOCKIT__DGRAM_BATCH];
    sockit_addr from[SOCKIT__DGRAM_BATCH];
    char *buf; /* SOCKIT__DGRAM_BATCH * SOCKIT__DGRAM_ROOM */
    struct mmsghdr out_msgs[SOCKIT__DGRAM_SEND_BATCH];
    struct iovec out_iov[SOCKIT__DGRAM_SEND_BATCH];
    sockit_addr out_to[SOCKIT__DGRAM_SEND_BATCH];
    unsigned nout;
    size_t arena_used;
    char arena[SOCKIT__DGRAM_ROOM];
} sockit__dgram_batch;

/* One queued datagram; its bytes follow. to.len 0: the connected peer. */
typedef struct sockit__dgram_out sockit__dgram_out;
struct sockit__dgram_out {
    sockit__dgram_out *next;
    size_t len;
    sockit_addr to; /* a received one kept by a pause: its sender (len 0: unnamed) */
    bool truncated; /* a received one: it came truncated */
    char data[];
};

struct sockit_datagram {
    sockit__handle h; /* the descriptor (fd -1 once closed) */
    sockit_loop *loop;
    const sockit_datagram_callbacks *cb;
    void *user;
    int family;
    bool owned;     /* the endpoint closes the descriptor */
    bool connected; /* a send without an address goes to the peer */
    bool paused;
    bool closing;    /* close was called: no callbacks but on_close */
    bool delivering; /* inside a batch's callbacks: sends wait for its end */
    bool flushing;   /* settling the batch's held replies: sends go to the queue */
    int depth;       /* inside a readiness report or kept delivery: freeing waits */
    bool free_later; /* closed and on_close ran while depth > 0 */
    /* A refusal that writability will not end (an unconnected Unix socket whose
     * receiver is full is always "writable"; ENOBUFS): the queue is tried again
     * after a back-off instead of on every writable report, which would spin. */
    sockit_timer *retry;
    int64_t retry_ns;
    bool retrying;
    size_t max_size;
    size_t limit;
    size_t queued; /* bytes, the batch's held replies included */
    sockit__dgram_out *q_head, *q_tail;
    /* Received and not yet delivered: the rest of a batch a callback paused in,
     * delivered first on resume. */
    sockit__dgram_out *kept_head, *kept_tail;
    bool kept_scheduled;
    /* The event server's slot for this endpoint, cleared when it is closed, so the
     * server never closes one a callback already closed. */
    sockit_datagram **owner_slot;
    /* The event server's verify_request: a datagram it rejects is dropped. */
    bool (*verify)(void *ctx, const sockit_addr *from);
    void *verify_ctx;
    sockit__late late; /* on_close, from the loop */
};

/* datagram.c: makes an endpoint over fd (non-blocking already). owned false: the
 * descriptor is the caller's (the event server's socket) and is left open. */
sockit_datagram *sockit__datagram_make(sockit_loop *loop, int fd, bool owned,
                                       const sockit_datagram_callbacks *cb, void *user);
/* The events the registration should wait for now, applied. */
void sockit__datagram_update_io(sockit_datagram *d);
/* The address text for a message: "127.0.0.1:5000", "unix:/x", or "fd 7". */
void sockit__datagram_name(const sockit_datagram *d, const sockit_addr *a, char *buf, size_t size);

/* datagram_send.c: sends what is queued until the kernel refuses (then waits for
 * writability) or the queue is empty. report false: a datagram the kernel refuses
 * is dropped without on_error (closing). */
void sockit__datagram_flush(sockit_datagram *d, bool report);
/* Sends the replies the batch holds (inside a batch of d's), queueing what the
 * kernel does not take. */
void sockit__datagram_flush_batch(sockit_datagram *d, bool report);
/* After a refusal to send: whether writability can tell when to try again. */
bool sockit__datagram_waits_writable(const sockit_datagram *d, int err);
/* Arms the back-off before the queue is tried again (see struct). */
void sockit__datagram_back_off(sockit_datagram *d);
/* Drops the queue; returns the datagrams dropped. */
size_t sockit__datagram_drop_queue(sockit_datagram *d);

#endif
