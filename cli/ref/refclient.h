/* What the reference clients (tcp-client, udp-client) share: their options. */
#ifndef SOCKIT_CLI_REFCLIENT_H
#define SOCKIT_CLI_REFCLIENT_H

#include "cli.h"
#include "tls_opts.h"

typedef struct refclient {
    hostport target; /* --host and --port as read */
    const char *host;
    int port;
    const char *send;
    double timeout;    /* seconds, the whole exchange; SOCKIT_BLOCKING for none */
    tls_opts tls;      /* tcp-client only */
    const char *proxy; /* --proxy URL (tcp-client only), NULL without */
} refclient;

/* Parses the options into rc. Returns -1 when they were fine (go on), otherwise the
 * exit status (CLI_OK after --help, CLI_USAGE). */
int refclient_options(int argc, char **argv, int type, const char *default_send, refclient *rc);
/* Prints the reply (or its --json event). */
void refclient_reply(const char *data, size_t len, const sockit_addr *from);

#endif
