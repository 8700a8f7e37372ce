/* What the reference servers (tcp-server, udp-server) share: options, the serving
 * loop with --count, signals, and the events they print. */
#ifndef SOCKIT_CLI_REFSERVER_H
#define SOCKIT_CLI_REFSERVER_H

#include "cli.h"
#include "tls_opts.h"

typedef struct refserver {
    const char *host;
    int port;
    const char *reply;
    long count;     /* requests to serve; 0 = forever */
    double timeout; /* tcp-server: per-connection timeout in seconds; 0 = none */
    long served;
    long long bytes_in, bytes_out;
    char peer[CLI_PEER_NAME_MAX]; /* the client being served, for messages */
    const char *waiting_for;      /* what it was waiting for, for a timeout message */
    tls_opts tls;                 /* tcp-server only */
} refserver;

/* tcp-server's default --timeout: long enough for a person typing into nc, short
 * enough that one idle client does not stall the queue behind it for long. */
#define REFSERVER_DEFAULT_TIMEOUT 5.0

/* Parses the options, runs the server with handler, prints the exit event. */
int refserver_run(int argc, char **argv, int type, const char *default_reply,
                  sockit_handler_fn handler);
/* Prints the received line the Python original prints: "Received: TEXT" (tcp-server)
 * or "Received from PEER: TEXT" (udp-server); --json gives the peer either way. */
void refserver_received(const char *peer_name, bool with_peer, const char *data, size_t len);
/* Prints "Connected to PEER" (or its --json event); for a TLS connection a second
 * line "tls: TLSv1.3 TLS_AES_256_GCM_SHA384, ..." (the event: tls_* fields). */
void refserver_connected(const sockit *s, const char *peer_name);

#endif
