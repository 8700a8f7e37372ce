/* The backend interface: what the loop (loop.c) and the selector (selector.c) ask of
 * the kernel's event mechanism. One file per backend implements it: uring.c (the
 * default where liburing was found and a ring can be set up), epoll.c (the default
 * otherwise), poll.c (portable, and a third implementation that keeps this interface
 * honest). Never installed.
 *
 * Two shapes of backend fit here:
 *
 *   readiness (epoll, poll): the backend is told which descriptors to watch for which
 *   events (watch) and reports the ones that are ready (wait). The caller does the
 *   I/O itself afterwards.
 *
 *   completion (io_uring): the backend is also handed whole operations: a multishot
 *   receive into buffers of its own, a send, a multishot accept. wait then reports
 *   their results as well as readiness. A backend that has no completion path leaves
 *   recv, accept, send and cancel NULL and the caller does the I/O after readiness
 *   instead; the layer above (streams, listeners) works either way.
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
 *     not necessarily the thread that opened it, nor always the same one. (The
 *     io_uring backend's ring is single-issuer: made disabled, enabled by the first
 *     thread that submits, and replaced by a ring of its own when another thread
 *     uses it later, every operation in flight then ending with -ECANCELED
 *     as when its thread exits.)
 *
 * Completion operations (uring.c; NULL in readiness backends):
 *   - Tags, like tokens: each operation carries a 64-bit tag chosen by the caller,
 *     handed back with each of its completions. The caller keeps whatever the tag
 *     names alive until the operation's final completion: unlike a watched
 *     descriptor, an operation is never stale.
 *   - Exactly one final completion per operation started, always (more false): after
 *     cancel, the operation still completes, with -ECANCELED if the cancellation won,
 *     or with its real result if it finished first. A multishot receive or accept
 *     completes many times with more true first. The kernel may end an operation
 *     that nobody cancelled (-ECANCELED when the thread that submitted it exits or
 *     another thread takes the loop over, -ENOBUFS when the receive buffers ran
 *     out: the backend has added more by then): the caller starts it again if it
 *     still wants it, so no byte is lost.
 *   - Receive buffers are the backend's, shared by the whole loop: a completion lends
 *     one (data) for the length of the call only.
 *   - A send's bytes belong to the backend from send until its final completion; the
 *     caller keeps them valid and untouched, and keeps one send in flight per
 *     descriptor (two may complete in either order).
 *   - Submission is batched into the next wait. Cancels are by tag, never by
 *     descriptor, so one submitted after the descriptor was closed and its number
 *     reused still cancels only what it should; one asked with now (a listener's,
 *     whose socket must stop taking clients at once) goes to the kernel at once.
 */
#ifndef SOCKIT_LOOP_BACKEND_H
#define SOCKIT_LOOP_BACKEND_H

#include "../internal.h"

#include <stdint.h>
#include <sys/socket.h>

/* Called by wait for each ready descriptor: token as given to watch, events a mask of
 * SOCKIT_EVENT_READ / SOCKIT_EVENT_WRITE. */
typedef void (*sockit__ready_fn)(void *ctx, uint64_t token, int events);

typedef struct sockit__backend sockit__backend;

/* Called by wait for each completion: tag as given, res the result (bytes, a new
 * descriptor, 0 for end of stream, or a negative code), data the lent receive
 * buffer (NULL otherwise), more false on the operation's final completion. */
typedef void (*sockit__complete_fn)(void *ctx, uint64_t tag, int res, const char *data, bool more);

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
    /* Completion backends only (NULL otherwise). Each returns 0 or a code, and on a
     * code no completion will come. recv: a multishot receive into the backend's
     * buffers; accept: a multishot accept (the descriptors are non-blocking and
     * close-on-exec); send: one sendmsg of msg (MSG_NOSIGNAL; msg and its iovec stay
     * the caller's, valid until the completion); cancel: every operation
     * with tag (now: submitted at once, see above). */
    int (*recv)(sockit__backend *b, int fd, uint64_t tag);
    int (*accept)(sockit__backend *b, int fd, uint64_t tag);
    int (*send)(sockit__backend *b, int fd, const struct msghdr *msg, uint64_t tag);
    int (*cancel)(sockit__backend *b, uint64_t tag, bool now);
} sockit__backend_ops;

struct sockit__backend {
    const sockit__backend_ops *ops;
    void *impl;
    /* Where a completion backend's wait reports completions (set by the loop). */
    sockit__complete_fn complete;
    void *complete_ctx;
    /* Why the default backend was not used (sockit__backend_open's fallback), or
     * empty. */
    char fallback[160];
};

extern const sockit__backend_ops sockit__epoll_backend;
extern const sockit__backend_ops sockit__poll_backend;
#ifdef SOCKIT_HAVE_URING
extern const sockit__backend_ops sockit__uring_backend;
#endif

/* Opens the backend named by name (NULL: $SOCKIT_LOOP_BACKEND, else the default) into
 * b. An explicit name or the variable that names an unknown backend is -EINVAL with a
 * message listing the known ones; a named backend that cannot start fails with its
 * reason. The default is uring where it was built and starts, else epoll, with the
 * reason kept in b->fallback. Returns 0 or a code. */
int sockit__backend_open(sockit__backend *b, const char *name);

/* Nanoseconds to milliseconds for poll-style timeouts: rounded up, so a wait never
 * wakes before the deadline and spins; < 0 stays -1. */
int sockit__ns_to_ms(int64_t ns);

/* The backends built in, separated by commas: "epoll,poll,uring". */
const char *sockit__backend_names(void);

#endif /* SOCKIT_LOOP_BACKEND_H */
