/* sockit_proxy.h: a fault-injecting relay on the loop (toxiproxy's model).
 *
 * A sockit_proxy listens on one address and relays every connection it accepts to
 * an upstream address, byte for byte, both ways: half-close and resets are passed
 * on, and a slow reader slows the writer (each direction holds a bounded number of
 * bytes: see SOCKIT_PROXY_HELD_MAX). Toxics change what passes, per direction:
 * delay it, cap its rate, cut it into slices, stop it, reset or close the
 * connection. Their names, attributes and units are toxiproxy's, so that what a
 * test wrote for toxiproxy means the same here; docs/proxy.md maps the two.
 *
 * Toxics may be added, changed and removed while connections are open: the
 * change reaches every open connection at once, and no byte already taken from a
 * peer is lost by it.
 *
 * A datagram proxy (type SOCK_DGRAM) relays UDP the same way. Each client address
 * that sends to it gets an entry: a socket of its own connected to the upstream,
 * so the upstream's replies come back to that client alone. An entry ends after
 * idle_timeout seconds with no datagram either way, and the table holds at most
 * max_clients entries: while it is full, new clients' datagrams are dropped (and
 * counted) and the clients it has keep being served. Each entry is a descriptor:
 * past the process's limit a new client is refused (a REFUSED event). Datagrams
 * are not held back for a slow receiver: what the kernel does not take at once
 * waits in a small queue (64 KiB per client socket, the endpoint's 1 MiB for the
 * listening one) and past it is lost, as UDP loses. A toxic holds at most
 * SOCKIT_PROXY_HELD_MAX bytes per client and direction, and the toxics and the
 * entries still resolving their upstream (256 datagrams each) at most 32 MiB for
 * the whole proxy; past either, a datagram that would be kept is dropped. A
 * reorder toxic holds at most 64 datagrams (past that they pass in order). A
 * client whose upstream cannot be reached has its datagrams dropped for a second
 * before its next one tries again.
 * Replies leave from the listening socket, so listen on a specific address (not
 * "") when the clients must see the address they sent to.
 *
 * The library has no HTTP and no JSON: the `sockit proxy` subcommand adds
 * toxiproxy's HTTP API on top of this. A C program's own tests can start a proxy
 * with toxics on their loop, in-process.
 *
 * Rules: those of the loop and streams (sockit.h sections 8 and 10): everything is
 * for the loop's thread; nothing here blocks; upstream names are resolved on the
 * loop's resolver threads.
 */
#ifndef SOCKIT_PROXY_H
#define SOCKIT_PROXY_H

#include <sockit.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sockit_proxy sockit_proxy;

/* The two directions ("streams" in toxiproxy's words). */
typedef enum sockit_proxy_direction {
    SOCKIT_UPSTREAM = 0,  /* client -> upstream server: the requests */
    SOCKIT_DOWNSTREAM = 1 /* upstream server -> client: the replies (toxiproxy's default) */
} sockit_proxy_direction;

/* The kinds of toxic. Stream toxics are toxiproxy's; the datagram ones are ours. */
typedef enum sockit_toxic_kind {
    SOCKIT_TOXIC_NONE = 0,
    SOCKIT_TOXIC_LATENCY,    /* delay each chunk by latency +- jitter ms (order kept) */
    SOCKIT_TOXIC_BANDWIDTH,  /* at most rate KB/s (1 KB = 1000 bytes) */
    SOCKIT_TOXIC_SLOW_CLOSE, /* hold the end of stream back for delay ms */
    SOCKIT_TOXIC_TIMEOUT,    /* drop everything; close the connection after timeout ms
                                (0: never; removing the toxic then closes it) */
    SOCKIT_TOXIC_RESET_PEER, /* reset (RST) both sides timeout ms after the first bytes
                                or end of stream reach the toxic; what reaches it is
                                dropped */
    SOCKIT_TOXIC_SLICER,     /* cut each chunk into slices of average_size +-
                                size_variation bytes, delay us apart */
    SOCKIT_TOXIC_LIMIT_DATA, /* pass exactly `bytes` bytes, then close the connection */
    /* Datagram proxies (type SOCK_DGRAM) only: */
    SOCKIT_TOXIC_LOSS,      /* drop a datagram with probability: each drawn alone (burst
                               0), or in runs of `burst` datagrams on average with the
                               same share lost (a two-state Gilbert model) */
    SOCKIT_TOXIC_DUPLICATE, /* send a datagram twice with probability */
    SOCKIT_TOXIC_REORDER,   /* hold a datagram back with probability until the next
                               `gap` datagrams have overtaken it, or delay ms at most */
    SOCKIT_TOXIC_TRUNCATE,  /* cut datagrams longer than `size` bytes to size */
} sockit_toxic_kind;

