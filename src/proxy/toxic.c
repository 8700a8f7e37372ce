/* Toxics as values: their names, defaults and the ranges of their attributes. */
#include "proxy_internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

static const char *const kind_names[] = {
    [SOCKIT_TOXIC_NONE] = NULL,
    [SOCKIT_TOXIC_LATENCY] = "latency",
    [SOCKIT_TOXIC_BANDWIDTH] = "bandwidth",
    [SOCKIT_TOXIC_SLOW_CLOSE] = "slow_close",
    [SOCKIT_TOXIC_TIMEOUT] = "timeout",
    [SOCKIT_TOXIC_RESET_PEER] = "reset_peer",
    [SOCKIT_TOXIC_SLICER] = "slicer",
    [SOCKIT_TOXIC_LIMIT_DATA] = "limit_data",
    [SOCKIT_TOXIC_LOSS] = "loss",
    [SOCKIT_TOXIC_DUPLICATE] = "duplicate",
    [SOCKIT_TOXIC_REORDER] = "reorder",
    [SOCKIT_TOXIC_TRUNCATE] = "truncate",
};
#define KINDS (sizeof kind_names / sizeof kind_names[0])

const char *sockit_toxic_kind_name(sockit_toxic_kind kind)
{
    if ((unsigned)kind >= KINDS || kind_names[kind] == NULL)
        return "unknown";
    return kind_names[kind];
}

sockit_toxic_kind sockit_toxic_kind_parse(const char *name)
{
    if (name == NULL)
        return SOCKIT_TOXIC_NONE;
    for (size_t k = 1; k < KINDS; k++)
        if (strcmp(kind_names[k], name) == 0)
            return (sockit_toxic_kind)k;
    return SOCKIT_TOXIC_NONE;
}

bool sockit_toxic_kind_for(sockit_toxic_kind kind, int type)
{
    switch (kind) {
    case SOCKIT_TOXIC_LATENCY:
    case SOCKIT_TOXIC_BANDWIDTH:
        return type == SOCK_STREAM || type == SOCK_DGRAM;
    case SOCKIT_TOXIC_SLOW_CLOSE:
    case SOCKIT_TOXIC_TIMEOUT:
    case SOCKIT_TOXIC_RESET_PEER:
    case SOCKIT_TOXIC_SLICER:
    case SOCKIT_TOXIC_LIMIT_DATA:
        return type == SOCK_STREAM;
    case SOCKIT_TOXIC_LOSS:
    case SOCKIT_TOXIC_DUPLICATE:
    case SOCKIT_TOXIC_REORDER:
    case SOCKIT_TOXIC_TRUNCATE:
        return type == SOCK_DGRAM;
    default:
        return false;
    }
}

int sockit_toxic_init(sockit_toxic *t, sockit_toxic_kind kind, sockit_proxy_direction direction)
{
    if (t == NULL || (unsigned)kind >= KINDS || kind == SOCKIT_TOXIC_NONE)
        return sockit__failf(-EINVAL, "toxic: no kind %d", (int)kind);
    if (direction != SOCKIT_UPSTREAM && direction != SOCKIT_DOWNSTREAM)
        return sockit__failf(-EINVAL, "toxic %s: no direction %d", kind_names[kind],
                             (int)direction);
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->direction = direction;
    t->toxicity = 1.0;
    t->gap = 1;
    if (kind == SOCKIT_TOXIC_REORDER)
        t->delay = 100;
    return 0;
}

#define HOUR_MS   3600000LL
#define SIZE_MAX_ 1073741824LL /* 1 GiB */

/* The toxic's name for a message: its kind until it has one. */
static const char *label(const sockit_toxic *t)
{
    return t->name[0] != '\0' ? t->name : sockit_toxic_kind_name(t->kind);
}

static int range(const sockit_toxic *t, const char *attr, long long v, long long lo, long long hi,
                 const char *unit)
{
    if (v >= lo && v <= hi)
        return 0;
    return sockit__failf(-EINVAL, "toxic %s: %s %lld: not in %lld-%lld%s%s", label(t), attr, v, lo,
                         hi, unit[0] ? " " : "", unit);
}

