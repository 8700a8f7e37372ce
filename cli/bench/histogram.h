/* A latency histogram with bounded relative error (log-linear buckets, as in
 * HdrHistogram): values below 2^HISTOGRAM_SUB_BITS are exact, larger ones fall in
 * buckets whose width is at most 1/2^HISTOGRAM_SUB_BITS of their value (< 0.8%).
 * Fixed size, no allocation: recording is an index computation and an increment,
 * cheap enough for every request of a load generator. */
#ifndef SOCKIT_CLI_HISTOGRAM_H
#define SOCKIT_CLI_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_SUB_BITS 7
#define HISTOGRAM_SUB      (1u << HISTOGRAM_SUB_BITS)
/* One linear range below 2^SUB_BITS, then one per power of two up to 2^64. */
#define HISTOGRAM_BUCKETS ((64 - HISTOGRAM_SUB_BITS + 1) * HISTOGRAM_SUB)

typedef struct histogram {
    uint64_t count;
    uint64_t min, max;
    long double sum; /* for the mean; a double would lose nanoseconds past 2^53 */
    uint64_t buckets[HISTOGRAM_BUCKETS];
} histogram;

void histogram_init(histogram *h);
void histogram_record(histogram *h, uint64_t value);
/* Adds every value recorded in from (per-thread histograms into one). */
void histogram_merge(histogram *into, const histogram *from);
/* The value at percentile p (0 < p <= 100): the value of rank round(p% of count)
 * in sorted order, reported as the top of its bucket (so at most 1/128 above it)
 * and never above the largest value recorded. 0 for an empty histogram. */
uint64_t histogram_percentile(const histogram *h, double p);
double histogram_mean(const histogram *h);

/* The bucket of a value, and the largest value of a bucket (exposed for tests). */
unsigned histogram_index(uint64_t value);
uint64_t histogram_bucket_max(unsigned index);

#endif
