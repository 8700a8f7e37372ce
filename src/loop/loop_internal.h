/* The loop's internals, shared by loop.c, io.c, timer.c, signal.c and wakeup.c.
 * Never installed. */
#ifndef SOCKIT_LOOP_INTERNAL_H
#define SOCKIT_LOOP_INTERNAL_H

#include "backend.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/types.h>

/* Linux numbers signals 1..64. */
#define SOCKIT__NSIG 65

typedef enum sockit__kind {
    SOCKIT__IO,
    SOCKIT__TIMER,
    SOCKIT__SIGNAL,
    SOCKIT__WAKEUP,
    SOCKIT__KINDS
} sockit__kind;

/* What every watcher starts with. */
typedef struct sockit__watcher sockit__watcher;
struct sockit__watcher {
    sockit_loop *loop;
    void *user;
    sockit__kind kind;
    bool active;    /* started */
    bool keepalive; /* an active one keeps sockit_loop_run going */
    bool closing;   /* closed during an iteration, freed at its end */
    sockit__watcher *next_closing;
};

struct sockit_io {
    sockit__watcher base;
    sockit_io_fn cb;
    int fd;
    sockit *sock; /* NULL for a plain descriptor */
    int events;   /* watched now; 0 when stopped */
    uint32_t gen; /* in the token of the current registration */
    /* The read-ahead list: socket watchers with buffered bytes to report. */
    sockit_io *ra_prev, *ra_next;
    bool on_ra_list;
    uint64_t dispatched_in; /* the iteration its callback last ran for READ */
};

struct sockit_timer {
    sockit__watcher base;
    sockit_timer_fn cb;
    int64_t due;       /* absolute, the loop's clock in ns */
    int64_t repeat_ns; /* 0: one-shot */
    uint64_t seq;      /* start order: ties on due fire in this order */
    size_t heap_index; /* SIZE_MAX when not in the heap */
};

struct sockit_signal {
    sockit__watcher base;
    sockit_signal_fn cb;
    int signum;                 /* 0 when stopped */
    sockit_signal *next, *prev; /* the loop's started signal watchers */
};

struct sockit_wakeup {
    sockit__watcher base;
    sockit_wakeup_fn cb;
    atomic_bool pending;
    sockit_wakeup *next, *prev; /* the loop's wakeups */
};

typedef struct sockit__call {
    sockit_call_fn fn;
    void *arg;
} sockit__call;

/* A call the loop owes an object (a stream's on_close, its deferred delivery) that
 * must not fail for want of memory, as call_soon's queue can: the object embeds the
 * node, and queueing it only links it (late.c). */
typedef struct sockit__late sockit__late;
struct sockit__late {
    sockit__late *next;
    void (*run)(sockit_loop *loop, sockit__late *n);
    bool queued;
};

/* A token for the backend: the generation in the high half, the descriptor in the
 * low. The loop's own wakeup descriptor has a token no watcher can have. */
#define SOCKIT__WAKE_TOKEN UINT64_MAX

/* A registration the library makes for itself (a stream's descriptor): what a
 * sockit_io is, without the watcher's generality, so an idle connection costs a few
 * bytes in its owner instead of a watcher of its own. Embedded in the owner, which
 * finds itself from it by its kind. Counts as an open I/O watcher (loop_close is
 * -EBUSY while one is open) and, while it watches events, keeps the loop running. */
typedef enum sockit__handle_kind {
    SOCKIT__HANDLE_STREAM,
    SOCKIT__HANDLE_DATAGRAM,
    SOCKIT__HANDLE_KINDS
} sockit__handle_kind;
typedef struct sockit__handle {
    int fd;
    uint32_t gen;   /* of the current registration */
    uint8_t events; /* watched now */
    uint8_t kind;   /* sockit__handle_kind */
    /* Its owner uses completions (a stream on io_uring), not readiness: events then
     * only says what keeps the loop running, and nothing is registered. */
    uint8_t ring;
} sockit__handle;
/* Called with the ready subset of the watched events. */
void sockit__stream_handle_ready(sockit__handle *h, int events);
void sockit__datagram_handle_ready(sockit__handle *h, int events);
/* Frees the loop's datagram receive batch (datagram.c) when the loop closes. */
void sockit__datagram_batch_free(sockit_loop *loop);
/* Frees the streams' idle buckets (stream_idle.c) when the loop closes. */
void sockit__stream_buckets_free(sockit_loop *loop);
/* Frees the streams' caches of exts and chunks (stream_write.c) when it closes. */
void sockit__stream_caches_free(sockit_loop *loop);

/* Completion tags (backend.h): the object's address with what the operation is in
 * the low bits (allocations are aligned to 8 and more). */
