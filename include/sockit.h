/*
 * sockit: Python's socket module, done in C.
 *
 * This header is the whole contract. Sections follow the layers of the library:
 * errors, addresses, the socket object, I/O, options, helpers (connect/serve,
 * buffered reading).
 *
 * Conventions that hold for every function below:
 *   - Constructors return a pointer, or NULL on failure; sockit_errcode() then gives
 *     the code and sockit_errmsg() the message.
 *   - Operations return an int or ssize_t, negative on failure (a sockit error code).
 *   - Every failure sets the thread-local code and message, with context (the
 *     operation, the address).
 *   - No call raises SIGPIPE; every descriptor is created close-on-exec; EINTR is
 *     retried with the remaining time recomputed; a timeout is one monotonic deadline
 *     for the whole call.
 *   - If a call fails, it took ownership of nothing.
 */
#ifndef SOCKIT_H
#define SOCKIT_H

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(SOCKIT_BUILDING)
#define SOCKIT_API __attribute__((visibility("default")))
#else
#define SOCKIT_API
#endif

#define SOCKIT_VERSION_MAJOR  0
#define SOCKIT_VERSION_MINOR  1
#define SOCKIT_VERSION_PATCH  0
#define SOCKIT_VERSION_STRING "0.1.0"

/* Returns SOCKIT_VERSION_STRING of the library actually linked. */
SOCKIT_API const char *sockit_version(void);

/* ------------------------------------------------------------------------------
 * 1. Errors
 *
 * A code is negative. -1 .. -4095 are system errors (-errno, e.g. -ECONNREFUSED).
 * The codes below are sockit's own: resolver failures (getaddrinfo's EAI_*) and
 * conditions the kernel has no errno for. docs/errors.md maps Python's exception
 * classes to these codes.
 * ------------------------------------------------------------------------------ */

/* X(NAME, value, message). One table generates the enum, sockit_errname and
 * sockit_strerror, so the three cannot disagree. */
#define SOCKIT_ERRNO_MAP(X)                                                                        \
    X(ETIMEOUT, -5001, "Timed out: the deadline passed")                                           \
    X(ETRUNCATED, -5002, "Datagram larger than the buffer (truncated)")                            \
    X(EBADADDR, -5003, "Malformed address")                                                        \
    X(EBADPORT, -5004, "Bad port: not a number in 0-65535 or a known service")                     \
    X(EPATHLEN, -5005, "Unix socket path too long")                                                \
    X(ELINELEN, -5006, "Line longer than the limit")                                               \
    X(EEOF, -5007, "Connection closed before the expected bytes arrived")                          \
    X(ENOADDR, -5008, "No address of a usable family")                                             \
    X(EAI_AGAIN, -5101, "Temporary failure in name resolution")                                    \
    X(EAI_BADFLAGS, -5102, "Bad value for resolver flags")                                         \
    X(EAI_FAIL, -5103, "Non-recoverable failure in name resolution")                               \
    X(EAI_FAMILY, -5104, "Address family not supported by the resolver")                           \
    X(EAI_MEMORY, -5105, "Resolver out of memory")                                                 \
    X(EAI_NONAME, -5106, "Name or service not known")                                              \
    X(EAI_SERVICE, -5107, "Service not supported for socket type")                                 \
    X(EAI_SOCKTYPE, -5108, "Socket type not supported by the resolver")                            \
    X(EAI_NODATA, -5109, "No address associated with hostname")                                    \
    X(EAI_ADDRFAMILY, -5110, "Host has no address in the requested family")                        \
    X(EAI_OTHER, -5111, "Unknown resolver failure")

enum sockit_errno {
#define SOCKIT_ERRNO_ENUM_(name, value, msg) SOCKIT_##name = (value),
    SOCKIT_ERRNO_MAP(SOCKIT_ERRNO_ENUM_)
#undef SOCKIT_ERRNO_ENUM_
};

/* A non-blocking socket (or sockit_setblocking(s, false)) that cannot proceed
 * returns this. It is -EAGAIN, distinct from SOCKIT_ETIMEOUT. */
