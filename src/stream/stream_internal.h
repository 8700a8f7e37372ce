/* The stream's internals, shared by stream.c (life: making, closing, the one error),
 * stream_defer.c (the calls deferred to the loop), stream_read.c (receiving and
 * framing), stream_write.c (the write queue), stream_idle.c (idle timeouts) and
 * listener.c. Never installed.
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
#include <sys/socket.h>
#include <sys/uio.h>

/* The write queue's defaults: watermarks and the hard limit (sockit.h). */
#define SOCKIT__STREAM_LOW   ((size_t)16 * 1024)
#define SOCKIT__STREAM_HIGH  ((size_t)64 * 1024)
#define SOCKIT__STREAM_LIMIT ((size_t)16 * 1024 * 1024)

/* Chunks one send of a completion backend takes (what a write queues in one
 * iteration goes out in one send, as one writev does on readiness). */
#define SOCKIT__SEND_IOV 16

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
    int status;  /* for a finished caller's chunk waiting for its done call */
    bool ref;    /* the caller's bytes (write_ref), not a copy */
    size_t user; /* filtered stream: user bytes this chunk's sending accounts for */
};

/* What a stream holds only while it needs it: bytes received and not delivered, the
 * write queue, done calls waiting to run, watermarks other than the defaults, a
 * closing linger. Made on first need, freed when it holds nothing again, so an idle
 * stream is just struct sockit_stream. */
typedef struct sockit__stream_ext {
    /* Received bytes not yet delivered: a partial frame, or what came after a pause
     * inside on_data. pend[pend_off, pend_len). */
    char *pend;
    size_t pend_off, pend_len, pend_cap;
    sockit__wchunk *wq_head, *wq_tail;
    size_t queued;                         /* user bytes written and not yet handed to the kernel */
    sockit__wchunk *done_head, *done_tail; /* finished caller's chunks, for done calls */
    size_t low, high, limit;
    bool custom_marks; /* set_watermarks was called: keep the ext for them */
    int64_t linger_at; /* close's deadline for draining, 0: none */
    sockit_timer *linger;
    /* A filter between the wire and the user (stream_filter.c); the ext is kept for
     * as long as it is set. */
    const struct sockit__filter_ops *filter;
    void *filter_ctx;
    bool filter_ended; /* on_user_end was called */
    int filter_error;  /* on_user failed: the stream ends with it, from the loop */
    bool filter_held;  /* the on_user running kept the user's bytes (sockit__filter_hold) */
    size_t wire;       /* filtered: bytes in the queue, the filter's own included */
    /* A completion backend's send in flight: the kernel reads these when it takes the
     * send, so they live with the queue, not on a stack. */
    struct msghdr send_msg;
    struct iovec send_iov[SOCKIT__SEND_IOV];
} sockit__stream_ext;

/* The peer's address as messages and sockit_stream_peer need it, in 20 bytes
 * (an IPv6 scope and flow label are not kept). family 0: not known. */
typedef struct sockit__peer {
    uint8_t family; /* AF_INET, AF_INET6, AF_UNIX (named by nothing more), 0 */
    uint8_t unused;
    uint16_t port; /* network order */
    uint8_t addr[16];
} sockit__peer;

/* Streams of one loop with one idle timeout, least recently active first; bucket 0
 * holds the streams without one. Every open stream is on one bucket's list, which
 * is also how a listener finds its streams. */
typedef struct sockit__idle_bucket {
    sockit_loop *loop;
    uint32_t timeout_ms; /* 0: none */
    sockit_stream *head, *tail;
    sockit_timer *timer; /* fires when the head's time is up */
} sockit__idle_bucket;

/* The longest idle timeout, in seconds (it is kept in ms in 32 bits). */
#define SOCKIT__IDLE_MAX_S 4e6

/* Distinct idle timeouts one loop can hold at once (bucket indexes are a byte). */
#define SOCKIT__IDLE_BUCKETS 255

