/* The proxy's parts: the proxy (proxy.c), its connections (proxy_conn.c) and the
 * chain of toxics each direction of a connection runs through (toxic_chain.c). */
#ifndef SOCKIT_PROXY_INTERNAL_H
#define SOCKIT_PROXY_INTERNAL_H

#include "../internal.h"
#include "sockit_proxy.h"

#include <stdint.h>

/* A direction resumes reading below this (a quarter of the most it holds). */
#define PX_HELD_LOW (SOCKIT_PROXY_HELD_MAX / 4)

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
    bool paused;              /* its sender is paused (too much held) */
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
    px_dir dir[2];
    bool linked; /* the upstream connected: the chains exist */
    bool ending; /* closing: nothing more is relayed */
    const char *reason;
    char reason_buf[160];
} px_conn;

struct sockit_proxy {
    sockit_loop *loop;
    char name[64];
    int type;
    char *listen_host, *upstream_host;
    int listen_port, upstream_port;
    double connect_timeout;
    bool enabled, closing;
    sockit_listener *listener;
    sockit_addr bound;
    bool has_bound;
    sockit_toxic *chain[2][SOCKIT_PROXY_TOXICS_MAX];
    size_t nchain[2];
    px_conn *conns;
    unsigned long long next_id;
    sockit_proxy_stats stats;
    uint64_t rng;
    void (*on_event)(sockit_proxy *p, const sockit_proxy_event *ev, void *user);
    void *user;
};

/* ---- the proxy (proxy.c) ---- */
double sockit__proxy_random(sockit_proxy *p); /* uniform in [0, 1) */
void sockit__proxy_event(sockit_proxy *p, sockit_proxy_event_type type, px_conn *c);
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
/* The stream that receives direction d's bytes, and the one that sends them. */
sockit_stream *sockit__proxy_receiver(const px_dir *d);
sockit_stream *sockit__proxy_sender(const px_dir *d);
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

#endif
