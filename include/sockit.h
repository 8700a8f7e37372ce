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
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(SOCKIT_BUILDING)
#define SOCKIT_API __attribute__((visibility("default")))
#else
#define SOCKIT_API
#endif

/* ------------------------------------------------------------------------------
 * Versions and compatibility (docs/compatibility.md has the whole policy)
 *
 * MAJOR.MINOR.PATCH. From 1.0 on a program built against one release runs against
 * any later release of the same major version: functions, constants and error codes
 * are only added; fields are only added at the end of the structs that carry a size.
 * Before 1.0 the same holds within one MINOR (0.2.x), and the shared library's
 * soname names it (libsockit.so.0.2).
 *
 * Every struct a program fills in and passes to a constructor (options, configs,
 * callback tables) starts with `size_t size`. 0 means the layout of 0.2, the first
 * release with the field, so `= {0}` and designated initializers keep working; a
 * field added later is marked "since X.Y" and is read only when size covers it, so
 * set size to sizeof the struct when you use one. A size larger than this library
 * knows is accepted when the bytes it does not know are all zero (a newer program
 * that uses nothing new), and refused with -EINVAL otherwise, as Linux does for
 * openat2's struct. Value types (sockit_addr, sockit_msg, sockit_cmsg,
 * sockit_creds, sockit_addrinfo, the selector's keys and events, sockit_toxic)
 * keep their size within a major version; sockit_toxic and sockit_proxy_stats hold
 * reserved room (kept zero) for fields to come.
 * ------------------------------------------------------------------------------ */
#define SOCKIT_VERSION_MAJOR  0
#define SOCKIT_VERSION_MINOR  2
#define SOCKIT_VERSION_PATCH  0
#define SOCKIT_VERSION_STRING "0.2.0"
/* One number to compare: 10000 * MAJOR + 100 * MINOR + PATCH (0.2.0 is 200). */
#define SOCKIT_VERSION_NUMBER                                                                      \
    (10000 * SOCKIT_VERSION_MAJOR + 100 * SOCKIT_VERSION_MINOR + SOCKIT_VERSION_PATCH)
/* True when the header is at least major.minor.patch: #if SOCKIT_VERSION_AT_LEAST(0, 2, 0) */
#define SOCKIT_VERSION_AT_LEAST(major, minor, patch)                                               \
    (SOCKIT_VERSION_NUMBER >= 10000 * (major) + 100 * (minor) + (patch))

/* Returns SOCKIT_VERSION_STRING of the library actually linked. */
SOCKIT_API const char *sockit_version(void);

/* Features: which optional parts this library was built with, and which this
 * kernel and process let it use. One bit each; the bits are contiguous from 1, so
 * `for (unsigned b = 1; sockit_feature_name(b) != NULL; b <<= 1)` visits them all. */
#define SOCKIT_FEATURE_TLS          0x01u /* TLS through OpenSSL (sockit_tls.h) */
#define SOCKIT_FEATURE_URING        0x02u /* the io_uring loop backend (liburing) */
#define SOCKIT_FEATURE_IPV6         0x04u /* IPv6 sockets, on ::1 at least */
#define SOCKIT_FEATURE_DUALSTACK    0x08u /* one IPv6 socket taking IPv4 too */
#define SOCKIT_FEATURE_REUSEPORT    0x10u /* SO_REUSEPORT: one listener per loop */
#define SOCKIT_FEATURE_TCP_FASTOPEN 0x20u /* TCP Fast Open, client and server side */
#define SOCKIT_FEATURE_KTLS         0x40u /* the kernel's "tls" TCP ULP (kTLS) */
/* The features compiled in. TLS and io_uring depend on what the build found; the
 * others need nothing at build time and are always in. */
SOCKIT_API unsigned sockit_features_built(void);
/* The built features this kernel and process allow, probed on the first call
 * (from any thread; one probe per process) and the same answer afterwards. */
SOCKIT_API unsigned sockit_features_usable(void);
/* "tls", "io_uring", "ipv6", "dualstack_ipv6", "reuseport", "tcp_fastopen", "ktls";
 * NULL for anything but one known bit. */
SOCKIT_API const char *sockit_feature_name(unsigned bit);
/* Why the feature is not usable ("built without liburing ...", "loop backend uring:
 * io_uring_setup: Operation not permitted ..."), NULL when it is or for an unknown
 * bit. Static text, valid for the whole process. */
SOCKIT_API const char *sockit_feature_reason(unsigned bit);
/* SOCKIT_VERSION_NUMBER of the library actually linked, to compare with the header a
 * program was built against. */
SOCKIT_API int sockit_version_number(void);

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
    X(EBADPORT, -5004, "Bad port")                                                                 \
    X(EPATHLEN, -5005, "Unix socket path too long")                                                \
    X(ELINELEN, -5006, "Line longer than the limit")                                               \
    X(EEOF, -5007, "Connection closed before the expected bytes arrived")                          \
    X(ENOADDR, -5008, "No address of a usable family")                                             \
    X(ECTRUNCATED, -5009, "Ancillary data larger than the control buffer (truncated)")             \
    X(EPROXY, -5010, "The proxy failed or refused the tunnel")                                     \
    X(EPROXYAUTH, -5011, "The proxy wants other credentials")                                      \
    X(ETLS, -5201, "TLS failure")                                                                  \
    X(ETLSVERIFY, -5202, "TLS certificate verification failed")                                    \
    X(ETLSEOF, -5203, "TLS connection closed without close_notify (truncated)")                    \
    X(ENOTLS, -5204, "TLS not compiled into this sockit")                                          \
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
 * "connect to localhost:12345: Connection refused". The text lives in a buffer of
 * this thread's own: other threads' failures never change it, and it stays as it
 * is until this thread's next sockit call, which may replace it (a failing call
 * always does). Copy it to keep it longer. Never NULL. */
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
 * 2a. Names: hosts, services, interfaces
 *
 * Python's getnameinfo, gethostname, getfqdn, gethostbyaddr and the if_* calls.
 * Resolver failures are SOCKIT_EAI_* codes. Answers go into the caller's buffer: one
 * too small is -ENOSPC (the buffer then holds ""), never a cut answer. The lookups
 * block for as long as the system resolver does.
 * ------------------------------------------------------------------------------ */

/* Room for any host name (NI_MAXHOST) and any service name (NI_MAXSERV), NUL included. */
#define SOCKIT_NI_MAXHOST 1025
#define SOCKIT_NI_MAXSERV 32

/* The host and service of an IP address (a reverse lookup), into host[hostlen] and
 * serv[servlen]; either may be NULL when not wanted. flags: the system's NI_* flags
 * (<netdb.h>): NI_NUMERICHOST, NI_NUMERICSERV, NI_NAMEREQD (an address without a
 * name fails with SOCKIT_EAI_NONAME instead of giving its numeric form), NI_DGRAM
 * (the UDP service's name), NI_NOFQDN (the host's first label, for a local host).
 * Returns 0, or SOCKIT_EBADADDR (NULL or empty address), -EAFNOSUPPORT (not IPv4
 * or IPv6), -EINVAL (both buffers NULL), -ENOSPC, a SOCKIT_EAI_* code. */
SOCKIT_API int sockit_getnameinfo(const sockit_addr *addr, int flags, char *host, size_t hostlen,
                                  char *serv, size_t servlen);
/* This machine's host name. Returns its length, or -EINVAL (buf NULL), -ENOSPC
 * (SOCKIT_NI_MAXHOST always suffices). */
SOCKIT_API int sockit_gethostname(char *buf, size_t size);
/* A fully qualified name for name, as Python's getfqdn: name is trimmed of spaces;
 * NULL, "", "0.0.0.0" and "::" mean this host (sockit_gethostname). Its
 * sockit_gethostbyaddr names (the primary name, then the aliases) give the first
 * that contains a dot, else the primary name; a lookup that fails gives name
 * itself. Returns the length written, or -EINVAL (buf NULL), -ENOSPC. */
SOCKIT_API int sockit_getfqdn(const char *name, char *buf, size_t size);

/* What sockit_gethostbyaddr found: Python's (hostname, aliaslist, ipaddrlist). */
typedef struct sockit_hostent {
    char *name;      /* the primary name */
    char **aliases;  /* naliases other names, then NULL */
    char **addrs;    /* naddrs numeric addresses ("127.0.0.1", "::1"), then NULL */
    size_t naliases; /* may be 0 */
    size_t naddrs;   /* at least 1 */
} sockit_hostent;
/* The names of host, a numeric address ("127.0.0.1", "::1") or a host name (its
 * first address is looked up, as Python does). Returns 0 with *out set (free it
 * with sockit_freehostent), or a code with *out NULL: -EINVAL (NULL host or out),
 * SOCKIT_EBADADDR (""), SOCKIT_EAI_NONAME (no name for the address, or host not
 * found), SOCKIT_EAI_AGAIN, SOCKIT_EAI_FAIL, SOCKIT_EAI_NODATA, -ENOMEM. The code
 * is returned, not only recorded: which failure it was is the main answer. */
SOCKIT_API int sockit_gethostbyaddr(const char *host, sockit_hostent **out);
/* Frees a sockit_gethostbyaddr result. NULL is a no-op. */
SOCKIT_API void sockit_freehostent(sockit_hostent *h);

