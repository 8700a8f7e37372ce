/* The proxy: its listener, its toxics and the list of its connections. */
#include "../abi.h"
#include "proxy_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

double sockit__proxy_random(sockit_proxy *p)
{
    /* xorshift64*: cheap, and a seed gives a test the same draws every run */
    uint64_t x = p->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p->rng = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) * 0x1.0p-53;
}

static uint64_t seed_of(unsigned long long seed)
{
    uint64_t s = seed;
    if (s == 0 && getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s)
        s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return s != 0 ? s : 0x9E3779B97F4A7C15ULL;
}

void sockit__proxy_list_add(char *buf, size_t size, const char *name)
{
    size_t used = strlen(buf);
    int n = snprintf(buf + used, size - used, "%s%s", used > 0 ? "," : "", name);
    if (n < 0 || (size_t)n >= size - used)
        buf[used] = '\0';
}

void sockit__proxy_tell(sockit_proxy *p, const sockit_proxy_event *ev)
{
    if (p->on_event != NULL && !p->closing)
        p->on_event(p, ev, p->user);
}

void sockit__proxy_event(sockit_proxy *p, sockit_proxy_event_type type, px_conn *c)
{
    if (p->on_event == NULL || p->closing)
        return;
    char names[SOCKIT_PROXY_TOXICS_MAX * 8];
    names[0] = '\0';
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < c->dir[d].n; i++)
            if (c->dir[d].stages[i]->active)
                sockit__proxy_list_add(names, sizeof names, c->dir[d].stages[i]->toxic->name);
    sockit_proxy_event ev = {
        .type = type,
        .id = c->id,
        .client = &c->client_addr,
        .bytes_up = c->dir[SOCKIT_UPSTREAM].bytes,
        .bytes_down = c->dir[SOCKIT_DOWNSTREAM].bytes,
        .reason = c->reason != NULL ? c->reason : "",
        .toxics = names,
    };
    sockit__proxy_tell(p, &ev);
}

static void proxy_free(sockit_proxy *p)
{
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < p->nchain[d]; i++)
            free(p->chain[d][i]);
    free(p->listen_host);
    free(p->upstream_host);
    free(p->upstream_tls_name);
    sockit_tls_ctx_free(p->listen_tls);
    sockit_tls_ctx_free(p->upstream_tls);
    free(p->buckets);
    free(p);
}

void sockit__proxy_maybe_free(sockit_proxy *p)
{
    if (p->closing && !p->busy && p->conns == NULL && p->clients == NULL &&
        p->endpoints_closing == 0)
        proxy_free(p);
}

void sockit__proxy_conn_gone(sockit_proxy *p, px_conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    p->stats.open--;
    free(c);
    sockit__proxy_maybe_free(p);
}

static void end_all(sockit_proxy *p, const char *reason)
{
    /* conn_end never frees a connection at once (on_close runs from the loop) */
    for (px_conn *c = p->conns; c != NULL; c = c->next)
        sockit__proxy_conn_end(c, reason, PX_LINGER_UP);
    sockit__dgram_end_all(p, reason);
}

static void stop_listening(sockit_proxy *p)
{
    sockit_listener_close(p->listener);
    p->listener = NULL;
    sockit__dgram_unlisten(p);
}

static int start_listening(sockit_proxy *p)
{
    if (p->type == SOCK_DGRAM)
        return sockit__dgram_listen(p);
    int port = p->has_bound ? sockit_addr_port(&p->bound) : p->listen_port;
    sockit_server_options opts = {.type = SOCK_STREAM};
    sockit *s = sockit_create_server(p->listen_host, port, &opts);
    if (s == NULL)
        return sockit__failf(sockit_errcode(), "proxy %s: %s", p->name, sockit_errmsg());
    sockit_listener_config cfg = sockit__proxy_listener_template;
    cfg.user = p;
    cfg.tls = p->listen_tls;
    p->listener = sockit_listener_new(p->loop, s, &cfg);
    if (p->listener == NULL) {
        int code = sockit_errcode();
        sockit_close(s);
        return sockit__failf(code, "proxy %s: listen: %s", p->name, sockit_strerror(code));
    }
    sockit_listener_address(p->listener, &p->bound);
    p->has_bound = true;
    return 0;
}

static int check_port(const char *what, int port, int min)
{
    if (port < min || port > 65535)
        return sockit__failf(SOCKIT_EBADPORT, "proxy: %s port %d: not in %d-65535", what, port,
                             min);
    return 0;
}

