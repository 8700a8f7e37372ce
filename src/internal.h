/* Internal interfaces shared by the library's source files. Never installed. */
#ifndef SOCKIT_INTERNAL_H
#define SOCKIT_INTERNAL_H

#include "sockit.h"
#include "sys.h"

#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

/* ---- errors (error.c) ----------------------------------------------------------
 * Every failing public call records its code and message here before returning.
 * sockit__fail is cheap (no formatting: the message "OP: strerror" is built only
 * when sockit_errmsg is called), so hot paths such as would-block may use it.
 * sockit__failf formats a message with context now. Both return code, so a failure
 * reads: return sockit__fail(-errno, "recv"); */
int sockit__fail(int code, const char *op_static);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int sockit__failf(int code, const char *fmt, ...);
/* Maps a getaddrinfo EAI_* return (and errno for EAI_SYSTEM) to a sockit code. */
int sockit__from_eai(int eai, int saved_errno);

/* ---- deadlines and waiting (wait.c) ---------------------------------------------
 * A deadline is an absolute CLOCK_MONOTONIC time in nanoseconds; SOCKIT__NEVER means
 * none. Every blocking call computes one deadline at entry and waits against it, so
 * EINTR and partial progress never restart the clock. */
#define SOCKIT__NEVER INT64_MAX
int64_t sockit__now_ns(void);
/* timeout in seconds (< 0: none) to an absolute deadline. */
int64_t sockit__deadline(double timeout);
/* Milliseconds left for poll(): -1 for SOCKIT__NEVER, 0 if passed, rounded up so a
 * wait never wakes before the deadline and spins. */
int sockit__remaining_ms(int64_t deadline);
/* Waits until fd has events (POLLIN/POLLOUT) or the deadline passes. EINTR is
 * retried with the remaining time recomputed. Returns 0 when ready (also on
 * POLLERR/POLLHUP: the next syscall reports the error), SOCKIT_ETIMEOUT, or -errno. */
int sockit__wait(int fd, short events, int64_t deadline);

/* ---- the socket object (socket.c) ------------------------------------------------ */

/* How bytes move on a connected socket. Plain sockets use sockit__plain_transport,
 * a TLS socket its own (src/tls/), and every stream operation (send, recv, sendall,
 * recv_exact, readline, recvfrom, sendfile, shutdown, close) goes through this table.
 * send and recv do one attempt and return bytes or -errno; on -EAGAIN they may set
 * *want to what they wait for (the caller presets the call's own direction: a TLS
 * write may need the socket readable). The other entries may be NULL: no pending
 * bytes, shutdown(2) as it is, nothing to release, no detail. */
typedef struct sockit__transport {
    ssize_t (*send)(sockit *s, const void *buf, size_t len, int flags, short *want);
    ssize_t (*recv)(sockit *s, void *buf, size_t len, int flags, short *want);
    /* Bytes the transport holds that recv returns without reading the socket. */
    size_t (*pending)(const sockit *s);
    /* shutdown(how) within deadline: 0 or a code with the error recorded. */
    int (*shutdown)(sockit *s, int how, int64_t deadline);
    /* Frees the transport's state; notify: end the session orderly if that cannot
     * block. The descriptor stays open. */
    void (*release)(sockit *s, bool notify);
    /* The reason of the transport's last failure on s, for messages; NULL if none. */
    const char *(*detail)(const sockit *s);
} sockit__transport;
extern const sockit__transport sockit__plain_transport;

/* The read-ahead buffer of sockit_readline (reader.c). */
typedef struct sockit__rbuf {
    char *data;
    size_t cap, start, end; /* unread bytes are data[start, end) */
} sockit__rbuf;

struct sockit {
    int fd;
    int family;
    int type;       /* SOCK_STREAM, SOCK_DGRAM (without SOCK_NONBLOCK/CLOEXEC bits) */
    double timeout; /* < 0 blocking, 0 non-blocking, > 0 seconds */
    const sockit__transport *transport;
    void *tstate;                  /* the transport's own state (NULL for plain) */
    struct sockit__tunnel *tunnel; /* a proxy handshake under way (sockit_tunnel) */
    sockit__rbuf rbuf;
};

/* Wraps an owned fd (already close-on-exec) in a new blocking-mode object; the fd's
 * O_NONBLOCK must match timeout (< 0: clear, otherwise set). Returns NULL (and
 * closes nothing) on allocation failure. */
sockit *sockit__wrap(int fd, int family, int type, double timeout);
/* Accepts one connection on listener s in s's mode (EINTR and ECONNABORTED
 * retried). Returns the new close-on-exec, blocking fd, or a code with the error
 * recorded. sockit_accept is this and sockit__wrap. */
