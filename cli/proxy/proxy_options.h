/* The command line of sockit proxy: its usage line, and the toxics its options ask
 * for (a plan), parsed, checked and added to a proxy. */
#ifndef SOCKIT_CLI_PROXY_OPTIONS_H
#define SOCKIT_CLI_PROXY_OPTIONS_H

#include <sockit_proxy.h>

#include <stdbool.h>

#define PROXY_USAGE                                                                                \
    "sockit proxy [--udp] [--latency TIME] [--jitter TIME] [--bandwidth RATE] "                    \
    "[--slow-close TIME] [--timeout TIME] [--reset-peer TIME] [--slicer SIZE[/VARIATION]] "        \
    "[--slice-delay TIME] [--limit-data SIZE] [--loss P] [--loss-burst N] [--duplicate P] "        \
    "[--reorder P] [--reorder-gap N] [--reorder-delay TIME] [--truncate SIZE] [--toxicity P] "     \
    "[--direction up|down|both] [--down] [--connect-timeout SECS] [--idle-timeout SECS] "          \
    "[--max-clients N] [--seed N] [--name NAME] [--api HOST:PORT] [--config FILE] [--json] "       \
    "[--tls --cert FILE [--key FILE]] [--upstream-tls [--upstream-ca FILE | --upstream-insecure] " \
    "[--upstream-sni NAME]] [LISTEN UPSTREAM]"

enum {
    HAS_LATENCY,
    HAS_BANDWIDTH,
    HAS_SLOW_CLOSE,
    HAS_TIMEOUT,
    HAS_RESET,
    HAS_SLICER,
    HAS_LIMIT,
    HAS_LOSS,
    HAS_DUPLICATE,
    HAS_REORDER,
    HAS_TRUNCATE,
    HAS_COUNT
};

typedef struct plan {
    long long latency, jitter, rate, slow_close, timeout, reset_peer, slice_size, slice_var,
        slice_delay, limit;
    double loss, duplicate, reorder;
    long long loss_burst, reorder_gap, reorder_delay, truncate;
    bool has[HAS_COUNT];
    double toxicity;
    int directions; /* bit 0 upstream, bit 1 downstream */
    /* The first option given of each kind, for the messages that refuse them once
     * every option is read (--udp may come last). */
    const char *tcp_only, *udp_only, *loss_extra, *reorder_extra;
} plan;

/* One toxic option (getopt's letter and argument) into the plan: 0 or the usage
 * error's status. */
int plan_option(int opt, const char *arg, plan *pl);
/* Notes the first option of a kind: *first_seen stays as it is once set. */
void plan_first(const char **first_seen, const char *option);
/* The library's own checks of the plan's toxics, before anything starts: a
 * refusal is bad usage. */
int plan_check(const plan *pl);
/* The plan's toxics for one direction, added to p: 0 or the failure's status. */
int plan_add_toxics(sockit_proxy *p, const plan *pl, sockit_proxy_direction dir);

#endif
