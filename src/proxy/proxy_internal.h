/* The proxy's parts: the proxy (proxy.c), its connections (proxy_conn.c) and the
 * chain of toxics each direction of a connection runs through (toxic_chain.c);
 * for datagram proxies, the listening endpoint and its table of clients
 * (dgram_proxy.c), one client entry (dgram_client.c) and the chain of datagram
 * toxics (dgram_chain.c). */
#ifndef SOCKIT_PROXY_INTERNAL_H
#define SOCKIT_PROXY_INTERNAL_H

#include "../internal.h"
#include "../stream/relay_internal.h"
#include "sockit_proxy.h"
#include "sockit_tls.h"

#include <stdint.h>

/* A piece of a direction's bytes on its way through the chain. A marker carries no
 * bytes: the end of the sender's stream (passed on as a half-close) or the end of
 * the connection that a toxic decided (limit_data, timeout). */
enum { PX_DATA = 0, PX_EOF, PX_CLOSE };
typedef struct px_chunk {
    struct px_chunk *next;
    double t;   /* when it reached the proxy; a latency toxic moves it to its release */
    double due; /* the current toxic's release time; NAN until it has decided */
    size_t len, off;
    int what;           /* PX_DATA, PX_EOF, PX_CLOSE */
    const char *reason; /* PX_CLOSE: the toxic's kind */
    char data[];
} px_chunk;

typedef struct px_queue {
    px_chunk *head, *tail;
} px_queue;

struct px_dir;
/* One toxic's state on one direction of one connection. */
typedef struct px_stage {
    sockit_toxic *toxic; /* the proxy's (heap-allocated: it stays put while others come and go) */
    struct px_dir *dir;
    bool active; /* drawn against the toxicity */
    px_queue q;
    sockit_timer *timer; /* made when first needed */
    double next;         /* bandwidth, slicer: when the next piece may go */
    double started;      /* timeout: when it began counting; reset_peer: first bytes */
    long long passed;    /* limit_data: bytes let through */
    bool done;           /* limit_data, timeout: the close went; the rest is dropped */
} px_stage;

struct px_conn;
typedef struct px_dir {
    struct px_conn *conn;
    sockit_proxy_direction which;
    px_stage **stages;
    size_t n;
    size_t held;              /* bytes in the stages' queues */
    bool ended;               /* its end of stream reached the receiver (shut down) */
    unsigned long long bytes; /* delivered */
} px_dir;

typedef struct px_conn {
    struct px_conn *prev, *next;
    sockit_proxy *proxy;
    unsigned long long id;
    sockit_addr client_addr;
    sockit_stream *client, *upstream;
    sockit_connector *connecting;
    sockit_relay *relay; /* once the upstream connected: it owns both streams */
    px_dir dir[2];
    bool linked; /* the upstream connected: the chains exist */
    bool ending; /* closing: nothing more is relayed */
    const char *reason;
    char reason_buf[160];
} px_conn;

/* ---- datagram proxies ---- */

/* Datagram client entries at most (SOCKIT_PROXY_CLIENTS_MAX) and by default. */
#define PX_CLIENTS_DEFAULT 1024
#define PX_IDLE_DEFAULT    60.0
/* What every client of one datagram proxy holds in its toxics at once: past it a
 * datagram that would be held is dropped, as a full router queue drops. */
#define PX_DGRAM_HELD_ALL ((size_t)32 * 1024 * 1024)
/* Datagrams a client's entry keeps while its upstream is being resolved (and
 * SOCKIT_PROXY_HELD_MAX bytes): a client's first burst usually comes before it. */
#define PX_PENDING_MAX 256
/* Datagrams one reorder stage holds back at most (past it they pass in order). */
#define PX_REORDER_HELD_MAX 64
/* The send queue of a client's upstream socket, for what the kernel does not take
 * at once (the listening socket keeps the endpoint's 1 MiB for every client). */
#define PX_UP_QUEUE ((size_t)64 * 1024)
/* How long an entry whose upstream could not be reached drops its client's
 * datagrams before the next one tries again (a flood must not mean a flood of
 * lookups). */
#define PX_REFUSED_HOLD 1.0

/* What a kept datagram costs against the bounds: its bytes and its header, so
 * that a flood of empty datagrams is bounded too. */