static int chance(const sockit_toxic *t, const char *attr, double v)
{
    if (v >= 0 && v <= 1) /* false for NaN */
        return 0;
    return sockit__failf(-EINVAL, "toxic %s: %s %g: not a probability in 0-1", label(t), attr, v);
}

int sockit_toxic_check(const sockit_toxic *t)
{
    if (t == NULL)
        return sockit__failf(-EINVAL, "toxic: none given");
    if (memchr(t->name, '\0', sizeof t->name) == NULL)
        return sockit__failf(-EINVAL, "toxic: a name of %d bytes or more", SOCKIT_TOXIC_NAME_MAX);
    if ((unsigned)t->kind >= KINDS || t->kind == SOCKIT_TOXIC_NONE)
        return sockit__failf(-EINVAL, "toxic %s: no kind %d", t->name, (int)t->kind);
    if (t->direction != SOCKIT_UPSTREAM && t->direction != SOCKIT_DOWNSTREAM)
        return sockit__failf(-EINVAL, "toxic %s: no direction %d (upstream or downstream)",
                             label(t), (int)t->direction);
    /* Kept zero now so that later attributes can take these slots. */
    for (size_t i = 0; i < sizeof t->reserved / sizeof t->reserved[0]; i++)
        if (t->reserved[i] != 0)
            return sockit__failf(-EINVAL, "toxic %s: reserved[%zu] is %lld, not 0", label(t), i,
                                 t->reserved[i]);
    int rc = chance(t, "toxicity", t->toxicity);
    if (rc < 0)
        return rc;
    switch (t->kind) {
    case SOCKIT_TOXIC_LATENCY:
        if ((rc = range(t, "latency", t->latency, 0, HOUR_MS, "ms")) < 0)
            return rc;
        return range(t, "jitter", t->jitter, 0, HOUR_MS, "ms");
    case SOCKIT_TOXIC_BANDWIDTH:
        return range(t, "rate", t->rate, 0, SIZE_MAX_, "KB/s");
    case SOCKIT_TOXIC_SLOW_CLOSE:
        return range(t, "delay", t->delay, 0, HOUR_MS, "ms");
    case SOCKIT_TOXIC_TIMEOUT:
    case SOCKIT_TOXIC_RESET_PEER:
        return range(t, "timeout", t->timeout, 0, HOUR_MS, "ms");
    case SOCKIT_TOXIC_SLICER:
        if ((rc = range(t, "average_size", t->average_size, 0, SIZE_MAX_, "bytes")) < 0)
            return rc;
        if ((rc = range(t, "size_variation", t->size_variation, 0,
                        t->average_size > 0 ? t->average_size - 1 : 0, "bytes")) < 0)
            return rc;
        return range(t, "delay", t->delay, 0, HOUR_MS * 1000, "us");
    case SOCKIT_TOXIC_LIMIT_DATA:
        return range(t, "bytes", t->bytes, 0, LLONG_MAX / 2, "");
    case SOCKIT_TOXIC_LOSS:
        if ((rc = chance(t, "probability", t->probability)) < 0)
            return rc;
        if ((rc = range(t, "burst", t->burst, 0, 1000000, "datagrams")) < 0)
            return rc;
        /* runs shorter than this cannot make up the share of losses asked for */
        /* less a hair: 0.9 / 0.1 is 9.000000000000002 */
        double need = t->probability < 1 ? t->probability / (1 - t->probability) - 1e-9 : 0;
        if (t->burst > 0 && need > (double)t->burst) {
            long long runs = (long long)need;
            runs += (double)runs < need;
            return sockit__failf(-EINVAL,
                                 "toxic %s: burst %lld: a loss of %g needs runs of %lld or "
                                 "more on average",
                                 label(t), t->burst, t->probability, runs);
        }
        return 0;
    case SOCKIT_TOXIC_DUPLICATE:
        return chance(t, "probability", t->probability);
    case SOCKIT_TOXIC_REORDER:
        if ((rc = chance(t, "probability", t->probability)) < 0)
            return rc;
        if ((rc = range(t, "gap", t->gap, 1, 1000, "datagrams")) < 0)
            return rc;
        return range(t, "delay", t->delay, 1, HOUR_MS, "ms");
    case SOCKIT_TOXIC_TRUNCATE:
        return range(t, "size", t->size, 0, 65535, "bytes");
    default:
        return 0;
    }
}