#define SOCKIT__TAG_STREAM_RECV 1u
#define SOCKIT__TAG_STREAM_SEND 2u
#define SOCKIT__TAG_ACCEPT      3u
#define SOCKIT__TAG_KIND        7u
static inline uint64_t sockit__tag(const void *obj, unsigned kind)
{
    return (uint64_t)(uintptr_t)obj | kind;
}
/* Where the loop sends each kind's completions (stream_read.c, stream_write.c,
 * listener.c). */
struct sockit_stream;
struct sockit_listener;
void sockit__stream_recv_done(struct sockit_stream *st, int res, const char *data, bool more);
void sockit__stream_send_done(struct sockit_stream *st, int res);
void sockit__listener_accept_done(struct sockit_listener *l, int res, bool more);
/* Submits the sends of the streams that wrote since the last wait (stream_write.c). */
void sockit__stream_submit_sends(sockit_loop *loop);
/* Whether the loop's backend takes whole operations (io_uring). */
static inline bool sockit__loop_completes(const sockit_loop *loop);

/* What watches a descriptor: a sockit_io, or (low bit set) a sockit__handle. The
 * generation is the object's own, so a slot is one pointer. */
typedef struct sockit__io_slot {
    uintptr_t w;
} sockit__io_slot;

struct sockit_loop {
    sockit__backend backend;
    pid_t pid; /* the process that made it */
    int64_t now;
    bool time_fresh; /* now was read after this iteration's wait */
    int64_t spin_ns; /* sockit_loop_options.spin_us */
    uint64_t iteration;
    bool running;
    atomic_bool stop_asked;
    int alive;                /* active watchers with keepalive */
    int open[SOCKIT__KINDS];  /* watchers not yet closed, by kind */
    sockit__watcher *closing; /* freed at the end of the iteration */

    /* I/O watchers by descriptor. */
    sockit__io_slot *slots;
    size_t nslots;
    uint32_t next_gen;
    sockit_io *ra_head; /* the read-ahead list */
    sockit_io **ra_scratch;
    size_t ra_cap;

    /* Timers: a binary min-heap on (due, seq). */
    sockit_timer **heap;
    size_t nheap, heap_cap;
    uint64_t timer_seq;

    /* call_soon's queue, and the late calls (late.c), run after it. */
    sockit__call *soon;
    size_t nsoon, soon_cap;
    sockit__late *late_head, *late_tail;
    /* Streams and datagram endpoints closed whose on_close has not run yet: their
     * memory goes with it, so the loop cannot be freed before (close is -EBUSY). */
    int on_close_pending;

    /* The internal wakeup: an eventfd, written by stop, posts, wakeups and signals,
     * and only when no wake is pending already. */
    int wakefd;
    atomic_bool wake_pending;
    bool woken; /* set by the backend's report, handled after I/O callbacks */

    /* Posts from other threads. */
    pthread_mutex_t post_lock;
    sockit__call *posts, *posts_spare;
    size_t nposts, posts_cap, spare_cap, max_posts;
    atomic_size_t posts_waiting;

    /* Where streams receive (src/stream): one buffer for the whole loop, lent to
     * each on_data call, so an idle stream holds none. Made on first use. */
    char *stream_buf;
    char *filter_buf; /* where stream filters decode into (stream_filter.c) */
    /* The streams' idle buckets (src/stream/stream_idle.c), by index. */
    struct sockit__idle_bucket **stream_buckets;
    size_t nstream_buckets;
    /* Spares a stream write takes when the kernel did not take everything, so that
     * a write that fails for memory has sent nothing (stream_write.c). */
    struct sockit__stream_ext *spare_ext;
    struct sockit__wchunk *spare_chunk;
    /* Exts and small chunks given back, kept for the next writes (a completion
     * backend queues every write, so each message would otherwise be two
     * allocations): at most SOCKIT__CACHE_MAX of each (stream_write.c). */
    struct sockit__stream_ext *ext_cache;
    struct sockit__wchunk *chunk_cache;
    unsigned exts_cached, chunks_cached;
    /* Where datagram endpoints receive (src/stream/datagram.c): one batch of
     * buffers and headers for the whole loop, made on first use. */
    struct sockit__dgram_batch *dgram_batch;

    /* Work handed to the pool's threads (work.c): submitted and not yet given up or
     * finished, which keeps the loop running and its close -EBUSY; and the list of
     * finished work waiting for its after call (under the pool's lock). */
    int work_pending;
    struct sockit__work *work_done;

    /* Completion operations started and not finally completed (backend.h): they keep
     * the loop running, and its close -EBUSY, until their completions come. Streams
     * that wrote since the last wait, whose sends go with it (each holds a
     * reference while listed). */
    int ops_pending;
    struct sockit_stream **send_list;
    size_t nsend, send_cap;

