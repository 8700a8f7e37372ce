/* Who `sockit listen` lets in: the --allow/--deny rules (access.h) first, then
 * --conn-rate (ratelimit.h), for each accepted connection (listen, -k, --broker,
 * --chat: before any TLS handshake, before it is counted against -m) and for each
 * datagram of -u. What is refused is said with -v and --json (netlog_denied). */
#ifndef SOCKIT_CLI_GATE_H
#define SOCKIT_CLI_GATE_H

#include "access.h"
#include "ratelimit.h"

typedef struct gate {
    access_list rules;
    ratelimit *rate; /* --conn-rate, or NULL */
    long rate_n;     /* as given, for messages */
    double rate_secs;
    access_ip quiet; /* -u: the sender last said to be dropped */
    bool quiet_set;
} gate;

/* True when there is anything to check. */
bool gate_on(const gate *g);
/* A connection from peer at time now (the loop's clock; only --conn-rate reads it):
 * true to serve it; false when refused (said), to close with gate_refuse. */
bool gate_admit(gate *g, const sockit_addr *peer, double now);
/* A datagram from peer (rules only): true to take it; false to drop it, said once
 * for a run of datagrams from the same sender. */
bool gate_admit_datagram(gate *g, const sockit_addr *peer);
/* Closes a refused connection at once, with a reset: the client learns at once,
 * the listener keeps no TIME_WAIT for it, and it never sees a byte of ours. */
void gate_refuse(sockit *conn);
/* Frees the rules and the rate table. */
void gate_free(gate *g);

#endif