#define SOCKIT_EWOULDBLOCK (-EAGAIN)

/* Static text for a code ("Connection refused", "Timed out: ..."). Never NULL. */
SOCKIT_API const char *sockit_strerror(int code);
/* The code's constant name without the SOCKIT_ prefix: "ECONNREFUSED", "ETIMEOUT",
 * "EAI_NONAME"; "EUNKNOWN" for a code it does not know. Never NULL. */
SOCKIT_API const char *sockit_errname(int code);
/* The code of the last failure in this thread (0 if none yet). */
SOCKIT_API int sockit_errcode(void);
/* The message of the last failure in this thread, with its context, e.g.
 * "connect to localhost:12345 (tried 127.0.0.1:12345: Connection refused):
 * Connection refused". Valid until the next sockit call in this thread. */
SOCKIT_API const char *sockit_errmsg(void);

/* ------------------------------------------------------------------------------
 * 2. Addresses
 *
 * sockit_addr is a value type: copy it with '='. It holds an IPv4, IPv6 (with scope
 * id) or Unix address (a path, or a Linux abstract name). Text forms:
 *   127.0.0.1:80   [::1]:80   [fe80::1%eth0]:80   unix:/run/x.sock   unix:@abstract
 * ------------------------------------------------------------------------------ */

typedef struct sockit_addr {
    socklen_t len; /* bytes of u in use; 0 means "no address" */
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage storage;
    } u;
} sockit_addr;

/* Enough for any formatted address including the terminating NUL. */
#define SOCKIT_ADDRSTRLEN 128

/* Parses a numeric text form (no name resolution) into *out. Returns 0, or
 * SOCKIT_EBADADDR / SOCKIT_EBADPORT / SOCKIT_EPATHLEN; *out is untouched on error. */
SOCKIT_API int sockit_addr_parse(sockit_addr *out, const char *text);
/* Builds an IP address from a numeric host ("127.0.0.1", "::1", "fe80::1%lo") and a
 * port 0-65535. Returns 0, SOCKIT_EBADADDR or SOCKIT_EBADPORT. */
SOCKIT_API int sockit_addr_ip(sockit_addr *out, const char *numeric_host, int port);
/* Builds a Unix address. A path starting with '@' names a Linux abstract socket
 * (the '@' is replaced by the leading NUL). Returns 0, SOCKIT_EPATHLEN or
 * SOCKIT_EBADADDR (empty path). */
SOCKIT_API int sockit_addr_unix(sockit_addr *out, const char *path);
/* Writes the text form into buf (NUL-terminated). Returns its length, or -ENOSPC
 * if buf is too small (SOCKIT_ADDRSTRLEN always suffices), SOCKIT_EBADADDR for an
 * empty or unknown address. */
SOCKIT_API int sockit_addr_format(const sockit_addr *a, char *buf, size_t size);
/* AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC for an empty address. */
SOCKIT_API int sockit_addr_family(const sockit_addr *a);
/* The port of an IP address; -1 for other families. */
SOCKIT_API int sockit_addr_port(const sockit_addr *a);
/* Sets the port of an IP address. Returns 0, SOCKIT_EBADPORT or -EAFNOSUPPORT. */
SOCKIT_API int sockit_addr_set_port(sockit_addr *a, int port);
/* True when both hold the same family, host, port (and scope) or path. */
SOCKIT_API bool sockit_addr_equal(const sockit_addr *a, const sockit_addr *b);

/* Parses a port: decimal 0-65535 or a service name from /etc/services ("http").
 * Returns the port, or SOCKIT_EBADPORT ("abc", "65536", "-1", "", "80x"). */
SOCKIT_API int sockit_parse_port(const char *text);

typedef struct sockit_addrinfo {
    int family;   /* AF_INET or AF_INET6 */
    int type;     /* SOCK_STREAM or SOCK_DGRAM */
    int protocol; /* IPPROTO_TCP, IPPROTO_UDP */
    sockit_addr addr;
} sockit_addrinfo;

