/* The stream relay of the netcat pair: stdin to the network, the network to
 * stdout, in one poll loop (OpenBSD nc's named slots: stdin, stdout, the listener
 * with -k, then one slot per connection for net-in and net-out). Buffers are fixed
 * (64 KiB per direction): stdin is not read while the net-out buffer is full, and a
 * connection is not read while stdout is blocked. stdin and stdout stay blocking
 * (they may be shared with the shell): poll says when they are ready, and each
 * write to a pipe or socket stdout is at most PIPE_BUF bytes, which a ready pipe
 * takes without blocking. */
#ifndef SOCKIT_CLI_RELAY_H
#define SOCKIT_CLI_RELAY_H

#include "cli.h"

typedef struct relay_config {
    bool half_close;  /* shut down the write side when stdin ends */
    bool hexdump;     /* -x */
    double idle;      /* -i: close a connection idle this long; < 0 never */
    double linger;    /* -q: after stdin ends, close after this long; < 0 never */
    double wait;      /* listen -k -w: fail unless a client comes within this; < 0 never */
    long max_clients; /* -k: connections at once */
} relay_config;

/* Relays one connection (taken: it is closed before returning) until both
 * directions have ended, the peer resets it, stdout closes, -i or -q expires, or
 * SIGINT/SIGTERM. Says what happened (netlog) and returns the exit status: 1 also
 * when the peer ended the connection before all of stdin was read, sent and
 * acknowledged by its TCP (the send queue empty, SIOCOUTQ 0). */
int relay_stream(sockit *conn, const sockit_addr *peer, const relay_config *cfg);

/* listen -k: accepts on listener (kept by the caller; made non-blocking) at most
 * max_clients at once, relays each as relay_stream does, with stdin broadcast to
 * every connection (stdin is read only when every connection has taken the last
 * chunk, so the slowest one paces it), and every connection's data to stdout.
 * A connection is closed when the peer closes its side. Returns when SIGINT or
 * SIGTERM arrives (CLI_OK) or stdout closes, or (cfg->wait >= 0) when no client came
 * within cfg->wait seconds (CLI_FAIL, reason "timeout"). EMFILE/ENFILE on accept pauses
 * accepting for 100 ms instead of spinning. */
int relay_serve(sockit *listener, const relay_config *cfg);

#endif
