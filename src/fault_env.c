/* Faults from the environment, for test builds only (CMake option
 * SOCKIT_FAULT_INJECTION; installed builds leave it off and this file out):
 *
 *   SOCKIT_FAULTS="eagain=20,short=50,rmax=7,eintr=10,seed=1"
 *
 * makes that percentage of the sends and receives fail with EAGAIN or EINTR, or
 * move only part of what was asked (short: a send takes 1 to len-1 bytes; rmax: a
 * stream receive reads at most N bytes). Every path that moves bytes must handle
 * partial progress, so whole suites run again under it and must still pass.
 *
 * Datagrams are never shortened: a datagram sent short is a different datagram,
 * and one read short is cut. So short and rmax reach only the stream calls (send,
 * recv, sendfile, and the io_uring stream send and receive completions, which
 * sys.c reports as SEND/SENDMSG with a length and RECV); sendto, recvfrom,
 * sendmsg and recvmsg get only EAGAIN and EINTR. Accepts, connects, polls and
 * allocations are left alone: their faults have tests of their own.
 *
 * A malformed value is a one-line error on stderr and exit status 2 at load time:
 * a fault run that silently injects nothing would pass for the wrong reason. */
#include "sys.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    unsigned eagain, eintr, shorten; /* percentages */
    size_t rmax;                     /* 0: no cap */
    uint64_t seed;
} faults;

static atomic_uint_fast64_t next_thread_seed;

/* Each thread rolls its own dice (xorshift64*), seeded once from the run's seed, so
 * no roll takes a lock or races another thread's. */
static uint64_t roll(void)
{
    static _Thread_local uint64_t state;
    if (state == 0) {
        uint64_t k = atomic_fetch_add(&next_thread_seed, 1) + 1;
        state = (faults.seed ^ (k * 0x9E3779B97F4A7C15ull)) | 1;
    }
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
}

static bool chance(unsigned percent) { return percent > 0 && roll() % 100 < percent; }

static int inject(sockit__sysop op, size_t *len)
{
    switch (op) {
    case SOCKIT__SYS_SEND:
    case SOCKIT__SYS_RECV:
    case SOCKIT__SYS_SENDTO:
    case SOCKIT__SYS_RECVFROM:
    case SOCKIT__SYS_SENDMSG:
    case SOCKIT__SYS_RECVMSG:
    case SOCKIT__SYS_SENDFILE:
        break;
    default:
        return 0;
    }
    if (chance(faults.eintr))
        return EINTR;
    if (chance(faults.eagain))
        return EAGAIN;
    bool sends_stream = op == SOCKIT__SYS_SEND || op == SOCKIT__SYS_SENDFILE ||
                        op == SOCKIT__SYS_SENDMSG; /* SENDMSG has a length only for streams */
    if (sends_stream && *len > 1 && chance(faults.shorten))
        *len = 1 + (size_t)(roll() % (*len - 1));
    if (op == SOCKIT__SYS_RECV && faults.rmax > 0 && *len > faults.rmax)
        *len = faults.rmax;
    return 0;
}

static void bad(const char *item, const char *why)
{
    fprintf(stderr, "SOCKIT_FAULTS: '%s': %s\n", item, why);
    exit(2);
}

static unsigned long long number(const char *item, const char *text, unsigned long long max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (text[0] == '\0' || text[0] == '-' || *end != '\0' || errno != 0 || v > max)
        bad(item, max == 100 ? "not a percentage 0-100" : "not a number");
    return v;
}

static void parse(char *spec)
{
    for (char *save = NULL, *item = strtok_r(spec, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (eq == NULL)
            bad(item, "expected NAME=VALUE");
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(item, "eagain") == 0)
            faults.eagain = (unsigned)number(item, v, 100);
        else if (strcmp(item, "eintr") == 0)
            faults.eintr = (unsigned)number(item, v, 100);
        else if (strcmp(item, "short") == 0)
            faults.shorten = (unsigned)number(item, v, 100);
        else if (strcmp(item, "rmax") == 0)
            faults.rmax = (size_t)number(item, v, SIZE_MAX);
        else if (strcmp(item, "seed") == 0)
            faults.seed = number(item, v, UINT64_MAX);
        else
            bad(item, "unknown fault (eagain, eintr, short, rmax, seed)");
    }
}

void sockit__faults_from_environment(void)
{
    const char *spec = getenv("SOCKIT_FAULTS");
    if (spec == NULL || spec[0] == '\0')
        return;
    char copy[256];
    if (strlen(spec) >= sizeof copy)
        bad(spec, "too long");
    strcpy(copy, spec);
    faults.seed = 1;
    parse(copy);
    sockit__set_fault_hook(inject);
}
