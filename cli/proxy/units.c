/* Quantities with units: a number, then an optional unit from a table. */
#include "units.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct unit {
    const char *name;
    double factor;
} unit;

/* Reads "NUMBER[UNIT]" where UNIT is one of table's names ("" for a bare number,
 * which must be in the table too). */
static int read_quantity(const char *text, const unit *table, const char *what, double *out,
                         char *why, size_t size)
{
    if (text == NULL || *text == '\0') {
        snprintf(why, size, "'': not %s", what);
        return -1;
    }
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno != 0 || !isfinite(v) || v < 0 || strncasecmp(text, "0x", 2) == 0) {
        snprintf(why, size, "'%s': not %s", text, what);
        return -1;
    }
    for (const unit *u = table; u->name != NULL; u++) {
        if (strcmp(end, u->name) == 0) {
            *out = v * u->factor;
            return 0;
        }
    }
    snprintf(why, size, "'%s': unknown unit '%s' for %s", text, end, what);
    return -1;
}

static int bounded(const char *text, double v, long long max, const char *unit_name, long long *out,
                   char *why, size_t size)
{
    if (v > (double)max) {
        snprintf(why, size, "'%s': more than %lld %s", text, max, unit_name);
        return -1;
    }
    *out = (long long)v;
    return 0;
}

int units_time(const char *text, double unit_s, long long max, long long *out, char *why,
               size_t size)
{
    const unit table[] = {{"", unit_s}, {"us", 1e-6}, {"ms", 1e-3}, {"s", 1},
                          {"m", 60},    {"h", 3600},  {NULL, 0}};
    double secs;
    if (read_quantity(text, table, "a time (100ms, 1.5s, 250us)", &secs, why, size) < 0)
        return -1;
    return bounded(text, round(secs / unit_s), max, unit_s == 1e-6 ? "us" : "ms", out, why, size);
}

int units_rate(const char *text, long long max, long long *out, char *why, size_t size)
{
    const unit table[] = {{"", 1},          {"KB/s", 1},         {"kB/s", 1},   {"K", 1},
                          {"MB/s", 1000},   {"M", 1000},         {"GB/s", 1e6}, {"G", 1e6},
                          {"KiB/s", 1.024}, {"MiB/s", 1048.576}, {"B/s", 1e-3}, {NULL, 0}};
    double kb;
    if (read_quantity(text, table, "a rate (100KB/s, 2MB/s)", &kb, why, size) < 0)
        return -1;
    return bounded(text, ceil(kb), max, "KB/s", out, why, size);
}

int units_size(const char *text, long long max, long long *out, char *why, size_t size)
{
    const unit table[] = {
        {"", 1},     {"B", 1},         {"K", 1e3}, {"KB", 1e3}, {"KiB", 1024},         {"M", 1e6},
        {"MB", 1e6}, {"MiB", 1048576}, {"G", 1e9}, {"GB", 1e9}, {"GiB", 1073741824.0}, {NULL, 0}};
    double bytes;
    if (read_quantity(text, table, "a size in bytes (1500, 64KiB, 1GB)", &bytes, why, size) < 0)
        return -1;
    if (bytes != floor(bytes)) {
        snprintf(why, size, "'%s': not a whole number of bytes", text);
        return -1;
    }
    return bounded(text, bytes, max, "bytes", out, why, size);
}
