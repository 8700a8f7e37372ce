/* What the reference servers (tcp-server, udp-server) share: options, the serving
 * loop with --count, signals, and the events they print. */
#ifndef SOCKIT_CLI_REFSERVER_H
#define SOCKIT_CLI_REFSERVER_H

#include "cli.h"

typedef struct refserver {
    const char *host;
    int port;
    const char *reply;
    long count; /* requests to serve; 0 = forever */
    long served;
    long long bytes_in, bytes_out;
} refserver;

/* Parses the options, runs the server with handler, prints the exit event. */
int refserver_run(int argc, char **argv, int type, const char *default_reply,
                  sockit_handler_fn handler);
/* Prints "Received from PEER: TEXT" (or its --json event). */
void refserver_received(const sockit_addr *peer, const char *data, size_t len);

#endif
