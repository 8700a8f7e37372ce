/* Log-linear latency histogram; see histogram.h for the error bound. */
#include "histogram.h"

#include <string.h>

void histogram_init(histogram *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static unsigned top_bit(uint64_t v) { return 63u - (unsigned)__builtin_clzll(v); }

unsigned histogram_index(uint64_t value)
{
    if (value < HISTOGRAM_SUB)
        return (unsigned)value;
    /* shift keeps the top SUB_BITS + 1 bits: the leading 1 and SUB_BITS below it. */
    unsigned shift = top_bit(value) - HISTOGRAM_SUB_BITS;
    unsigned sub = (unsigned)(value >> shift) - HISTOGRAM_SUB;
    return (shift + 1) * HISTOGRAM_SUB + sub;
}

uint64_t histogram_bucket_max(unsigned index)
{
    if (index < HISTOGRAM_SUB)
        return index;
    unsigned shift = index / HISTOGRAM_SUB - 1;
    uint64_t sub = index % HISTOGRAM_SUB;
    uint64_t low = (HISTOGRAM_SUB + sub) << shift;
    return low + ((UINT64_C(1) << shift) - 1);
}

void histogram_record(histogram *h, uint64_t value)
{
    h->buckets[histogram_index(value)]++;
    h->count++;
    h->sum += (long double)value;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

void histogram_merge(histogram *into, const histogram *from)
{
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->count > 0) {
        if (from->min < into->min)
            into->min = from->min;
        if (from->max > into->max)
            into->max = from->max;
    }
}

uint64_t histogram_percentile(const histogram *h, double p)
{
    if (h->count == 0)
        return 0;
    if (!(p > 0))
        return h->min;
    if (p >= 100)
        return h->max;
    /* The rank of the value asked for, counting from 1, rounded to the nearest: a
     * ceiling would turn 99.9% of 50,000 (49950.0000001 in binary) into 49951. */
    uint64_t rank = (uint64_t)((long double)p / 100.0L * (long double)h->count + 0.5L);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = histogram_bucket_max(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

double histogram_mean(const histogram *h)
{
    return h->count == 0 ? 0.0 : (double)(h->sum / (long double)h->count);
}