#define SOCKIT_TOXIC_NAME_MAX 64 /* with the NUL */

/* A toxic. Zero it, set kind and the attributes that kind reads (the others are
 * ignored), then add it to a proxy. latency and bandwidth also apply to datagram
 * proxies (each datagram delayed alone: jitter may reorder them, as on a real
 * path; a datagram over the rate's 1 s of queue is dropped, as a router would). */
typedef struct sockit_toxic {
    char name[SOCKIT_TOXIC_NAME_MAX]; /* "": "<kind>_<direction>", e.g. "latency_downstream" */
    sockit_toxic_kind kind;
    sockit_proxy_direction direction;
    /* Probability that the toxic acts on a connection, drawn as each connection
     * opens and again when the toxic is changed (toxiproxy's toxicity): 0-1. A
     * zeroed toxic has 0: set it (sockit_toxic_init sets 1). */
    double toxicity;
    long long latency, jitter; /* latency: ms */
    long long rate;            /* bandwidth: KB/s */
    long long delay;           /* slow_close: ms; slicer: us; reorder: ms (1 or more) */
    long long timeout;         /* timeout, reset_peer: ms */
    long long average_size;    /* slicer: bytes */
    long long size_variation;  /* slicer: bytes, below average_size */
    long long bytes;           /* limit_data */
    double probability;        /* loss, duplicate, reorder: 0-1 per datagram */
    long long burst;           /* loss: average datagrams lost in a row (0: independent) */
    long long gap;             /* reorder: datagrams that overtake (>= 1) */
    long long size;            /* truncate: bytes kept (0-65535) */
    long long reserved[8];     /* room for the attributes of later kinds: keep zero */
} sockit_toxic;

/* Zeroes *t and sets kind, direction, toxicity 1 and the kind's neutral attributes
 * (gap 1; reorder's delay 100 ms). Returns 0 or -EINVAL for an unknown kind. */
SOCKIT_API int sockit_toxic_init(sockit_toxic *t, sockit_toxic_kind kind,
                                 sockit_proxy_direction direction);
/* toxiproxy's type name ("latency", "slow_close", ...; "loss" for ours) and back
 * (SOCKIT_TOXIC_NONE for a name it does not know). */
SOCKIT_API const char *sockit_toxic_kind_name(sockit_toxic_kind kind);
SOCKIT_API sockit_toxic_kind sockit_toxic_kind_parse(const char *name);
/* Whether the kind acts on stream (TCP) or datagram (UDP) proxies. */
SOCKIT_API bool sockit_toxic_kind_for(sockit_toxic_kind kind, int type);
/* Checks a toxic's attributes: 0, or -EINVAL with sockit_errmsg() naming the
 * attribute and the range ("toxic latency_downstream: jitter -1: not in 0-3600000
 * ms"). Times are at most an hour, sizes at most 1 GiB. A loss's burst must be
 * long enough for its probability: runs of B losses make up a share p only when
 * B >= p / (1 - p) (a loss of 0.9 needs runs of 9). */
SOCKIT_API int sockit_toxic_check(const sockit_toxic *t);

