/* The state of a Happy Eyeballs race (RFC 8305), shared by the blocking
 * sockit_create_connection (connect.c, which waits with poll) and the loop's
 * sockit_stream_connect (stream/connect_async.c, which waits with watchers and a
 * timer): the attempts in the order they start, how one starts and ends, and the
 * message that names every address tried. Internal. */
#ifndef SOCKIT_CONNECT_RACE_H
#define SOCKIT_CONNECT_RACE_H

#include "internal.h"

#include <poll.h>

/* RFC 8305 section 5 recommends 250 ms between connection attempts: long enough
 * for a healthy path to answer, short enough that a dead one costs little. */
#define SOCKIT__ATTEMPT_DELAY_NS (250 * 1000000LL)
/* Resolved addresses beyond this many are not tried. */
#define SOCKIT__RACE_MAX 16

typedef struct sockit__attempt {
    sockit_addr addr;
    int family;
    int fd;    /* -1 when not started or finished */
    int error; /* 0: not tried yet or in flight */
    bool started;
} sockit__attempt;

typedef struct sockit__race {
    sockit__attempt at[SOCKIT__RACE_MAX];
    size_t count;
    size_t next;     /* the next attempt to start */
    size_t inflight; /* attempts with fd >= 0 */
    const sockit_addr *source;
} sockit__race;

/* Fills r from n resolved addresses, families alternating (RFC 8305 section 4). */
void sockit__race_init(sockit__race *r, const sockit_addrinfo *ai, size_t n,
                       const sockit_addr *source);
/* Starts attempt r->next (non-blocking). Returns its index if it connected at once,
 * else -1: it is in flight (fd >= 0) or failed at once (error set). */
int sockit__race_start_next(sockit__race *r);
/* Ends an attempt with error: its descriptor is closed. */
void sockit__race_finish(sockit__race *r, sockit__attempt *at, int error);
/* Whether an attempt's connect has completed: 1 connected, 0 not yet, or the
 * failure (the attempt is then finished with it). revents from poll or the loop. */
int sockit__race_check(sockit__race *r, size_t i, bool writable, bool failed);
/* The attempts in flight as poll entries (POLLOUT), with their indexes in idx;
 * both arrays hold SOCKIT__RACE_MAX. Returns how many. */
nfds_t sockit__race_pollfds(const sockit__race *r, struct pollfd *pfd, size_t *idx);
/* Takes the winner's descriptor out and closes every other attempt. */
int sockit__race_take(sockit__race *r, size_t won);
/* Closes what is still in flight with code, and sets the message for the failed
 * race: "connect to <where> (tried a: reason, b: reason; not tried: c)". code 0
 * means every attempt failed: the first one's reason is the code. Returns it. */
int sockit__race_fail(sockit__race *r, int code, const char *where);

#endif
