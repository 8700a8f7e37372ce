/* Per-source token buckets (ratelimit.h) in one open-addressing hash table: twice as
 * many slots as sources, linear probing, deletion by shifting the rest of the run
 * back (no tombstones, so lookups never slow down with age). The hash is keyed with
 * a per-table seed, so which addresses collide cannot be planned from outside. */
#include "ratelimit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS (2 * RATELIMIT_SOURCES) /* a power of two */

typedef struct bucket {
    access_ip ip;
    double tokens;
    double last; /* when tokens was last brought up to date */
    bool used;
} bucket;

struct ratelimit {
    double n, secs;
    uint64_t seed;
    size_t count;
    bucket slot[SLOTS];
};

static size_t home(const ratelimit *r, const access_ip *ip)
{
    /* FNV-1a over the family and the address, started from the seed. */
    uint64_t h = 1469598103934665603ULL ^ r->seed;
    h = (h ^ (uint64_t)ip->family) * 1099511628211ULL;
    size_t len = ip->family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < len; i++)
        h = (h ^ ip->b[i]) * 1099511628211ULL;
    h ^= h >> 29;
    return (size_t)h & (SLOTS - 1);
}

static bool same(const access_ip *a, const access_ip *b)
{
    return a->family == b->family && memcmp(a->b, b->b, 16) == 0;
}

ratelimit *ratelimit_new(long n, double secs)
{
    ratelimit *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->n = (double)n;
    r->secs = secs;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->seed = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)r;
    return r;
}

void ratelimit_free(ratelimit *r) { free(r); }

size_t ratelimit_sources(const ratelimit *r) { return r->count; }

/* Empties slot i and moves back the entries after it that would otherwise be cut
 * off from their home slot. */
static void remove_at(ratelimit *r, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & (SLOTS - 1);
        if (!r->slot[j].used)
            break;
        size_t k = home(r, &r->slot[j].ip);
        /* The entry at j stays if its home lies cyclically within (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        r->slot[i] = r->slot[j];
        i = j;
    }
    r->slot[i].used = false;
    r->count--;
}

/* A source silent for secs has refilled its bucket: it is as good as unknown. */
static bool expired(const ratelimit *r, const bucket *b, double now)
{
    return now - b->last >= r->secs;
}

/* Makes room for one more source: every expired entry goes, or else the oldest. */
static void evict(ratelimit *r, double now)
{
    for (size_t i = 0; i < SLOTS;) {
        if (r->slot[i].used && expired(r, &r->slot[i], now))
            remove_at(r, i); /* slot i may now hold a moved entry: look again */
        else
            i++;
    }
    if (r->count < RATELIMIT_SOURCES)
        return;
    size_t oldest = 0;
    for (size_t i = 0; i < SLOTS; i++)
        if (r->slot[i].used && (!r->slot[oldest].used || r->slot[i].last < r->slot[oldest].last))
            oldest = i;
    remove_at(r, oldest);
}

bool ratelimit_take(ratelimit *r, const access_ip *ip, double now)
{
    size_t i = home(r, ip);
    while (r->slot[i].used && !same(&r->slot[i].ip, ip))
        i = (i + 1) & (SLOTS - 1);
    bucket *b = &r->slot[i];
    if (!b->used) {
        if (r->count == RATELIMIT_SOURCES) {
            evict(r, now);
            return ratelimit_take(r, ip, now); /* the slots moved: find the place again */
        }
        *b = (bucket){.ip = *ip, .tokens = r->n, .last = now, .used = true};
        r->count++;
    }
    double refill = (now - b->last) * r->n / r->secs;
    b->tokens = refill > r->n - b->tokens ? r->n : b->tokens + refill;
    b->last = now;
    /* A bucket refilled over exactly SECS may fall short of a whole token by a
     * rounding error; that is not a reason to refuse. */
    if (b->tokens < 1 - 1e-9)
        return false;
    b->tokens = b->tokens >= 1 ? b->tokens - 1 : 0;
    return true;
}