sockit_proxy *sockit_proxy_new(sockit_loop *loop, const sockit_proxy_config *cfg)
{
    if (loop == NULL || cfg == NULL) {
        sockit__failf(-EINVAL, "proxy: no loop or no config");
        return NULL;
    }
    sockit_proxy_config own;
    if (sockit__struct_copy(&own, sizeof own, cfg, SOCKIT__BASE_PROXY_CONFIG, "proxy: config") < 0)
        return NULL;
    cfg = &own;
    const char *name = cfg->name != NULL ? cfg->name : "proxy";
    int type = cfg->type == 0 ? SOCK_STREAM : cfg->type;
    if (type != SOCK_STREAM && type != SOCK_DGRAM) {
        sockit__failf(-EINVAL, "proxy %s: type %d: not SOCK_STREAM or SOCK_DGRAM", name, type);
        return NULL;
    }
    if (cfg->upstream_host == NULL || cfg->upstream_host[0] == '\0') {
        sockit__failf(-EINVAL, "proxy %s: no upstream host", name);
        return NULL;
    }
    if (check_port("upstream", cfg->upstream_port, 1) < 0 ||
        check_port("listen", cfg->listen_port, 0) < 0)
        return NULL;
    if (isnan(cfg->connect_timeout) || cfg->connect_timeout < 0) {
        sockit__failf(-EINVAL, "proxy %s: connect timeout %g: not a time in seconds", name,
                      cfg->connect_timeout);
        return NULL;
    }
    if (isnan(cfg->idle_timeout) || cfg->idle_timeout < 0 || cfg->idle_timeout > 86400) {
        sockit__failf(-EINVAL, "proxy %s: idle timeout %g: not in 0-86400 seconds", name,
                      cfg->idle_timeout);
        return NULL;
    }
    if ((cfg->listen_tls != NULL || cfg->upstream_tls != NULL) && type != SOCK_STREAM) {
        sockit__failf(-EINVAL, "proxy %s: TLS applies to stream proxies (no DTLS)", name);
        return NULL;
    }
    if ((cfg->listen_tls != NULL && !sockit__tls_ctx_is_server(cfg->listen_tls)) ||
        (cfg->upstream_tls != NULL && sockit__tls_ctx_is_server(cfg->upstream_tls))) {
        sockit__failf(-EINVAL,
                      "proxy %s: listen_tls takes a server context, upstream_tls a "
                      "client one",
                      name);
        return NULL;
    }
    if (cfg->max_clients < 0 || cfg->max_clients > SOCKIT_PROXY_CLIENTS_MAX) {
        sockit__failf(-EINVAL, "proxy %s: max clients %d: not in 0-%d", name, cfg->max_clients,
                      SOCKIT_PROXY_CLIENTS_MAX);
        return NULL;
    }
    sockit_proxy *p = calloc(1, sizeof *p);
    if (p == NULL) {
        sockit__failf(-ENOMEM, "proxy %s: out of memory", name);
        return NULL;
    }
    p->loop = loop;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->type = type;
    p->listen_host = strdup(cfg->listen_host != NULL ? cfg->listen_host : "127.0.0.1");
    p->upstream_host = strdup(cfg->upstream_host);
    p->listen_port = cfg->listen_port;
    p->upstream_port = cfg->upstream_port;
    p->connect_timeout = cfg->connect_timeout > 0 ? cfg->connect_timeout : 10.0;
    p->idle_timeout = cfg->idle_timeout > 0 ? cfg->idle_timeout : PX_IDLE_DEFAULT;
    p->max_clients = cfg->max_clients > 0 ? cfg->max_clients : PX_CLIENTS_DEFAULT;
    p->rng = seed_of(cfg->seed);
    p->on_event = cfg->on_event;
    p->user = cfg->user;
    if (cfg->listen_tls != NULL)
        p->listen_tls = sockit__tls_ctx_ref(cfg->listen_tls);
    if (cfg->upstream_tls != NULL)
        p->upstream_tls = sockit__tls_ctx_ref(cfg->upstream_tls);
    if (cfg->upstream_tls_name != NULL)
        p->upstream_tls_name = strdup(cfg->upstream_tls_name);
    if (p->listen_host == NULL || p->upstream_host == NULL ||
        (cfg->upstream_tls_name != NULL && p->upstream_tls_name == NULL)) {
        proxy_free(p);
        sockit__failf(-ENOMEM, "proxy %s: out of memory", name);
        return NULL;
    }
    if (!cfg->disabled) {
        if (start_listening(p) < 0) {
            int code = sockit_errcode();
            char msg[512];
            snprintf(msg, sizeof msg, "%s", sockit_errmsg());
            proxy_free(p);
            sockit__failf(code, "%s", msg);
            return NULL;
        }
        p->enabled = true;
    }
    return p;
}

