/* The toxic options of sockit proxy: each parsed into the plan, with its units
 * and ranges, and the plan turned into the library's toxics. */
#include "proxy_options.h"

#include "cli.h"
#include "units.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TIME_MAX_MS 3600000LL /* toxics take at most an hour */

/* The toxics in the order they act: what ends or cuts the traffic first, then
 * what shapes it, then the delays. */
static const struct {
    int has;
    sockit_toxic_kind kind;
    const char *options; /* that set it, for messages */
} toxic_order[] = {
    {HAS_LIMIT, SOCKIT_TOXIC_LIMIT_DATA, "--limit-data"},
    {HAS_TIMEOUT, SOCKIT_TOXIC_TIMEOUT, "--timeout"},
    {HAS_RESET, SOCKIT_TOXIC_RESET_PEER, "--reset-peer"},
    {HAS_LOSS, SOCKIT_TOXIC_LOSS, "--loss/--loss-burst"},
    {HAS_DUPLICATE, SOCKIT_TOXIC_DUPLICATE, "--duplicate"},
    {HAS_TRUNCATE, SOCKIT_TOXIC_TRUNCATE, "--truncate"},
    {HAS_SLICER, SOCKIT_TOXIC_SLICER, "--slicer/--slice-delay"},
    {HAS_REORDER, SOCKIT_TOXIC_REORDER, "--reorder/--reorder-gap/--reorder-delay"},
    {HAS_BANDWIDTH, SOCKIT_TOXIC_BANDWIDTH, "--bandwidth"},
    {HAS_LATENCY, SOCKIT_TOXIC_LATENCY, "--latency/--jitter"},
    {HAS_SLOW_CLOSE, SOCKIT_TOXIC_SLOW_CLOSE, "--slow-close"},
};
#define TOXIC_KINDS (sizeof toxic_order / sizeof toxic_order[0])

static int bad(const char *option, const char *why)
{
    return cli_usage_error(PROXY_USAGE, "%s %s", option, why);
}

static int parse_time(const char *option, const char *text, double unit, long long *out)
{
    char why[256];
    if (units_time(text, unit, unit == 1e-6 ? TIME_MAX_MS * 1000 : TIME_MAX_MS, out, why,
                   sizeof why) < 0)
        return bad(option, why);
    return 0;
}

static int parse_probability(const char *option, const char *text, double *out)
{
    char *end;
    errno = 0;
    double p = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !(p >= 0 && p <= 1))
        return cli_usage_error(PROXY_USAGE, "%s '%s': not a probability in 0-1", option, text);
    *out = p;
    return 0;
}

static int parse_count(const char *option, const char *text, long min, long max, long long *out)
{
    long v;
    int rc = cli_parse_count(PROXY_USAGE, option, text, min, max, &v);
    *out = v;
    return rc;
}

static int parse_slicer(const char *text, plan *pl)
{
    char why[256], size[64];
    const char *slash = strchr(text, '/');
    size_t n = slash != NULL ? (size_t)(slash - text) : strlen(text);
    if (n >= sizeof size)
        return bad("--slicer", "too long");
    memcpy(size, text, n);
    size[n] = '\0';
    if (units_size(size, 1 << 30, &pl->slice_size, why, sizeof why) < 0)
        return bad("--slicer", why);
    pl->slice_var = 0;
    if (slash != NULL && units_size(slash + 1, 1 << 30, &pl->slice_var, why, sizeof why) < 0)
        return bad("--slicer", why);
    if (pl->slice_size < 1 || pl->slice_var >= pl->slice_size)
        return cli_usage_error(PROXY_USAGE,
                               "--slicer '%s': a size of 1 or more, and a "
                               "variation below it",
                               text);
    return 0;
}

/* Notes the first option of a kind: *first stays as it is once set. */
void plan_first(const char **first_seen, const char *option)
{
    if (*first_seen == NULL)
        *first_seen = option;
}