int sockit__accept_fd(sockit *s, sockit_addr *peer);
/* Makes s, an object whose fd was closed by sockit__unwrap, the object of fd, as
 * sockit__wrap would make a new one, keeping its read-ahead buffer's memory: a
 * sequential server serves every connection with one object. */
void sockit__rewrap(sockit *s, int fd, int family, int type);
/* Closes s's fd and empties its read-ahead buffer, keeping the object (and the
 * buffer's memory) for sockit__rewrap. Returns 0 or the close error's code. */
int sockit__unwrap(sockit *s);
/* The deadline for one call on s: SOCKIT__NEVER for blocking mode, one already
 * passed (0) for non-blocking mode, now + timeout otherwise. A non-blocking call
 * never waits, so it does not read the clock: a server's hot path stays free of it. */
int64_t sockit__call_deadline(const sockit *s);
/* After an operation returned -EAGAIN: in non-blocking mode returns
 * SOCKIT_EWOULDBLOCK; otherwise waits for events until deadline and returns 0 to
 * retry, SOCKIT_ETIMEOUT or -errno. */
int sockit__await(sockit *s, short events, int64_t deadline);
/* Records a failure of op on s and returns code. Would-block is the expected outcome
 * of loop-driven calls, so it gets the cheap lazy message; other failures name the
 * peer, or the socket's own address when it has no peer. */
int sockit__io_fail(const sockit *s, int code, const char *op);
/* Gives s back the plain transport, releasing the current one's state. */
void sockit__transport_release(sockit *s, bool notify);
/* Sets or clears O_NONBLOCK. Returns 0 or -errno. */
int sockit__set_nonblock(int fd, bool on);

/* Raw connect of s to addr within deadline, honouring s's mode. Returns 0,
 * -EINPROGRESS (non-blocking), SOCKIT_ETIMEOUT or -errno. Sets no error message. */
int sockit__connect_raw(sockit *s, const sockit_addr *addr, int64_t deadline);

/* ---- TLS (src/tls/, or src/tls_none/ without OpenSSL) --------------------------- */

/* Takes a reference to ctx (sockit_tls_ctx_free drops it). */
sockit_tls_ctx *sockit__tls_ctx_ref(sockit_tls_ctx *ctx);
/* 1 for a server context, 0 for a client one. */
bool sockit__tls_ctx_is_server(const sockit_tls_ctx *ctx);
/* sockit_stream_start_tls with the handshake's end going to fn(st, status, arg)
 * instead of the user (the connector's and the listener's use). */
int sockit__stream_tls(sockit_stream *st, sockit_tls_ctx *ctx, const char *host, double timeout,
                       void (*fn)(sockit_stream *st, int status, void *arg), void *arg);
/* The handshake's end goes to no one any more, and its deadline is off (the
 * connector gave the stream up). */
void sockit__stream_tls_forget(sockit_stream *st);
/* sockit_stream_connect_tls checking the certificate for tls_name (NULL: host). */
typedef struct sockit_connector sockit_connector;
sockit_connector *sockit__stream_connect_tls_named(
    sockit_loop *loop, const char *host, int port, double timeout, const sockit_addr *source,
    sockit_tls_ctx *ctx, const char *tls_name, const sockit_stream_callbacks *cb,
    void (*done)(sockit_connector *c, sockit_stream *st, int code, void *user), void *user);

/* ---- threads (thread.c) ------------------------------------------------------ */

/* Starts fn(arg) on a new thread with every signal blocked (detached, or joinable
 * with its id in *out). Returns 0 or -errno. */
int sockit__thread_create(pthread_t *out, bool detached, void *(*fn)(void *), void *arg);

/* ---- addresses (addr.c, resolve.c) ---------------------------------------------- */

/* The text form of a for a message; "(unprintable address)" if it has none. */
void sockit__addr_text(const sockit_addr *a, char *buf, size_t size);
/* Appends "A: reason" (comma-separated) to the "tried" list of a message that names
 * every address an operation tried. *used tracks the length; a full buffer drops
 * further entries rather than cutting one in half. */
void sockit__tried_append(char *buf, size_t size, size_t *used, const sockit_addr *a, int code);
/* Copies up to max IPv4/IPv6 stream/datagram entries of a getaddrinfo list into
 * out, in order. Returns the count, or SOCKIT_ENOADDR when none was usable. */
ssize_t sockit__copy_addrinfo(const struct addrinfo *res, sockit_addrinfo *out, size_t max);
/* Runs the resolver (through the test hook) in this thread and copies up to max
 * usable entries, in its order. Returns the count or a code; sets no message, so
 * each caller can name its own operation. */
ssize_t sockit__resolve_now(const char *host, const char *service, const struct addrinfo *hints,
                            sockit_addrinfo *out, size_t max);
/* As sockit__resolve_now, into an array it allocates (*out, freed with sockit__free)
 * holding every usable entry. Returns the count or a code (-ENOMEM). */
