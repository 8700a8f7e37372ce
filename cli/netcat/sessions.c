/* The session table (sessions.h): chained buckets, doubled whenever the sessions
 * outnumber them (never past the power of two that fits max), so chains stay short
 * on average whatever the table grows to, and memory follows the sessions in use,
 * not the limit. The hash is keyed with a per-table seed: a sender choosing its
 * source ports cannot plan which addresses collide. */
#include "sessions.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIRST_BUCKETS 64

struct sessions {
    session **bucket;
    size_t nbuckets; /* a power of two */
    size_t max_buckets;
    size_t count, max;
    uint64_t seed;
    session *oldest, *newest; /* by last activity */
    session *first, *last;    /* by arrival */
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* Hashes exactly what sockit_addr_equal compares, so equal addresses meet. */
static size_t bucket_of(const sessions *t, const sockit_addr *a)
{
    uint64_t h = 1469598103934665603ULL ^ t->seed;
    int family = sockit_addr_family(a);
    h = fnv(h, &family, sizeof family);
    switch (family) {
    case AF_UNSPEC:
        break;
    case AF_INET:
        h = fnv(h, &a->u.in4.sin_port, sizeof a->u.in4.sin_port);
        h = fnv(h, &a->u.in4.sin_addr, sizeof a->u.in4.sin_addr);
        break;
    case AF_INET6:
        h = fnv(h, &a->u.in6.sin6_port, sizeof a->u.in6.sin6_port);
        h = fnv(h, &a->u.in6.sin6_addr, sizeof a->u.in6.sin6_addr);
        h = fnv(h, &a->u.in6.sin6_scope_id, sizeof a->u.in6.sin6_scope_id);
        break;
    case AF_UNIX: {
        /* A path name ends at its NUL; an abstract name (first byte NUL) is all of
         * its bytes. */
        size_t off = offsetof(struct sockaddr_un, sun_path), n = 0;
        if (a->len > off) {
            n = a->len - off;
            if (n > sizeof a->u.un.sun_path)
                n = sizeof a->u.un.sun_path;
            if (a->u.un.sun_path[0] != '\0')
                n = strnlen(a->u.un.sun_path, n);
        }
        h = fnv(h, a->u.un.sun_path, n);
        break;
    }
    default:
        h = fnv(h, &a->u, a->len <= sizeof a->u ? a->len : sizeof a->u);
    }
    h ^= h >> 29;
    return (size_t)h & (t->nbuckets - 1);
}

sessions *sessions_new(size_t max)
{
    sessions *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->max = max > 0 ? max : 1;
    t->max_buckets = FIRST_BUCKETS;
    while (t->max_buckets < t->max)
        t->max_buckets *= 2;
    t->nbuckets = FIRST_BUCKETS;
    t->bucket = calloc(t->nbuckets, sizeof *t->bucket);
    if (t->bucket == NULL) {
        free(t);
        return NULL;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    t->seed = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)t;
    return t;
}

void sessions_free(sessions *t)
{
    if (t == NULL)
        return;
    for (session *s = t->first, *next; s != NULL; s = next) {
        next = s->next;
        free(s);
    }
    free(t->bucket);
    free(t);
}

size_t sessions_count(const sessions *t) { return t->count; }
session *sessions_oldest(const sessions *t) { return t->oldest; }
session *sessions_first(const sessions *t) { return t->first; }

session *sessions_find(const sessions *t, const sockit_addr *a)
{
    for (session *s = t->bucket[bucket_of(t, a)]; s != NULL; s = s->chain)
        if (sockit_addr_equal(&s->addr, a))
            return s;
    return NULL;
}

/* Twice the buckets, every session rehashed. Out of memory, the table keeps its
 * size: chains get longer, lookups stay right. */
static void grow(sessions *t)
{
    session **bigger = calloc(t->nbuckets * 2, sizeof *bigger);
    if (bigger == NULL)
        return;
    free(t->bucket);
    t->bucket = bigger;
    t->nbuckets *= 2;
    for (session *s = t->first; s != NULL; s = s->next) {
        size_t b = bucket_of(t, &s->addr);
        s->chain = t->bucket[b];
        t->bucket[b] = s;
    }
}

static void append_active(sessions *t, session *s)
{
    s->newer = NULL;
    s->older = t->newest;
    if (t->newest != NULL)
        t->newest->newer = s;
    else
        t->oldest = s;
    t->newest = s;
}

static void unlink_active(sessions *t, session *s)
{
    if (s->older != NULL)
        s->older->newer = s->newer;
    else
        t->oldest = s->newer;
    if (s->newer != NULL)
        s->newer->older = s->older;
    else
        t->newest = s->older;
}

session *sessions_add(sessions *t, const sockit_addr *a, double now)
{
    if (t->count >= t->max)
        return NULL;
    session *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->addr = *a;
    s->last = now;
    if (t->count >= t->nbuckets && t->nbuckets < t->max_buckets)
        grow(t);
    size_t b = bucket_of(t, a);
    s->chain = t->bucket[b];
    t->bucket[b] = s;
    append_active(t, s);
    s->prev = t->last;
    if (t->last != NULL)
        t->last->next = s;
    else
        t->first = s;
    t->last = s;
    t->count++;
    return s;
}

void sessions_touch(sessions *t, session *s, double now)
{
    s->last = now;
    if (t->newest == s)
        return;
    unlink_active(t, s);
    append_active(t, s);
}

void sessions_remove(sessions *t, session *s)
{
    session **link = &t->bucket[bucket_of(t, &s->addr)];
    while (*link != s)
        link = &(*link)->chain;
    *link = s->chain;
    unlink_active(t, s);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        t->first = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    else
        t->last = s->prev;
    t->count--;
    free(s);
}