int sockit_proxy_address(const sockit_proxy *p, sockit_addr *out)
{
    if (p == NULL || out == NULL)
        return sockit__failf(-EINVAL, "proxy address: no proxy or no out");
    if (!p->has_bound)
        return sockit__failf(-ENOTCONN, "proxy %s: has not listened yet", p->name);
    *out = p->bound;
    return 0;
}

const char *sockit_proxy_name(const sockit_proxy *p) { return p != NULL ? p->name : NULL; }

int sockit_proxy_type(const sockit_proxy *p) { return p != NULL ? p->type : -EINVAL; }

bool sockit_proxy_enabled(const sockit_proxy *p) { return p != NULL && p->enabled; }

int sockit_proxy_set_enabled(sockit_proxy *p, bool enabled)
{
    if (p == NULL || p->closing)
        return sockit__failf(-EINVAL, "proxy: none");
    if (enabled == p->enabled)
        return 0;
    if (!enabled) {
        stop_listening(p);
        p->enabled = false;
        end_all(p, "proxy disabled");
        return 0;
    }
    int rc = start_listening(p);
    if (rc < 0)
        return rc;
    p->enabled = true;
    return 0;
}

int sockit_proxy_set_upstream(sockit_proxy *p, const char *host, int port)
{
    if (p == NULL || host == NULL || host[0] == '\0')
        return sockit__failf(-EINVAL, "proxy: no upstream host");
    int rc = check_port("upstream", port, 1);
    if (rc < 0)
        return rc;
    char *copy = strdup(host);
    if (copy == NULL)
        return sockit__failf(-ENOMEM, "proxy %s: out of memory", p->name);
    free(p->upstream_host);
    p->upstream_host = copy;
    p->upstream_port = port;
    end_all(p, "upstream changed");
    return 0;
}

static sockit_toxic *find(const sockit_proxy *p, const char *name, int *dir, size_t *index)
{
    if (name == NULL)
        return NULL;
    for (int d = 0; d < 2; d++) {
        for (size_t i = 0; i < p->nchain[d]; i++) {
            if (strcmp(p->chain[d][i]->name, name) == 0) {
                if (dir != NULL)
                    *dir = d;
                if (index != NULL)
                    *index = i;
                return p->chain[d][i];
            }
        }
    }
    return NULL;
}

int sockit_proxy_add_toxic(sockit_proxy *p, const sockit_toxic *t)
{
    if (p == NULL || t == NULL)
        return sockit__failf(-EINVAL, "proxy: add toxic: no proxy or no toxic");
    sockit_toxic v = *t;
    if (v.name[0] == '\0' && (unsigned)v.direction <= SOCKIT_DOWNSTREAM)
        snprintf(v.name, sizeof v.name, "%s_%s", sockit_toxic_kind_name(v.kind),
                 v.direction == SOCKIT_UPSTREAM ? "upstream" : "downstream");
    /* the wrong kind first: its attributes mean nothing on this proxy */
    if (v.kind != SOCKIT_TOXIC_NONE && (unsigned)v.kind <= SOCKIT_TOXIC_TRUNCATE &&
        !sockit_toxic_kind_for(v.kind, p->type))
        return sockit__failf(-EINVAL, "proxy %s: toxic %s: %s acts on %s proxies only", p->name,
                             v.name, sockit_toxic_kind_name(v.kind),
                             p->type == SOCK_STREAM ? "datagram" : "stream");
    int rc = sockit_toxic_check(&v);
    if (rc < 0)
        return rc;
    if (find(p, v.name, NULL, NULL) != NULL)
        return sockit__failf(-EEXIST, "proxy %s: toxic %s: the name is taken", p->name, v.name);
    int d = v.direction;
    if (p->nchain[0] + p->nchain[1] >= SOCKIT_PROXY_TOXICS_MAX)
        return sockit__failf(-ENOSPC, "proxy %s: toxic %s: already %d toxics", p->name, v.name,
                             SOCKIT_PROXY_TOXICS_MAX);
    sockit_toxic *x = malloc(sizeof *x);
    if (x == NULL)
        return sockit__failf(-ENOMEM, "proxy %s: out of memory", p->name);
    *x = v;
    p->chain[d][p->nchain[d]++] = x;
    for (px_conn *c = p->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->linked && !c->ending && sockit__chain_add(&c->dir[d], x) < 0)
            sockit__proxy_conn_end(c, "out of memory", PX_ABORT);
    }
    for (px_client *c = p->clients, *next; c != NULL; c = next) {
        next = c->next;
        if (!c->ending && sockit__dchain_add(&c->dir[d], x) < 0)
            sockit__client_end(c, "out of memory");
    }
    return 0;
}

