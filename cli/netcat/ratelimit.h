/* --conn-rate N/SECS of `sockit listen`: at most N connections per source address
 * within SECS, as one token bucket per source (N tokens, refilled at N per SECS), so
 * a source that keeps to the rate is never refused and one that bursts gets N and
 * then one every SECS/N.
 *
 * Memory is bounded: the table tracks at most RATELIMIT_SOURCES sources. A source
 * silent for SECS has a full bucket, the same as one never seen, so when the table
 * is full those entries go first; if none has been silent that long, the one seen
 * longest ago is forgotten (it starts again with a full bucket). So more than
 * RATELIMIT_SOURCES sources at once within one SECS weaken the limit, never the
 * memory. IPv4-mapped addresses count as the IPv4 address (access_ip_of). */
#ifndef SOCKIT_CLI_RATELIMIT_H
#define SOCKIT_CLI_RATELIMIT_H

#include "access.h"

#define RATELIMIT_SOURCES 4096

typedef struct ratelimit ratelimit;

/* A table allowing n connections (1 or more) per secs (> 0) seconds. NULL when out
 * of memory. */
ratelimit *ratelimit_new(long n, double secs);
/* A connection from ip at time now (seconds, monotonic, never going back): true and
 * counted when within the rate, false (not counted) when over it. */
bool ratelimit_take(ratelimit *r, const access_ip *ip, double now);
/* The sources tracked now, at most RATELIMIT_SOURCES. */
size_t ratelimit_sources(const ratelimit *r);
/* NULL is a no-op. */
void ratelimit_free(ratelimit *r);

#endif
