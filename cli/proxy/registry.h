/* The named proxies of one `sockit proxy` process, as toxiproxy's API and config
 * file see them: name, listen and upstream texts, enabled, toxics, and our
 * protocol (tcp or udp). Failures come back as an HTTP status and toxiproxy's
 * message, so the API can pass them on. */
#ifndef SOCKIT_CLI_PROXY_REGISTRY_H
#define SOCKIT_CLI_PROXY_REGISTRY_H

#include <sockit_proxy.h>

#include <stdbool.h>
#include <stddef.h>

#define REGISTRY_NAME_MAX 128
#define REGISTRY_ADDR_MAX 1100
/* Proxies at most in one process: each holds a listener, and the descriptors
 * are better kept for the connections. */
#define REGISTRY_PROXIES_MAX 1000

typedef struct registry_entry {
    struct registry_entry *next;
    char name[REGISTRY_NAME_MAX];
    char listen[REGISTRY_ADDR_MAX];   /* the address it listens on once bound, else as given */
    char given[REGISTRY_ADDR_MAX];    /* the listen text as the client gave it */
    char upstream[REGISTRY_ADDR_MAX]; /* as given */
    int type;                         /* SOCK_STREAM (tcp) or SOCK_DGRAM (udp), for good */
    sockit_proxy *proxy;
} registry_entry;

typedef struct registry {
    sockit_loop *loop;
    registry_entry *head; /* in the order made */
    size_t n;
    unsigned long long seed;
    double connect_timeout;
    double idle_timeout; /* for every UDP proxy (0: the library's 60 s) */
    int max_clients;     /* for every UDP proxy (0: the library's 1024) */
    void (*on_event)(sockit_proxy *p, const sockit_proxy_event *ev, void *user);
    /* TLS for every TCP proxy: to its clients (a server context), to its upstream
     * (a client context, checking upstream_tls_name or else the upstream's host). */
    sockit_tls_ctx *listen_tls, *upstream_tls;
    const char *upstream_tls_name;
} registry;

/* A failure: the HTTP status and message the API answers with. */
typedef struct registry_error {
    int status;
    char message[512];
} registry_error;

/* "tcp" -> SOCK_STREAM, "udp" -> SOCK_DGRAM, anything else -1; and back. */
int registry_protocol_parse(const char *text);
const char *registry_protocol_name(int type);

registry_entry *registry_find(const registry *r, const char *name);
/* Makes and starts a proxy of type SOCK_STREAM or SOCK_DGRAM. NULL with err: 400
 * (a field missing or bad), 409 (the name is taken), 500 (it cannot listen: the
 * system's reason). */
registry_entry *registry_create(registry *r, const char *name, const char *listen,
                                const char *upstream, int type, bool enabled, registry_error *err);
/* Changes a proxy's fields as toxiproxy's update does: a new listen address or
 * upstream drops its connections (the toxics stay); enabled takes it down or up.
 * The protocol stays (a proxy's toxics are for its protocol). 0, or -1 with err. */
int registry_update(registry *r, registry_entry *e, const char *listen, const char *upstream,
                    bool enabled, registry_error *err);
/* Whether listen, upstream or type differ from e's (populate replaces only
 * those); a listen equal to the text given or to the address bound is the same. */
bool registry_differs(const registry_entry *e, const char *listen, const char *upstream, int type);
void registry_remove(registry *r, registry_entry *e);
/* Every proxy enabled and without toxics (POST /reset). 0, or -1 with err. */
int registry_reset(registry *r, registry_error *err);
void registry_close_all(registry *r);

#endif