/* Network interfaces. Names are at most SOCKIT_IF_NAMESIZE - 1 bytes (IF_NAMESIZE;
 * defined here so this header need not include <net/if.h>, which clashes with
 * <linux/if.h>). */
#define SOCKIT_IF_NAMESIZE 16
typedef struct sockit_ifname {
    unsigned index;                /* > 0 */
    char name[SOCKIT_IF_NAMESIZE]; /* "lo", "eth0" */
} sockit_ifname;
/* The index of the interface called name: > 0, or -EINVAL (NULL), -ENODEV (no such
 * interface, "" or a name too long to be one). An int rather than if_nametoindex's
 * unsigned so a failure can say which; the kernel's indexes are positive ints. */
SOCKIT_API int sockit_if_nametoindex(const char *name);
/* The name of interface index into buf. Returns its length, or -ENXIO (0 or an
 * index no interface has), -EINVAL (buf NULL), -ENOSPC (SOCKIT_IF_NAMESIZE always
 * suffices). */
SOCKIT_API int sockit_if_indextoname(unsigned index, char *buf, size_t size);
/* Every interface, in the kernel's order: *out is an array of the returned count
 * of entries plus one {0, ""} after them, freed with sockit_if_freenameindex.
 * Returns the count, or -EINVAL (out NULL), -ENOMEM, -errno; *out NULL on failure. */
SOCKIT_API ssize_t sockit_if_nameindex(sockit_ifname **out);
/* Frees a sockit_if_nameindex array. NULL is a no-op. */
SOCKIT_API void sockit_if_freenameindex(sockit_ifname *list);

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
 *
 * Threads: one thread may receive (recv, recvfrom, recv_exact, readline, recv_fds)
 * while another sends (send, sendall, sendto, sendfile, send_fds) on the same
 * sockit *, as a chat server's reader and writer do; this holds for every
 * transport, the coming TLS one included. Two threads receiving at once (they
 * share the read-ahead buffer), two sending at once on a stream (their bytes may
 * interleave), or any call racing with settimeout/setblocking or close on the same
 * object is not safe. Objects are otherwise independent.
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
/* Frees the object without closing the descriptor and returns the descriptor.
 * Bytes that sockit_readline read ahead live in the object, not the descriptor,
 * so they would be lost: while sockit_pending(s) > 0 detach fails with -EBUSY and
 * changes nothing (read them with sockit_recv first). */
SOCKIT_API int sockit_detach(sockit *s);
/* Wraps a duplicate (close-on-exec) of fd, which must be a socket; the caller keeps
 * fd. Family and type are read from the kernel; the mode follows O_NONBLOCK. The
 * new object has no read-ahead bytes: those another object read ahead on the same
 * connection stay in that object. */