ssize_t sockit__resolve_all(const char *host, const char *service, const struct addrinfo *hints,
                            sockit_addrinfo **out);
/* How getaddrinfo should get a port text: 1 with the decimal number in num when it
 * is one, 0 for a service name to pass on, or SOCKIT_EBADPORT. */
int sockit__classify_port(const char *port, char *num, size_t size);
/* The message text of host and a port given as text ("[::1]:80", "unix:/x"). */
void sockit__join_hostport(char *buf, size_t size, const char *host, const char *port);

/* Resolves host:port for bind/connect/sendto of one socket: a Unix socket takes host
 * as its path; an IP socket resolves host (NULL/"" = wildcard when passive) in its
 * own family, giving up at deadline (SOCKIT__NEVER: as long as the resolver takes).
 * Fills out[max]. Returns the count or a code, with a message naming op and the
 * address. */
ssize_t sockit__resolve_for(const sockit *s, const char *op, const char *host, int port,
                            bool passive, int64_t deadline, sockit_addrinfo *out, size_t max);
/* The host:port text used in messages: "localhost:80", "[::1]:80", "unix:/p". */
void sockit__hostport(char *buf, size_t size, const char *host, int port);
/* Checks port in 0-65535 (allow_zero) or 1-65535. Returns 0 or SOCKIT_EBADPORT with
 * a message naming op and the port. */
int sockit__check_port(const char *op, int port, bool allow_zero);

/* Test hook: replaces getaddrinfo/freeaddrinfo (for injecting slow or scripted name
 * resolution in tests). NULL restores the system's. Not thread-safe to change while
 * resolutions run. */
typedef int (*sockit__getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                                      struct addrinfo **);
void sockit__set_getaddrinfo(sockit__getaddrinfo_fn fn);
int sockit__call_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints,
                             struct addrinfo **res);
/* For a hook whose lists do not come from the system's getaddrinfo (scripted
 * results): free_fn releases them (NULL: freeaddrinfo). sockit__set_getaddrinfo(fn)
 * is this with free_fn NULL. Lists from sockit__call_getaddrinfo are released with
 * sockit__call_freeaddrinfo, never freeaddrinfo directly. */
typedef void (*sockit__freeaddrinfo_fn)(struct addrinfo *);
void sockit__set_getaddrinfo_pair(sockit__getaddrinfo_fn fn, sockit__freeaddrinfo_fn free_fn);
void sockit__call_freeaddrinfo(struct addrinfo *res);

/* ---- tables indexed by descriptor (fd_table.c) ------------------------------------- */

/* Grows *table (*n entries of elem_size bytes) by doubling, from 64, until fd is an
 * index in it; the new entries are zeroed. 0, or -ENOMEM with the table as it was. */
int sockit__fd_table_grow(void **table, size_t *n, size_t elem_size, int fd);

/* ---- running out of descriptors at accept (shed.c) -------------------------------- */

/* Opens the spare descriptor (/dev/null) into *reserve_fd if it is not open. */
void sockit__reserve_fd(int *reserve_fd);
/* Gives up the spare, accepts and closes every connection pending on listen_fd, and
 * takes the spare back. True when the backlog was emptied (false: no spare, or the
 * freed number went elsewhere; the caller backs off). */
bool sockit__shed_backlog(int listen_fd, int *reserve_fd);
/* The next accept back-off after a resource error: 10 ms, doubling to 1 s. */
int64_t sockit__backoff_next(int64_t current_ns);

/* ---- buffered reading (reader.c) ------------------------------------------------ */

/* Moves up to len buffered bytes into buf. Returns the count (0 if none). */
size_t sockit__rbuf_take(sockit *s, void *buf, size_t len);
/* Appends len bytes read from the peer to the unread ones (a proxy handshake's
 * leftover, the stream's first bytes). 0, -ENOBUFS or -ENOMEM. */
int sockit__rbuf_keep(sockit *s, const void *data, size_t len);
/* Frees what the object holds besides its descriptor: the read-ahead buffer and a
 * proxy handshake under way. */
void sockit__free_parts(sockit *s);

/* ---- closing so the last bytes arrive (drain.c) -------------------------------------- */

/* Reads and drops what has arrived on a stream socket, without waiting, before a
 * close whose last bytes (a TLS alert) the peer must read: closing over unread
 * bytes makes the kernel reset the connection and discard what it has not sent. */
void sockit__drop_unread(int fd);
/* The same for a peer that may still be writing: shuts the write side (the last
 * bytes are followed by FIN), then reads and drops until the peer closes, or for at
 * most ms milliseconds. */
void sockit__drop_until_closed(int fd, int ms);

#endif /* SOCKIT_INTERNAL_H */