/* Resolves host and port with getaddrinfo into the caller's array out[max], in the
 * resolver's order. host NULL means the wildcard (with AI_PASSIVE in flags) or
 * loopback; port is a number or a service name, NULL means 0. family AF_UNSPEC,
 * AF_INET or AF_INET6; type 0, SOCK_STREAM or SOCK_DGRAM; flags are AI_* flags.
 * Returns the number of entries written (at least 1; more were dropped if max was
 * too small), or a SOCKIT_EAI_* code, SOCKIT_EBADPORT for a numeric port outside
 * 0-65535. This call blocks for as long as the system resolver does;
 * sockit_create_connection bounds it with its deadline. */
SOCKIT_API ssize_t sockit_getaddrinfo(const char *host, const char *port, int family, int type,
                                      int flags, sockit_addrinfo *out, size_t max);

/* ------------------------------------------------------------------------------
 * 3. The socket object
 *
 * A sockit owns one descriptor plus its family, type and timeout mode. It has
 * Python's three modes:
 *   blocking      timeout < 0 (SOCKIT_BLOCKING): calls wait as long as needed
 *   timeout       timeout > 0 seconds: each call fails with SOCKIT_ETIMEOUT once its
 *                 deadline passes (one deadline for the whole call)
 *   non-blocking  timeout == 0: calls that would wait return SOCKIT_EWOULDBLOCK
 * New sockets are blocking. In timeout and non-blocking modes the descriptor is
 * O_NONBLOCK, so the object can be driven from an event loop.
 * ------------------------------------------------------------------------------ */

typedef struct sockit sockit;

#define SOCKIT_BLOCKING (-1.0)

/* Creates a socket. family AF_INET, AF_INET6 or AF_UNIX; type SOCK_STREAM or
 * SOCK_DGRAM (SOCK_NONBLOCK may be or-ed in for non-blocking mode). Returns NULL on
 * failure (-EAFNOSUPPORT, -EPROTONOSUPPORT, -EMFILE, ...). */
SOCKIT_API sockit *sockit_socket(int family, int type);
/* Closes the descriptor and frees the object. Never retried on EINTR. NULL is a
 * no-op. Returns 0 or the close error (the object is freed either way). */
SOCKIT_API int sockit_close(sockit *s);
/* Frees the object without closing the descriptor and returns the descriptor. */
SOCKIT_API int sockit_detach(sockit *s);
/* Wraps a duplicate (close-on-exec) of fd, which must be a socket; the caller keeps
 * fd. Family and type are read from the kernel; the mode follows O_NONBLOCK. */
SOCKIT_API sockit *sockit_fromfd(int fd);
/* A new object on a duplicate descriptor, with the same timeout. */
SOCKIT_API sockit *sockit_dup(const sockit *s);
/* Creates a connected pair (family AF_UNIX normally). Returns 0 and fills pair[2],
 * or a negative code and pair is untouched. */
SOCKIT_API int sockit_socketpair(int family, int type, sockit *pair[2]);

SOCKIT_API int sockit_fileno(const sockit *s);
SOCKIT_API int sockit_family(const sockit *s);
SOCKIT_API int sockit_type(const sockit *s);

/* seconds < 0: blocking; 0: non-blocking; > 0: timeout. NaN is -EINVAL. */
SOCKIT_API int sockit_settimeout(sockit *s, double seconds);
/* SOCKIT_BLOCKING (-1.0), 0.0 or the timeout in seconds. */
SOCKIT_API double sockit_gettimeout(const sockit *s);
/* true: blocking (timeout SOCKIT_BLOCKING); false: non-blocking (timeout 0). */
SOCKIT_API int sockit_setblocking(sockit *s, bool blocking);
/* false only in non-blocking mode (timeout 0), as in Python. */
SOCKIT_API bool sockit_getblocking(const sockit *s);