/* What the proxy tells on_event. */
typedef enum sockit_proxy_event_type {
    SOCKIT_PROXY_OPEN = 1, /* a client's connection reached the upstream */
    SOCKIT_PROXY_CLOSE,    /* a connection (or a datagram client entry) ended */
    SOCKIT_PROXY_REFUSED,  /* a client came, the upstream could not be reached (the
                              client is then closed); reason says why */
} sockit_proxy_event_type;

typedef struct sockit_proxy_event {
    sockit_proxy_event_type type;
    unsigned long long id;                   /* the connection's, from 1 */
    const sockit_addr *client;               /* the client's address */
    unsigned long long bytes_up, bytes_down; /* relayed so far (CLOSE: in all) */
    const char *reason;                      /* CLOSE, REFUSED: why */
    const char *toxics;                      /* the toxics acting on it, comma-separated */
} sockit_proxy_event;

typedef struct sockit_proxy_config {
    size_t size;               /* 0, or sizeof the struct: see "Versions and compatibility" */
    const char *name;          /* for messages and events (NULL: "proxy") */
    int type;                  /* SOCK_STREAM (0 means it) or SOCK_DGRAM (UDP) */
    const char *listen_host;   /* NULL: loopback; "" every interface */
    int listen_port;           /* 0: a free port (read it with sockit_proxy_address) */
    const char *upstream_host; /* a name or address, resolved for each connection (datagram:
                                  for each client entry, which takes the first address
                                  a socket connects to: give an address to choose) */
    int upstream_port;         /* 1-65535 */
    bool disabled;             /* start down (toxiproxy's enabled false) */
    double connect_timeout;    /* seconds for each upstream connect (0: 10 s); datagram:
                                  for resolving the upstream */
    double idle_timeout;       /* seconds a datagram client entry lives with no datagram
                                  either way (0: 60 s; at most 86400) */
    int max_clients;           /* datagram client entries at once (0: 1024; at most
                                  SOCKIT_PROXY_CLIENTS_MAX) */
    unsigned long long seed;   /* the random draws' seed (0: from the system) */
    void (*on_event)(sockit_proxy *p, const sockit_proxy_event *ev, void *user);
    void *user;
    /* Stream proxies, TLS on either side (sockit_tls.h; the proxy keeps a reference
     * to each): listen_tls, a server context, makes the proxy a TLS server to its
     * clients; upstream_tls, a client context, makes it a TLS client of the upstream,
     * verifying the certificate for upstream_tls_name (NULL: upstream_host). Toxics
     * act on the plaintext in between. */
    sockit_tls_ctx *listen_tls;
    sockit_tls_ctx *upstream_tls;
    const char *upstream_tls_name;
} sockit_proxy_config;

/* Bytes a connection's direction holds (in its toxics and its write queue) before
 * the proxy stops reading from the sending peer. With the read in hand and the
 * kernel's buffers, a connection holds at most about 2 x (this + 64 KiB) bytes in
 * the proxy, whatever passes through it. */
#define SOCKIT_PROXY_HELD_MAX ((size_t)256 * 1024)
/* Toxics at most per proxy. */
#define SOCKIT_PROXY_TOXICS_MAX 32
/* Datagram client entries at most per proxy (max_clients): each holds a socket, so
 * the process's descriptor limit must allow for them (sockit proxy raises its
 * soft limit to the hard one). */
#define SOCKIT_PROXY_CLIENTS_MAX 16384

/* Starts a proxy on the loop: listens at once (unless disabled). cfg is copied.
 * Returns NULL with the code: -EINVAL (no loop or config, no upstream host, a type
 * other than SOCK_STREAM and SOCK_DGRAM, a NaN, negative or too long timeout,
 * max_clients outside 0-SOCKIT_PROXY_CLIENTS_MAX), SOCKIT_EBADPORT (upstream
 * port outside 1-65535, listen port outside 0-65535), the listener's failure (-EADDRINUSE,
 * SOCKIT_EAI_NONAME, ...), -ENOMEM. sockit_errmsg() names the proxy and the address. */
