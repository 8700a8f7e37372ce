/* Named proxies: each a sockit_proxy, with the texts toxiproxy reports. */
#include "registry.h"

#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
fail(registry_error *err, int status, const char *fmt, ...)
{
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

int registry_protocol_parse(const char *text)
{
    if (strcmp(text, "tcp") == 0)
        return SOCK_STREAM;
    if (strcmp(text, "udp") == 0)
        return SOCK_DGRAM;
    return -1;
}

const char *registry_protocol_name(int type) { return type == SOCK_DGRAM ? "udp" : "tcp"; }

registry_entry *registry_find(const registry *r, const char *name)
{
    for (registry_entry *e = r->head; e != NULL; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

/* toxiproxy listens on what it is given; an empty listen is a free port. We keep
 * an empty host on loopback: an API client that forgets the host should not open
 * a port to the network. */
static int split(const char *field, const char *text, bool listening, int type, hostport *out,
                 registry_error *err)
{
    char why[512];
    if (hostport_split(text[0] != '\0' ? text : "127.0.0.1:0", listening ? HOSTPORT_LISTENER : 0,
                       out, why, sizeof why) < 0) {
        fail(err, 400, "bad request body: %s %s", field, why);
        return -1;
    }
    if (out->is_unix) {
        fail(err, 400, "bad request body: %s '%s': %s addresses only", field, text,
             type == SOCK_DGRAM ? "UDP" : "TCP");
        return -1;
    }
    if (out->port < (listening ? 0 : 1)) {
        fail(err, 400, "bad request body: %s '%s': no port", field, text);
        return -1;
    }
    return 0;
}

static void note_bound(registry_entry *e)
{
    sockit_addr a;
    if (sockit_proxy_address(e->proxy, &a) == 0)
        cli_addr_text(&a, e->listen, sizeof e->listen);
}

static sockit_proxy *start(registry *r, const char *name, const hostport *l, const hostport *u,
                           int type, bool enabled, registry_error *err)
{
    sockit_proxy_config cfg = {
        .name = name,
        .type = type,
        .listen_host = l->host[0] != '\0' ? l->host : "127.0.0.1",
        .listen_port = l->port,
        .upstream_host = u->host,
        .upstream_port = u->port,
        .disabled = !enabled,
        .connect_timeout = r->connect_timeout,
        .idle_timeout = r->idle_timeout,
        .max_clients = r->max_clients,
        .seed = r->seed,
        .on_event = r->on_event,
    };
    if (type == SOCK_STREAM) {
        cfg.listen_tls = r->listen_tls;
        cfg.upstream_tls = r->upstream_tls;
        cfg.upstream_tls_name = r->upstream_tls_name;
    }
    sockit_proxy *p = sockit_proxy_new(r->loop, &cfg);
    if (p == NULL)
        fail(err, 500, "%s", sockit_errmsg());
    return p;
}

registry_entry *registry_create(registry *r, const char *name, const char *listen,
                                const char *upstream, int type, bool enabled, registry_error *err)
{
    if (name == NULL || name[0] == '\0') {
        fail(err, 400, "missing required field: name");
        return NULL;
    }
    if (upstream == NULL || upstream[0] == '\0') {
        fail(err, 400, "missing required field: upstream");
        return NULL;
    }
    if (strlen(name) >= REGISTRY_NAME_MAX || strlen(upstream) >= REGISTRY_ADDR_MAX ||
        (listen != NULL && strlen(listen) >= REGISTRY_ADDR_MAX)) {
        fail(err, 400, "bad request body: a name or address too long");
        return NULL;
    }
    if (registry_find(r, name) != NULL) {
        fail(err, 409, "proxy already exists");
        return NULL;
    }
    if (r->n >= REGISTRY_PROXIES_MAX) {
        fail(err, 400, "bad request body: already %d proxies", REGISTRY_PROXIES_MAX);
        return NULL;
    }
    hostport l, u;
    if (type != SOCK_STREAM && type != SOCK_DGRAM) {
        fail(err, 400, "bad request body: protocol: tcp or udp");
        return NULL;
    }
    if (split("listen", listen != NULL ? listen : "", true, type, &l, err) < 0 ||
        split("upstream", upstream, false, type, &u, err) < 0)
        return NULL;
    registry_entry *e = calloc(1, sizeof *e);
    if (e == NULL) {
        fail(err, 500, "out of memory");
        return NULL;
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->listen, sizeof e->listen, "%s", listen != NULL ? listen : "");
    snprintf(e->given, sizeof e->given, "%s", e->listen);
    snprintf(e->upstream, sizeof e->upstream, "%s", upstream);
    e->type = type;
    e->proxy = start(r, name, &l, &u, type, enabled, err);
    if (e->proxy == NULL) {
        free(e);
        return NULL;
    }
    note_bound(e);
    registry_entry **tail = &r->head;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = e;
    r->n++;
    return e;
}

static bool same_listen(const registry_entry *e, const char *listen)
{
    return strcmp(e->listen, listen) == 0 || strcmp(e->given, listen) == 0;
}

bool registry_differs(const registry_entry *e, const char *listen, const char *upstream, int type)
{
    return !same_listen(e, listen) || strcmp(e->upstream, upstream) != 0 || e->type != type;
}

int registry_update(registry *r, registry_entry *e, const char *listen, const char *upstream,
                    bool enabled, registry_error *err)
{
    hostport l, u;
    if (split("listen", listen, true, e->type, &l, err) < 0 ||
        split("upstream", upstream, false, e->type, &u, err) < 0)
        return -1;
    if (strlen(listen) >= REGISTRY_ADDR_MAX || strlen(upstream) >= REGISTRY_ADDR_MAX) {
        fail(err, 400, "bad request body: an address too long");
        return -1;
    }
    if (!same_listen(e, listen)) {
        /* A new listener, with the toxics of the old one; the old one lets go of its
         * port first, since the new address may name the same. */
        bool was = sockit_proxy_enabled(e->proxy);
        sockit_proxy_set_enabled(e->proxy, false);
        sockit_proxy *p = start(r, e->name, &l, &u, e->type, enabled, err);
        if (p == NULL) {
            if (was)
                sockit_proxy_set_enabled(e->proxy, true);
            return -1;
        }
        const sockit_toxic *t;
        for (size_t i = 0; (t = sockit_proxy_toxic_at(e->proxy, i)) != NULL; i++)
            sockit_proxy_add_toxic(p, t);
        sockit_proxy_close(e->proxy);
        e->proxy = p;
        snprintf(e->listen, sizeof e->listen, "%s", listen);
        snprintf(e->given, sizeof e->given, "%s", listen);
        snprintf(e->upstream, sizeof e->upstream, "%s", upstream);
        note_bound(e);
        return 0;
    }
    if (strcmp(e->upstream, upstream) != 0) {
        if (sockit_proxy_set_upstream(e->proxy, u.host, u.port) < 0) {
            fail(err, 400, "%s", sockit_errmsg());
            return -1;
        }
        snprintf(e->upstream, sizeof e->upstream, "%s", upstream);
    }
    if (sockit_proxy_set_enabled(e->proxy, enabled) < 0) {
        fail(err, 500, "%s", sockit_errmsg());
        return -1;
    }
    note_bound(e);
    return 0;
}

void registry_remove(registry *r, registry_entry *e)
{
    for (registry_entry **at = &r->head; *at != NULL; at = &(*at)->next) {
        if (*at == e) {
            *at = e->next;
            r->n--;
            break;
        }
    }
    sockit_proxy_close(e->proxy);
    free(e);
}

int registry_reset(registry *r, registry_error *err)
{
    for (registry_entry *e = r->head; e != NULL; e = e->next) {
        if (sockit_proxy_set_enabled(e->proxy, true) < 0) {
            fail(err, 500, "%s", sockit_errmsg());
            return -1;
        }
        note_bound(e);
        sockit_proxy_remove_toxics(e->proxy);
    }
    return 0;
}

void registry_close_all(registry *r)
{
    while (r->head != NULL)
        registry_remove(r, r->head);
}
