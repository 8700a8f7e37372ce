/* The stream relay of the netcat pair on sockit_loop: stdin to the network, the
 * network to stdout. Buffers are bounded (64 KiB per direction): alone, stdin is
 * read while the connection has less than that left to take; with -k, when every
 * connection has taken the last chunk. WRITE is watched only for a connection that
 * has stdin bytes left, and a connection whose bytes find the stdout buffer full
 * stops being read until stdout has taken some. stdin and stdout stay blocking
 * (netio.h). */
#ifndef SOCKIT_CLI_RELAY_H
#define SOCKIT_CLI_RELAY_H

#include "cli.h"
#include "gate.h"

#include <sockit_tls.h>

/* --broker and --chat (broker.c). */
#define RELAY_BROKER 1
#define RELAY_CHAT   2

typedef struct relay_config {
    bool half_close;     /* shut down the write side when stdin ends */
    bool hexdump;        /* -x */
    double idle;         /* -i: close a connection idle this long; < 0 never */
    double linger;       /* -q: after stdin ends, close after this long; < 0 never */
    double wait;         /* listen -k -w: fail unless a client comes within this; < 0 never */
    long max_clients;    /* -k: connections at once */
    int broker;          /* 0, RELAY_BROKER or RELAY_CHAT */
    sockit_tls_ctx *tls; /* listen -k, --broker, --chat: a server context, or NULL */
    double tls_timeout;  /* each client's handshake, seconds */
    gate *gate;          /* listen: who is let in (--allow, --deny, --conn-rate), or NULL */
} relay_config;

/* Relays one connection (taken: it is closed before returning) until both
 * directions have ended, the peer resets it, stdout closes, -i or -q expires, or
 * SIGINT/SIGTERM. Says what happened (netlog) and returns the exit status: 1 also
 * when the peer ended the connection before all of stdin was read, sent and
 * acknowledged by its TCP (the send queue empty, SIOCOUTQ 0). */
int relay_stream(sockit *conn, const sockit_addr *peer, const relay_config *cfg);

/* listen -k: accepts on listener (kept by the caller) at most max_clients at once
 * (accepter.h), relays each as relay_stream does, with stdin broadcast to every
 * connection (the slowest one paces stdin), and every connection's data to stdout
 * in whole read chunks. A connection is closed when the peer closes its side.
 * Returns when SIGINT or SIGTERM arrives (CLI_OK) or stdout closes, or
 * (cfg->wait >= 0) when no client came within cfg->wait seconds (CLI_FAIL, reason
 * "timeout"). With cfg->tls each client's handshake runs first (accepter_tls).
 * A TLS connection (any of these) is relayed in the same way: after a would-block
 * its watcher waits for what TLS waits for (a read may need the socket writable,
 * a write readable), and a write is retried from the same offset, never shorter. */
int relay_serve(sockit *listener, const relay_config *cfg);

/* listen --broker / --chat (broker.c): each client's bytes go to every other client
 * (--chat: line by line, each prefixed with "<sender> "); a client whose bounded
 * output queue overflows is disconnected. stdin and stdout are not used. Ends as
 * relay_serve. */
int broker_serve(sockit *listener, const relay_config *cfg);

#endif
