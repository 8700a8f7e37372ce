/* A datagram proxy's listening socket and its table of clients: each datagram
 * that reaches the listening socket goes to its sender's entry, made on the
 * sender's first datagram while the table has room. */
#include "proxy_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static void on_datagram(sockit_datagram *dg, const char *data, size_t len, const sockit_addr *from,
                        bool truncated, void *user);
static void on_error(sockit_datagram *dg, int code, void *user);
static void on_close(sockit_datagram *dg, void *user);
static const sockit_datagram_callbacks listen_callbacks = {
    .on_datagram = on_datagram, .on_error = on_error, .on_close = on_close};

/* ---- the table ----------------------------------------------------------------------- */

/* The address's bytes that name a sender: family, port and host. */
static size_t key_of(const sockit_addr *a, unsigned char out[20])
{
    if (sockit_addr_family(a) == AF_INET) {
        memcpy(out, &a->u.in4.sin_port, 2);
        memcpy(out + 2, &a->u.in4.sin_addr, 4);
        return 6;
    }
    if (sockit_addr_family(a) == AF_INET6) {
        memcpy(out, &a->u.in6.sin6_port, 2);
        memcpy(out + 2, &a->u.in6.sin6_addr, 16);
        memcpy(out + 18, &a->u.in6.sin6_scope_id, 2);
        return 20;
    }
    return 0;
}

/* FNV-1a from a key drawn per proxy, so that no sender can choose addresses that
 * all fall into one bucket. */
static size_t bucket_of(const sockit_proxy *p, const sockit_addr *a)
{
    unsigned char key[20];
    size_t n = key_of(a, key);
    uint64_t h = 0xcbf29ce484222325ULL ^ p->hash_key;
    for (size_t i = 0; i < n; i++) {
        h ^= key[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 29;
    return (size_t)h & (p->nbuckets - 1);
}

static px_client *find(const sockit_proxy *p, const sockit_addr *a, size_t bucket)
{
    for (px_client *c = p->buckets[bucket]; c != NULL; c = c->hnext)
        if (sockit_addr_equal(&c->addr, a))
            return c;
    return NULL;
}

void sockit__dgram_unlist(sockit_proxy *p, px_client *c)
{
    if (!c->in_table)
        return;
    for (px_client **at = &p->buckets[c->bucket]; *at != NULL; at = &(*at)->hnext) {
        if (*at == c) {
            *at = c->hnext;
            break;
        }
    }
    c->hnext = NULL;
    c->in_table = false;
    p->nclients--;
}

void sockit__dgram_gone(sockit_proxy *p, px_client *c)
{
    sockit__dgram_unlist(p, c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        p->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    p->stats.open--;
    free(c);
    sockit__proxy_maybe_free(p);
}

void sockit__dgram_end_all(sockit_proxy *p, const char *reason)
{
    /* client_end frees an entry from the loop, except out of memory: next is read first */
    for (px_client *c = p->clients, *next; c != NULL; c = next) {
        next = c->next;
        sockit__client_end(c, reason);
    }
}

/* ---- the listening socket ---------------------------------------------------------- */

static void on_datagram(sockit_datagram *dg, const char *data, size_t len, const sockit_addr *from,
                        bool truncated, void *user)
{
    (void)dg;
    (void)truncated; /* the endpoint takes 64 KiB: no UDP datagram is cut */
    sockit_proxy *p = user;
    if (from == NULL || p->endpoint == NULL)
        return;
    size_t b = bucket_of(p, from);
    px_client *c = find(p, from, b);
    if (c == NULL) {
        /* A full table drops a new client's datagrams until an entry expires: the
         * clients it serves keep being served. */
        if (p->nclients >= (size_t)p->max_clients || (c = sockit__client_new(p, from)) == NULL) {
            p->stats.dropped++;
            return;
        }
        c->bucket = b;
        c->hnext = p->buckets[b];
        p->buckets[b] = c;
        c->in_table = true;
        p->nclients++;
    }
    if (c->refused) {
        p->stats.dropped++;
        return;
    }
    sockit__client_take(c, data, len);
}

static void on_error(sockit_datagram *dg, int code, void *user)
{
    /* A reply the kernel would not send to a client: that datagram is lost. */
    (void)dg;
    (void)code;
    sockit_proxy *p = user;
    p->stats.dropped++;
}

static void on_close(sockit_datagram *dg, void *user)
{
    (void)dg;
    sockit_proxy *p = user;
    p->endpoints_closing--;
    sockit__proxy_maybe_free(p);
}

int sockit__dgram_listen(sockit_proxy *p)
{
    if (p->buckets == NULL) {
        size_t n = 16;
        while (n < (size_t)p->max_clients)
            n *= 2;
        p->buckets = calloc(n, sizeof *p->buckets);
        if (p->buckets == NULL)
            return sockit__failf(-ENOMEM, "proxy %s: out of memory", p->name);
        p->nbuckets = n;
        p->hash_key = (uint64_t)(sockit__proxy_random(p) * 0x1.0p63);
    }
    int port = p->has_bound ? sockit_addr_port(&p->bound) : p->listen_port;
    sockit_server_options opts = {.type = SOCK_DGRAM};
    sockit *s = sockit_create_server(p->listen_host, port, &opts);
    if (s == NULL)
        return sockit__failf(sockit_errcode(), "proxy %s: %s", p->name, sockit_errmsg());
    p->endpoint = sockit_datagram_new(p->loop, s, &listen_callbacks, p);
    if (p->endpoint == NULL) {
        int code = sockit_errcode();
        sockit_close(s);
        return sockit__failf(code, "proxy %s: listen: %s", p->name, sockit_strerror(code));
    }
    sockit_datagram_address(p->endpoint, &p->bound);
    p->has_bound = true;
    return 0;
}

void sockit__dgram_unlisten(sockit_proxy *p)
{
    if (p->endpoint == NULL)
        return;
    p->endpoints_closing++;
    sockit_datagram_close(p->endpoint);
    p->endpoint = NULL;
}
