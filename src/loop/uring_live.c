/* The tags of a thread-bound ring's operations in flight (uring_internal.h): an
 * open-addressing set with linear probing, at most three quarters full, deletion by
 * shifting back (no tombstones, so a long-lived loop's probes never lengthen). A
 * tag is never 0 (it has its kind in the low bits), so 0 marks an empty slot. */
#include "uring_internal.h"

#ifdef SOCKIT_HAVE_URING

#include <errno.h>

static size_t home(const uring_live *s, uint64_t tag)
{
    /* Fibonacci hashing of the address part: tags are aligned objects. */
    return (size_t)(((tag >> 3) * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (s->cap - 1);
}

static void put(uring_live *s, uint64_t tag)
{
    size_t i = home(s, tag);
    while (s->slots[i] != 0)
        i = (i + 1) & (s->cap - 1);
    s->slots[i] = tag;
    s->n++;
}

static int resize(uring_live *s, size_t cap)
{
    uint64_t *old = s->slots;
    size_t old_cap = s->cap;
    uint64_t *slots = sockit__calloc(cap, sizeof *slots);
    if (slots == NULL)
        return -ENOMEM;
    s->slots = slots;
    s->cap = cap;
    s->n = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i] != 0)
            put(s, old[i]);
    sockit__free(old);
    return 0;
}

int sockit__uring_live_add(uring_live *s, uint64_t tag)
{
    if ((s->n + 1) * 4 > s->cap * 3) {
        int rc = resize(s, s->cap != 0 ? s->cap * 2 : 64);
        if (rc < 0)
            return rc;
    }
    put(s, tag);
    return 0;
}

void sockit__uring_live_remove(uring_live *s, uint64_t tag)
{
    if (s->n == 0)
        return;
    size_t mask = s->cap - 1, i = home(s, tag);
    while (s->slots[i] != tag) {
        if (s->slots[i] == 0)
            return;
        i = (i + 1) & mask;
    }
    /* Each later entry of the run that may move back into the hole does. */
    for (size_t j = (i + 1) & mask; s->slots[j] != 0; j = (j + 1) & mask) {
        size_t h = home(s, s->slots[j]);
        bool between = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!between) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i] = 0;
    s->n--;
}

void sockit__uring_live_free(uring_live *s)
{
    sockit__free(s->slots);
    s->slots = NULL;
    s->cap = s->n = 0;
}

#endif /* SOCKIT_HAVE_URING */