/* Binds to host:port. host is resolved (NULL or "" means every interface); port
 * 0-65535, 0 picks a free port (read it back with sockit_getsockname). For AF_UNIX
 * sockets host is the path and port must be 0; a NULL host picks a free abstract
 * name (Linux autobind), which a Unix datagram client needs to get replies. Binding a Unix path
 * over a stale socket file (nobody accepts on it) removes the file and binds; over a live one it
 * fails with -EADDRINUSE. */
SOCKIT_API int sockit_bind(sockit *s, const char *host, int port);
SOCKIT_API int sockit_bind_addr(sockit *s, const sockit_addr *addr);
/* backlog < 0 picks SOMAXCONN. */
SOCKIT_API int sockit_listen(sockit *s, int backlog);
/* Accepts a connection; fills *peer if not NULL. The new socket is blocking.
 * Returns NULL on failure: SOCKIT_EWOULDBLOCK, SOCKIT_ETIMEOUT, -EMFILE, ... */
SOCKIT_API sockit *sockit_accept(sockit *s, sockit_addr *peer);
/* Connects to host:port (port 1-65535), trying each resolved address of the
 * socket's family in turn; the socket's timeout is one deadline for resolving the
 * name and every attempt (a non-blocking socket resolves a name unbounded: use
 * sockit_connect_addr from an event loop). In non-blocking mode returns
 * -EINPROGRESS once the attempt has started. For AF_UNIX, host is the path. */
SOCKIT_API int sockit_connect(sockit *s, const char *host, int port);
SOCKIT_API int sockit_connect_addr(sockit *s, const sockit_addr *addr);
/* how: SHUT_RD, SHUT_WR, SHUT_RDWR. */
SOCKIT_API int sockit_shutdown(sockit *s, int how);
SOCKIT_API int sockit_getsockname(const sockit *s, sockit_addr *out);
SOCKIT_API int sockit_getpeername(const sockit *s, sockit_addr *out);

/* ------------------------------------------------------------------------------
 * 4. I/O
 *
 * flags are MSG_* flags (0 for none); MSG_NOSIGNAL is always added.
 * ------------------------------------------------------------------------------ */

/* Sends some of buf. Returns the bytes sent (maybe fewer than len), or a code:
 * -EPIPE / -ECONNRESET for a closed peer, SOCKIT_ETIMEOUT, SOCKIT_EWOULDBLOCK. */
SOCKIT_API ssize_t sockit_send(sockit *s, const void *buf, size_t len, int flags);
/* Sends all of buf, finishing partial writes, within one deadline. Returns len, or a
 * code. *sent (if not NULL) is set to the bytes that went out, also on failure. */
SOCKIT_API ssize_t sockit_sendall(sockit *s, const void *buf, size_t len, int flags, size_t *sent);
/* Receives up to len bytes. Returns the count, 0 when the peer closed (stream), or a
 * code. Bytes already buffered by sockit_readline come first. On a datagram socket
 * a datagram bigger than len returns SOCKIT_ETRUNCATED (buf holds its first len
 * bytes; the rest is lost, as the kernel discards it). */
SOCKIT_API ssize_t sockit_recv(sockit *s, void *buf, size_t len, int flags);
/* Receives exactly len bytes from a stream socket within one deadline. Returns len,
 * or a code: SOCKIT_EEOF when the peer closed early, -EOPNOTSUPP on a datagram
 * socket. *got (if not NULL) is the bytes stored in buf, also on failure. */
SOCKIT_API ssize_t sockit_recv_exact(sockit *s, void *buf, size_t len, size_t *got);
/* Sends a datagram to host:port (resolved for the socket's family; first address). */
SOCKIT_API ssize_t sockit_sendto(sockit *s, const void *buf, size_t len, int flags,
                                 const char *host, int port);
SOCKIT_API ssize_t sockit_sendto_addr(sockit *s, const void *buf, size_t len, int flags,
                                      const sockit_addr *to);
/* Receives one datagram and its sender (*from, if not NULL). On a stream socket it
 * is sockit_recv with the peer's address. Returns its length, or
 * SOCKIT_ETRUNCATED when it did not fit (buf holds the first len bytes; *from is
 * set), or another code. */