int plan_option(int opt, const char *arg, plan *pl)
{
    char why[256];
    switch (opt) {
    case 'L':
        pl->has[HAS_LATENCY] = true;
        return parse_time("--latency", arg, 1e-3, &pl->latency);
    case 'J':
        pl->has[HAS_LATENCY] = true;
        return parse_time("--jitter", arg, 1e-3, &pl->jitter);
    case 'B':
        pl->has[HAS_BANDWIDTH] = true;
        if (units_rate(arg, 1 << 30, &pl->rate, why, sizeof why) < 0)
            return bad("--bandwidth", why);
        return 0;
    case 'C':
        pl->has[HAS_SLOW_CLOSE] = true;
        plan_first(&pl->tcp_only, "--slow-close");
        return parse_time("--slow-close", arg, 1e-3, &pl->slow_close);
    case 'T':
        pl->has[HAS_TIMEOUT] = true;
        plan_first(&pl->tcp_only, "--timeout");
        return parse_time("--timeout", arg, 1e-3, &pl->timeout);
    case 'R':
        pl->has[HAS_RESET] = true;
        plan_first(&pl->tcp_only, "--reset-peer");
        return parse_time("--reset-peer", arg, 1e-3, &pl->reset_peer);
    case 'S':
        pl->has[HAS_SLICER] = true;
        plan_first(&pl->tcp_only, "--slicer");
        return parse_slicer(arg, pl);
    case 'D':
        plan_first(&pl->tcp_only, "--slice-delay");
        return parse_time("--slice-delay", arg, 1e-6, &pl->slice_delay);
    case 'M':
        pl->has[HAS_LIMIT] = true;
        plan_first(&pl->tcp_only, "--limit-data");
        if (units_size(arg, (long long)1 << 50, &pl->limit, why, sizeof why) < 0)
            return bad("--limit-data", why);
        return 0;
    case 'l':
        pl->has[HAS_LOSS] = true;
        plan_first(&pl->udp_only, "--loss");
        return parse_probability("--loss", arg, &pl->loss);
    case 'b':
        plan_first(&pl->udp_only, "--loss-burst");
        plan_first(&pl->loss_extra, "--loss-burst");
        return parse_count("--loss-burst", arg, 0, 1000000, &pl->loss_burst);
    case 'p':
        pl->has[HAS_DUPLICATE] = true;
        plan_first(&pl->udp_only, "--duplicate");
        return parse_probability("--duplicate", arg, &pl->duplicate);
    case 'r':
        pl->has[HAS_REORDER] = true;
        plan_first(&pl->udp_only, "--reorder");
        return parse_probability("--reorder", arg, &pl->reorder);
    case 'g':
        plan_first(&pl->udp_only, "--reorder-gap");
        plan_first(&pl->reorder_extra, "--reorder-gap");
        return parse_count("--reorder-gap", arg, 1, 1000, &pl->reorder_gap);
    case 'y': {
        plan_first(&pl->udp_only, "--reorder-delay");
        plan_first(&pl->reorder_extra, "--reorder-delay");
        int rc = parse_time("--reorder-delay", arg, 1e-3, &pl->reorder_delay);
        if (rc == 0 && pl->reorder_delay < 1)
            return cli_usage_error(PROXY_USAGE, "--reorder-delay '%s': 1ms or more", arg);
        return rc;
    }
    case 't':
        pl->has[HAS_TRUNCATE] = true;
        plan_first(&pl->udp_only, "--truncate");
        if (units_size(arg, 65535, &pl->truncate, why, sizeof why) < 0)
            return bad("--truncate", why);
        return 0;
    case 'P':
        return parse_probability("--toxicity", arg, &pl->toxicity);
    case 'd':
        if (strcmp(arg, "up") == 0 || strcmp(arg, "upstream") == 0)
            pl->directions = 1;
        else if (strcmp(arg, "down") == 0 || strcmp(arg, "downstream") == 0)
            pl->directions = 2;
        else if (strcmp(arg, "both") == 0)
            pl->directions = 3;
        else
            return cli_usage_error(PROXY_USAGE, "--direction '%s': not up, down or both", arg);
        return 0;
    }
    return 0;
}

/* The plan's toxic of a kind, for one direction. */
static void plan_toxic(const plan *pl, sockit_toxic_kind kind, sockit_proxy_direction dir,
                       sockit_toxic *t)
{
    sockit_toxic_init(t, kind, dir);
    t->toxicity = pl->toxicity;
    switch (kind) {
    case SOCKIT_TOXIC_LATENCY:
        t->latency = pl->latency;
        t->jitter = pl->jitter;
        break;
    case SOCKIT_TOXIC_BANDWIDTH:
        t->rate = pl->rate;
        break;
    case SOCKIT_TOXIC_SLOW_CLOSE:
        t->delay = pl->slow_close;
        break;
    case SOCKIT_TOXIC_TIMEOUT:
        t->timeout = pl->timeout;
        break;
    case SOCKIT_TOXIC_RESET_PEER:
        t->timeout = pl->reset_peer;
        break;
    case SOCKIT_TOXIC_SLICER:
        t->average_size = pl->slice_size;
        t->size_variation = pl->slice_var;
        t->delay = pl->slice_delay;
        break;
    case SOCKIT_TOXIC_LIMIT_DATA:
        t->bytes = pl->limit;
        break;
    case SOCKIT_TOXIC_LOSS:
        t->probability = pl->loss;
        t->burst = pl->loss_burst;
        break;
    case SOCKIT_TOXIC_DUPLICATE:
        t->probability = pl->duplicate;
        break;
    case SOCKIT_TOXIC_REORDER:
        t->probability = pl->reorder;
        t->gap = pl->reorder_gap;
        t->delay = pl->reorder_delay;
        break;
    case SOCKIT_TOXIC_TRUNCATE:
        t->size = pl->truncate;
        break;
    default:
        break;
    }
}

/* The library's own checks of the plan's toxics (a loss's burst against its
 * probability), before anything starts: a refusal is bad usage. */
int plan_check(const plan *pl)
{
    for (size_t i = 0; i < TOXIC_KINDS; i++) {
        if (!pl->has[toxic_order[i].has])
            continue;
        sockit_toxic t;
        plan_toxic(pl, toxic_order[i].kind, SOCKIT_DOWNSTREAM, &t);
        if (sockit_toxic_check(&t) < 0)
            return cli_usage_error(PROXY_USAGE, "%s: %s", toxic_order[i].options, sockit_errmsg());
    }
    return 0;
}

/* The toxics of the plan, for one direction, added to p. */
int plan_add_toxics(sockit_proxy *p, const plan *pl, sockit_proxy_direction dir)
{
    for (size_t i = 0; i < TOXIC_KINDS; i++) {
        if (!pl->has[toxic_order[i].has])
            continue;
        sockit_toxic t;
        plan_toxic(pl, toxic_order[i].kind, dir, &t);
        if (sockit_proxy_add_toxic(p, &t) < 0)
            return cli_fail_lib();
    }
    return 0;
}