struct sockit_stream {
    sockit__handle h;  /* the descriptor and its registration (h.fd -1 once closed) */
    uint8_t bucket;    /* index in the loop's idle buckets */
    unsigned mode : 2; /* sockit__frame_mode */
    unsigned is_socket : 1;
    unsigned owned : 1;            /* stream_new_fd(owned false): fd is left open */
    unsigned restore_blocking : 1; /* fd was blocking when adopted and is not owned */
    unsigned paused : 1;           /* by the user */
    unsigned eof : 1;              /* the peer ended its side */
    unsigned shut_asked : 1;       /* shutdown: shut the write side once drained */
    unsigned shut_done : 1;
    unsigned closing : 1;    /* close or abort was called, or the stream ended itself: no
                                more callbacks but write-done and on_close */
    unsigned ended : 1;      /* the descriptor is gone; on_close is scheduled or ran */
    unsigned over_high : 1;  /* the queue passed the high watermark: on_drain when at low */
    unsigned delivering : 1; /* inside the framing loop */
    unsigned deliver_scheduled : 1;
    unsigned done_scheduled : 1;
    unsigned eof_pending : 1; /* end of stream came while paused frames were kept */
    unsigned filtered : 1;    /* a filter is set (ext->filter) */
    unsigned drop_unread : 1; /* failed with a last word for the peer (sockit__drop_unread) */
    /* On a completion backend (h.ring): a multishot receive is in flight, its cancel
     * was asked, a send is in flight (the queue's head chunk is the kernel's), the
     * stream is on the loop's list of sends to submit, on_close waits for the last
     * completion. Each operation in flight and the listing hold a reference. */
    unsigned recv_on : 1;
    unsigned recv_stop : 1;
    unsigned send_on : 1;
    unsigned send_listed : 1;
    unsigned close_waits : 1;
    uint32_t last_active; /* the loop's time in ms, of the last byte in or out */
    uint32_t frame;       /* LINES: the maximum line (with '\n'); EXACT: the frame size */
    sockit_loop *loop;
    const sockit_stream_callbacks *cb;
    void *user;
    sockit__stream_ext *ext;
    sockit_stream *idle_prev, *idle_next; /* its bucket's list */
    sockit_listener *listener;            /* the listener that made it, until either ends */
    sockit__peer peer;
    uint16_t refs;      /* the stream itself + each deferred call scheduled for it */
    uint8_t late_kinds; /* the SOCKIT__DEFER_ kinds its late node is queued for */
    sockit__late late;
};

/* stream.c */
sockit_stream *sockit__stream_make(sockit_loop *loop, int fd, bool is_socket, bool owned,
                                   const sockit_stream_callbacks *cb, void *user);
/* Ends the stream because of code: the message names the peer (op: "recv", "send"),
 * on_error runs unless the user already closed it, then it is aborted. */
void sockit__stream_fail(sockit_stream *st, int code, const char *op);
/* As sockit__stream_fail, with the message already recorded (a filter's own). */
void sockit__stream_fail_noted(sockit_stream *st, int code);
/* As sockit__stream_fail_noted, but what is queued (a filter's alert to the peer)
 * still goes out, for at most linger seconds, before the descriptor closes. */
void sockit__stream_fail_draining(sockit_stream *st, int code, double linger);
/* Closes the descriptor, finishes the queue with status and schedules on_close. */
void sockit__stream_end(sockit_stream *st, int status, bool reset);
/* The calls a stream defers to the loop, each holding a reference until it has
 * run: through call_soon, or (when its queue cannot grow) the stream's late node,
 * so scheduling never fails. */
enum {
    SOCKIT__DEFER_START = 1,   /* start reading (a completion backend's first receive) */
    SOCKIT__DEFER_DELIVER = 2, /* frames kept (read ahead, held by a pause) */
    SOCKIT__DEFER_DONE = 4,    /* finished write_ref chunks' done calls */
    SOCKIT__DEFER_FILTER = 8,  /* a filter refused the user's bytes: the stream fails */
    SOCKIT__DEFER_CLOSE = 16,  /* on_close */
};
/* stream_defer.c: schedules the call of that kind (the callers keep each kind to one
 * at a time). */
void sockit__stream_defer(sockit_stream *st, unsigned kind);
/* The deferred calls, each dropping the reference its scheduling took. */
void sockit__stream_deliver_later(sockit_stream *st);
void sockit__stream_done_later(sockit_stream *st);
void sockit__filter_failed_later(sockit_stream *st);
/* Drops a reference taken by sockit__stream_defer; the last one frees the stream. */
void sockit__stream_unref(sockit_stream *st);
/* The events the watcher should wait for now, applied. */
void sockit__stream_update_io(sockit_stream *st);
/* Keeps the peer's address (the listener knows it from accept). */
void sockit__stream_set_peer(sockit_stream *st, const sockit_addr *a);
/* "127.0.0.1:5000", or "fd 7" for a descriptor without a known peer. */
void sockit__stream_name(const sockit_stream *st, char *buf, size_t size);

/* The stream ended and its last completion came: on_close is scheduled. */
void sockit__stream_schedule_close(sockit_stream *st);

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

/* stream_filter.c: a filter transforms bytes both ways between the wire and the
 * user (TLS over memory BIOs is one). Wire bytes read go to on_wire, which hands
 * what it decodes to sockit__filter_deliver; user writes go to on_user, which
 * sends what it encodes with sockit__filter_send_wire (as may on_wire, for a
 * protocol's own messages). The queue's watermarks and hard limit count user
 * bytes: a write's bytes are counted until the last wire bytes its on_user produced
 * have gone to the kernel (a filter that holds a write's bytes back and sends none
 * for it must count them itself: the stream charges them to the queue's last chunk,
 * or to nothing when the queue is empty). Each entry returns 0 or a code: from
 * on_wire or on_wire_eof it ends the stream with that error; from on_user it fails
 * that write (the caller gets it) and ends the stream from the loop; on_user_end's
 * is not reported, the stream ending anyway. What a filter sends of its own (not
 * for a write) counts against nothing the user sees, so the queue's wire bytes are
 * bounded too: past twice the hard limit sockit__filter_send_wire is -ENOBUFS (a
 * peer that makes the filter talk and never reads cannot grow the queue). */
