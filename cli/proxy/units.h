/* Quantities with units, as `sockit proxy`'s options and its API take them: times
 * ("100ms", "1.5s", "250us"; a bare number is in the unit the caller names, as
 * toxiproxy's attributes are), rates ("100KB/s", "2MB/s"; bare: KB/s) and sizes
 * ("1500", "64KiB", "1GB"). KB, MB and GB are powers of 1000, KiB, MiB and GiB of
 * 1024. Pure: no messages, the reason goes to why[size]. */
#ifndef SOCKIT_CLI_UNITS_H
#define SOCKIT_CLI_UNITS_H

#include <stddef.h>

/* A time as a whole number of `unit` seconds (1e-3: milliseconds, 1e-6:
 * microseconds), rounded to the nearest; bare numbers are in unit. At most max
 * units. Returns 0 or -1. */
int units_time(const char *text, double unit, long long max, long long *out, char *why,
               size_t size);
/* A rate in whole KB/s (1000 bytes a second), rounded up so that a rate is never 0
 * unless 0 was asked. At most max KB/s. */
int units_rate(const char *text, long long max, long long *out, char *why, size_t size);
/* A size in bytes, at most max. */
int units_size(const char *text, long long max, long long *out, char *why, size_t size);

#endif