#define PX_DGRAM_COST(len) ((len) + sizeof(px_dgram))

/* A datagram a stage holds (or an entry keeps while resolving). */
typedef struct px_dgram {
    struct px_dgram *next;
    double due;     /* latency, bandwidth: when it goes on; reorder: the latest it may */
    long long wait; /* reorder: datagrams still to overtake it */
    size_t len;
    char data[];
} px_dgram;

struct px_cdir;
/* One datagram toxic's state on one direction of one client. */
typedef struct px_dstage {
    sockit_toxic *toxic; /* the proxy's */
    struct px_cdir *dir;
    bool active; /* drawn against the toxicity */
    bool losing; /* loss with bursts: inside a run of losses */
    px_dgram *head, *tail;
    size_t count;
    double next; /* bandwidth: when the link is free again */
    sockit_timer *timer;
} px_dstage;

typedef struct px_cdir {
    struct px_client *client;
    sockit_proxy_direction which;
    px_dstage **stages;
    size_t n;
    size_t held; /* bytes in the stages */
    unsigned long long bytes;
} px_cdir;

/* One client of a datagram proxy: its address, its own socket connected to the
 * upstream (so replies find their way back to it) and a chain each way. */
typedef struct px_client {
    struct px_client *prev, *next; /* the proxy's list */
    struct px_client *hnext;       /* its bucket in the proxy's table */
    sockit_proxy *proxy;
    unsigned long long id;
    sockit_addr addr;
    size_t bucket;
    bool in_table;
    sockit_resolve *resolving;
    sockit_datagram *up;
    px_dgram *pend_head, *pend_tail; /* for the upstream, while resolving */
    size_t npend, pend_bytes;
    px_cdir dir[2];
    double last; /* the last datagram either way */
    sockit_timer *idle;
    bool opened, refused, ending, busy, gone_soon;
    const char *reason;
    char reason_buf[160];
} px_client;

struct sockit_proxy {
    sockit_loop *loop;
    char name[64];
    int type;
    char *listen_host, *upstream_host;
    int listen_port, upstream_port;
    double connect_timeout;
    bool enabled, closing;
    bool busy; /* inside sockit_proxy_close: not freed under it */
    sockit_listener *listener;
    sockit_addr bound;
    bool has_bound;
    sockit_toxic *chain[2][SOCKIT_PROXY_TOXICS_MAX];
    size_t nchain[2];
    px_conn *conns;
    /* datagram proxies */
    sockit_datagram *endpoint; /* the listening socket */
    int endpoints_closing;     /* listening endpoints whose on_close is still to come */
    px_client *clients;        /* every entry, those ending too */
    px_client **buckets;       /* the entries that take datagrams, by address */
    size_t nbuckets, nclients; /* nclients: in the table */
    uint64_t hash_key;
    size_t held; /* bytes every client's stages hold */
    double idle_timeout;
    int max_clients;
    unsigned long long next_id;
    sockit_proxy_stats stats;
    uint64_t rng;
    void (*on_event)(sockit_proxy *p, const sockit_proxy_event *ev, void *user);
    void *user;
    sockit_tls_ctx *listen_tls, *upstream_tls; /* references held */
    char *upstream_tls_name;
};

/* ---- the proxy (proxy.c) ---- */
double sockit__proxy_random(sockit_proxy *p); /* uniform in [0, 1) */
void sockit__proxy_event(sockit_proxy *p, sockit_proxy_event_type type, px_conn *c);
void sockit__proxy_tell(sockit_proxy *p, const sockit_proxy_event *ev);
/* Appends name to the comma-separated list in buf (nothing once it is full). */
void sockit__proxy_list_add(char *buf, size_t size, const char *name);
/* Frees a closing proxy once nothing of it is left for the loop to finish. */
void sockit__proxy_maybe_free(sockit_proxy *p);
/* A connection is gone: the proxy frees itself after its last one when closing. */
void sockit__proxy_conn_gone(sockit_proxy *p, px_conn *c);

/* ---- connections (proxy_conn.c) ---- */
extern const sockit_listener_config sockit__proxy_listener_template;
void sockit__proxy_accept(sockit_listener *l, sockit_stream *st, const sockit_addr *peer,
                          void *user);
