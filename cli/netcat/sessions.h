/* The peer table of `listen -u -k` (dgram_sessions.h): one session per peer address,
 * found in O(1) on average by a hash of the address, and kept on two lists: by last
 * activity, the oldest first, so idle expiry looks only at the head (a session that
 * is heard from moves to the tail), and by arrival, the order a broadcast walks,
 * which activity never reorders (so a broadcast that has to wait can go on from
 * where it stopped). At most max sessions; the table allocates as it fills. */
#ifndef SOCKIT_CLI_SESSIONS_H
#define SOCKIT_CLI_SESSIONS_H

#include "cli.h"

#include <stdint.h>

typedef struct session session;
struct session {
    sockit_addr addr;             /* the key: the peer's address as recvfrom gave it */
    char name[CLI_PEER_NAME_MAX]; /* as cli_addr_text shows it */
    double last;                  /* loop time of its last datagram */
    uint64_t joined;              /* for the caller: the first broadcast it takes */
    bool warned;                  /* for the caller: a problem already said once */
    session *chain;               /* the hash bucket's list */
    session *older, *newer;       /* by last activity */
    session *prev, *next;         /* by arrival: walk with sessions_first and ->next */
};

typedef struct sessions sessions;

/* A table of at most max (1 or more) sessions. NULL when out of memory. */
sessions *sessions_new(size_t max);
/* Frees the table and every session in it. NULL is a no-op. */
void sessions_free(sessions *t);

size_t sessions_count(const sessions *t);
/* The session of address a (compared as sockit_addr_equal does), or NULL. */
session *sessions_find(const sessions *t, const sockit_addr *a);
/* A new session for a (which must not have one), heard from at now, at the tail of
 * both lists; name, joined and warned are zero. NULL when the table holds max
 * sessions or memory ran out. */
session *sessions_add(sessions *t, const sockit_addr *a, double now);
/* s was heard from at now (never earlier than its last time): it moves to the
 * newest end of the activity list. */
void sessions_touch(sessions *t, session *s, double now);
/* Removes and frees s. */
void sessions_remove(sessions *t, session *s);
/* The session heard from longest ago, or NULL when empty. */
session *sessions_oldest(const sessions *t);
/* The first session by arrival, or NULL when empty. */
session *sessions_first(const sessions *t);

#endif