SOCKIT_API ssize_t sockit_recvfrom(sockit *s, void *buf, size_t len, int flags, sockit_addr *from);
/* Sends count bytes of file_fd from offset (count 0: up to end of file) with
 * sendfile(2), within one deadline. Returns bytes sent or a code; *sent as in
 * sockit_sendall. */
SOCKIT_API ssize_t sockit_sendfile(sockit *s, int file_fd, off_t offset, size_t count,
                                   size_t *sent);
/* Sends buf (at least 1 byte) with nfds descriptors attached (SCM_RIGHTS, at most
 * SOCKIT_MAX_FDS). Returns bytes sent or a code. The caller keeps its descriptors. */
#define SOCKIT_MAX_FDS 64
SOCKIT_API ssize_t sockit_send_fds(sockit *s, const void *buf, size_t len, const int *fds,
                                   size_t nfds);
/* Receives up to len bytes and up to maxfds descriptors (close-on-exec) into fds;
 * *nfds is their count. Returns the bytes received or a code. If more descriptors
 * arrived than fit, or the call fails after receiving some, every received one is
 * closed, *nfds is 0 and the call returns -EMSGSIZE (or its error). */
SOCKIT_API ssize_t sockit_recv_fds(sockit *s, void *buf, size_t len, int *fds, size_t maxfds,
                                   size_t *nfds);

/* ------------------------------------------------------------------------------
 * 5. Options
 * ------------------------------------------------------------------------------ */

SOCKIT_API int sockit_setsockopt(sockit *s, int level, int name, const void *value, socklen_t len);
SOCKIT_API int sockit_getsockopt(const sockit *s, int level, int name, void *value, socklen_t *len);
SOCKIT_API int sockit_setsockopt_int(sockit *s, int level, int name, int value);
/* Returns 0 and *value, or a code. */
SOCKIT_API int sockit_getsockopt_int(const sockit *s, int level, int name, int *value);

/* The options people actually set. Each returns 0 or a code. */
SOCKIT_API int sockit_set_reuseaddr(sockit *s, bool on);
SOCKIT_API int sockit_set_reuseport(sockit *s, bool on);
SOCKIT_API int sockit_set_nodelay(sockit *s, bool on);
SOCKIT_API int sockit_set_keepalive(sockit *s, bool on);
SOCKIT_API int sockit_set_broadcast(sockit *s, bool on);
SOCKIT_API int sockit_set_v6only(sockit *s, bool on);
SOCKIT_API int sockit_set_rcvbuf(sockit *s, int bytes);
SOCKIT_API int sockit_set_sndbuf(sockit *s, int bytes);
/* on with seconds 0: close() resets the connection at once (RST). */
SOCKIT_API int sockit_set_linger(sockit *s, bool on, int seconds);

/* ------------------------------------------------------------------------------
 * 6. Helpers: connecting, serving, buffered reading
 * ------------------------------------------------------------------------------ */

/* Connects a TCP socket to host:port (port 1-65535, or host "unix:/path" with port
 * 0 for a Unix stream socket). Every resolved address is tried, IPv6 and IPv4
 * interleaved with Happy Eyeballs (RFC 8305): a new attempt starts every 250 ms or
 * as soon as the previous fails, the first to connect wins, the others are closed.
 * timeout (seconds, < 0 for none) is ONE deadline covering name resolution and every
 * attempt; a timeout of 0 still makes one attempt at a numeric address, but a name
 * cannot be resolved in no time and fails with SOCKIT_ETIMEOUT. source (NULL for
 * none) is the local address to bind first; only addresses of its family are tried
 * (so the wildcard 0.0.0.0:0 or [::]:0 restricts the family without choosing an
 * address), and its port should be 0, since attempts in flight at once cannot share
 * a port. The returned
 * socket is blocking when timeout < 0, otherwise it keeps the timeout. On failure the message names
 * every address tried and why; the code is the first attempt's (SOCKIT_ETIMEOUT when the deadline
 * passed). */