SOCKIT_API sockit *sockit_fromfd(int fd);
/* A new object on a duplicate descriptor, with the same timeout. Read-ahead bytes
 * stay with s (the copy starts with none), so read them from s. */
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
 * flags are MSG_* flags (0 for none); MSG_NOSIGNAL is always added. MSG_DONTWAIT
 * makes that one call non-blocking whatever the socket's mode: it returns
 * SOCKIT_EWOULDBLOCK at once instead of waiting (Python's BlockingIOError).
 * ------------------------------------------------------------------------------ */

/* Sends some of buf. Returns the bytes sent (maybe fewer than len), or a code:
 * -EPIPE / -ECONNRESET for a closed peer, SOCKIT_ETIMEOUT, SOCKIT_EWOULDBLOCK. */
SOCKIT_API ssize_t sockit_send(sockit *s, const void *buf, size_t len, int flags);
/* Sends all of buf, finishing partial writes, within one deadline. Returns len, or a
 * code. *sent (if not NULL) is set to the bytes that went out, also on failure. */
SOCKIT_API ssize_t sockit_sendall(sockit *s, const void *buf, size_t len, int flags, size_t *sent);
/* Receives up to len bytes. Returns the count, 0 when the peer closed (stream), or a
 * code. len 0 returns 0 at once without waiting or consuming anything, as Python's
 * recv(0). Bytes already buffered by sockit_readline come first. On a datagram socket
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
 * is sockit_recv (read-ahead bytes first, len 0 returns 0 at once) and *from is
 * the peer's address (empty, len 0, if the kernel no longer knows it). On a
 * datagram socket len 0 still takes one datagram (SOCKIT_ETRUNCATED unless it was
 * empty). Returns its length, or
 * SOCKIT_ETRUNCATED when it did not fit (buf holds the first len bytes; *from is
 * set), or another code. */
SOCKIT_API ssize_t sockit_recvfrom(sockit *s, void *buf, size_t len, int flags, sockit_addr *from);
/* Sends count bytes of file_fd from offset (count 0: up to end of file) with
 * sendfile(2), within one deadline. Returns bytes sent or a code; *sent as in
 * sockit_sendall. Like pread, it leaves file_fd's own file position where it was
 * (Python's socket.sendfile moves it; add *sent yourself with lseek if you want
 * that). */
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

/* Messages with ancillary data: Python's sendmsg and recvmsg_into. One sockit_msg
 * describes the data buffers (gathered on send, filled in order on receive), the
 * control bytes (cmsg headers: build them with sockit_cmsg_add, read them with
 * sockit_cmsg_next and the sockit_cmsg_* readers below) and the peer's address. */
typedef struct sockit_msg {
    struct iovec *iov; /* the data buffers; at most SOCKIT_IOV_MAX */
    size_t iovcnt;
    void *control;     /* ancillary data, NULL for none */
    size_t controllen; /* send: the bytes used; receive: the room, then the bytes filled */
    sockit_addr addr;  /* send: the destination (len 0: the connected peer);
                          receive: the sender (a stream socket's peer) */
    int flags;         /* receive: the kernel's msg_flags (MSG_TRUNC, MSG_CTRUNC, MSG_OOB) */
} sockit_msg;
#define SOCKIT_IOV_MAX 1024

/* Sends one message: the buffers of m in order, with m's control data, to m->addr
 * (or the connected peer). Returns the bytes sent (a stream socket may send fewer,
 * as sockit_send), or a code: -EINVAL for more than SOCKIT_IOV_MAX buffers,
 * -EOPNOTSUPP on a TLS socket (its records have no room for control data; Python
 * refuses it too), or the kernel's refusal (-EINVAL for a bad control message,
 * -EPERM for credentials not your own, -EAFNOSUPPORT for an address of another
 * family). */
SOCKIT_API ssize_t sockit_sendmsg(sockit *s, const sockit_msg *m, int flags);
/* Receives one message into m's buffers and control room; sets m->controllen,
 * m->addr and m->flags. Returns the data bytes, 0 at a stream's end, or a code. The
 * truncation rules of sockit_recvfrom hold for data and control alike: a datagram
 * bigger than the buffers returns SOCKIT_ETRUNCATED, a datagram's control data
 * bigger than the room SOCKIT_ECTRUNCATED (data truncation wins when both), and in
 * both cases the buffers, the control bytes that fit, m->addr and m->flags are
 * filled. On a stream socket cut control data still returns the bytes (they are
 * taken from the stream), with MSG_CTRUNC in m->flags. Descriptors (SCM_RIGHTS)
 * arrive close-on-exec; when control data was cut or the call returns a code, the
 * ones that arrived are already closed and their slots set to -1. On a stream
 * socket bytes read ahead by sockit_readline come first, with no control data. */
SOCKIT_API ssize_t sockit_recvmsg(sockit *s, sockit_msg *m, int flags);

/* Building control data (Python's CMSG_SPACE and the ancdata list): appends one
 * control message (level, type, len bytes of data) to control, whose room is
 * capacity bytes and of which *used are taken; control must be aligned for a
 * struct cmsghdr (a union with one, or malloc's memory). Returns 0, or -ENOBUFS when
 * CMSG_SPACE(len) does not fit (nothing is written). */
SOCKIT_API int sockit_cmsg_add(void *control, size_t capacity, size_t *used, int level, int type,
                               const void *data, size_t len);
/* One control message as received. */
typedef struct sockit_cmsg {
    int level; /* SOL_SOCKET, IPPROTO_IP, IPPROTO_IPV6, ... */
    int type;  /* SCM_RIGHTS, IP_PKTINFO, ... */
    const void *data;
    size_t len;
} sockit_cmsg;
/* Walks m's control data: set *cursor to 0, then each call that returns true fills
 * *out with the next message; false at the end. */
SOCKIT_API bool sockit_cmsg_next(const sockit_msg *m, size_t *cursor, sockit_cmsg *out);

/* The common control messages, each turned on for a socket, read from a received
 * message (0, or -ENOENT when m holds none) and, where it can be sent, added. */
typedef struct sockit_creds {
    pid_t pid;
    uid_t uid;
    gid_t gid;
} sockit_creds;
/* Unix sockets: the sender's process and user (SO_PASSCRED, SCM_CREDENTIALS). A
 * sender may attach its own (creds NULL: this process's pid, uid and gid); the
 * kernel adds them to every message when the receiver asked, attached or not. */
SOCKIT_API int sockit_set_passcred(sockit *s, bool on);
SOCKIT_API int sockit_cmsg_creds(const sockit_msg *m, sockit_creds *out);
SOCKIT_API int sockit_cmsg_add_creds(void *control, size_t capacity, size_t *used,
                                     const sockit_creds *creds);
/* When the kernel received each message (SO_TIMESTAMPNS, CLOCK_REALTIME, in
 * nanoseconds; a SO_TIMESTAMP one in microseconds is read too). */
SOCKIT_API int sockit_set_timestamps(sockit *s, bool on);
SOCKIT_API int sockit_cmsg_timestamp(const sockit_msg *m, struct timespec *out);
/* UDP servers bound to several addresses (or to the wildcard): the local address each
 * datagram was sent to and the interface it came in on (IP_PKTINFO, IPV6_RECVPKTINFO;
 * both on a dual-stack socket). *local gets the address with port 0 (its port is the
 * socket's); either out may be NULL. Replying with that address added as the source
 * (ifindex 0: the route's interface) makes the answer come from the address the
 * client asked, which a client's connected UDP socket requires. */
SOCKIT_API int sockit_set_recv_pktinfo(sockit *s, bool on);
SOCKIT_API int sockit_cmsg_pktinfo(const sockit_msg *m, sockit_addr *local, unsigned *ifindex);
SOCKIT_API int sockit_cmsg_add_pktinfo(void *control, size_t capacity, size_t *used,
                                       const sockit_addr *source, unsigned ifindex);

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

/* Multicast (UDP sockets, IPv4 or IPv6 by the socket's family; broadcast is
 * sockit_set_broadcast above). group is a numeric multicast address of the socket's
 * family (224.0.0.0/4, ff00::/8; an IPv6 group may carry its interface as
 * "ff02::1%eth0"). interface NULL, "" or "0" leaves the choice to the kernel; else
 * a name ("eth0"), an index as text ("2"), or an address the interface holds.
 * Each returns 0 or a code: SOCKIT_EBADADDR (not numeric, not multicast),
 * -EAFNOSUPPORT (a group of the other family), -ENODEV (no such interface),
 * -EOPNOTSUPP (not a UDP socket), -EBADF (NULL socket), or the kernel's answer:
 * -EADDRINUSE (joined already), -EADDRNOTAVAIL (leaving a group not joined).
 * A join also turns Linux's IP_MULTICAST_ALL / IPV6_MULTICAST_ALL off for this
 * socket, so it receives only the groups it joined itself (Linux would otherwise
 * hand it every group any socket on the host joined, even after it left); a failed
 * join leaves the option as it was. */
SOCKIT_API int sockit_join_group(sockit *s, const char *group, const char *interface);
SOCKIT_API int sockit_leave_group(sockit *s, const char *group, const char *interface);
/* Source-specific membership: only datagrams from source (a numeric unicast address
 * of the socket's family) to group. Errors as above. */
SOCKIT_API int sockit_join_source_group(sockit *s, const char *group, const char *source,
                                        const char *interface);
SOCKIT_API int sockit_leave_source_group(sockit *s, const char *group, const char *source,
                                         const char *interface);
/* How many routers the datagrams this socket sends to a group may cross: 0-255
 * (-EINVAL otherwise), 1 by default (IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS). */
SOCKIT_API int sockit_set_multicast_ttl(sockit *s, int ttl);
/* Whether this host's own members of a group get what this socket sends to it
 * (on by default). */
SOCKIT_API int sockit_set_multicast_loop(sockit *s, bool on);
/* The interface datagrams to a group leave by (IP_MULTICAST_IF / IPV6_MULTICAST_IF);
 * interface as for a join, NULL for the kernel's choice again. An IPv4 interface given
 * by address also sends from that address. */
SOCKIT_API int sockit_set_multicast_interface(sockit *s, const char *interface);

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

/* sockit_create_connection through a proxy (curl's CURLOPT_PROXY, ncat's --proxy):
 * proxy is a URL, "socks5://[user:password@]host[:port]" (RFC 1928 and 1929; the
 * target's name is resolved here, its address sent), "socks5h://..." (the name is
 * sent and the proxy resolves it) or "http://[user:password@]host[:port]" (HTTP
 * CONNECT with Basic credentials); the port defaults to 1080 for SOCKS and 3128
 * for HTTP; credentials may be %-escaped. NULL or "" connects directly. The proxy
 * is reached with sockit_create_connection (every address, Happy Eyeballs, source
 * bound), then asked for host:port, all within the one timeout. Returns the
 * connected socket, the tunnel open: bytes sent go to host:port. On failure NULL
 * and the code: what reaching the proxy failed with, SOCKIT_EPROXY (the proxy
 * refused or broke the protocol: its reason is in the message), SOCKIT_EPROXYAUTH
 * (credentials missing or refused), the errno its answer means (-ECONNREFUSED,
 * -EHOSTUNREACH, -ENETUNREACH, -EACCES, -ETIMEDOUT), SOCKIT_ETIMEOUT, -EINVAL for a
 * bad URL (the message names it with the password masked). */
SOCKIT_API sockit *sockit_create_connection_via(const char *proxy, const char *host, int port,
                                                double timeout, const sockit_addr *source);

/* The tunnel on a socket already connected to the proxy, for programs that connect
 * themselves (a non-blocking socket on their own loop): asks the proxy at proxy
 * (the URL; its host and port are not used here) for host:port. In blocking or
 * timeout mode it runs to the end (within the socket's timeout); a non-blocking
 * socket returns SOCKIT_EWOULDBLOCK when it must wait: call again, with the same
 * arguments, when sockit_tunnel_wants(s)'s event (SOCKIT_EVENT_READ or _WRITE) is
 * ready. Returns 0 when open, or sockit_create_connection_via's codes; -EOPNOTSUPP
 * for a socket that is not TCP, -EINVAL on a TLS one (tunnel first, then wrap). A
 * socks5:// target given by name is resolved in the first call (blocking): pass an
 * address, or use socks5h://, on a non-blocking socket. */
SOCKIT_API int sockit_tunnel(sockit *s, const char *proxy, const char *host, int port);
SOCKIT_API int sockit_tunnel_wants(const sockit *s);
/* The proxy's own host (IPv6 without brackets) and port from a proxy URL, for a
 * program that connects to the proxy itself before sockit_tunnel; also checks the
 * URL. Returns 0, -EINVAL or SOCKIT_EBADPORT (a bad URL, named with its password
 * masked), -ENOSPC when host[size] is too small. Either out may be NULL. */
SOCKIT_API int sockit_proxy_endpoint(const char *proxy, char *host, size_t size, int *port);

typedef struct sockit_server_options {
    size_t size;     /* 0, or sizeof the struct: see "Versions and compatibility" */
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
/* Section 10's streams, which SOCKIT_EVENTS servers are made of. */
typedef struct sockit_stream sockit_stream;
typedef struct sockit_stream_callbacks sockit_stream_callbacks;
/* Section 11's datagram endpoints, which SOCKIT_EVENTS datagram servers are. */
typedef struct sockit_datagram sockit_datagram;
typedef struct sockit_datagram_callbacks sockit_datagram_callbacks;
/* sockit_tls.h's TLS contexts, which stream servers may serve with. */
typedef struct sockit_tls_ctx sockit_tls_ctx;

typedef enum sockit_server_mode {
    SOCKIT_SEQUENTIAL = 0, /* one request at a time, in the serving thread */
    SOCKIT_THREADS,        /* a thread per connection or datagram (ThreadingMixIn) */
    SOCKIT_PROCESSES,      /* a process per connection or datagram, at most
                              max_children alive (ForkingMixIn). The child
                              inherits every descriptor the program has open at
                              the fork (fork ignores close-on-exec) except the
                              listener and the other children's connections,
                              which it closes first; the handler and
                              handle_error run in the child, so what they change
                              in memory stays there */
    SOCKIT_POOL,           /* a fixed pool of threads fed by a bounded queue */
    SOCKIT_EVENTS          /* event-driven: every connection is a sockit_stream on
                              one loop run by the serving thread (section 10);
                              config.stream and on_connect replace the handler.
                              A datagram server is one sockit_datagram on that
                              loop (section 11) with config.datagram's callbacks */
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
 * is closed at once, a datagram dropped). Runs in the serving thread (SOCKIT_EVENTS
 * with loops > 1: in the thread of the loop that got the client). */
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
    size_t size;               /* 0, or sizeof the struct: see "Versions and compatibility" */
    sockit_handler_fn handler; /* required */
    void *user;
    sockit_server_mode mode;
    int threads;              /* SOCKIT_POOL: worker threads (0: 8) */
    int queue;                /* SOCKIT_POOL: requests waiting for a worker (0: 64);
                                 when full the server stops accepting until one frees */
    int max_children;         /* SOCKIT_PROCESSES: live children (0: 40, as Python) */
    int max_connections;      /* requests in the server's hands at once: running plus
                                 waiting for a pool worker (0: no limit). At it,
                                 SOCKIT_OVERFLOW_REFUSE refuses even when the pool's
                                 queue or the children's table is full too */
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
    /* SOCKIT_EVENTS: each connection's stream callbacks; their user pointer is
     * config.user until on_connect gives the stream its own (sockit_stream_set_user).
     * idle_timeout 0 means 300 s here (< 0: none), so connections that send nothing
     * are freed. */
    const sockit_stream_callbacks *stream;
    /* SOCKIT_EVENTS: called with each new connection's stream before any of its
     * callbacks. May be NULL. */
    void (*on_connect)(sockit_server *server, sockit_stream *st, const sockit_addr *peer,
                       void *user);
    /* SOCKIT_EVENTS: the loop's spin before it sleeps (sockit_loop_options.spin_us). */
    unsigned spin_us;
    /* SOCKIT_EVENTS datagram servers: the endpoint's callbacks, with config.user. A
     * datagram verify_request rejects is dropped (verify sees every datagram, an
     * unnamed Unix sender's empty address too); max_datagram is the endpoint's
     * max_size (a longer one arrives truncated, flagged); max_connections and
     * idle_timeout do not apply. A callback may close the endpoint: the server then
     * serves nothing more (serve_forever returns once shutdown is asked). */
    const sockit_datagram_callbacks *datagram;
    /* SOCKIT_EVENTS: loops run at once, each in a thread of its own (0 or 1: one,
     * in the serving thread; at most 256). TCP and UDP: each loop has its own
     * socket on the server's address (SO_REUSEPORT), and the kernel spreads
     * connections or senders over them; Unix sockets: every loop watches the one
     * socket. A connection stays on its loop, and so do its callbacks: state that
     * callbacks share across connections needs a lock when loops > 1.
     * max_connections is shared out between the loops (each gets its part, so the
     * total is never passed; with fewer than loops, that many loops run). With
     * loops > 1 the server's own socket has SO_REUSEPORT too, so another program's
     * socket with SO_REUSEPORT (same user) could bind the port as well. */
    int loops;
    /* Stream servers: a server TLS context (sockit_tls.h). Blocking modes: each
     * connection's handshake runs before the handler, in the handler's thread,
     * within tls_handshake_timeout (0: 10 s); req->sock is then a TLS socket, and a
     * handshake that fails goes to handle_error with its code, the handler never
     * seeing that client. SOCKIT_EVENTS: every stream is a TLS stream (the
     * listener's tls below). The server keeps a reference to the context. */
    sockit_tls_ctx *tls;
    double tls_handshake_timeout;
} sockit_server_config;

/* Creates a server bound to host:port (sockit_create_server rules: NULL host for
 * every interface, "unix:/path" for a Unix socket, port 0 for a free port). type is
 * SOCK_STREAM or SOCK_DGRAM. cfg is copied. Returns NULL on failure (bad config is
 * -EINVAL with a message naming the field). */
SOCKIT_API sockit_server *sockit_server_new(const char *host, int port, int type,
                                            const sockit_server_config *cfg);
/* The bound address (the real port when 0 was asked for). */
SOCKIT_API int sockit_server_address(const sockit_server *server, sockit_addr *out);
/* A SOCKIT_EVENTS server's loop backend ("uring", "epoll", "poll"), and why it is
 * not the default one (NULL when it is); NULL for the other modes. Known from
 * sockit_server_new on (which fails if a backend named cannot start), and safe to
 * ask while it serves. */
SOCKIT_API const char *sockit_server_backend(const sockit_server *server);
SOCKIT_API const char *sockit_server_backend_fallback(const sockit_server *server);
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
 * code. SOCKIT_EVENTS: runs one iteration of the serving thread's loop, waiting up
 * to timeout; returns 1, or 0 once shutdown was asked (handle_timeout is not used).
 * With loops > 1 the other loops run in their threads from the first call until
 * shutdown is asked. */
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
/* Handlers running right now (connections, datagrams, children; SOCKIT_EVENTS:
 * streams open); a request accepted but waiting for a pool worker is not counted
 * (sockit_server_waiting). NULL: 0. */
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

/* ------------------------------------------------------------------------------
 * 8. The loop: readiness, timers, signals, wakeups, deferred calls
 *
 * sockit_loop is an event loop, one per thread that wants one. Watchers are
 * objects the loop allocates: each is created on a loop with a callback and a user
 * pointer, started and stopped any number of times, and freed by its _close.
 *
 * Rules:
 *   - Callbacks run only from sockit_loop_run / sockit_loop_run_once, in the thread
 *     running the loop. A callback may start, stop or close any watcher, itself
 *     included, and close descriptors; a watcher closed during a callback is freed at
 *     the end of the iteration, so nothing it was due to receive reaches anyone.
 *   - sockit_loop_stop and sockit_wakeup_send are the only calls safe from other
 *     threads and from signal handlers; sockit_loop_post is safe from other threads.
 *     Everything else is for the loop's own thread.
 *   - A loop runs in one thread at a time; it may be created in one thread and run
 *     in another, and later in a third. (On io_uring the ring is bound to the thread
 *     that runs it; the next thread to run the loop moves it to a ring of its own,
 *     which costs a millisecond once and loses nothing: docs/streams.md, Threads.)
 *   - What keeps sockit_loop_run going: started I/O watchers and timers, calls
 *     queued with sockit_loop_call_soon or sockit_loop_post; signal and wakeup
 *     watchers do not, unless marked with their _keepalive(w, true). Any watcher can
 *     be marked either way (libuv's ref/unref).
 *   - Across fork: the loop belongs to the process that made it. A forked child may
 *     only sockit_loop_close it, which then succeeds even with watchers open (they
 *     must not be used in the child; their memory goes when it exits or execs) and
 *     touches no registration the parent still uses; running it there is -ECHILD.
 *   - A stream keeps sockit_loop_run going while it reads or has bytes queued, a
 *     listener while it accepts; sockit_loop_close is -EBUSY while either is open.
 *   - Nothing grows without bound: posts beyond a limit fail with
 *     SOCKIT_EWOULDBLOCK; everything else is sized by what the program started.
 *
 * One iteration, in order (sockit_loop_run repeats it):
 *   1. the loop's time is updated (sockit_loop_now);
 *   2. due timers run, earliest first (timers due at the same time in the order they
 *      were started);
 *   3. the backend waits for I/O: not at all if calls are queued, a stop was asked or
 *      a socket has read-ahead bytes; else until the next timer; else without limit;
 *   4. the time is updated again (when the wait reported I/O), and I/O callbacks
 *      run; then wakeups, signals and posted calls (delivered through one internal
 *      descriptor);
 *   5. calls queued with call_soon before this step run (those they queue wait for
 *      the next iteration);
 *   6. watchers closed during the iteration are freed.
 * ------------------------------------------------------------------------------ */

typedef struct sockit_loop sockit_loop;

/* Options for every constructor that takes them. size as for every config struct
 * ("Versions and compatibility": 0 is the base layout; SOCKIT_LOOP_OPTIONS_INIT sets
 * sizeof). NULL means all defaults. */
typedef struct sockit_loop_options {
    size_t size; /* 0, or sizeof(sockit_loop_options) */
    /* "uring" (where the library was built with liburing: sockit_loop_backends),
     * "epoll" or "poll". NULL: $SOCKIT_LOOP_BACKEND, else the default: uring where
     * this kernel and process allow it, else epoll (sockit_loop_backend_fallback
     * says why). A named backend that cannot start fails the call with its reason;
     * it never falls back. */
    const char *backend;
    size_t max_posts; /* sockit_loop_post calls waiting at once (0: 65536) */
    /* Microseconds the loop polls without sleeping before it blocks (0: never): when
     * the next event comes that soon, it is seen without a wake-up's latency, at
     * the price of a core kept busy for that long each time the loop runs dry. At
     * most 1,000,000. */
    unsigned spin_us;
} sockit_loop_options;
#define SOCKIT_LOOP_OPTIONS_INIT                                                                   \
    {                                                                                              \
        sizeof(sockit_loop_options), NULL, 0, 0                                                    \
    }

/* Readiness events, Python's selectors.EVENT_READ and EVENT_WRITE. */
#define SOCKIT_EVENT_READ  1
#define SOCKIT_EVENT_WRITE 2

/* Creates a loop. Returns NULL on failure: -EINVAL for an unknown backend (the
 * message lists the known ones) or a size this library cannot take (see "Versions
 * and compatibility"), or the backend's reason it cannot start. */
SOCKIT_API sockit_loop *sockit_loop_new(const sockit_loop_options *opts);
/* Runs iterations until sockit_loop_stop, or until nothing keeps the loop alive.
 * Returns 0, -EBUSY if the loop is already running (e.g. called from a callback),
 * -ECHILD in a forked child, or the backend's failure. */
SOCKIT_API int sockit_loop_run(sockit_loop *loop);
/* Runs one iteration, waiting for I/O at most timeout seconds (< 0: as long as
 * needed, 0: not at all). Returns 1 if something still keeps the loop alive, 0 if
 * not, or a code as sockit_loop_run. A pending stop is consumed. */
SOCKIT_API int sockit_loop_run_once(sockit_loop *loop, double timeout);
/* Makes sockit_loop_run return after the current iteration (at once if it is
 * waiting). Safe from any thread and from a signal handler. Asked while the loop is
 * not running, the next run does one iteration without waiting and returns, as
 * asyncio's loop.stop(). */
SOCKIT_API void sockit_loop_stop(sockit_loop *loop);
/* Frees the loop. Fails with -EBUSY and frees nothing while watchers are still open
 * (the message counts them by kind), while it runs, while closed streams and
 * datagram endpoints still wait for their on_close, or (io_uring) while operations
 * of closed streams and listeners are still being cancelled: run it until it
 * returns first. Calls still queued are dropped. NULL is a no-op. Returns 0 or a
 * code. */
SOCKIT_API int sockit_loop_close(sockit_loop *loop);
/* The loop's monotonic time in seconds, read once per iteration (cheap). */
SOCKIT_API double sockit_loop_now(const sockit_loop *loop);
/* Reads the clock again and updates sockit_loop_now. */
SOCKIT_API void sockit_loop_update_time(sockit_loop *loop);
/* "uring", "epoll" or "poll": the backend the loop runs on. */
SOCKIT_API const char *sockit_loop_backend(const sockit_loop *loop);
/* Why the loop is not on the default backend, e.g. "loop backend uring:
 * io_uring_setup: Operation not permitted (denied: ...)"; NULL when it is (or a
 * backend was named). Valid as long as the loop. */
SOCKIT_API const char *sockit_loop_backend_fallback(const sockit_loop *loop);
/* The backends this library was built with, the default first: "uring,epoll,poll"
 * or "epoll,poll". */
SOCKIT_API const char *sockit_loop_backends(void);

/* Deferred calls. call_soon queues fn(loop, arg) for the next iteration, in order;
 * from the loop's thread only. post does the same from any thread
 * (call_soon_threadsafe) and wakes the loop; beyond max_posts waiting it fails with
 * SOCKIT_EWOULDBLOCK. Both return 0 or a code (-ENOMEM); a call that failed will
 * never run. */
typedef void (*sockit_call_fn)(sockit_loop *loop, void *arg);
SOCKIT_API int sockit_loop_call_soon(sockit_loop *loop, sockit_call_fn fn, void *arg);
SOCKIT_API int sockit_loop_post(sockit_loop *loop, sockit_call_fn fn, void *arg);

/* I/O readiness of a descriptor or a sockit. The user sees level-triggered
 * semantics on every backend: the callback runs on every iteration while the
 * descriptor is ready for an event it asked for. events in the callback is the
 * subset of the asked events that is ready; an error or hang-up reports all the
 * asked events, so the next read or write meets it. One watcher per descriptor
 * per loop (a second is -EEXIST). A watcher of a sockit also counts bytes that
 * sockit_readline read ahead as readable. */
typedef struct sockit_io sockit_io;
typedef void (*sockit_io_fn)(sockit_io *io, int events, void *user);
/* Returns NULL on failure (-EBADF for a negative fd). The watcher starts stopped. */
SOCKIT_API sockit_io *sockit_io_new(sockit_loop *loop, int fd, sockit_io_fn cb, void *user);
SOCKIT_API sockit_io *sockit_io_new_socket(sockit_loop *loop, sockit *s, sockit_io_fn cb,
                                           void *user);
/* Starts watching for events (SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE), or changes
 * the events of a started watcher in place; 0 stops it. Returns 0 or a code
 * (-EINVAL for other bits, -EEXIST when another watcher has the descriptor, the
 * backend's failure: -EBADF, -EPERM for a regular file under epoll). */
SOCKIT_API int sockit_io_start(sockit_io *io, int events);
SOCKIT_API int sockit_io_stop(sockit_io *io);
/* The events being watched (0 when stopped). */
SOCKIT_API int sockit_io_events(const sockit_io *io);
SOCKIT_API int sockit_io_fd(const sockit_io *io);
/* Whether a started watcher keeps sockit_loop_run going (default true). */
SOCKIT_API void sockit_io_keepalive(sockit_io *io, bool on);
/* Stops and frees the watcher (at the end of the iteration when called from a
 * callback). The descriptor or sockit is left open: it is the caller's. NULL is a
 * no-op. */
SOCKIT_API void sockit_io_close(sockit_io *io);

/* Timers: one-shot or repeating, O(log n) to start and stop. */
typedef struct sockit_timer sockit_timer;
typedef void (*sockit_timer_fn)(sockit_timer *t, void *user);
SOCKIT_API sockit_timer *sockit_timer_new(sockit_loop *loop, sockit_timer_fn cb, void *user);
/* (Re)starts the timer: it fires after `after` seconds from sockit_loop_now, then
 * every `repeat` seconds if repeat > 0 (a repeat that fell behind fires once and is
 * rescheduled from now, never in a burst). Restarting a started timer moves it.
 * Returns 0, or -EINVAL for a negative or NaN time. */
SOCKIT_API int sockit_timer_start(sockit_timer *t, double after, double repeat);
SOCKIT_API int sockit_timer_stop(sockit_timer *t);
SOCKIT_API bool sockit_timer_active(const sockit_timer *t);
/* Seconds until it fires (0 if due), or -1 when stopped. */
SOCKIT_API double sockit_timer_remaining(const sockit_timer *t);
SOCKIT_API void sockit_timer_keepalive(sockit_timer *t, bool on);
SOCKIT_API void sockit_timer_close(sockit_timer *t);

/* Signals, delivered as ordinary callbacks in the loop, never in handler context.
 * While at least one watcher of a signal is started, sockit's handler is installed
 * for it (the previous disposition comes back when the last stops). Several loops
 * may watch one signal: each of them gets it. Signals that arrive close together may
 * be delivered as one callback with count > 1. SIGKILL, SIGSTOP and the signals
 * that report faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL) are -EINVAL. */
typedef struct sockit_signal sockit_signal;
typedef void (*sockit_signal_fn)(sockit_signal *w, int signum, int count, void *user);
SOCKIT_API sockit_signal *sockit_signal_new(sockit_loop *loop, sockit_signal_fn cb, void *user);
SOCKIT_API int sockit_signal_start(sockit_signal *w, int signum);
SOCKIT_API int sockit_signal_stop(sockit_signal *w);
/* Default false: a signal watcher alone does not keep the loop running. */
SOCKIT_API void sockit_signal_keepalive(sockit_signal *w, bool on);
SOCKIT_API void sockit_signal_close(sockit_signal *w);

/* A wakeup: any thread, or a signal handler, calls sockit_wakeup_send; the callback
 * then runs once in the loop (sends before it runs are coalesced). Active from
 * creation until closed. */
typedef struct sockit_wakeup sockit_wakeup;
typedef void (*sockit_wakeup_fn)(sockit_wakeup *w, void *user);
SOCKIT_API sockit_wakeup *sockit_wakeup_new(sockit_loop *loop, sockit_wakeup_fn cb, void *user);
/* Async-signal-safe and thread-safe. */
SOCKIT_API void sockit_wakeup_send(sockit_wakeup *w);
/* Default false. */
SOCKIT_API void sockit_wakeup_keepalive(sockit_wakeup *w, bool on);
/* From the loop's thread, once no other thread can still send. */
SOCKIT_API void sockit_wakeup_close(sockit_wakeup *w);

/* ------------------------------------------------------------------------------
 * 9. Selectors: Python's selectors module
 *
 * The loop's readiness layer on its own, for a program that writes its own loop:
 * register descriptors or sockits with the events they wait for and a data
 * pointer, then select. Same backends as the loop (sockit_loop_options.backend,
 * $SOCKIT_LOOP_BACKEND). Level-triggered: a descriptor stays selected until it is
 * read, written or unregistered; a sockit with bytes that sockit_readline read ahead
 * is selected readable without waiting. One thread at a time.
 * ------------------------------------------------------------------------------ */

typedef struct sockit_selector sockit_selector;

/* A registration (Python's SelectorKey). Owned by the selector: valid until that
 * descriptor is unregistered or the selector closed. */
typedef struct sockit_selector_key {
    int fd;
    sockit *sock; /* registered with register_socket, else NULL */
    int events;   /* SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE */
    void *data;
} sockit_selector_key;

/* One result of select: the key and the subset of its events that is ready. */
typedef struct sockit_selector_event {
    const sockit_selector_key *key;
    int events;
} sockit_selector_event;

/* Returns NULL on failure, as sockit_loop_new (opts NULL: defaults). */
SOCKIT_API sockit_selector *sockit_selector_new(const sockit_loop_options *opts);
/* Registers fd for events (not 0) with data. Returns 0, -EEXIST if fd is already
 * registered (Python's KeyError), -EINVAL for bad events, -EBADF, or the backend's
 * failure (-EPERM for a regular file under epoll), each with a message naming the
 * fd. */
SOCKIT_API int sockit_selector_register(sockit_selector *sel, int fd, int events, void *data);
SOCKIT_API int sockit_selector_register_socket(sockit_selector *sel, sockit *s, int events,
                                               void *data);
/* Changes a registration's events and data in place. -ENOENT if fd is not
 * registered. */
SOCKIT_API int sockit_selector_modify(sockit_selector *sel, int fd, int events, void *data);
/* -ENOENT if fd is not registered. Unregister before closing the descriptor. */
SOCKIT_API int sockit_selector_unregister(sockit_selector *sel, int fd);
/* Waits up to timeout seconds (< 0: as long as needed, 0: not at all) and fills
 * out[max] with what is ready. Returns the count (0 when the timeout passed), or a
 * code. More ready than max are reported by the next call. EINTR is retried with the
 * time left (PEP 475). */
SOCKIT_API ssize_t sockit_selector_select(sockit_selector *sel, double timeout,
                                          sockit_selector_event *out, size_t max);
/* The key of fd, or NULL (errcode -ENOENT) if it is not registered. */
SOCKIT_API const sockit_selector_key *sockit_selector_get_key(const sockit_selector *sel, int fd);
/* Registered descriptors (len(get_map())). */
SOCKIT_API size_t sockit_selector_count(const sockit_selector *sel);
SOCKIT_API const char *sockit_selector_backend(const sockit_selector *sel);
/* Frees the selector and its keys; the descriptors stay open. NULL is a no-op. */
SOCKIT_API int sockit_selector_close(sockit_selector *sel);

/* ------------------------------------------------------------------------------
 * 10. Streams and listeners: asyncio's transports and protocols
 *
 * A sockit_stream is a connection (or a pipe, or a terminal) driven by a loop: the
 * loop calls the stream's callbacks when bytes arrive, when the peer ends its side,
 * when queued bytes have drained, on the one error and when the stream is gone.
 * Writes never block: what the kernel does not take at once is queued and sent as
 * the descriptor becomes writable. A sockit_listener accepts connections on a loop
 * and makes each a stream.
 *
 * Rules, in addition to the loop's (section 8):
 *   - Everything here is for the loop's own thread, callbacks included.
 *   - Bytes reach on_data in a buffer the loop owns, valid only during the call: an
 *     idle stream holds no read buffer. Copy what must outlive the call.
 *   - on_error is called at most once per stream, with the code; sockit_errmsg()
 *     then holds a message that names the peer. The stream is closed right after it
 *     returns (queued bytes are dropped), so on_error needs no clean-up of its own.
 *   - on_close is always the last callback, exactly once, whatever ended the stream
 *     (close, abort, error, idle timeout); the stream's memory is freed when it
 *     returns, so that is where per-connection state is freed.
 *   - A stream may be written, paused, closed or aborted from inside any of its own
 *     callbacks; no callback of a stream runs after close or abort returns, except
 *     the write-done calls and on_close (which run from the loop, never from inside
 *     close or abort).
 *   - A stream keeps sockit_loop_run going while it reads or has bytes queued, a
 *     listener while it accepts; sockit_loop_close is -EBUSY while either is open.
 *   - Nothing grows without bound: a write that would take the queue past the hard
 *     limit fails with -ENOBUFS and queues nothing; framed reads keep at most one
 *     frame.
 * ------------------------------------------------------------------------------ */

/* The callbacks of a stream (asyncio's Protocol). One table may serve many streams;
 * it must outlive them. Any entry may be NULL. */
struct sockit_stream_callbacks {
    size_t size; /* 0, or sizeof the struct: see "Versions and compatibility" */
    /* Bytes arrived (or one whole frame in a framing mode; see below). */
    void (*on_data)(sockit_stream *st, const char *data, size_t len, void *user);
    /* The peer ended its side (asyncio's eof_received). Writing still works; the
     * stream stays open until it is closed. In a framing mode a final partial frame
     * comes first: an unterminated last line is delivered as is, a short exact frame
     * is an error (SOCKIT_EEOF). NULL: the stream is closed after the queue drains. */
    void (*on_eof)(sockit_stream *st, void *user);
    /* The write queue fell to the low watermark after it had passed the high one
     * (asyncio's resume_writing). */
    void (*on_drain)(sockit_stream *st, void *user);
    /* The one error: a failed read or write, a line over its limit (SOCKIT_ELINELEN),
     * end of stream inside an exact frame (SOCKIT_EEOF), the idle timeout
     * (SOCKIT_ETIMEOUT). Never after the user closed or aborted the stream. */
    void (*on_error)(sockit_stream *st, int code, void *user);
    /* The last callback (asyncio's connection_lost). */
    void (*on_close)(sockit_stream *st, void *user);
};

/* Adopts a connected stream sockit (the stream owns it from now on and closes it;
 * bytes sockit_readline read ahead are delivered first). The socket is switched to
 * non-blocking. Reading starts at once. Returns NULL on failure (the sockit is then
 * still the caller's): -EINVAL for a datagram socket, -ENOMEM, the backend's refusal. */
SOCKIT_API sockit_stream *sockit_stream_new(sockit_loop *loop, sockit *s,
                                            const sockit_stream_callbacks *cb, void *user);
/* A stream over a descriptor: a pipe, a terminal, a socket (stdin: fd 0 with only
 * on_data, stdout: fd 1, only written). owned: the stream closes fd at the end;
 * otherwise it leaves it open and puts its O_NONBLOCK flag back as it found it.
 * -EPERM for a regular file under epoll (it is always ready: read it directly). */
SOCKIT_API sockit_stream *sockit_stream_new_fd(sockit_loop *loop, int fd, bool owned,
                                               const sockit_stream_callbacks *cb, void *user);

/* Writes len bytes: what the kernel does not take now is copied to the queue. (On
 * io_uring every write is queued and goes with the loop's next wait, in one send with
 * the rest of the iteration's writes.)
 * Returns 0, -ENOBUFS (queue past the hard limit: nothing was taken), -EPIPE after
 * shutdown, close or an error, or -EINVAL for a NULL buffer with len > 0. */
SOCKIT_API int sockit_stream_write(sockit_stream *st, const void *buf, size_t len);
/* Zero-copy write: buf stays the caller's and must stay valid and unchanged until
 * done(st, status, arg) is called, exactly once and always from the loop: status 0
 * when all of it was handed to the kernel, or why it was not: -ECANCELED (aborted,
 * or closed with linger 0), SOCKIT_ETIMEOUT (close's linger ran out), or the error
 * that ended the stream. done may be NULL. On a return other than 0, done is not
 * called. */
typedef void (*sockit_write_done_fn)(sockit_stream *st, int status, void *arg);
SOCKIT_API int sockit_stream_write_ref(sockit_stream *st, const void *buf, size_t len,
                                       sockit_write_done_fn done, void *arg);
/* Bytes written and not yet handed to the kernel (asyncio's get_write_buffer_size). */
SOCKIT_API size_t sockit_stream_queued(const sockit_stream *st);
/* Whether the queue has passed the high watermark and not yet drained to the low one:
 * a producer should wait for on_drain (asyncio's pause_writing). */
SOCKIT_API bool sockit_stream_write_blocked(const sockit_stream *st);
/* Watermarks (defaults 16 KiB low, 64 KiB high) and the hard limit (default 16 MiB).
 * -EINVAL unless low <= high <= limit and limit > 0. */
SOCKIT_API int sockit_stream_set_watermarks(sockit_stream *st, size_t low, size_t high,
                                            size_t limit);

/* Stops and restarts reading (asyncio's pause_reading / resume_reading). Bytes
 * already received and not yet delivered (frames of one read after a pause inside
 * on_data) wait in the stream and come first on resume. */
SOCKIT_API void sockit_stream_pause(sockit_stream *st);
SOCKIT_API void sockit_stream_resume(sockit_stream *st);

/* Framing: what on_data receives from now on (also from inside on_data, for the
 * bytes after the current frame).
 *   lines: each call is one line with its '\n'; a line longer than max_line bytes
 *     (counting the '\n'; 0: SOCKIT_LINE_MAX) is the error SOCKIT_ELINELEN, never cut.
 *   exact: each call is exactly n bytes (n > 0); call it again from on_data to change
 *     n for the next frame (a length prefix, then the body).
 *   raw: whatever each read brought, at most 64 KiB a call (the default).
 * Returns 0 or -EINVAL. */
SOCKIT_API int sockit_stream_read_lines(sockit_stream *st, size_t max_line);
SOCKIT_API int sockit_stream_read_exact(sockit_stream *st, size_t n);
SOCKIT_API int sockit_stream_read_raw(sockit_stream *st);

/* Half-close: the write side is shut down once the queue has drained (asyncio's
 * write_eof). Reading goes on. Returns 0 or -EPIPE if already closed. */
SOCKIT_API int sockit_stream_shutdown(sockit_stream *st);
/* Closes: reading stops, the queue drains, then the descriptor is closed and
 * on_close runs. If the queue has not drained within linger seconds (< 0: no limit;
 * 0 or NaN: do not wait) the stream is aborted instead. Closing again does nothing. */
SOCKIT_API void sockit_stream_close(sockit_stream *st, double linger);
/* Closes at once, dropping the queue; a TCP peer gets a reset (RST). */
SOCKIT_API void sockit_stream_abort(sockit_stream *st);
/* Closes the stream with SOCKIT_ETIMEOUT to on_error if nothing is received or sent
 * for secs seconds (0: never, the default for sockit_stream_new and _new_fd; a
 * listener's streams start with its idle_timeout). The client sees an ordinary end
 * of stream. Returns 0, -EINVAL (negative, NaN, over 4e6 s), or -ENOSPC when the
 * loop already has 254 other distinct timeouts in use. */
SOCKIT_API int sockit_stream_set_idle_timeout(sockit_stream *st, double secs);

SOCKIT_API void *sockit_stream_user(const sockit_stream *st);
SOCKIT_API void sockit_stream_set_user(sockit_stream *st, void *user);
/* Replaces the callbacks (e.g. from the listener's on_accept). */
SOCKIT_API void sockit_stream_set_callbacks(sockit_stream *st, const sockit_stream_callbacks *cb);
SOCKIT_API sockit_loop *sockit_stream_loop(const sockit_stream *st);
/* The descriptor, or -1 once closed. */
SOCKIT_API int sockit_stream_fd(const sockit_stream *st);
/* The peer's address (a socket stream), or a code (-ENOTCONN, -ENOTSOCK). */
SOCKIT_API int sockit_stream_peer(const sockit_stream *st, sockit_addr *out);

/* A listener accepts connections on a loop and makes each one a stream. */
typedef struct sockit_listener sockit_listener;
typedef struct sockit_listener_config {
    size_t size; /* 0, or sizeof the struct: see "Versions and compatibility" */
    /* Streams start with the callbacks and user below; on_accept (may be NULL) is
     * called with each new stream before any of its callbacks, to give it its own
     * user pointer, callbacks, framing or idle timeout, or to close it. */
    void (*on_accept)(sockit_listener *l, sockit_stream *st, const sockit_addr *peer, void *user);
    const sockit_stream_callbacks *callbacks; /* each stream's, until changed */
    void *user;                               /* each stream's user, until changed */
    /* false: the client is closed at once, before a stream is made. */
    bool (*verify)(sockit_listener *l, const sockit_addr *peer, void *user);
    /* Called with a serving failure (-EMFILE, ...) that does not stop the listener.
     * NULL: one line to stderr, at most one a second. */
    void (*on_error)(sockit_listener *l, int code, void *user);
    int max_connections; /* streams of this listener open at once (0: no limit); more
                            wait in the kernel's backlog */
    double idle_timeout; /* each stream's idle timeout (0: 300 s; < 0: none; at most
                            4e6 s) */
    /* A server TLS context (sockit_tls.h): each stream is a TLS stream whose
     * handshake must finish within tls_handshake_timeout (0: 10 s). on_accept still
     * comes first; on_data gets plaintext once the handshake is done. */
    sockit_tls_ctx *tls;
    double tls_handshake_timeout;
} sockit_listener_config;

/* Adopts a listening stream sockit (sockit_create_server's) and starts accepting.
 * cfg is copied. Running out of descriptors sheds the pending clients with a spare
 * descriptor (each reads end of stream at once) and waits for the next, never
 * spinning; other resource errors pause accepting (10 ms doubling to 1 s). Returns
 * NULL on failure, the sockit then still the caller's: -EINVAL (no loop, socket or
 * config; not a listening stream socket; max_connections < 0; idle_timeout NaN),
 * -ENOMEM, the backend's refusal. */
SOCKIT_API sockit_listener *sockit_listener_new(sockit_loop *loop, sockit *listening,
                                                const sockit_listener_config *cfg);
/* Streams of this listener still open. */
SOCKIT_API size_t sockit_listener_count(const sockit_listener *l);
/* Stops and starts accepting (streams already open go on). 0, or -EINVAL for NULL. */
SOCKIT_API int sockit_listener_pause(sockit_listener *l);
SOCKIT_API int sockit_listener_resume(sockit_listener *l);
/* The bound address. 0 or a code. */
SOCKIT_API int sockit_listener_address(const sockit_listener *l, sockit_addr *out);
/* Stops accepting and closes the listening socket. Open streams are not touched:
 * they live on until they close. NULL is a no-op. */
SOCKIT_API void sockit_listener_close(sockit_listener *l);

/* Asynchronous connect (asyncio's loop.create_connection): everything
 * sockit_create_connection promises, on the loop. The name is resolved on a
 * resolver thread that posts back to the loop, every resolved address is tried with
 * Happy Eyeballs (RFC 8305: families alternate, a new attempt every 250 ms or as
 * soon as one fails), and one deadline covers resolution and every attempt.
 *   host, port, source: as sockit_create_connection ("unix:/path" with port 0, a
 *     numeric address, a name; NULL host: loopback). timeout in seconds (< 0: no
 *     limit; 0: one try that a loopback connect can win).
 *   done(c, st, code, user) is called exactly once, always from the loop, never from
 *     inside this call: with the connected stream and 0 (the stream has callbacks
 *     cb and the user pointer user, and starts reading when done returns), or with
 *     NULL and the code: the first attempt's reason (-ECONNREFUSED, ...),
 *     SOCKIT_ETIMEOUT, a SOCKIT_EAI_* code, -ECANCELED after sockit_connector_cancel;
 *     sockit_errmsg() then names every address tried and why, as the blocking call
 *     does. The sockit_connector is freed when done returns.
 * Returns the pending connect, or NULL with the code set at once for an argument
 * that can never work: no loop, bad port (SOCKIT_EBADPORT), NaN timeout (-EINVAL),
 * a source of another family (SOCKIT_EBADADDR), -ENOMEM. A pending connect keeps
 * sockit_loop_run going. */
typedef struct sockit_connector sockit_connector;
typedef void (*sockit_connector_fn)(sockit_connector *c, sockit_stream *st, int code, void *user);
SOCKIT_API sockit_connector *sockit_stream_connect(sockit_loop *loop, const char *host, int port,
                                                   double timeout, const sockit_addr *source,
                                                   const sockit_stream_callbacks *cb,
                                                   sockit_connector_fn done, void *user);
/* sockit_stream_connect through a proxy: proxy as in sockit_create_connection_via
 * (NULL or "": directly). done gets the stream once the tunnel is open, so its first
 * bytes are the target's; a failure of the proxy's handshake is done's code, as
 * sockit_create_connection_via would return it. The timeout covers the proxy's
 * connect and its handshake; a bad URL fails at once (-EINVAL, NULL). */
SOCKIT_API sockit_connector *sockit_stream_connect_via(sockit_loop *loop, const char *proxy,
                                                       const char *host, int port, double timeout,
                                                       const sockit_addr *source,
                                                       const sockit_stream_callbacks *cb,
                                                       sockit_connector_fn done, void *user);
/* Gives up a pending connect: attempts in flight are closed and done runs with
 * -ECANCELED from the loop. Only before done has run (from inside done: nothing to
 * do). NULL is a no-op. */
SOCKIT_API void sockit_connector_cancel(sockit_connector *c);

/* Name resolution on the loop (asyncio's loop.getaddrinfo): sockit_getaddrinfo's
 * arguments and results, delivered to done(r, code, ai, n, user) exactly once, from
 * the loop, never from inside this call: code 0 with n >= 1 entries (ai valid
 * during the call only), or n 0 and the code: a SOCKIT_EAI_* code, SOCKIT_ENOADDR,
 * SOCKIT_ETIMEOUT when timeout seconds passed first (< 0: no limit), -ECANCELED.
 * A numeric host costs no thread; a name is looked up on one of up to 4 resolver
 * threads shared by the process, which exit when idle. getaddrinfo cannot be
 * interrupted: a lookup given up (cancelled, timed out) finishes on its thread and
 * its result is dropped; it holds nothing of the loop, which may be closed once done
 * has run, while that thread still waits for the resolver. Returns the pending
 * lookup, or NULL with the code set for arguments that can never work
 * (SOCKIT_EBADPORT for a port outside 0-65535 or empty, -EINVAL: no loop, no done,
 * NaN timeout), -ENOMEM. A pending lookup keeps sockit_loop_run going;
 * loop_close is -EBUSY while one is pending. */
typedef struct sockit_resolve sockit_resolve;
typedef void (*sockit_resolve_fn)(sockit_resolve *r, int code, const sockit_addrinfo *ai, size_t n,
                                  void *user);
SOCKIT_API sockit_resolve *sockit_loop_getaddrinfo(sockit_loop *loop, const char *host,
                                                   const char *port, int family, int type,
                                                   int flags, double timeout,
                                                   sockit_resolve_fn done, void *user);
/* Gives up a pending lookup: done runs with -ECANCELED from the loop. Only before
 * done has run. NULL is a no-op. */
SOCKIT_API void sockit_resolve_cancel(sockit_resolve *r);

/* ------------------------------------------------------------------------------
 * 11. Datagram endpoints: asyncio's datagram transports and protocols
 *
 * A sockit_datagram is a datagram socket (UDP or Unix, bound, connected or both)
 * driven by a loop. Datagrams are received in batches (recvmmsg) and each reaches
 * on_datagram with its sender; sends made while a batch is being delivered are
 * held in the batch (counted in sockit_datagram_queued and against the limit at
 * once) and sent together when the batch's callbacks have returned (sendmmsg), so
 * an echo costs two system calls per batch, not two per datagram.
 *
 * Rules, in addition to the loop's (section 8):
 *   - Everything here is for the loop's own thread.
 *   - A datagram reaches on_datagram in a buffer the loop owns, valid only during
 *     the call, with its sender's address (NULL for an unnamed Unix sender, which
 *     cannot be answered). A datagram longer than the endpoint's max_size comes
 *     with truncated true and its first max_size bytes: never silently cut.
 *   - A datagram send never blocks: one the kernel does not take at once is copied
 *     to the queue and sent as the socket becomes writable. Past the queue's limit
 *     a send fails with -ENOBUFS and queues nothing.
 *   - A pause inside on_datagram keeps the rest of that batch in the endpoint; it
 *     is delivered first on resume (from the loop), before anything newer.
 *   - on_error reports what fails one datagram, not the endpoint (asyncio's
 *     error_received): a queued send the kernel refused (that datagram is dropped),
 *     an ICMP error the kernel passed on (-ECONNREFUSED on a connected endpoint).
 *     The endpoint stays open; sockit_errmsg() names the address.
 *   - on_close is the last callback, exactly once, from the loop.
 *   - An endpoint keeps sockit_loop_run going while it receives (not paused) or has
 *     datagrams queued; sockit_loop_close is -EBUSY while one is open.
 * ------------------------------------------------------------------------------ */

struct sockit_datagram_callbacks {
    size_t size; /* 0, or sizeof the struct: see "Versions and compatibility" */
    void (*on_datagram)(sockit_datagram *d, const char *data, size_t len, const sockit_addr *from,
                        bool truncated, void *user);
    void (*on_error)(sockit_datagram *d, int code, void *user);
    void (*on_close)(sockit_datagram *d, void *user);
};

/* Adopts a datagram sockit (the endpoint owns it from now on; it is switched to
 * non-blocking) and starts receiving. Returns NULL on failure, the sockit then
 * still the caller's: -EINVAL (no loop or socket, a stream socket), -ENOMEM, the
 * backend's refusal. */
SOCKIT_API sockit_datagram *sockit_datagram_new(sockit_loop *loop, sockit *s,
                                                const sockit_datagram_callbacks *cb, void *user);
/* Sends one datagram to `to` (NULL: the connected peer). Returns 0 when it was sent
 * or queued, -ENOBUFS past the queue's limit, -EMSGSIZE for more than UDP carries
 * (65,507 bytes over IPv4, 65,527 over IPv6) or than the queue's limit, -EDESTADDRREQ with no
 * address on an unconnected endpoint, SOCKIT_EBADADDR for an empty address, -EINVAL (NULL buffer
 * with len > 0), -EPIPE once closed, or the kernel's refusal of a send tried at
 * once (-ECONNREFUSED, -ENETUNREACH, -EAFNOSUPPORT for an address of another
 * family). */
SOCKIT_API int sockit_datagram_send(sockit_datagram *d, const void *buf, size_t len,
                                    const sockit_addr *to);
/* Bytes queued and not yet sent. */
SOCKIT_API size_t sockit_datagram_queued(const sockit_datagram *d);
/* The queue's limit in bytes (default 1 MiB): -EINVAL for 0. */
SOCKIT_API int sockit_datagram_set_limit(sockit_datagram *d, size_t limit);
/* The longest datagram received whole (default 65,536, 1 to 65,536; -EINVAL past). */
SOCKIT_API int sockit_datagram_set_max_size(sockit_datagram *d, size_t max_size);
/* Stops and restarts receiving; datagrams wait in the kernel's buffer meanwhile
 * (and beyond it are dropped by the kernel, as UDP does). */
SOCKIT_API void sockit_datagram_pause(sockit_datagram *d);
SOCKIT_API void sockit_datagram_resume(sockit_datagram *d);
/* Stops receiving, sends what is queued if the kernel takes it now, drops the rest,
 * closes the socket and runs on_close from the loop. Returns the sends dropped
 * (received datagrams a pause kept are dropped too, and not counted). Closing again
 * does nothing (0). */
SOCKIT_API size_t sockit_datagram_close(sockit_datagram *d);
SOCKIT_API void *sockit_datagram_user(const sockit_datagram *d);
SOCKIT_API void sockit_datagram_set_user(sockit_datagram *d, void *user);
/* Connects the endpoint to `to` (Python's sock.connect on a UDP socket): sends
 * without an address go there, and the kernel keeps other senders' datagrams out
 * from now on. A server that takes its first sender as its peer does this. Returns
 * 0, -EINVAL, SOCKIT_EBADADDR (empty), or connect's code (-EAFNOSUPPORT for an
 * address of another family). */
SOCKIT_API int sockit_datagram_connect(sockit_datagram *d, const sockit_addr *to);
/* Replaces the callbacks (for the datagrams not yet delivered). */
SOCKIT_API void sockit_datagram_set_callbacks(sockit_datagram *d,
                                              const sockit_datagram_callbacks *cb);
SOCKIT_API int sockit_datagram_fd(const sockit_datagram *d);
SOCKIT_API sockit_loop *sockit_datagram_loop(const sockit_datagram *d);
/* The bound address (the real port when 0 was asked for). 0 or a code. */
SOCKIT_API int sockit_datagram_address(const sockit_datagram *d, sockit_addr *out);

/* ------------------------------------------------------------------------------
 * 12. Relays: two streams joined, socat's core
 *
 * A sockit_relay passes what one side reads to the other side, both ways, until
 * both directions have ended. Each side is one stream (a socket, a pipe pair
 * end) or two (read from one, written to the other: stdin and stdout). It is the
 * engine under sockit_proxy's connections and `sockit forward`.
 *
 *   - Backpressure: a direction whose receiver has more than held_max bytes
 *     queued (or is past its high watermark) pauses its sender, and resumes it
 *     once the queue is below a quarter of that. Nothing is dropped, and what one
 *     direction holds is bounded.
 *   - Half-close: a side's end of stream shuts down the other side's write side
 *     (once its queue has drained); the other direction goes on. When both have
 *     ended, the streams are closed, their queues drained within linger seconds.
 *   - An error on either side (a reset, a failed write) resets both at once: the
 *     other side cannot be told more gently that bytes were lost.
 *   - The relay owns its streams from sockit_relay_new on: it sets their
 *     callbacks and user pointers. on_end is the last call, from the loop, once
 *     every stream is closed; the relay is freed when it returns.
 * ------------------------------------------------------------------------------ */

typedef struct sockit_relay sockit_relay;
typedef struct sockit_relay_config {
    size_t size; /* 0, or sizeof the struct: see "Versions and compatibility" */
    /* Bytes one direction may have queued at its receiver before its sender is
     * paused. 0: 256 KiB. */
    size_t held_max;
    /* Once both directions have ended, how long the queues get to drain before
     * the streams are reset. 0: 30 s; < 0: no limit. */
    double linger;
    /* After one direction has ended, how long the other may go on before the
     * relay ends with SOCKIT_ETIMEOUT (socat's -t). 0: no limit. */
    double half_close_timeout;
    /* Nothing moved either way for this long: the relay ends with SOCKIT_ETIMEOUT.
     * 0: never. */
    double idle_timeout;
    /* The sides' names in reasons ("b: Connection reset by peer"); copied.
     * NULL: "a" and "b". */
    const char *name_a, *name_b;
    /* The end: code 0 when both directions ended, else what ended it (the error,
     * SOCKIT_ETIMEOUT, -ECANCELED for sockit_relay_close); reason says it in words
     * ("b closed", "write to a: Broken pipe"). May be NULL. */
    void (*on_end)(sockit_relay *r, int code, const char *reason, void *user);
    void *user;
} sockit_relay_config;

/* Joins streams a and b (each read and written). Returns the relay, or NULL with
 * the code (the streams are then still the caller's, untouched): -EINVAL (a NULL
 * or the same stream twice, streams of different loops, a bad config), -ENOMEM. */
SOCKIT_API sockit_relay *sockit_relay_new(sockit_stream *a, sockit_stream *b,
                                          const sockit_relay_config *cfg);
/* A side of sockit_relay_join: streams, or a datagram endpoint. */
typedef struct sockit_relay_side {
    size_t size; /* 0, or sizeof the struct: see "Versions and compatibility" */
    /* Read, and written unless out is set (an out that differs is only written:
     * stdin and stdout). in NULL: a side that is only written (a file being made):
     * it sends nothing, so its end reaches the other side at once. */
    sockit_stream *in, *out;
    /* Instead of streams: a connected datagram endpoint. Each datagram's bytes pass
     * on as they are; bytes for it leave as datagrams of at most 65,507 bytes (one
     * per read of the other side); datagrams from anyone but its peer (queued
     * before it was connected) are dropped. A datagram side never ends by itself: once the
     * other direction has ended, half_close_timeout (then 0.5 s by default) ends the
     * relay, with code 0. */
    sockit_datagram *datagram;
} sockit_relay_side;
/* As sockit_relay_new, for any two sides. */
SOCKIT_API sockit_relay *sockit_relay_join(const sockit_relay_side *a, const sockit_relay_side *b,
                                           const sockit_relay_config *cfg);
/* Bytes passed on so far: dir 0 from a to b, 1 from b to a. */
SOCKIT_API unsigned long long sockit_relay_bytes(const sockit_relay *r, int dir);
/* Ends the relay at once: both sides are reset, on_end follows from the loop with
 * -ECANCELED. After the relay has begun to end it does nothing; after on_end has
 * run the relay is gone and must not be named. */
SOCKIT_API void sockit_relay_close(sockit_relay *r);

#ifdef __cplusplus
}
#endif
#endif /* SOCKIT_H */