    sockit_wakeup *wakeups;
    sockit_signal *signals;
    int sig_watchers[SOCKIT__NSIG]; /* started watchers of this loop, by signal */
    atomic_uint sig_pending[SOCKIT__NSIG];
    sockit_loop *sig_next; /* the process-wide list of loops that watch signals */
};

static inline bool sockit__loop_completes(const sockit_loop *loop)
{
    return loop->backend.ops->recv != NULL;
}

/* Common watcher bookkeeping (loop.c). */
void sockit__watcher_init(sockit__watcher *w, sockit_loop *loop, sockit__kind kind, void *user,
                          bool keepalive);
void sockit__watcher_set_active(sockit__watcher *w, bool active);
void sockit__watcher_set_keepalive(sockit__watcher *w, bool on);
/* Frees w now, or at the end of the iteration when the loop is running. */
void sockit__watcher_release(sockit__watcher *w);

/* Makes the loop's wait return (or the next wait not wait). Async-signal-safe. */
void sockit__loop_wake(sockit_loop *loop);

/* Phases (each in its file). */
void sockit__timers_run(sockit_loop *loop);
/* Nanoseconds until the next timer, or -1 when none. */
int64_t sockit__timers_next(const sockit_loop *loop);
void sockit__io_ready(sockit_loop *loop, uint64_t token, int events);
/* Whether a socket watcher has read-ahead bytes to report: those whose bytes were
 * consumed since they were listed leave the list here. */
bool sockit__io_read_ahead_waiting(sockit_loop *loop);
/* Reports read-ahead bytes of socket watchers not reported this iteration. */
void sockit__io_run_read_ahead(sockit_loop *loop);
void sockit__signals_run(sockit_loop *loop);
void sockit__signals_forget_loop(sockit_loop *loop);
void sockit__wakeups_run(sockit_loop *loop);
void sockit__posts_run(sockit_loop *loop);
void sockit__soon_run(sockit_loop *loop);
/* Queues n (its run set) unless it is queued already; it runs from the loop, after
 * the iteration's call_soon calls. Never fails. */
void sockit__late_queue(sockit_loop *loop, sockit__late *n);
/* Runs the late calls queued before this phase (those they queue wait for the
 * next iteration). */
void sockit__late_run(sockit_loop *loop);
void sockit__io_free(sockit_io *io);

/* Internal handles (io_watch.c). init counts it open; watch registers, changes or
 * (events 0) ends its registration, returning 0 or a code with the message set;
 * close ends it and counts it closed. The owner's memory must stay valid until
 * close returns; nothing is delivered to it afterwards. */
void sockit__handle_init(sockit_loop *loop, sockit__handle *h, int fd, sockit__handle_kind kind);
int sockit__handle_watch(sockit_loop *loop, sockit__handle *h, int events);
void sockit__handle_close(sockit_loop *loop, sockit__handle *h);
void sockit__timer_free(sockit_timer *t);

/* Work done on a small pool of threads shared by the process (work.c), for what
 * cannot be made non-blocking (getaddrinfo). run is called on a pool thread; then
 * after on the loop's thread, in the phase that runs posts. Work given up with
 * sockit__work_abandon is never reported to the loop: drop frees it once run has
 * returned (or at once if it had not started), from whichever thread gets there, so
 * an abandoned work keeps nothing of the loop and the loop may close meanwhile. */
typedef struct sockit__work sockit__work;
struct sockit__work {
    void (*run)(sockit__work *w);
    void (*after)(sockit__work *w);
    void (*drop)(sockit__work *w);
    sockit_loop *loop;
    sockit__work *next;
    uint8_t state; /* internal to work.c */
    bool abandoned;
};
/* Queues w (its three functions set). Returns 0, or -EAGAIN when no thread could be
 * started and none is running. From the loop's thread. */
int sockit__work_submit(sockit_loop *loop, sockit__work *w);
/* Gives w up: after will not be called, drop will. From the loop's thread. */
void sockit__work_abandon(sockit__work *w);
/* Runs the after calls of finished work (the posts phase). */
void sockit__work_run_done(sockit_loop *loop);
/* Drops the abandoned work still listed when the loop closes. */
void sockit__work_forget(sockit_loop *loop);

/* Name resolution on the loop (getaddrinfo.c), as sockit_loop_getaddrinfo with an
 * absolute deadline (SOCKIT__NEVER: none) and without a message on success; the
 * port text is checked by the caller. discard gives a pending lookup up without
 * calling done (what sockit_stream_connect's cancel needs). */
sockit_resolve *sockit__resolve_start(sockit_loop *loop, const char *host, const char *port,
                                      int family, int type, int flags, int64_t deadline,
                                      sockit_resolve_fn done, void *user);
void sockit__resolve_discard(sockit_resolve *r);
void sockit__signal_free(sockit_signal *s);

#endif /* SOCKIT_LOOP_INTERNAL_H */