SOCKIT_API sockit *sockit_create_connection(const char *host, int port, double timeout,
                                            const sockit_addr *source);

typedef struct sockit_server_options {
    int family;      /* AF_UNSPEC (default: what the host resolves to), AF_INET, AF_INET6 */
    int type;        /* 0 or SOCK_STREAM: listening TCP; SOCK_DGRAM: bound UDP */
    int backlog;     /* 0: SOMAXCONN */
    bool reuse_port; /* SO_REUSEPORT, for one listener per core */
    bool dualstack;  /* one IPv6 socket also accepting IPv4 (IPV6_V6ONLY off) */
} sockit_server_options;

/* A bound (and, for streams, listening) socket in one call. Stream servers get
 * SO_REUSEADDR (restart without waiting out TIME_WAIT); datagram servers do not,
 * since on Linux it would let a second UDP server silently share the port.
 * An IPv6 server without dualstack is IPv6-only (IPV6_V6ONLY on), as in Python.
 * host NULL or "" means every interface: with dualstack (and
 * sockit_has_dualstack_ipv6()) that is [::] accepting IPv4 too, otherwise 0.0.0.0.
 * host "unix:/path" makes a Unix socket (port must be 0). opts NULL means defaults.
 * Returns NULL on failure (-EADDRINUSE, SOCKIT_EAI_NONAME, ...). */
SOCKIT_API sockit *sockit_create_server(const char *host, int port,
                                        const sockit_server_options *opts);
/* True when this system can make an IPv6 socket that also accepts IPv4. */
SOCKIT_API bool sockit_has_dualstack_ipv6(void);

/* Buffered reading (Python's makefile). The buffer lives in the socket object, so
 * sockit_readline, sockit_recv_exact and sockit_recv can be mixed freely on one
 * connection without losing bytes. It is allocated on first use and freed by
 * sockit_close. */

/* The longest line sockit_readline can return, '\n' included: the read-ahead buffer
 * holds a line until it is complete, and never grows past this. */
#define SOCKIT_LINE_MAX 65536

/* Reads one line, up to and including '\n', into buf and NUL-terminates it, within
 * one deadline. Returns its length (without the NUL), 0 at end of stream, or a
 * code. A final line without '\n' is returned as is. A line longer than size - 1
 * bytes (or SOCKIT_LINE_MAX) returns SOCKIT_ELINELEN: that many bytes are then in
 * buf and consumed, the rest of the line stays to be read. On SOCKIT_ETIMEOUT or
 * SOCKIT_EWOULDBLOCK a partial line stays buffered for the next call. size < 2 is
 * -EINVAL; a datagram socket is -EOPNOTSUPP. Descriptors passed with
 * sockit_send_fds on bytes that readline read ahead are discarded by the kernel, so
 * do not mix readline with sockit_recv_fds. */
SOCKIT_API ssize_t sockit_readline(sockit *s, char *buf, size_t size);
/* Bytes received and buffered but not yet consumed (an event loop must not wait for
 * readability while this is non-zero). */
SOCKIT_API size_t sockit_pending(const sockit *s);

/* ------------------------------------------------------------------------------
 * 7. Servers: the socketserver equivalent
 *
 * Write a handler, pick a concurrency mode, and serve. The server owns its
 * listening (or datagram) socket and every connection it accepts.
 * ------------------------------------------------------------------------------ */

typedef struct sockit_server sockit_server;

typedef enum sockit_server_mode {
    SOCKIT_SEQUENTIAL = 0, /* one request at a time, in the serving thread */
    SOCKIT_THREADS,        /* a thread per connection or datagram (ThreadingMixIn) */
    SOCKIT_PROCESSES,      /* a process per connection or datagram, at most
                              max_children alive (ForkingMixIn) */
    SOCKIT_POOL            /* a fixed pool of threads fed by a bounded queue */
} sockit_server_mode;