SOCKIT_API sockit_proxy *sockit_proxy_new(sockit_loop *loop, const sockit_proxy_config *cfg);
/* The address it listens on (the real port when 0 was asked for; the last one
 * while disabled). 0 or a code. */
SOCKIT_API int sockit_proxy_address(const sockit_proxy *p, sockit_addr *out);
SOCKIT_API const char *sockit_proxy_name(const sockit_proxy *p);
/* SOCK_STREAM or SOCK_DGRAM (-EINVAL for NULL). */
SOCKIT_API int sockit_proxy_type(const sockit_proxy *p);
/* Takes the proxy down (enabled false: stops listening and closes every open
 * connection) or brings it back up on the address it had (enabled true). 0, or the
 * listener's failure when it cannot listen again. */
SOCKIT_API int sockit_proxy_set_enabled(sockit_proxy *p, bool enabled);
SOCKIT_API bool sockit_proxy_enabled(const sockit_proxy *p);
/* Points the proxy at another upstream: open connections are closed (as in
 * toxiproxy), new ones go to the new address. 0, -EINVAL, SOCKIT_EBADPORT. */
SOCKIT_API int sockit_proxy_set_upstream(sockit_proxy *p, const char *host, int port);

/* Adds a toxic at the end of its direction's chain (toxics act in the order
 * added). The name defaults as sockit_toxic says. Returns 0, -EINVAL (see
 * sockit_toxic_check; a kind for the other type of proxy), -EEXIST for a name
 * in use, -ENOSPC past SOCKIT_PROXY_TOXICS_MAX. */
SOCKIT_API int sockit_proxy_add_toxic(sockit_proxy *p, const sockit_toxic *t);
/* Replaces the attributes and toxicity of the toxic called name (its kind and
 * direction stay: t's are ignored). 0, -ENOENT, -EINVAL. */
SOCKIT_API int sockit_proxy_update_toxic(sockit_proxy *p, const char *name, const sockit_toxic *t);
/* Removes a toxic: what it held goes on to the next. 0 or -ENOENT. */
SOCKIT_API int sockit_proxy_remove_toxic(sockit_proxy *p, const char *name);
/* Removes every toxic. */
SOCKIT_API void sockit_proxy_remove_toxics(sockit_proxy *p);
/* The toxic called name, or NULL. Valid until the toxics change. */
SOCKIT_API const sockit_toxic *sockit_proxy_toxic(const sockit_proxy *p, const char *name);
/* The i-th toxic, upstream ones first, each direction in chain order; NULL past
 * the end. Valid until the toxics change. */
SOCKIT_API const sockit_toxic *sockit_proxy_toxic_at(const sockit_proxy *p, size_t i);

/* Counters since the proxy started. */
typedef struct sockit_proxy_stats {
    unsigned long long connections;                  /* accepted (datagram: client entries made) */
    unsigned long long open;                         /* open now */
    unsigned long long refused;                      /* upstream unreachable */
    unsigned long long bytes_up, bytes_down;         /* relayed */
    unsigned long long datagrams_up, datagrams_down; /* relayed (datagram proxies): as they left
                                                        the toxics, copies counted, losses not */
    unsigned long long dropped;     /* datagrams a toxic, a full table or queue, or an ending
                                       entry dropped */
    unsigned long long held;        /* datagram proxies: bytes the toxics and the entries
                                       waiting for their upstream keep now, each datagram
                                       counted with its bookkeeping (at most 32 MiB) */
    unsigned long long reserved[8]; /* 0: room for the counters of later versions */
} sockit_proxy_stats;
SOCKIT_API void sockit_proxy_stats_get(const sockit_proxy *p, sockit_proxy_stats *out);

/* Stops listening and ends every connection (closed, queued bytes flushed for at
 * most a second, then reset). The proxy's memory goes once the last connection
 * has closed, as the loop runs; no callback of it runs after this returns. NULL is
 * a no-op. */
SOCKIT_API void sockit_proxy_close(sockit_proxy *p);

#ifdef __cplusplus
}
#endif
#endif /* SOCKIT_PROXY_H */