int sockit_proxy_update_toxic(sockit_proxy *p, const char *name, const sockit_toxic *t)
{
    if (p == NULL || t == NULL)
        return sockit__failf(-EINVAL, "proxy: update toxic: no proxy or no toxic");
    int d;
    sockit_toxic *x = find(p, name, &d, NULL);
    if (x == NULL)
        return sockit__failf(-ENOENT, "proxy %s: toxic %s: no such toxic", p->name,
                             name != NULL ? name : "(null)");
    sockit_toxic v = *t;
    memcpy(v.name, x->name, sizeof v.name);
    v.kind = x->kind;
    v.direction = x->direction;
    int rc = sockit_toxic_check(&v);
    if (rc < 0)
        return rc;
    *x = v;
    for (px_conn *c = p->conns; c != NULL; c = c->next)
        if (c->linked && !c->ending)
            sockit__chain_update(&c->dir[d], x);
    for (px_client *c = p->clients; c != NULL; c = c->next)
        if (!c->ending)
            sockit__dchain_update(&c->dir[d], x);
    return 0;
}

static void remove_at(sockit_proxy *p, int d, size_t i)
{
    sockit_toxic *x = p->chain[d][i];
    memmove(&p->chain[d][i], &p->chain[d][i + 1], (p->nchain[d] - i - 1) * sizeof x);
    p->nchain[d]--;
    for (px_conn *c = p->conns; c != NULL; c = c->next)
        if (c->linked)
            sockit__chain_remove(&c->dir[d], x);
    for (px_client *c = p->clients; c != NULL; c = c->next)
        sockit__dchain_remove(&c->dir[d], x);
    free(x);
}

int sockit_proxy_remove_toxic(sockit_proxy *p, const char *name)
{
    if (p == NULL)
        return sockit__failf(-EINVAL, "proxy: remove toxic: no proxy");
    int d;
    size_t i;
    if (find(p, name, &d, &i) == NULL)
        return sockit__failf(-ENOENT, "proxy %s: toxic %s: no such toxic", p->name,
                             name != NULL ? name : "(null)");
    remove_at(p, d, i);
    return 0;
}

void sockit_proxy_remove_toxics(sockit_proxy *p)
{
    if (p == NULL)
        return;
    for (int d = 0; d < 2; d++)
        while (p->nchain[d] > 0)
            remove_at(p, d, 0);
}

const sockit_toxic *sockit_proxy_toxic(const sockit_proxy *p, const char *name)
{
    sockit_toxic *x = p != NULL ? find(p, name, NULL, NULL) : NULL;
    return x;
}

const sockit_toxic *sockit_proxy_toxic_at(const sockit_proxy *p, size_t i)
{
    if (p == NULL)
        return NULL;
    if (i < p->nchain[0])
        return p->chain[0][i];
    i -= p->nchain[0];
    return i < p->nchain[1] ? p->chain[1][i] : NULL;
}

void sockit_proxy_stats_get(const sockit_proxy *p, sockit_proxy_stats *out)
{
    if (out == NULL)
        return;
    /* Written whole, reserved room zeroed: the caller's struct is often uninitialized. */
    memset(out, 0, sizeof *out);
    if (p == NULL)
        return;
    *out = p->stats;
    memset(out->reserved, 0, sizeof out->reserved);
    out->held = p->held;
}

void sockit_proxy_close(sockit_proxy *p)
{
    if (p == NULL || p->closing)
        return;
    p->closing = true;
    p->busy = true;
    stop_listening(p);
    p->enabled = false;
    end_all(p, "proxy closed");
    p->busy = false;
    sockit__proxy_maybe_free(p);
}