/* What a handler gets. Valid only during the call. */
typedef struct sockit_request {
    /* Stream servers: the connection, closed by the server after the handler
     * returns. Datagram servers: the server's socket, to reply with
     * sockit_sendto_addr(req->sock, ..., &req->peer); it is non-blocking, so a reply
     * to a peer whose queue is full (Unix datagram) fails with SOCKIT_EWOULDBLOCK. */
    sockit *sock;
    sockit_addr peer;      /* the client's address */
    const char *data;      /* datagram servers: the datagram (NULL for streams) */
    size_t len;            /* its length, whole up to max_datagram */
    sockit_server *server; /* the server, e.g. for sockit_server_shutdown */
    void *user;            /* sockit_server_config.user */
} sockit_request;

/* A handler returns 0, or a negative code to report a failure: handle_error is then
 * called and the server goes on serving. */
typedef int (*sockit_handler_fn)(sockit_request *req);
/* Returns false to reject the client before the handler runs (a stream connection
 * is closed at once, a datagram dropped). Runs in the serving thread. */
typedef bool (*sockit_verify_fn)(sockit_server *server, const sockit_addr *peer, void *user);
/* Called with the code a handler returned (or a serving failure, e.g. -EMFILE);
 * req is NULL when no request was involved. The default prints one line to stderr,
 * at most 10 lines a second per server (its SOCKIT_PROCESSES children included):
 * failures beyond that are counted, and the count is printed as one line
 * ("sockit_server: N more failures not shown ...") when the next second's first
 * failure comes, or at sockit_server_close. */
typedef void (*sockit_error_fn)(sockit_request *req, int code, void *user);
/* Called by sockit_server_handle_request when its timeout passed with no request. */
typedef void (*sockit_timeout_fn)(sockit_server *server, void *user);

/* What happens to a connection beyond max_connections. */
typedef enum sockit_overflow {
    SOCKIT_OVERFLOW_WAIT = 0, /* it is not accepted until a running one ends: it waits
                                 in the kernel's listen backlog */
    SOCKIT_OVERFLOW_REFUSE    /* it is accepted and closed at once (the client reads
                                 end of stream) */
} sockit_overflow;

typedef struct sockit_server_config {
    sockit_handler_fn handler; /* required */
    void *user;
    sockit_server_mode mode;
    int threads;              /* SOCKIT_POOL: worker threads (0: 8) */
    int queue;                /* SOCKIT_POOL: requests waiting for a worker (0: 64);
                                 when full the server stops accepting until one frees */
    int max_children;         /* SOCKIT_PROCESSES: live children (0: 40, as Python) */
    int max_connections;      /* requests in the server's hands at once: running plus
                                 waiting for a pool worker (0: no limit) */
    sockit_overflow overflow; /* beyond max_connections */
    double idle_timeout;      /* > 0: each connection gets this timeout, so a read or
                                 write that waits longer fails with SOCKIT_ETIMEOUT */
    bool abandon_on_close;    /* sockit_server_close does not wait for running handlers:
                                 their connections are shut down and their threads
                                 finish alone; queued requests are dropped; children
                                 (SOCKIT_PROCESSES) are killed with SIGKILL; the
                                 grace period below does not apply */
    size_t max_datagram;      /* datagram servers: receive buffer (0: 65536, which holds
                                 any UDP datagram whole; a bigger Unix datagram goes to
                                 handle_error as SOCKIT_ETRUNCATED, never cut) */
    sockit_verify_fn verify_request;
    sockit_error_fn handle_error;
    sockit_timeout_fn handle_timeout;
    sockit_server_options listen; /* family, backlog, reuse_port, dualstack; its type
                                     field is ignored: see sockit_server_new */
    double close_grace;           /* seconds sockit_server_close lets running handlers end by
                                     themselves before it shuts their connections down (0: 5 s;
                                     < 0: shut down at once; INFINITY: wait without limit) */
} sockit_server_config;

/* Creates a server bound to host:port (sockit_create_server rules: NULL host for
 * every interface, "unix:/path" for a Unix socket, port 0 for a free port). type is
 * SOCK_STREAM or SOCK_DGRAM. cfg is copied. Returns NULL on failure (bad config is
 * -EINVAL with a message naming the field). */
