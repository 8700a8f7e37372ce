/* The backend interface: what the loop (loop.c) and the selector (selector.c) ask of
 * the kernel's event mechanism. One file per backend implements it: epoll.c (the
 * default on Linux), poll.c (portable, and a second implementation that keeps this
 * interface honest), and later uring.c. Never installed.
 *
 * Two shapes of backend fit here:
 *
 *   readiness (epoll, poll): the backend is told which descriptors to watch for which
 *   events (watch) and reports the ones that are ready (wait). The caller does the
 *   I/O itself afterwards.
 *
 *   completion (io_uring): the backend is also handed whole operations (submit): a
 *   receive into a buffer, a send from one, an accept, a connect. wait then reports
 *   their results as well as readiness. A backend that has no completion path leaves
 *   submit and cancel NULL and the caller does the I/O after readiness instead; the
 *   layer above (streams) works either way.
 *
 * Rules every backend keeps:
 *   - Tokens, not pointers. Each watched descriptor carries a 64-bit token chosen by
 *     the caller, and wait hands it back. The caller encodes a generation in it, so
 *     an event that was already collected for a descriptor that has since been
 *     unwatched, closed and reused is recognised as stale and dropped, never
 *     delivered to the new owner.
 *   - Level-triggered semantics as the caller sees them: a descriptor that stays
 *     ready is reported by every wait until the caller reads, writes or unwatches. A
 *     backend that uses edge-triggered or one-shot kernel modes must re-arm itself.
 *   - Errors and hang-ups are reported as both events (SOCKIT_EVENT_READ |
 *     SOCKIT_EVENT_WRITE); the caller keeps those it asked for, so its next read or
 *     write meets the error. (A backend does not track what each caller asked.)
 *   - EINTR never surfaces: wait returns 0 events on EINTR and the caller recomputes
 *     its timeout.
 *   - "Cannot start, because ...": open returns a negative code and sets the error
 *     message (sockit__failf) with the reason, e.g. "loop backend uring: io_uring_setup:
 *     Operation not permitted". The caller may then fall back to another backend.
 *   - Fork: a descriptor registered with an epoll or io_uring instance belongs to the
 *     instance shared with the parent. close(b, true) in a forked child releases only
 *     this process's descriptors and memory, touching no registration.
 *   - One thread at a time: a backend instance is used by one thread at a time, but
 *     not necessarily the thread that opened it. (An io_uring backend whose rings are
 *     single-issuer creates them disabled and enables them on the first wait, in the
 *     thread that runs the loop.)
 *
 * Completion operations (for uring.c; NULL in readiness backends):
 *   - Ownership of buffers: a buffer passed with an operation belongs to the backend
 *     from submit until that operation's completion is delivered; the caller must
 *     keep it valid and untouched until then. A backend that provides its own receive
 *     buffers (a buffer ring) lends one with the completion; it is returned with
 *     recycle before the next wait.
 *   - Exactly one completion per submitted operation, always: after cancel, the
 *     operation still completes, with -ECANCELED if the cancellation won, or with its
 *     real result if the operation finished first. Nothing is freed until then.
 */
#ifndef SOCKIT_LOOP_BACKEND_H
#define SOCKIT_LOOP_BACKEND_H

#include "../internal.h"

#include <stdint.h>

/* Called by wait for each ready descriptor: token as given to watch, events a mask of
 * SOCKIT_EVENT_READ / SOCKIT_EVENT_WRITE. */
typedef void (*sockit__ready_fn)(void *ctx, uint64_t token, int events);

typedef struct sockit__backend sockit__backend;

/* A whole operation for a completion backend (see above). */
typedef enum sockit__op_kind {
    SOCKIT__OP_RECV,
    SOCKIT__OP_SEND,
    SOCKIT__OP_ACCEPT,
    SOCKIT__OP_CONNECT
} sockit__op_kind;

typedef struct sockit__op sockit__op;
struct sockit__op {
    sockit__op_kind kind;
    int fd;
    void *buf; /* RECV, SEND; ACCEPT: a sockit_addr for the peer; CONNECT: the address */
    size_t len;
    /* Called once from wait with the result: bytes, a new descriptor (ACCEPT), 0
     * (CONNECT), or a negative code (-ECANCELED after a winning cancel). */
    void (*done)(sockit__op *op, ssize_t result);
    void *user;
};

typedef struct sockit__backend_ops {
    const char *name;
    /* Prepares b->impl. Returns 0, or a code with the reason in the error message. */
    int (*open)(sockit__backend *b);
    /* Releases everything; forked: in a child of the process that opened it (see
     * above). */
    void (*close)(sockit__backend *b, bool forked);
    /* Starts, changes or stops watching fd: old_events is what was asked before (0:
     * not watched), new_events what is asked now (0: stop). Returns 0 or a code. */
    int (*watch)(sockit__backend *b, int fd, uint64_t token, int old_events, int new_events);
    /* Waits up to timeout_ns (< 0: without limit, 0: not at all) and calls ready for
     * each ready descriptor. Returns the number reported or a code. */
    int (*wait)(sockit__backend *b, int64_t timeout_ns, sockit__ready_fn ready, void *ctx);
    /* Completion backends only (NULL otherwise). submit returns 0 or a code (then no
     * completion will come); cancel returns 0 or -ENOENT if op already completed. */
    int (*submit)(sockit__backend *b, sockit__op *op);
    int (*cancel)(sockit__backend *b, sockit__op *op);
} sockit__backend_ops;

struct sockit__backend {
    const sockit__backend_ops *ops;
    void *impl;
};

extern const sockit__backend_ops sockit__epoll_backend;
extern const sockit__backend_ops sockit__poll_backend;
#ifdef SOCKIT_HAVE_URING
extern const sockit__backend_ops sockit__uring_backend;
#endif

/* Opens the backend named by name (NULL: $SOCKIT_LOOP_BACKEND, else the default) into
 * b. An explicit name or the variable that names an unknown backend is -EINVAL with a
 * message listing the known ones. Returns 0 or a code. */
int sockit__backend_open(sockit__backend *b, const char *name);

/* Nanoseconds to milliseconds for poll-style timeouts: rounded up, so a wait never
 * wakes before the deadline and spins; < 0 stays -1. */
int sockit__ns_to_ms(int64_t ns);

#endif /* SOCKIT_LOOP_BACKEND_H */