typedef struct sockit__filter_ops {
    const char *name; /* for messages: "tls" */
    int (*on_wire)(void *ctx, sockit_stream *st, const char *data, size_t len);
    /* The peer ended the wire: 0 passes end of stream on to the user. */
    int (*on_wire_eof)(void *ctx, sockit_stream *st);
    int (*on_user)(void *ctx, sockit_stream *st, const char *data, size_t len);
    /* The user's side ends (shutdown, or close): what ends it on the wire
     * (TLS close_notify) is sent before the half-close or the close. */
    int (*on_user_end)(void *ctx, sockit_stream *st);
    void (*free)(void *ctx); /* when the stream ends */
} sockit__filter_ops;
/* Sets the filter of a stream no byte has gone through yet. 0, or -EBUSY (bytes
 * queued or kept), -EEXIST (one is set), -ENOMEM. */
int sockit__stream_set_filter(sockit_stream *st, const sockit__filter_ops *ops, void *ctx);
/* From on_wire: decoded bytes for the user (data may be sockit__filter_buf). */
void sockit__filter_deliver(sockit_stream *st, const char *data, size_t len);
/* From the filter: wire bytes to send, tried now, the rest copied to the queue.
 * 0 or -ENOMEM. */
int sockit__filter_send_wire(sockit_stream *st, const void *data, size_t len);
/* From on_user: the filter keeps these n user bytes itself for now (TLS before its
 * handshake); they count in the queue, watermarks and limit as queued ones do. */
void sockit__filter_hold(sockit_stream *st, size_t n);
/* n held bytes have just been made wire bytes (sockit__filter_send_wire): they stay
 * counted until the last wire chunk has gone to the kernel. */
void sockit__filter_held_out(sockit_stream *st, size_t n);
/* A loop-owned buffer of SOCKIT__STREAM_READ bytes a filter may decode into (the
 * loop's read buffer holds the wire bytes being decoded). NULL for no memory. */
char *sockit__filter_buf(sockit_loop *loop);
/* The stream's hooks into its filter (stream_read.c, stream_write.c, stream.c). */
void sockit__filter_wire(sockit_stream *st, const char *data, size_t len);
void sockit__filter_wire_eof(sockit_stream *st);
int sockit__filter_user(sockit_stream *st, const void *buf, size_t len);
void sockit__filter_user_end(sockit_stream *st);
void sockit__filter_free(sockit_stream *st);

/* stream_write.c: gives an empty ext back to the loop's cache (or frees it). */
void sockit__stream_ext_release(sockit_loop *loop, sockit__stream_ext *x);

/* stream_write.c: queues wire bytes (user false: a filter's, counted by it). */
int sockit__stream_send_bytes(sockit_stream *st, const void *buf, size_t len, bool user);

/* stream.c: the ext */
/* The stream's ext, made if needed (NULL on allocation failure, message set). */
sockit__stream_ext *sockit__stream_ext_get(sockit_stream *st);
/* Frees the ext once it holds nothing. */
void sockit__stream_ext_trim(sockit_stream *st);
size_t sockit__stream_queued(const sockit_stream *st);

/* stream_idle.c */
/* Puts st on the bucket of timeout_ms (0: none), moving it from its current one.
 * Returns 0 or a code (-ENOSPC: too many distinct timeouts, -ENOMEM). */
int sockit__stream_idle_set(sockit_stream *st, uint32_t timeout_ms);
/* The stream's idle timeout in ms (0: none). */
uint32_t sockit__stream_idle_ms(const sockit_stream *st);
/* Bytes moved: st is the most recently active of its bucket. */
void sockit__stream_touch(sockit_stream *st);
/* Takes st off its bucket (the stream ended). */
void sockit__stream_idle_remove(sockit_stream *st);
/* The first stream of the loop (over all buckets) and the next one, for walking
 * every open stream; the walk survives ending the current one if next is taken
 * first. */
sockit_stream *sockit__stream_first(sockit_loop *loop);
sockit_stream *sockit__stream_next(sockit_stream *st);
/* close's linger: (re)arms or stops the linger timer. */
void sockit__stream_arm_linger(sockit_stream *st);

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

/* A proxy's handshake on st (stream_tunnel.c), toward host:port, with a deadline on
 * the loop's clock. fn(st, 0, arg) once the tunnel is open (st raw, its callbacks
 * and user cleared: the caller sets its own), or fn(st, code, arg) with the message
 * set; the caller then closes st. fn may run before this returns. Returns 0, or a
 * code when nothing was started. */
struct sockit__proxy_url;
typedef void (*sockit__tunnel_fn)(sockit_stream *st, int status, void *arg);
int sockit__stream_tunnel(sockit_stream *st, const struct sockit__proxy_url *url, const char *host,
                          int port, int64_t deadline, sockit__tunnel_fn fn, void *arg);
/* Gives up the handshake running on st (fn is never called) and aborts st. */
void sockit__stream_tunnel_abort(sockit_stream *st);

#endif /* SOCKIT_STREAM_INTERNAL_H */