SOCKIT_API sockit_server *sockit_server_new(const char *host, int port, int type,
                                            const sockit_server_config *cfg);
/* The bound address (the real port when 0 was asked for). */
SOCKIT_API int sockit_server_address(const sockit_server *server, sockit_addr *out);
/* Serves until sockit_server_shutdown. Returns 0 then, or a code if serving could
 * not go on. It accepts (or receives) until nothing is pending before it waits, so a
 * busy SOCKIT_SEQUENTIAL server makes no system call per request but the request's
 * own. Running out of descriptors (EMFILE/ENFILE) sheds every pending connection
 * with a spare descriptor (each client reads end of stream at once) and waits for
 * the next client, never spinning; other resource errors back off (10 ms doubling
 * to 1 s). Serving resumes when descriptors free up. */
SOCKIT_API int sockit_server_serve_forever(sockit_server *server);
/* Handles at most one request, waiting up to timeout seconds (< 0: no limit).
 * Returns 1 when one was handled (or dispatched to a thread, process or the pool),
 * 0 when the timeout passed (handle_timeout was called) or shutdown was asked, or a
 * code. */
SOCKIT_API int sockit_server_handle_request(sockit_server *server, double timeout);
/* Asks serve_forever / handle_request to return, at once. Safe from any thread, from
 * a signal handler (async-signal-safe), and from a handler running in a forked child
 * (SOCKIT_PROCESSES), where it stops the parent's loop. It does not wait. A request
 * made while nobody serves makes the next serve_forever return at once. From then
 * on sockit_server_stopping is true. In SOCKIT_SEQUENTIAL mode the handler runs in
 * the serving thread, which nothing else could wake, so the reading side of the
 * connection being served is shut down at once: its handler reads end of stream
 * (after any bytes already received) and can still send its reply. In
 * SOCKIT_PROCESSES mode handlers run in a child that inherits the program's signal
 * handlers; fork while other threads of the program allocate is unsafe under
 * AddressSanitizer before LLVM 17 (the child can hang in its allocator). */
SOCKIT_API void sockit_server_shutdown(sockit_server *server);
/* Handlers running right now (connections, datagrams, children); a request
 * accepted but waiting for a pool worker is not counted (sockit_server_waiting).
 * NULL: 0. */
SOCKIT_API int sockit_server_active(const sockit_server *server);
/* SOCKIT_POOL: requests accepted and queued, waiting for a worker (0 in the other
 * modes, which start every request at once). max_connections bounds active plus
 * waiting. NULL: 0. */
SOCKIT_API int sockit_server_waiting(const sockit_server *server);
/* True once sockit_server_shutdown or sockit_server_close was asked, until
 * serve_forever or handle_request starts serving again. For handlers that loop
 * (read a line, answer, repeat): check it between requests and return. Safe from
 * any thread, and in a SOCKIT_PROCESSES child, which sees its parent stopping.
 * NULL: false. */
SOCKIT_API bool sockit_server_stopping(const sockit_server *server);
/* Stops serving and frees the server: closes the listening socket (a Unix socket
 * file stays, as in Python; the next bind over it replaces it), raises
 * sockit_server_stopping, and waits for running handlers (threads joined, children
 * reaped), unless abandon_on_close. Handlers get close_grace seconds (default 5) to
 * end by themselves; then the connections still open are shut down (SHUT_RDWR),
 * which wakes a handler blocked on an idle client, requests still waiting for a
 * pool worker are dropped (their clients read end of stream), and close waits for
 * the handlers to return. A SOCKIT_PROCESSES child still running one more
 * close_grace after its connection was shut down is killed with SIGKILL; a thread
 * cannot be, so a handler that ignores its connection is still waited for. Must
 * not run while serve_forever runs in another thread: shut down, wait for it to
 * return, then close. NULL is a no-op. Returns 0 or a code. */
SOCKIT_API int sockit_server_close(sockit_server *server);

#ifdef __cplusplus
}
#endif
#endif /* SOCKIT_H */