/* Ends a connection: both sides closed, their queues flushed within linger
 * seconds (then reset), or reset at once with PX_ABORT. reason is static or in
 * c->reason_buf. */
#define PX_ABORT     (-1.0)
#define PX_LINGER    30.0 /* a connection its peers or a toxic ended: bytes in flight */
#define PX_LINGER_UP 1.0  /* the proxy going down or away */
void sockit__proxy_conn_end(px_conn *c, const char *reason, double linger);
/* Pauses or resumes d's sender by what d holds. */
void sockit__proxy_pressure(px_dir *d);

/* ---- chains (toxic_chain.c) ---- */
/* Makes d's stages from the proxy's chain of its direction. 0 or -ENOMEM. */
int sockit__chain_build(px_dir *d);
/* Drops what the stages hold and closes their timers; the stages stay (a chain
 * being run may still look at them) until sockit__chain_free. */
void sockit__chain_clear(px_dir *d);
/* Frees the stages and whatever they hold. */
void sockit__chain_free(px_dir *d);
/* Takes len bytes (or a marker) from d's sender into the chain, which is not idle
 * (so it has stages), and runs it. 0 or -ENOMEM. */
int sockit__chain_push(px_dir *d, const char *data, size_t len, int what);
/* Whether bytes may skip the chain: no stage acts and none holds anything. */
bool sockit__chain_idle(const px_dir *d);
/* The proxy's toxics changed: a stage for toxic t at the end (add), t's stage
 * drawn again (update), t's stage gone with its bytes passed on (remove). */
int sockit__chain_add(px_dir *d, sockit_toxic *t);
void sockit__chain_update(px_dir *d, sockit_toxic *t);
void sockit__chain_remove(px_dir *d, sockit_toxic *t);
/* Hands a chunk leaving the chain to the receiver (proxy_conn.c). */
void sockit__proxy_deliver(px_dir *d, px_chunk *ch);

/* ---- the datagram proxy (dgram_proxy.c) ---- */
/* Binds the listening endpoint. 0 or the code (sockit_errmsg names the proxy). */
int sockit__dgram_listen(sockit_proxy *p);
/* Closes it (its on_close comes from the loop). */
void sockit__dgram_unlisten(sockit_proxy *p);
/* Ends every client entry. */
void sockit__dgram_end_all(sockit_proxy *p, const char *reason);
/* Takes c out of the table: the address's next datagram makes a new entry. */
void sockit__dgram_unlist(sockit_proxy *p, px_client *c);
/* c is gone: out of the list and freed. */
void sockit__dgram_gone(sockit_proxy *p, px_client *c);

/* ---- one client entry (dgram_client.c) ---- */
/* A new entry for a client's first datagram (listed in the table, its upstream
 * resolving), or NULL (out of memory). */
px_client *sockit__client_new(sockit_proxy *p, const sockit_addr *from);
/* A datagram from the client, for the upstream. */
void sockit__client_take(px_client *c, const char *data, size_t len);
/* Ends the entry: what it holds is dropped, its socket closed; it is freed (and
 * its close told) from the loop. */
void sockit__client_end(px_client *c, const char *reason);
/* A datagram leaving d's chain, to d's receiver. */
void sockit__client_deliver(px_cdir *d, const char *data, size_t len);
/* The names of the toxics acting on c, comma-separated. */
void sockit__client_toxics(const px_client *c, char *buf, size_t size);

/* ---- datagram chains (dgram_chain.c) ---- */
int sockit__dchain_build(px_cdir *d);
/* Runs a datagram through d's stages from the i-th on: data is borrowed, unless
 * own (holding the same bytes) is given, which the chain then frees or keeps. */
void sockit__dchain_run(px_cdir *d, size_t i, const char *data, size_t len, px_dgram *own);
/* Drops what the stages hold (counted as dropped) and stops their timers; the
 * stages stay, for the close event's list of toxics. */
void sockit__dchain_clear(px_cdir *d);
/* Drops what the stages hold and frees them. */
void sockit__dchain_free(px_cdir *d);
int sockit__dchain_add(px_cdir *d, sockit_toxic *t);
void sockit__dchain_update(px_cdir *d, sockit_toxic *t);
void sockit__dchain_remove(px_cdir *d, sockit_toxic *t);

#endif
