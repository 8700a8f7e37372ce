/* The stream's internals, shared by stream.c (life: making, closing, the one error,
 * the deferred calls), stream_read.c (receiving and framing), stream_write.c (the
 * write queue), stream_timer.c (idle timeout and linger) and listener.c. Never
 * installed.
 *
 * Shape, chosen for what comes next:
 *   - reads land in the loop's buffer (loop->stream_buf) and are handed on from
 *     there, so a completion backend can receive into a loop-owned buffer and call
 *     the same sockit__stream_received;
 *   - writes are a queue of buffers (copied or the caller's), flushed by
 *     sockit__stream_flush with writev: a completion backend submits the same
 *     buffers instead of writing them on readiness;
 *   - wire bytes and user bytes meet in two places only (sockit__stream_received on
 *     the way in, queue_user/flush on the way out), which is where a filter (TLS
 *     over memory BIOs) will sit; the watermarks and the hard limit count user
 *     bytes (queued), never what a filter produced. */
#ifndef SOCKIT_STREAM_INTERNAL_H
#define SOCKIT_STREAM_INTERNAL_H

#include "../loop/loop_internal.h"

#include <netinet/in.h>

/* Bytes the loop's buffer lends to one on_data call: one read's worth. */
#define SOCKIT__STREAM_READ 65536

typedef enum sockit__frame_mode {
    SOCKIT__FRAME_RAW,
    SOCKIT__FRAME_LINES,
    SOCKIT__FRAME_EXACT
} sockit__frame_mode;

/* One queued write. A copied write owns its bytes (they follow the header); a
 * caller's (write_ref) points at them and has a done call. */
typedef struct sockit__wchunk sockit__wchunk;
struct sockit__wchunk {
    sockit__wchunk *next;
    const char *data;
    size_t len;  /* bytes in the chunk */
    size_t sent; /* of those, handed to the kernel */
    size_t cap;  /* copied chunks: room for more copies appended (coalescing) */
    sockit_write_done_fn done;
    void *arg;
    int status; /* for a finished caller's chunk waiting for its done call */
    bool ref;   /* the caller's bytes (write_ref), not a copy */
};

struct sockit_stream {
    sockit_loop *loop;
    const sockit_stream_callbacks *cb;
    void *user;
    sockit_io *io;
    sockit_timer *timer; /* idle timeout and linger: made when first needed */
    int fd;              /* -1 once closed */
    int refs;            /* the stream itself + each deferred call scheduled for it */

    bool is_socket;
    bool owned;            /* stream_new_fd(owned false): fd is left open at the end */
    bool restore_blocking; /* fd was blocking when adopted and is not owned */
    bool paused;           /* by the user */
    bool eof;              /* the peer ended its side */
    bool shut_asked;       /* shutdown: shut the write side once drained */
    bool shut_done;
    bool closing;    /* close or abort was called, or the stream ended itself: no more
                        callbacks but write-done and on_close */
    bool ended;      /* the descriptor is gone; on_close is scheduled or ran */
    bool over_high;  /* the queue passed the high watermark: on_drain when at low */
    bool delivering; /* inside the framing loop (a nested delivery waits for it) */
    bool deliver_scheduled;
    bool done_scheduled;

    sockit__frame_mode mode;
    size_t frame; /* LINES: the maximum line (with '\n'); EXACT: the frame size */

    /* Received bytes not yet delivered: a partial frame, or what came after a pause
     * inside on_data. pend[pend_off, pend_len). Freed when empty. */
    char *pend;
    size_t pend_off, pend_len, pend_cap;

    sockit__wchunk *wq_head, *wq_tail;
    size_t queued; /* user bytes written and not yet handed to the kernel */
    size_t low, high, limit;
    sockit__wchunk *done_head, *done_tail; /* finished caller's chunks, for done calls */

    int64_t idle_ns;     /* 0: none */
    int64_t last_active; /* the loop's time of the last byte in or out */
    int64_t linger_at;   /* close's deadline for draining, 0: none */

    struct sockaddr_in6 peer; /* big enough for IPv4 too; peer_len 0: not known */
    socklen_t peer_len;

    sockit_listener *listener; /* the listener that made it, until either ends */
    sockit_stream *lprev, *lnext;
};

/* stream.c */
sockit_stream *sockit__stream_make(sockit_loop *loop, int fd, bool is_socket, bool owned,
                                   const sockit_stream_callbacks *cb, void *user);
/* Ends the stream because of code: the message names the peer (op: "recv", "send"),
 * on_error runs unless the user already closed it, then it is aborted. */
void sockit__stream_fail(sockit_stream *st, int code, const char *op);
/* Closes the descriptor, finishes the queue with status and schedules on_close. */
void sockit__stream_end(sockit_stream *st, int status, bool reset);
/* Schedules fn(st) as a deferred call that holds a reference. Returns 0 or a code. */
int sockit__stream_defer(sockit_stream *st, sockit_call_fn fn);
/* Drops a reference taken by sockit__stream_defer; the last one frees the stream. */
void sockit__stream_unref(sockit_stream *st);
/* The events the watcher should wait for now, applied. */
void sockit__stream_update_io(sockit_stream *st);
/* "127.0.0.1:5000", or "fd 7" for a descriptor without a known peer. */
void sockit__stream_name(const sockit_stream *st, char *buf, size_t size);

/* stream_read.c */
/* Readable: one read into the loop's buffer, then delivery. */
void sockit__stream_readable(sockit_stream *st);
/* Hands received bytes to the framing and on_data (data may be the loop's buffer;
 * what is not delivered now is copied to pend). */
void sockit__stream_received(sockit_stream *st, const char *data, size_t len);
/* Schedules delivery of the bytes kept in pend (after adoption, resume, a change
 * of framing). */
void sockit__stream_deliver_soon(sockit_stream *st);
/* Keeps bytes to deliver first (a sockit's read-ahead when adopted). */
int sockit__stream_keep(sockit_stream *st, const char *data, size_t len);

/* stream_write.c */
/* Writable: writes as much of the queue as the kernel takes. */
void sockit__stream_flush(sockit_stream *st);
/* Finishes every queued chunk with status (their done calls are scheduled). */
void sockit__stream_drop_queue(sockit_stream *st, int status);
/* Runs the done calls of finished caller's chunks. */
void sockit__stream_run_done(sockit_stream *st);

/* stream_timer.c */
/* (Re)arms the timer for the nearest of the idle and linger deadlines. */
void sockit__stream_arm_timer(sockit_stream *st);

/* listener.c */
/* A stream of l ended: count it out and accept again if max_connections held it. */
void sockit__listener_stream_ended(sockit_listener *l, sockit_stream *st);

/* The event-driven server's listener (socketserver_events.c): the socket stays the
 * caller's; refuse: clients over max_connections are closed at once instead of
 * waiting; mirror counts the open streams for other threads; owner is the server. */
sockit_listener *sockit__listener_borrow(sockit_loop *loop, sockit *listening,
                                        const sockit_listener_config *cfg, bool refuse,
                                        atomic_int *mirror, void *owner);
void *sockit__listener_owner(const sockit_listener *l);
/* Stops accepting for good and forgets the socket (which the caller then closes);
 * the streams stay counted until they end. */
void sockit__listener_let_go(sockit_listener *l);
/* Aborts every open stream, or closes each with linger (sockit_stream_close). */
void sockit__listener_close_streams(sockit_listener *l, bool abort, double linger);
void sockit__listener_free(sockit_listener *l);

#endif /* SOCKIT_STREAM_INTERNAL_H */
